"""Renders the intermediate representation into Python source with jinja2.

The view built here does the decisions (names, Python types, which checks a type needs, which
decoder handles which element); the templates only lay the code out. Rendering is a pure
function of the contract set, so a second run gives the same text.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache

import jinja2

from ccbmdm.codegen.ir import ComplexType, ContractSet, Facets, Home, Particle, SimpleType
from ccbmdm.codegen.naming import class_name, field_name
from ccbmdm.errors import CcbmdmError

HOMES: tuple[Home, ...] = ("common", "ccb", "mdm")
_PY_TYPES = {
    "string": "str",
    "decimal": "Decimal",
    "integer": "int",
    "boolean": "bool",
    "date": "date",
    "dateTime": "datetime",
}
_PARSERS = {
    "decimal": "lexical.parse_decimal",
    "integer": "lexical.parse_integer",
    "boolean": "lexical.parse_boolean",
    "date": "lexical.parse_date",
    "dateTime": "lexical.parse_datetime",
}
_FORMATTERS = {
    "string": "escape({})",
    "decimal": "lexical.format_decimal({})",
    "integer": "str({})",
    "boolean": "lexical.format_boolean({})",
    "date": "lexical.format_date({})",
    "dateTime": "lexical.format_datetime({})",
}
# The same texts as _FORMATTERS, written as replacement fields of the encoder's f-strings (a
# template for the value expression, {0}): an expression where one does the formatter's work.
# A decimal's str is its plain notation unless that would take an exponent (str writes one for
# a positive exponent or a value below 10**-6), which only the "f" format writes out in full.
_INLINE_FORMATTERS = {
    "string": "{{escape({0})}}",
    "decimal": "{{s if 'E' not in (s := str({0})) else format({0}, 'f')}}",
    "integer": "{{{0}}}",
    "boolean": "{{'true' if {0} else 'false'}}",
    "date": "{{{0}.isoformat()}}",
    "dateTime": "{{lexical.format_datetime({0})}}",
}
# The plain lexical form of a date and a date-time as the parser reads it without a second look
# (named in runtime.messages.lexical), and the conversion it then applies.
_PLAIN_FORMS = {
    "date": ("lexical.PLAIN_DATE", "date.fromisoformat"),
    "dateTime": ("lexical.PLAIN_DATETIME", "datetime.fromisoformat"),
}
# Integers of at most this many digits are read by the fast path; longer ones by the parser.
_FAST_INTEGER_DIGITS = 18
_MODULE_ALIAS = {"common": "c", "ccb": "ccb", "mdm": "mdm"}


class RenderError(CcbmdmError):
    """The contracts cannot be rendered as they are (for example, two names collide)."""


def type_ref(home: Home, name: str, here: Home | None) -> str:
    """How module ``here`` names a type defined in module ``home`` (None: from a codec)."""
    return name if home == here else f"{_MODULE_ALIAS[home]}.{name}"


def simple_name(simple: SimpleType) -> str:
    return class_name("Xs", simple.name[3:]) if simple.name.startswith("xs:") else simple.name


@dataclass(frozen=True)
class SimpleView:
    name: str
    doc: str
    py_type: str  # the value's Python type
    annotation: str  # the type alias' right-hand side
    patterns: tuple[str, ...]
    enumeration: tuple[str, ...]
    checks: tuple[str, ...]  # statements checking the value's facets, raising ValueError
    parser: str | None  # the lexical parser; None for strings
    lexical_form: str  # expression of the value's canonical text, which patterns apply to


@dataclass(frozen=True)
class FieldView:
    xml: str
    name: str
    annotation: str
    default: str | None
    doc: str
    particle: Particle
    tag: str  # Clark notation in the codec's namespace
    decode: str  # expression decoding kids[i] (k), whose text is t
    # A simple value's text as a replacement field of an f-string (a template for the value
    # expression); empty for a complex element or a wildcard.
    text: str
    # The common case of a simple element, decided without a call: a condition on its text t
    # under which ``fast_value`` is the value ``decode`` would give (None: always ``decode``);
    # both may name a variable of the field's own, {w}.
    fast: str | None = None
    fast_value: str = "t"
    parse: str = ""  # a simple element's parser on its text t (raising ValueError)
    fn: str = ""  # a complex element's decoder and encoder suffix
    # Where the fast decoder finds the element: at this index of the children when every
    # element before it is required and occurs once (None: at the running index i).
    at: int | None = None
    # Whether the fast decoder must look for a second occurrence of a single element right
    # after it: only when a later element has the same tag; otherwise a second one is left
    # over, which the later tests or the test for children left unread turn down.
    recheck: bool = True


@dataclass(frozen=True)
class ComplexView:
    name: str
    fn: str  # the suffix of its decoder and encoder, unique across homes
    ref: str  # the class as the codec module names it
    doc: str
    fields: tuple[FieldView, ...]
    has_any: bool
    known: tuple[str, ...]
    personal: bool  # the type is personal data as a whole
    personal_fields: tuple[str, ...]  # the fields whose values are personal data
    # The statements of its encoder (a codec's view only): the XML text of a model as one
    # f-string, with the optional and repeated parts worked out first.
    encoder: tuple[str, ...] = ()


def simple_view(simple: SimpleType) -> SimpleView:
    facets = simple.facets
    name = simple_name(simple)
    py_type = _PY_TYPES[simple.primitive]
    checks: list[str] = []  # on the value; patterns are applied by the template
    if simple.primitive == "string":
        if facets.length is not None:
            checks.append(
                _raise_if(f"len(value) != {facets.length}", f"exactly {facets.length} required")
            )
        if facets.min_length:
            checks.append(
                _raise_if(
                    f"len(value) < {facets.min_length}", f"at least {facets.min_length} required"
                )
            )
        if facets.max_length is not None:
            checks.append(
                _raise_if(
                    f"len(value) > {facets.max_length}", f"at most {facets.max_length} allowed"
                )
            )
        if facets.enumeration:
            allowed = ", ".join(facets.enumeration)
            checks.append(
                f"if value not in _E_{name}:\n"
                f'    raise lexical.InvalidValue(repr(value), "is not one of {allowed}")'
            )
    elif facets.enumeration:
        raise RenderError(f"{simple.origin}: enumerations are supported on strings only ({name})")
    if simple.primitive == "decimal" and (
        facets.total_digits or facets.fraction_digits is not None
    ):
        checks.append(
            f"lexical.check_digits(value, {facets.total_digits}, {facets.fraction_digits})"
        )
    if simple.primitive in ("decimal", "integer"):
        convert = "Decimal" if simple.primitive == "decimal" else "int"
        if facets.min_inclusive is not None:
            checks.append(
                f"if value < {convert}({facets.min_inclusive!r}):\n"
                "    raise lexical.InvalidValue(str(value), "
                f'"is below the minimum {facets.min_inclusive}")'
            )
        if facets.max_inclusive is not None:
            checks.append(
                f"if value > {convert}({facets.max_inclusive!r}):\n"
                "    raise lexical.InvalidValue(str(value), "
                f'"is above the maximum {facets.max_inclusive}")'
            )
    elif facets.min_inclusive is not None or facets.max_inclusive is not None:
        raise RenderError(f"{simple.origin}: bounds are supported on numbers only ({name})")
    if facets.enumeration:
        annotation = "Literal[" + ", ".join(repr(v) for v in facets.enumeration) + "]"
        py_type = "str"
    else:
        validators = (
            ["AfterValidator(lexical.check_xml_text)"] if simple.primitive == "string" else []
        )
        if checks or facets.patterns:
            validators.append(f"AfterValidator(check_{name})")
        annotation = f"Annotated[{py_type}, {', '.join(validators)}]" if validators else py_type
    return SimpleView(
        name=name,
        doc=simple.doc,
        py_type=py_type,
        annotation=annotation,
        patterns=tuple(_python_pattern(p) for p in facets.patterns),
        enumeration=facets.enumeration,
        checks=tuple(checks),
        parser=_PARSERS.get(simple.primitive),
        lexical_form=(
            "value"
            if simple.primitive == "string"
            else _FORMATTERS[simple.primitive].format("value")
        ),
    )


def _bounds(facets: Facets, value: str, convert: str = "") -> str | None:
    """A chained comparison of ``value`` with the type's inclusive bounds (None without any);
    ``value`` is written once."""
    low, high = facets.min_inclusive, facets.max_inclusive

    def literal(text: str) -> str:
        return f"{convert}({text!r})" if convert else text

    if low is not None and high is not None:
        return f"{literal(low)} <= {value} <= {literal(high)}"
    if low is not None:
        return f"{value} >= {literal(low)}"
    if high is not None:
        return f"{value} <= {literal(high)}"
    return None


def _fast_decimal_pattern(facets: Facets) -> str:
    """A pattern of decimal texts that meet the type's digit facets as written: no sign but a
    minus, no white space, and no more digits before and after the point than the facets
    allow in all (leading and trailing zeros count here, so the pattern never asks for less)."""
    total, fraction = facets.total_digits, facets.fraction_digits
    whole = total - fraction if total is not None and fraction is not None else total
    before = "[0-9]+" if whole is None else f"[0-9]{{1,{whole}}}" if whole else "0"
    if fraction == 0 or (fraction is None and total is not None):
        after = ""
    else:
        after = r"(?:\.[0-9]+)?" if fraction is None else rf"(?:\.[0-9]{{1,{fraction}}})?"
    return f"-?{before}{after}"


def _raise_if(condition: str, rule: str) -> str:
    """A length check of generated code, with the message it raises."""
    message = f"has {{len(value)}} characters; {rule}"
    return f'if {condition}:\n    raise lexical.InvalidValue(repr(value[:40]), f"{message}")'


def _docstring(text: str) -> str:
    """Text that is safe inside a triple-quoted docstring."""
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return text + " " if text.endswith('"') else text or "(undocumented)"


def _description(text: str) -> str:
    """A field's description, as pydantic would read it from the field's docstring.

    Given to ``Field`` rather than read from the source (pydantic's attribute docstrings parse
    each class's source as the module is imported, a third of a command's start-up).
    """
    return inspect.cleandoc(text + " " if text.endswith('"') else text or "(undocumented)")


def _python_pattern(pattern: str) -> str:
    """XSD regexes are anchored and have no anchors of their own: ^ and $ are plain characters."""
    return pattern.replace("^", r"\^").replace("$", r"\$")


def _encoder(fields: list[FieldView]) -> tuple[str, ...]:
    """The statements of a type's encoder, which returns the XML text of a model's fields.

    The elements that are there once are written by a single f-string, which also takes in
    the text of each optional and repeated element, worked out first: one string is built per
    model, rather than a list of pieces and a call per element.
    """
    lines: list[str] = []
    pieces: list[str] = []
    for number, field in enumerate(fields):
        part = field.particle
        value = f"d[{field.name!r}]"
        if part.kind == "any":  # elements of other namespaces, kept as their XML text
            if part.repeats:
                lines.append(f"x{number} = ''.join({value})")
            elif part.min_occurs == 0:
                lines.append(f"x{number} = '' if {value} is None else {value}")
            else:
                lines.append(f"x{number} = {value}")
            pieces.append(f"{{x{number}}}")
            continue
        each = "y" if part.repeats else value
        text = field.text.format(each) if part.kind == "simple" else f"{{e_{field.fn}({each})}}"
        element = f"<{part.name}>{text}</{part.name}>"
        if part.repeats:
            lines.append(f"x{number} = ''.join([f{element!r} for y in {value}])")
        elif part.min_occurs == 0:
            lines.append(f"x{number} = '' if {value} is None else f{element!r}")
        else:
            pieces.append(element)
            continue
        pieces.append(f"{{x{number}}}")
    if lines or pieces:
        lines.insert(0, "d = m.__dict__")
    text = "".join(pieces)
    lines.append(f"return f{text!r}" if "{" in text else f"return {text!r}")
    return tuple(lines)


class Renderer:
    """Builds the views of one contract set and renders every generated module."""

    def __init__(self, contracts: ContractSet) -> None:
        self.contracts = contracts
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("ccbmdm.codegen", "templates"),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["pyrepr"] = repr
        self.env.filters["docstring"] = _docstring
        self.env.filters["description"] = _description
        # The module-level constants of the codec being rendered, by name.
        self._constants: dict[str, str] = {}
        self._check_names()

    def _check_names(self) -> None:
        for home in HOMES:
            seen: dict[str, str] = {}
            for simple in self.contracts.simple_types_of(home):
                seen[simple_name(simple)] = str(simple.origin)
            for complex_type in self.contracts.complex_types_of(home):
                if complex_type.name in seen:
                    raise RenderError(
                        f"{complex_type.origin}: type name {complex_type.name} is also used at "
                        f"{seen[complex_type.name]}; rename one"
                    )

    @cache  # noqa: B019 - one renderer per compile
    def simple(self, key: tuple[Home, str]) -> SimpleView:
        return simple_view(self.contracts.simple_types[key])

    def annotation(self, particle: Particle, here: Home | None) -> tuple[str, str | None]:
        """The field's type and default in the models module ``here``."""
        if particle.kind == "any":
            base = "Annotated[str, AfterValidator(lexical.check_foreign_xml)]"
        else:
            assert particle.type_key is not None
            home, name = particle.type_key
            if particle.kind == "simple":
                name = self.simple(particle.type_key).name
            base = type_ref(home, name, here)
        if particle.personal and particle.kind != "complex":
            # a refused value of personal data is never quoted (runtime.messages.personal.withhold)
            base = f"Annotated[{base}, WrapValidator(personal.withhold)]"
        if particle.repeats:
            bounds = []
            if particle.min_occurs > 0:
                bounds.append(f"min_length={particle.min_occurs}")
            if particle.max_occurs is not None:
                bounds.append(f"max_length={particle.max_occurs}")
            annotation = f"tuple[{base}, ...]"
            if bounds:
                annotation = f"Annotated[{annotation}, Field({', '.join(bounds)})]"
            return annotation, None if particle.min_occurs > 0 else "()"
        if particle.min_occurs == 0:
            return f"{base} | None", "None"
        return base, None

    def complex_view(
        self, complex_type: ComplexType, here: Home | None, namespace: str | None
    ) -> ComplexView:
        """The view of a type for the models module ``here``, or for a codec (``here`` None)."""
        fields = []
        prefix = f"{{{namespace}}}" if namespace else ""
        particles = complex_type.particles
        fixed = True  # this particle and every one before are required and single
        for index, particle in enumerate(particles):
            fixed = fixed and particle.kind != "any" and particle.min_occurs == 1
            fixed = fixed and particle.max_occurs == 1
            annotation, default = self.annotation(particle, here)
            decode, text = self._codec_parts(particle, prefix)
            fast = self._fast_path(particle) if particle.kind == "simple" and namespace else None
            fields.append(
                FieldView(
                    xml=particle.name,
                    name=field_name(particle.name),
                    annotation=annotation,
                    default=default,
                    doc=particle.doc,
                    particle=particle,
                    tag=prefix + particle.name,
                    decode=decode,
                    text=text,
                    **({"fast": fast[0], "fast_value": fast[1]} if fast else {}),
                    **self._fast_parts(particle),
                    at=index if fixed else None,
                    recheck=any(later.name == particle.name for later in particles[index + 1 :]),
                )
            )
        has_any = any(p.kind == "any" for p in complex_type.particles)
        return ComplexView(
            encoder=_encoder(fields) if namespace else (),
            name=complex_type.name,
            fn=f"{complex_type.home}_{complex_type.name}",
            ref=type_ref(complex_type.home, complex_type.name, here),
            doc=complex_type.doc,
            fields=tuple(fields),
            has_any=has_any,
            known=tuple(sorted({f.tag for f in fields if f.particle.kind != "any"})),
            personal=complex_type.personal,
            personal_fields=tuple(f.name for f in fields if f.particle.personal),
        )

    def _codec_parts(self, particle: Particle, prefix: str) -> tuple[str, str]:
        """A particle's decoding expression in the checking decoder, and its value's text."""
        if particle.kind == "any":
            return "foreign(kids[i])", ""
        assert particle.type_key is not None
        home, name = particle.type_key
        module = _MODULE_ALIAS[home]
        if particle.kind == "simple":
            view = self.simple(particle.type_key)
            decode = f'{module}.parse_{view.name}(t or "") if not len(k) else p.compound(k)'
            primitive = self.contracts.simple_types[particle.type_key].primitive
            return decode, _INLINE_FORMATTERS[primitive]
        return f"d_{home}_{name}(kids[i], p)", ""

    def _fast_path(self, particle: Particle) -> tuple[str, str] | None:
        """The condition on a simple element's text ``t`` under which its value is known without
        calling its parser, and the value's expression; None when every text goes to the parser.

        The condition accepts only texts the parser accepts as they are (no white space to
        collapse), and the value is the parser's; a text it turns down, and every problem, take
        the parser's way, so a refused value is worded the same. Only a date or a date-time's
        value may raise (a day the calendar does not have): a ValueError, upon which the fast
        decoder gives up and the checking decoder words the problem as its parser does.
        """
        assert particle.type_key is not None
        simple = self.contracts.simple_types[particle.type_key]
        view = self.simple(particle.type_key)
        facets = simple.facets
        home = particle.type_key[0]
        module = _MODULE_ALIAS[home]
        value = "t"
        bounds = None
        primitive = simple.primitive
        if primitive in _PLAIN_FORMS:
            # a date or a date-time: the type's patterns and the parser's plain form in one
            # expression, and then the parser's own conversion, which raises as it would
            lookaheads = "".join(f"(?=(?:{pattern})\\Z)" for pattern in view.patterns)
            form, convert = _PLAIN_FORMS[primitive]
            match = self._codec_constant(
                f"_T_{home}_{view.name}", f"re.compile({lookaheads!r} + {form}).fullmatch"
            )
            return f"{match}(t) is not None", f"{convert}(t)"
        tests = [
            self._codec_constant(
                f"_F_{home}_{view.name}_{n}", f"{module}._P_{view.name}_{n}.fullmatch"
            )
            + "(t) is not None"
            for n in range(len(view.patterns))
        ]
        if primitive == "string":
            if facets.enumeration:
                tests.append(f"t in {module}._E_{view.name}")
            if facets.length is not None:
                tests.append(f"len(t) == {facets.length}")
            low, high = facets.min_length or 0, facets.max_length
            if high is not None:
                tests.append(f"{low} <= len(t) <= {high}" if low else f"len(t) <= {high}")
            elif low:
                tests.append(f"len(t) >= {low}")
        elif primitive == "integer":
            tests.append(f"len(t) <= {_FAST_INTEGER_DIGITS} and t.isascii() and t.isdigit()")
            value = "int(t)"
            bounds = _bounds(facets, "({w} := int(t))")
        elif primitive == "decimal":
            match = self._codec_constant(
                f"_D_{particle.type_key[0]}_{view.name}",
                f"re.compile({_fast_decimal_pattern(facets)!r}).fullmatch",
            )
            tests.append(f"{match}(t) is not None")
            value = "Decimal(t)"
            bounds = _bounds(facets, "({w} := Decimal(t))", "Decimal")
        else:  # a boolean
            tests.append("({w} := _BOOLEANS.get(t)) is not None")
            value = "{w}"
        if bounds:
            tests.append(bounds)
            value = "{w}"
        return " and ".join(tests), value

    def _fast_parts(self, particle: Particle) -> dict[str, str]:
        """The parser of a simple element's text, or the suffix of a complex one's decoders."""
        if particle.type_key is None:
            return {}
        home, name = particle.type_key
        if particle.kind == "simple":
            view = self.simple(particle.type_key)
            return {"parse": f'{_MODULE_ALIAS[home]}.parse_{view.name}(t or "")'}
        return {"fn": f"{home}_{name}"}

    def _codec_constant(self, name: str, definition: str) -> str:
        """A module-level constant of the codec being rendered, defined once."""
        self._constants[name] = definition
        return name

    def models_module(self, home: Home) -> str:
        simples = [
            self.simple(key) for key in sorted(self.contracts.simple_types) if key[0] == home
        ]
        complexes = [
            self.complex_view(t, home, None) for t in self.contracts.complex_types_of(home)
        ]
        return self.env.get_template("models.py.jinja2").render(
            home=home,
            simples=simples,
            complexes=complexes,
            needs_decimal=any(s.py_type == "Decimal" for s in simples),
        )

    def codec_module(self, system: Home, namespace: str) -> str:
        self._constants = {}
        reachable = self._reachable(system)
        complexes = [
            self.complex_view(self.contracts.complex_types[key], None, namespace)
            for key in reachable
        ]
        contracts = [
            c
            for c in sorted(self.contracts.contracts.values(), key=lambda c: c.name)
            if c.system == system
        ]
        return self.env.get_template("codec.py.jinja2").render(
            system=system,
            namespace=namespace,
            complexes=complexes,
            contracts=contracts,
            constants=sorted(self._constants.items()),
            ref=lambda key: f"{_MODULE_ALIAS[key[0]]}.{key[1]}",
            # the model modules its types come from, and no other: a command that reads one
            # system's message loads that system's models only
            models=[
                (home, _MODULE_ALIAS[home])
                for home in sorted({key[0] for key in reachable} | {"common"})
            ],
        )

    def package_module(self, digest: str, transformers: list[dict[str, str]]) -> str:
        contracts = sorted(self.contracts.contracts.values(), key=lambda c: c.name)
        return self.env.get_template("package.py.jinja2").render(
            contracts=contracts,
            digest=digest,
            systems=sorted({c.system for c in contracts}),
            transformers=sorted(transformers, key=lambda t: (t["flow"], t["part"])),
        )

    def _reachable(self, system: Home) -> list[tuple[Home, str]]:
        """Every complex type a contract of ``system`` uses, in a stable order."""
        seen: dict[tuple[Home, str], None] = {}
        stack = [c.type_key for c in self.contracts.contracts.values() if c.system == system]
        while stack:
            key = stack.pop()
            if key in seen:
                continue
            seen[key] = None
            for particle in self.contracts.complex_types[key].particles:
                if particle.kind == "complex" and particle.type_key is not None:
                    stack.append(particle.type_key)
        return sorted(seen)

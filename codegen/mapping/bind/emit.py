"""The shapes of generated code every stage shares: module aliases, parsers and formatters of
the lexical forms, checked constants, and run-time failures located at a rule."""

from __future__ import annotations

import re

from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.ir import ComplexType, Facets, Home, Particle, SimpleType
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.facets import facet_problem, lexical_of
from ccbmdm.codegen.mapping.syntax import Literal_
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.codegen.render import simple_name

MODULES: dict[Home, str] = {"common": "c", "ccb": "ccb", "mdm": "mdm"}
FORMAT = {
    "string": "{}",
    "decimal": "lexical.format_decimal({})",
    "integer": "str({})",
    "boolean": "lexical.format_boolean({})",
    "date": "lexical.format_date({})",
    "dateTime": "lexical.format_datetime({})",
}
PARSE = {
    "decimal": "lexical.parse_decimal",
    "integer": "lexical.parse_integer",
    "boolean": "lexical.parse_boolean",
    "date": "lexical.parse_date",
    "dateTime": "lexical.parse_datetime",
}
_VARIABLE = re.compile(r"\b([vx]\d+)\b(?= =| in )")


def plain(primitive: str) -> SimpleType:
    """A facet-free simple type of a primitive (function results, table keys)."""
    return SimpleType(f"xs:{primitive}", "common", primitive, Facets(), "", None)  # type: ignore[arg-type]


def model(key: tuple[Home, str]) -> str:
    """The generated model class of a complex type, as the transformer module names it."""
    return f"{MODULES[key[0]]}.{key[1]}"


def type_label(complex_type: ComplexType) -> str:
    return complex_type.name


def parser(simple: SimpleType) -> str:
    """The function reading a lexical string as ``simple`` (``str``: the string itself)."""
    if (
        simple.name.startswith("xs:")
        and not simple.facets.patterns
        and simple.primitive == "string"
    ):
        return "str"
    if simple.name.startswith("xs:"):
        return PARSE.get(simple.primitive, "str")
    return f"{MODULES[simple.home]}.parse_{simple_name(simple)}"


def mismatch(source: SimpleType, target: SimpleType, name: str) -> str:
    return f"<{name}> takes a {target.primitive} ({simple_name(target)}), but the rule gives a {source.primitive} ({simple_name(source)})"


def conversion_hint(source: SimpleType, target: SimpleType) -> str:
    pair = (source.primitive, target.primitive)
    if pair == ("date", "dateTime"):
        return "convert it, e.g. {fn: start_of_day, args: [date, timeZone]}"
    if pair == ("dateTime", "date"):
        return "convert it, e.g. {fn: date_of, args: [dateTime, timeZone]}"
    if pair == ("string", "decimal"):
        return "text is not a number; map a decimal source"
    return ""


def constant(binder: Binding, pos: Pos, simple: SimpleType, literal: Literal_) -> str:
    """A module-level constant of the literal read as ``simple``, checked now."""
    text = lexical_of(literal)
    problem = facet_problem(simple, text)
    if problem:
        binder.fail(pos, "facet-violation", f"constant {text!r}: {problem}")
    name = f"_K{binder.next()}"
    parse = PARSE.get(simple.primitive)
    binder.constants.append(f"{name} = {parse}({text!r})" if parse else f"{name} = {text!r}")
    return name


def wrap_value_errors(w: Writer, site: int, var: str, shown: str | None = None) -> None:
    """Turn the ValueError of the statement just emitted into a located failure reporting
    ``shown`` (default: ``var``, which must then be bound before the statement)."""
    last = w.lines[-1]
    indent = last[: len(last) - len(last.lstrip())]
    check_lines = [w.lines.pop()]
    if w.lines and w.lines[-1].lstrip().startswith(f"if {var} is not None"):
        check_lines.insert(0, w.lines.pop())
        indent = check_lines[0][: len(check_lines[0]) - len(check_lines[0].lstrip())]
    w.lines.append(f"{indent}try:")
    w.lines.extend("    " + line for line in check_lines)
    w.lines.append(f"{indent}except ValueError as error:")
    w.lines.append(
        f"{indent}    raise RuleFailure({site}, {shown or var}, lexical.quoting(error), 1003) from None"
    )


def require_count(w: Writer, site: int, var: str, particle: Particle) -> None:
    """A run-time failure when a repeated element gets fewer or more values than it takes."""
    low, high = particle.min_occurs, particle.max_occurs
    test = f"len({var}) < {low}" + (f" or len({var}) > {high}" if high is not None else "")
    bound = f"between {low} and {high}" if high is not None else f"at least {low}"
    message = f"<{particle.name}> needs {bound} values"
    with w.block(f"if {test}:"):
        w.line(f"raise RuleFailure({site}, len({var}), {message!r}, 1003)")


def declarations(lines: list[str]) -> list[str]:
    """``name: Any`` for every variable of a generated body: a variable holds a value, then the
    same value checked or wrapped, so one precise type per name would not fit; the function's
    own signature stays precise."""
    names = sorted(
        {m for line in lines for m in _VARIABLE.findall(line)}, key=lambda n: (n[0], int(n[1:]))
    )
    return [f"{name}: Any" for name in names]

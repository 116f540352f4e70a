"""Reads a project's XSDs into the intermediate representation.

xsdata parses each schema into its typed XSD model; this module checks that the schema stays in
the subset the generator supports (with the file and line of anything outside it), resolves type
references across chameleon includes and flattens groups, so later stages see plain sequences.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from lxml import etree
from xsdata.codegen.parsers.schema import SchemaParser
from xsdata.exceptions import ConverterError
from xsdata.exceptions import ParserError as XsdataParserError
from xsdata.models import xsd
from xsdata.models.mixins import ElementBase

from ccbmdm.codegen.diagnostics import Finding, FindingsError, Pos, did_you_mean
from ccbmdm.codegen.ir import (
    ComplexType,
    Contract,
    ContractSet,
    Facets,
    Home,
    Origin,
    Particle,
    Primitive,
    SimpleType,
    ValueDoc,
)
from ccbmdm.codegen.naming import class_name
from ccbmdm.codegen.project import display_path
from ccbmdm.runtime.messages.xmlsafe import syntax_reason

XS = "http://www.w3.org/2001/XMLSchema"
# The xs:appinfo source that marks an element (of a simple type) or a complex type as personal
# data: <xs:annotation><xs:appinfo source="urn:ccbmdm:personal-data"/>…</xs:annotation>
PERSONAL_DATA = "urn:ccbmdm:personal-data"
SYSTEM_NAMESPACES: dict[str, str] = {
    "common": "urn:ccbmdm:common:v1",
    "ccb": "urn:ccbmdm:ccb:v1",
    "mdm": "urn:ccbmdm:mdm:v1",
}

# XSD built-ins the contracts may use: their primitive and the bounds the type itself implies.
_BUILTINS: dict[str, tuple[Primitive, Facets]] = {
    "string": ("string", Facets()),
    "decimal": ("decimal", Facets()),
    "integer": ("integer", Facets()),
    "int": ("integer", Facets(min_inclusive=str(-(2**31)), max_inclusive=str(2**31 - 1))),
    "long": ("integer", Facets(min_inclusive=str(-(2**63)), max_inclusive=str(2**63 - 1))),
    "nonNegativeInteger": ("integer", Facets(min_inclusive="0")),
    "positiveInteger": ("integer", Facets(min_inclusive="1")),
    "boolean": ("boolean", Facets()),
    "date": ("date", Facets()),
    "dateTime": ("dateTime", Facets()),
}

# The XSD subset: element -> the attributes it may carry. Anything else is reported.
_ALLOWED: dict[str, set[str]] = {
    "schema": {"targetNamespace", "elementFormDefault", "attributeFormDefault", "version"},
    "include": {"schemaLocation"},
    "element": {"name", "type", "minOccurs", "maxOccurs"},
    "complexType": {"name"},
    "sequence": set(),
    "group": {"name", "ref"},
    "any": {"namespace", "processContents", "minOccurs", "maxOccurs"},
    "simpleType": {"name"},
    "restriction": {"base"},
    "annotation": set(),
    "appinfo": {"source"},
    "documentation": {"{http://www.w3.org/XML/1998/namespace}lang", "source"},
    **{
        facet: {"value"}
        for facet in (
            "enumeration",
            "pattern",
            "length",
            "minLength",
            "maxLength",
            "totalDigits",
            "fractionDigits",
            "minInclusive",
            "maxInclusive",
        )
    },
}
# XSD regular expressions the generator cannot translate to Python's dialect.
_UNSUPPORTED_REGEX = re.compile(r"\\[iIcC]|\\p\{Is|\[[^\]]*-\[")


class ContractError(FindingsError):
    """One or more contracts are malformed or leave the supported subset."""


@dataclass
class _Schema:
    """One XSD file: its parsed model, its home and what it can see."""

    path: Path
    display: str
    model: xsd.Schema
    elements: list[etree._Element]  # in document order, as xsdata numbers its nodes
    text: list[str]  # the source lines, to find a column in
    home: Home
    namespace: str | None
    includes: list[Path]
    # An include that is missing or unreadable (reported where it is): names this schema does
    # not find may be declared there, so their absence is not reported again.
    blind: bool = False

    def origin(self, node: ElementBase) -> Origin:
        return Origin(self.display, self.pos(node).line)

    def pos(self, node: ElementBase, attribute: str | None = None) -> Pos:
        """Where a declaration is (at ``attribute`` when given, a misspelt type say)."""
        index = node.index - 1
        if not 0 <= index < len(self.elements):
            return Pos(self.display, 1, 1)
        return _pos(self.display, self.text, self.elements[index], attribute)


@dataclass
class _Reader:
    root: Path
    findings: list[Finding] = field(default_factory=list)
    schemas: dict[Path, _Schema] = field(default_factory=dict)
    result: ContractSet = field(default_factory=ContractSet)
    # per file: local name -> declaration, over the file and everything it includes
    _scopes: dict[Path, dict[str, tuple[_Schema, ElementBase]]] = field(default_factory=dict)
    # where each element is declared, by its contract path (owner type/element)
    _declared: dict[str, Pos] = field(default_factory=dict)

    def fail(self, where: Pos, rule: str, message: str, hint: str = "", path: str = "") -> None:
        self.findings.append(Finding(where, rule, message, hint, path=path))

    # ---------------------------------------------------------------- loading and subset check

    def load(self, path: Path) -> _Schema | None:
        path = path.resolve()
        if path in self.schemas:
            return self.schemas[path]
        display = display_path(path, self.root)
        try:
            data = path.read_bytes()
            tree = etree.fromstring(
                data,
                etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False),
            )
        except OSError as exc:
            self.fail(Pos(display, 1, 1), "xsd-syntax", f"cannot read the schema: {exc.strerror}")
            return None
        except etree.XMLSyntaxError as exc:
            line, column = exc.position
            self.fail(
                Pos(display, line, column),
                "xsd-syntax",
                f"not well-formed XML: {syntax_reason(exc)}",
            )
            return None
        elements = [e for e in tree.iter() if isinstance(e.tag, str)]
        text = data.decode("utf-8", errors="replace").splitlines()
        reported = len(self.findings)
        self._check_subset(display, text, tree, elements)
        parser = SchemaParser(location=path.as_uri())
        try:
            model = parser.from_bytes(data, xsd.Schema)
        except (XsdataParserError, ConverterError) as exc:
            # Anything outside the subset (an xs:elementt) is reported above, where it is.
            if len(self.findings) == reported:
                self.fail(Pos(display, 1, 1), "xsd-subset", f"cannot be read as an XSD: {exc}")
            return None
        namespace = model.target_namespace
        home = _home_of(path, namespace)
        if home is None:
            self.fail(
                _pos(display, text, tree, "targetNamespace"),
                "namespace",
                f"target namespace {namespace!r} does not belong in folder {path.parent.name}/; "
                f"expected {SYSTEM_NAMESPACES.get(path.parent.name, _EXPECTED_NAMESPACES)}",
            )
            return None
        includes: list[tuple[Path, etree._Element]] = []
        blind = False
        for declared, node in zip(model.includes, tree.iterfind(f"{{{XS}}}include"), strict=False):
            if not declared.schema_location:
                continue
            target = (path.parent / declared.schema_location).resolve()
            if target.is_file():
                includes.append((target, node))
            else:
                blind = True
                self.fail(
                    _pos(display, text, node, "schemaLocation"),
                    "xsd-subset",
                    f"xs:include names {declared.schema_location}, which does not exist",
                )
        schema = _Schema(
            path, display, model, elements, text, home, namespace, [t for t, _ in includes], blind
        )
        self.schemas[path] = schema
        for include, node in includes:
            included = self.load(include)
            schema.blind = schema.blind or included is None
            if included is not None and included.namespace is not None:
                self.fail(
                    _pos(display, text, node, "schemaLocation"),
                    "namespace",
                    f"includes {included.display}, which has a target namespace; "
                    "only schemas without one (shared types) may be included",
                )
        return schema

    def _check_subset(
        self, display: str, text: list[str], tree: etree._Element, elements: list[etree._Element]
    ) -> None:
        for node in elements:
            qname = etree.QName(node)
            where = _pos(display, text, node)
            if qname.namespace != XS:
                if not _inside_documentation(node):
                    self.fail(where, "xsd-subset", f"unexpected element {qname.text}")
                continue
            local = qname.localname
            allowed = _ALLOWED.get(local)
            if allowed is None:
                self.fail(
                    where,
                    "xsd-subset",
                    f"xs:{local} is outside the supported XSD subset (see docs/contracts.md)",
                )
                continue
            for attribute in node.attrib:
                if attribute not in allowed:
                    self.fail(
                        _pos(display, text, node, str(attribute)),
                        "xsd-subset",
                        f"attribute {attribute} on xs:{local} is not supported",
                    )
            if local == "appinfo":
                self._check_appinfo(where, node)
            if local == "pattern" and _UNSUPPORTED_REGEX.search(node.get("value", "")):
                self.fail(
                    _pos(display, text, node, "value"),
                    "xsd-subset",
                    f"pattern {node.get('value')!r} uses XSD regex features "
                    "that Python's re cannot express",
                )
        if tree.get("elementFormDefault") != "qualified":
            self.fail(
                _pos(display, text, tree),
                "xsd-subset",
                'xs:schema must say elementFormDefault="qualified"',
            )

    def _check_appinfo(self, where: Pos, node: etree._Element) -> None:
        """The only appinfo the contracts use is the empty personal-data marker, on an
        element or a complex type."""
        if node.get("source") != PERSONAL_DATA:
            self.fail(
                where,
                "personal-data",
                f'xs:appinfo needs source="{PERSONAL_DATA}" (the only marker known)',
            )
        elif len(node) or (node.text or "").strip():
            self.fail(where, "personal-data", "the personal-data xs:appinfo marker must be empty")
        annotated = node.getparent()
        owner = None if annotated is None else annotated.getparent()
        if owner is None or etree.QName(owner).localname not in ("element", "complexType"):
            self.fail(
                where,
                "personal-data",
                "the personal-data marker belongs on an xs:element or xs:complexType",
            )

    # ---------------------------------------------------------------- scopes and lookups

    def scope(self, schema: _Schema) -> dict[str, tuple[_Schema, ElementBase]]:
        cached = self._scopes.get(schema.path)
        if cached is not None:
            return cached
        scope: dict[str, tuple[_Schema, ElementBase]] = {}
        self._scopes[schema.path] = scope
        # A shared-type schema is always included beside the others into a message schema, so
        # it sees every shared type; a message schema sees what it includes.
        if schema.namespace is None:
            visible = [s for s in self.schemas.values() if s.namespace is None and s is not schema]
        else:
            visible = [s for s in map(self.schemas.get, schema.includes) if s is not None]
        for other in visible:
            for node in _declarations(other.model):
                scope[f"{type(node).__name__}:{node.name}"] = (other, node)
            if schema.namespace is not None:
                scope.update(self.scope(other))
        for node in _declarations(schema.model):
            scope[f"{type(node).__name__}:{node.name}"] = (schema, node)
        return scope

    def lookup(
        self, schema: _Schema, kind: str, qname: str, where: Pos, path: str = ""
    ) -> tuple[_Schema, ElementBase] | None:
        prefix, _, local = qname.rpartition(":")
        namespace = _namespace(schema, prefix)
        if namespace not in (schema.namespace, None) and namespace != XS:
            self.fail(
                where,
                "namespace",
                f"{qname} is in namespace {namespace}, which this schema cannot see",
                path=path,
            )
            return None
        found = self.scope(schema).get(f"{kind}:{local}")
        if found is None and not schema.blind:
            self.fail(
                where,
                "unknown-type",
                f"no {_KIND_WORD[kind]} named {local} in this schema or what it includes",
                did_you_mean(local, self.names(schema, kind)),
                path,
            )
        return found

    def names(self, schema: _Schema, *kinds: str) -> list[str]:
        """The names of the declarations of ``kinds`` a schema sees, for did-you-mean hints."""
        return [
            key.partition(":")[2] for key in self.scope(schema) if key.partition(":")[0] in kinds
        ]

    # ---------------------------------------------------------------- simple types

    def simple_type(
        self, schema: _Schema, qname: str, where: Pos, path: str = ""
    ) -> tuple[Home, str] | None:
        prefix, _, local = qname.rpartition(":")
        if _namespace(schema, prefix) == XS:
            if local not in _BUILTINS:
                self.fail(
                    where,
                    "xsd-subset",
                    f"built-in type xs:{local} is not supported; use one of {sorted(_BUILTINS)}",
                    path=path,
                )
                return None
            key: tuple[Home, str] = ("common", f"xs:{local}")
            if key not in self.result.simple_types:
                primitive, facets = _BUILTINS[local]
                self.result.simple_types[key] = SimpleType(
                    f"xs:{local}", "common", primitive, facets, "", None
                )
            return key
        found = self.lookup(schema, "SimpleType", qname, where, path)
        if found is None:
            return None
        owner, node = found
        return self.define_simple(owner, cast(xsd.SimpleType, node))

    def define_simple(self, schema: _Schema, node: xsd.SimpleType) -> tuple[Home, str] | None:
        name = cast(str, node.name)
        key: tuple[Home, str] = (schema.home, name)
        if key in self.result.simple_types:
            return key
        origin = schema.origin(node)
        restriction = node.restriction
        if restriction is None or not restriction.base:
            self.fail(
                schema.pos(node),
                "xsd-subset",
                f"simple type {name} must be an xs:restriction with a base",
                path=name,
            )
            return None
        base_key = self.simple_type(schema, restriction.base, schema.pos(restriction, "base"), name)
        if base_key is None:
            return None
        base = self.result.simple_types[base_key]
        facets = _merge_facets(base.facets, restriction, schema)
        self.result.simple_types[key] = SimpleType(
            name, schema.home, base.primitive, facets, _doc(node), origin
        )
        return key

    # ---------------------------------------------------------------- complex types

    def complex_type(
        self, schema: _Schema, qname: str, where: Pos, path: str = ""
    ) -> tuple[Home, str] | None:
        found = self.lookup(schema, "ComplexType", qname, where, path)
        if found is None:
            return None
        owner, node = found
        complex_type = cast(xsd.ComplexType, node)
        return self.define_complex(owner, complex_type, cast(str, complex_type.name), _doc(node))

    def define_complex(
        self, schema: _Schema, node: xsd.ComplexType, name: str, doc: str
    ) -> tuple[Home, str]:
        key: tuple[Home, str] = (schema.home, name)
        origin = schema.origin(node)
        existing = self.result.complex_types.get(key)
        if existing is not None:
            if existing.origin != origin:
                self.fail(
                    schema.pos(node),
                    "duplicate-type",
                    f"complex type {name} is also defined at {existing.origin}",
                    "rename one",
                    name,
                )
            return key
        personal = _personal(node)
        # A placeholder first, so that recursive references terminate.
        self.result.complex_types[key] = ComplexType(name, schema.home, (), doc, origin, personal)
        particles = (
            tuple(self.particles(schema, node.sequence, name, schema.pos(node), personal))
            if node.sequence
            else ()
        )
        if node.mixed:
            self.fail(
                schema.pos(node), "xsd-subset", f"complex type {name} must not be mixed", path=name
            )
        self.result.complex_types[key] = ComplexType(
            name, schema.home, particles, doc, origin, personal
        )
        return key

    def particles(
        self, schema: _Schema, sequence: xsd.Sequence, owner: str, where: Pos, personal: bool
    ) -> Iterator[Particle]:
        if sequence.min_occurs != 1 or sequence.max_occurs != 1:
            self.fail(where, "xsd-subset", "an xs:sequence must occur exactly once", path=owner)
        members: list[ElementBase] = [*sequence.elements, *sequence.groups, *sequence.any]
        if sequence.choices or sequence.sequences:
            self.fail(
                where,
                "xsd-subset",
                "nested xs:choice or xs:sequence is outside the supported subset",
                path=owner,
            )
        for member in sorted(members, key=lambda m: m.index):
            if isinstance(member, xsd.Group):
                yield from self.group(schema, member, owner, personal)
            elif isinstance(member, xsd.Any):
                yield Particle(
                    "any",
                    "elements",
                    None,
                    member.min_occurs,
                    _max(member.max_occurs),
                    _doc(member) or "Elements of other namespaces, passed through unchanged.",
                    schema.origin(member),
                    personal,
                )
            else:
                particle = self.element(schema, cast(xsd.Element, member), owner, personal)
                if particle is not None:
                    yield particle

    def group(
        self, schema: _Schema, ref: xsd.Group, owner: str, personal: bool
    ) -> Iterator[Particle]:
        where = schema.pos(ref)
        if ref.min_occurs != 1 or ref.max_occurs != 1:
            self.fail(
                where,
                "xsd-subset",
                f"group reference {ref.ref} must occur exactly once",
                path=owner,
            )
        found = self.lookup(schema, "Group", ref.ref, schema.pos(ref, "ref"), owner)
        if found is None:
            return
        owner_schema, node = found
        group = cast(xsd.Group, node)
        if group.sequence is None:
            self.fail(
                owner_schema.pos(group),
                "xsd-subset",
                f"group {group.name} must hold an xs:sequence",
                path=str(group.name),
            )
            return
        yield from self.particles(
            owner_schema, group.sequence, owner, owner_schema.pos(group), personal
        )

    def element(
        self, schema: _Schema, node: xsd.Element, owner: str, in_personal: bool
    ) -> Particle | None:
        """One element; personal when marked, or when the type that declares it is."""
        origin = schema.origin(node)
        where = schema.pos(node)
        name = node.name
        if not name:
            self.fail(
                where,
                "xsd-subset",
                "an element must have a name (element references are not supported)",
                path=owner,
            )
            return None
        path = f"{owner}/{name}"
        self._declared.setdefault(path, where)
        doc = _doc(node)
        max_occurs = _max(node.max_occurs)
        if node.complex_type is not None:
            key = self.define_complex(schema, node.complex_type, class_name(owner, name), doc)
            kind = "complex"
        elif node.simple_type is not None:
            self.fail(
                where,
                "xsd-subset",
                "name the element's simple type instead of declaring it inline",
                path=path,
            )
            return None
        elif node.type:
            resolved = self._resolve_type(schema, node.type, schema.pos(node, "type"), path)
            if resolved is None:
                return None
            kind, key = resolved
        else:
            self.fail(where, "xsd-subset", "the element needs a type", path=path)
            return None
        marked = _personal(node)
        of_personal_type = kind == "complex" and self.result.complex_types[key].personal
        if marked and kind == "complex":
            self.fail(
                where,
                "personal-data",
                "mark the element's complex type as personal data, not the element",
                "everything in the type is then personal",
                path,
            )
        return Particle(
            kind,  # type: ignore[arg-type]
            name,
            key,
            node.min_occurs,
            max_occurs,
            doc,
            origin,
            marked or in_personal or of_personal_type,
        )

    def check_personal_types(self) -> None:
        """Everything inside personal data is personal: a complex element of a personal type
        needs a personal type too, so a field's mark alone says what a value is."""
        for complex_type in self.result.complex_types.values():
            for particle in complex_type.particles:
                if not (complex_type.personal and particle.kind == "complex"):
                    continue
                assert particle.type_key is not None
                inner = self.result.complex_types.get(particle.type_key)
                if inner is not None and not inner.personal:
                    path = f"{complex_type.name}/{particle.name}"
                    where = Pos(particle.origin.file, particle.origin.line, 1)
                    self.fail(
                        self._declared.get(path, where),
                        "personal-data",
                        f"mark its type {inner.name} as personal data too: the element is in "
                        f"personal type {complex_type.name}",
                        path=path,
                    )

    def _resolve_type(
        self, schema: _Schema, qname: str, where: Pos, path: str = ""
    ) -> tuple[str, tuple[Home, str]] | None:
        prefix, _, local = qname.rpartition(":")
        if _namespace(schema, prefix) == XS:
            key = self.simple_type(schema, qname, where, path)
            return None if key is None else ("simple", key)
        scope = self.scope(schema)
        if f"SimpleType:{local}" in scope:
            key = self.simple_type(schema, qname, where, path)
            return None if key is None else ("simple", key)
        if f"ComplexType:{local}" in scope:
            key = self.complex_type(schema, qname, where, path)
            return None if key is None else ("complex", key)
        if not schema.blind:
            self.fail(
                where,
                "unknown-type",
                f"no type named {local}",
                did_you_mean(local, self.names(schema, "SimpleType", "ComplexType"))
                or "declare it in this schema or one it includes",
                path,
            )
        return None

    # ---------------------------------------------------------------- contracts

    def contract(self, schema: _Schema) -> None:
        roots = schema.model.elements
        if schema.namespace is None:
            for node in roots:
                self.fail(
                    schema.pos(node),
                    "message-root",
                    "a shared-type schema declares no global element",
                    path=str(node.name),
                )
            return
        if len(roots) != 1:
            self.fail(
                _pos(schema.display, schema.text, schema.elements[0]),
                "message-root",
                f"a message schema declares exactly one global element, not {len(roots)}",
            )
            return
        node = roots[0]
        where = schema.pos(node)
        root = cast(str, node.name)
        if root != schema.path.stem:
            self.fail(
                where,
                "message-root",
                f"root element {root} must be named as its file, {schema.path.stem}",
                path=root,
            )
        if node.complex_type is not None:
            key = self.define_complex(schema, node.complex_type, root, _doc(node))
        elif node.type:
            resolved = self._resolve_type(schema, node.type, schema.pos(node, "type"), root)
            if resolved is None or resolved[0] != "complex":
                self.fail(where, "message-root", "the root element needs a complex type", path=root)
                return
            key = resolved[1]
        else:
            self.fail(where, "message-root", "the root element needs a type", path=root)
            return
        name = f"{schema.home}/{root}"
        self.result.contracts[name] = Contract(
            name,
            schema.home,
            schema.namespace,
            root,
            key,
            _doc(node),
            schema.display,
            schema.model.version or "",
        )


_EXPECTED_NAMESPACES = "one of " + ", ".join(sorted(SYSTEM_NAMESPACES.values()))
_KIND_WORD = {"SimpleType": "simple type", "ComplexType": "complex type", "Group": "group"}


def read_contracts(contracts_dir: Path) -> ContractSet:
    """Every XSD under ``contracts_dir``/{common,ccb,mdm}, as one contract set.

    Raises ContractError listing every problem found, each with file, line and column.
    """
    reader = _Reader(contracts_dir.parent)
    files = sorted(
        path for system in SYSTEM_NAMESPACES for path in (contracts_dir / system).glob("*.xsd")
    )
    if not files:
        where = Pos(display_path(contracts_dir, contracts_dir.parent), 1, 1)
        raise ContractError(
            [Finding(where, "xsd-syntax", "no XSD files under common/, ccb/ or mdm/")]
        )
    for path in files:
        reader.load(path)
    for schema in list(reader.schemas.values()):
        for simple in schema.model.simple_types:
            reader.define_simple(schema, simple)
        for complex_type in schema.model.complex_types:
            reader.define_complex(
                schema, complex_type, cast(str, complex_type.name), _doc(complex_type)
            )
        reader.contract(schema)
    reader.check_personal_types()
    if reader.findings:
        unique = {str(finding): finding for finding in reader.findings}
        raise ContractError(list(unique.values()))
    return reader.result


def _declarations(model: xsd.Schema) -> Iterable[xsd.SimpleType | xsd.ComplexType | xsd.Group]:
    yield from model.simple_types
    yield from model.complex_types
    yield from model.groups


def _namespace(schema: _Schema, prefix: str) -> str | None:
    """The namespace a QName prefix stands for in a schema (the default one for no prefix)."""
    ns_map = cast(dict[str | None, str], schema.model.ns_map)
    return ns_map.get(prefix or None)


def _home_of(path: Path, namespace: str | None) -> Home | None:
    if namespace is None:
        return "common"
    folder = path.parent.name
    if SYSTEM_NAMESPACES.get(folder) == namespace:
        return cast(Home, folder)
    return None


def _merge_facets(base: Facets, restriction: xsd.Restriction, schema: _Schema) -> Facets:
    def value(facet: Any) -> str | None:
        return None if facet is None else str(facet.value)

    def number(facet: Any, inherited: int | None) -> int | None:
        return inherited if facet is None else int(facet.value)

    # A restriction that lists no values keeps its base's, with their documentation; a value
    # it lists again without documentation keeps the base's meaning.
    inherited = {v.value: v.doc for v in base.value_docs}
    value_docs = tuple(
        ValueDoc(e.value, _doc(e) or inherited.get(e.value, ""), schema.origin(e))
        for e in restriction.enumerations
    )
    return Facets(
        enumeration=tuple(v.value for v in value_docs) or base.enumeration,
        value_docs=value_docs or base.value_docs,
        patterns=base.patterns + tuple(p.value for p in restriction.patterns[:1])
        if len(restriction.patterns) <= 1
        # several patterns in one step are alternatives (XSD 1.0 §4.3.4)
        else (*base.patterns, "|".join(f"(?:{p.value})" for p in restriction.patterns)),
        length=number(restriction.length, base.length),
        min_length=number(restriction.min_length, base.min_length),
        max_length=number(restriction.max_length, base.max_length),
        total_digits=number(restriction.total_digits, base.total_digits),
        fraction_digits=number(restriction.fraction_digits, base.fraction_digits),
        min_inclusive=value(restriction.min_inclusive) or base.min_inclusive,
        max_inclusive=value(restriction.max_inclusive) or base.max_inclusive,
    )


def _max(value: str | int) -> int | None:
    # xsdata reads "unbounded" as sys.maxsize
    return None if value == "unbounded" or int(value) >= sys.maxsize else int(value)


def _doc(node: ElementBase) -> str:
    annotations = getattr(node, "annotations", [])
    texts = [
        str(part)
        for annotation in annotations
        for documentation in annotation.documentations
        for part in documentation.content
        if isinstance(part, str)
    ]
    return " ".join(" ".join(texts).split())


def _personal(node: ElementBase) -> bool:
    """Whether a declaration carries the personal-data marker."""
    return any(
        info.source == PERSONAL_DATA
        for annotation in getattr(node, "annotations", [])
        for info in annotation.app_infos
    )


def _inside_documentation(node: etree._Element) -> bool:
    return any(etree.QName(parent).localname == "documentation" for parent in node.iterancestors())


def _pos(
    display: str, text: list[str], element: etree._Element, attribute: str | None = None
) -> Pos:
    """Where an element's start tag (or one of its attributes) is. lxml gives the line where
    the start tag ends; the text gives the line where it begins and the column (1 when the text
    does not show the tag)."""
    end_line = element.sourceline or 1
    qname = etree.QName(element)
    tag = f"<{element.prefix}:{qname.localname}" if element.prefix else f"<{qname.localname}"
    pattern = re.compile(re.escape(tag) + r"(?=[\s/>]|$)")
    name = element.get("name")
    for line in range(end_line, max(end_line - 20, 0), -1):
        source = text[line - 1] if line <= len(text) else ""
        starts = [m.start() for m in pattern.finditer(source)]
        if name is not None and len(starts) > 1:
            named = re.compile(rf"[^>]*\bname\s*=\s*[\"']{re.escape(name)}[\"']")
            starts = [i for i in starts if named.match(source, i)] or starts
        if starts:
            break
    else:
        return Pos(display, end_line, 1)
    column = starts[0]
    if attribute is not None:
        local = etree.QName(attribute).localname if attribute.startswith("{") else attribute
        found = re.compile(rf"\b{re.escape(local)}\s*=")
        for at in range(line, end_line + 1):
            source = text[at - 1] if at <= len(text) else ""
            hit = found.search(source, column if at == line else 0)
            if hit is not None:
                return Pos(display, at, hit.start() + 1)
    return Pos(display, line, column + 1)

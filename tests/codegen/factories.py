"""Small in-memory IR for the binder's stage tests: a source and a target contract with a few
elements each, rules written as the loader would build them, and a binder over them.

The source ``ccb/PersonSync`` (root ``personSync``, type ccb ``Person``) and the target
``mdm/ContactSync`` (root ``contactSync``, type mdm ``Contact``) cover each shape a rule meets:
required and optional values, an enumeration, a repeated value, an optional and a repeated
structure, personal data. Each rule a test builds sits on its own line of ``mappings/t.yaml``,
so a finding's position says which rule it is about."""

from __future__ import annotations

from collections.abc import Mapping as Mapping_

from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.ir import (
    ComplexType,
    Contract,
    ContractSet,
    Facets,
    Home,
    Origin,
    Particle,
    SimpleType,
)
from ccbmdm.codegen.mapping.bind import Binder
from ccbmdm.codegen.mapping.bind.model import Scope
from ccbmdm.codegen.mapping.syntax import (
    Combine,
    Compare,
    Condition,
    ConstRule,
    CopyRule,
    EachRule,
    FnRule,
    Literal_,
    Mapping,
    MapRule,
    Modifiers,
    Path,
    PathRule,
    Present,
    Rule,
    Rules,
    StructRule,
    TableRule,
    TargetRule,
    Value,
    XrefRule,
)
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.runtime.messages.mapping import CodeTable

FILE = "mappings/t.yaml"
SOURCE = "ccb/PersonSync"
TARGET = "mdm/ContactSync"
_ORIGIN = Origin("contracts/t.xsd", 1)


def at(line: int, column: int = 3) -> Pos:
    """A position in the test mapping."""
    return Pos(FILE, line, column)


# ---------------------------------------------------------------- contracts


def simple_type(
    name: str, primitive: str = "string", home: Home = "common", **facets: object
) -> SimpleType:
    """A simple type; ``xs:`` names are the facet-free built-ins."""
    return SimpleType(name, home, primitive, Facets(**facets), "", None)  # type: ignore[arg-type]


def value(
    name: str,
    simple: SimpleType,
    *,
    min_occurs: int = 1,
    max_occurs: int | None = 1,
    personal: bool = False,
) -> Particle:
    """An element holding a value of ``simple``."""
    key = (simple.home, simple.name)
    return Particle("simple", name, key, min_occurs, max_occurs, "", _ORIGIN, personal)


def structure(
    name: str, of: ComplexType, *, min_occurs: int = 1, max_occurs: int | None = 1
) -> Particle:
    """An element holding a structure of type ``of``."""
    return Particle("complex", name, (of.home, of.name), min_occurs, max_occurs, "", _ORIGIN)


def complex_type(name: str, home: Home, *particles: Particle) -> ComplexType:
    return ComplexType(name, home, tuple(particles), "", _ORIGIN)


STRING = simple_type("xs:string")
DECIMAL = simple_type("xs:decimal", "decimal")
INTEGER = simple_type("xs:integer", "integer")
DATE = simple_type("xs:date", "date")
KIND = simple_type("Kind", enumeration=("P", "B"))  # a person or a business
SHORT = simple_type("Short", max_length=3)

ADDRESS = complex_type(
    "Address", "ccb", value("city", STRING), value("postal", STRING, min_occurs=0)
)
ITEM = complex_type("Item", "ccb", value("code", KIND), value("qty", INTEGER))
PERSON = complex_type(
    "Person",
    "ccb",
    value("id", STRING),
    value("name", STRING, min_occurs=0, personal=True),
    value("kind", KIND),
    value("amount", DECIMAL),
    value("count", INTEGER),
    value("born", DATE, min_occurs=0),
    value("phones", STRING, min_occurs=0, max_occurs=None),
    structure("address", ADDRESS, min_occurs=0),
    structure("items", ITEM, min_occurs=0, max_occurs=None),
)
T_ADDRESS = complex_type(
    "Address", "mdm", value("city", STRING), value("postal", STRING, min_occurs=0)
)
LINE = complex_type("Line", "mdm", value("code", STRING), value("qty", DECIMAL, min_occurs=0))
CONTACT = complex_type(
    "Contact",
    "mdm",
    value("contactId", STRING),
    value("label", SHORT, min_occurs=0),
    value("kind", STRING, min_occurs=0),
    value("total", DECIMAL, min_occurs=0),
    value("phones", STRING, min_occurs=0, max_occurs=3),
    structure("address", T_ADDRESS, min_occurs=0),
    structure("lines", LINE, min_occurs=0, max_occurs=None),
    value("note", STRING, min_occurs=0),
)


def contract_set() -> ContractSet:
    """The source and target contracts with every type they use."""
    contracts = ContractSet()
    for simple in (STRING, DECIMAL, INTEGER, DATE, KIND, SHORT):
        contracts.simple_types[(simple.home, simple.name)] = simple
    for complex_ in (ADDRESS, ITEM, PERSON, T_ADDRESS, LINE, CONTACT):
        contracts.complex_types[(complex_.home, complex_.name)] = complex_
    contracts.contracts[SOURCE] = Contract(
        SOURCE, "ccb", "urn:ccb", "personSync", ("ccb", "Person"), "", "contracts/ccb/p.xsd"
    )
    contracts.contracts[TARGET] = Contract(
        TARGET, "mdm", "urn:mdm", "contactSync", ("mdm", "Contact"), "", "contracts/mdm/c.xsd"
    )
    return contracts


# ---------------------------------------------------------------- rules


def path(text: str, line: int = 10) -> Path:
    """A source path as written: dotted, ``/`` first when absolute."""
    return Path(tuple(text.lstrip("/").split(".")), text.startswith("/"), at(line, 5))


def from_path(text: str, line: int = 10, **mods: object) -> PathRule:
    return PathRule(at(line), path(text, line), Modifiers(**mods))  # type: ignore[arg-type]


def const(literal: Literal_, line: int = 10, **mods: object) -> ConstRule:
    return ConstRule(at(line), literal, Modifiers(**mods))  # type: ignore[arg-type]


def table(
    name: str,
    *keys: Value,
    line: int = 10,
    column: str | None = None,
    reverse: bool = False,
) -> TableRule:
    return TableRule(at(line), name, keys, column, reverse, Modifiers())


def map_rule(
    source: str, cases: Mapping_[str, Literal_], line: int = 10, **mods: object
) -> MapRule:
    return MapRule(at(line), path(source, line), tuple(cases.items()), Modifiers(**mods))  # type: ignore[arg-type]


def fn(name: str, *args: Value, line: int = 10) -> FnRule:
    return FnRule(at(line), name, args, Modifiers())


def xref(mo: str, key: Value, line: int = 10) -> XrefRule:
    return XrefRule(at(line), mo, key, Modifiers())


def target(text: str, line: int = 10) -> TargetRule:
    return TargetRule(at(line), path(text, line), Modifiers())


def nested(
    source: str | None, entries: Mapping_[str, Rule], line: int = 10, when: Condition | None = None
) -> StructRule:
    """A nested structure (``from:``, or ``rules:`` on the current node when ``source`` is None)."""
    return StructRule(
        at(line), None if source is None else path(source, line), rules(entries, line + 1), when
    )


def each(
    source: str, entries: Mapping_[str, Rule], line: int = 10, where: Condition | None = None
) -> EachRule:
    return EachRule(at(line), path(source, line), where, rules(entries, line + 1))


def copy(source: str, line: int = 10) -> CopyRule:
    return CopyRule(at(line), path(source, line))


def equals(source: str, *values: Literal_, line: int = 10) -> Compare:
    return Compare(path(source, line), values, "in" if len(values) > 1 else "equals")


def present(source: str, line: int = 10, negate: bool = False) -> Present:
    return Present(path(source, line), negate)


def both(*parts: Condition) -> Combine:
    return Combine("all", parts)


def rules(entries: Mapping_[str, Rule], first_line: int = 2) -> Rules:
    """Rules of one structure, each key on the line after the one before."""
    return Rules(
        dict(entries),
        {key: Pos(FILE, first_line + n, 3) for n, key in enumerate(entries)},
    )


def mapping(entries: Mapping_[str, Rule], *, use: tuple[str, ...] = (), **names: str) -> Mapping:
    """A mapping from the source to the target contract with these root rules."""
    return Mapping(
        FILE,
        "PERSON_SYNC",
        "request",
        names.get("source", SOURCE),
        names.get("target", TARGET),
        use,
        rules(entries),
        at(1, 1),
        at(1, 9),
        at(1, 20),
    )


def code_table(
    name: str,
    rows: dict[tuple[str, ...], dict[str, str]],
    *,
    keys: tuple[str, ...] = ("ccb",),
    values: tuple[str, ...] = ("mdm",),
    miss: str = "fail",
) -> CodeTable:
    return CodeTable(name, keys, values, miss, rows)  # type: ignore[arg-type]


KINDS = code_table("Kinds", {("P",): {"mdm": "PERSON"}, ("B",): {"mdm": "BUSINESS"}})


# ---------------------------------------------------------------- binders


def binder(
    entries: Mapping_[str, Rule] | None = None,
    *,
    tables: dict[str, CodeTable] | None = None,
    fragments: dict[str, Rules] | None = None,
    use: tuple[str, ...] = (),
    broken: frozenset[str] = frozenset(),
    **names: str,
) -> Binder:
    """A binder of a mapping with these root rules (not yet bound)."""
    return Binder(
        contract_set(),
        {} if tables is None else tables,
        mapping(entries or {}, use=use, **names),
        fragments or {},
        None,
        broken,
    )


def bound(entries: Mapping_[str, Rule], **options: object) -> Binder:
    """A binder that has bound the mapping: its findings, functions and lineage are filled."""
    result = binder(entries, **options)  # type: ignore[arg-type]
    result.bind()
    return result


def root(of: Binder) -> Scope:
    """The binder's scope at the message roots, as its first structure sees them."""
    contracts = of.contracts.contracts
    return of.root_scope(contracts[SOURCE], contracts[TARGET])


def writer(of: Binder) -> Writer:
    """A writer sharing the binder's generated names."""
    return Writer(of.counter)


def findings(of: Binder) -> list[tuple[str, int, str]]:
    """(rule id, line, target path) of each finding, in order."""
    return [(f.rule, f.pos.line, f.path) for f in of.findings]


def messages(of: Binder) -> list[str]:
    return [f.message for f in of.findings]

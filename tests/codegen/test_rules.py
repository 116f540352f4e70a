"""Every rule the checks report under is registered with its meaning, and each one fires, with
its exact message and position, on a small project that breaks it."""

from __future__ import annotations

import ast
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ccbmdm.codegen import compiler
from ccbmdm.codegen.diagnostics import RULES, Finding, Pos
from ccbmdm.codegen.project import Project
from ccbmdm.codegen.xsd_reader import ContractError, read_contracts
from support import REPO

# The packages whose checks report findings.
REPORTING = ("codegen", "conformance", "ccbmdm")


def rule_ids_used() -> dict[str, list[str]]:
    """Each rule id a `Finding(...)` or a checker's `fail(...)` names, with where: the rule is
    the second argument (or `rule=`)."""
    used: dict[str, list[str]] = {}
    for package in REPORTING:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name not in ("Finding", "fail", "_fail"):
                    continue
                rule = node.args[1] if len(node.args) > 1 else None
                rule = next((k.value for k in node.keywords if k.arg == "rule"), rule)
                if isinstance(rule, ast.Constant) and isinstance(rule.value, str):
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    used.setdefault(rule.value, []).append(where)
    return used


def test_every_rule_reported_is_registered() -> None:
    unregistered = {rule: at for rule, at in rule_ids_used().items() if rule not in RULES}
    assert unregistered == {}


def test_every_registered_rule_is_reported_somewhere() -> None:
    assert sorted(set(RULES) - set(rule_ids_used())) == []


def test_every_rule_says_what_it_means() -> None:
    for rule in RULES.values():
        assert rule.summary and rule.explanation.endswith("."), rule.id
        assert rule.severity in ("error", "warning", "note"), rule.id


def test_a_finding_takes_its_rules_severity() -> None:
    where = Pos("mappings/tables/T.yaml", 1, 1)
    assert Finding(where, "unused-table", "no mapping uses code table T").severity == "warning"
    assert Finding(where, "table-row", "the row has columns a").severity == "error"


# ---------------------------------------------------------------- mappings and code tables

PERSON = (REPO / "tests" / "codegen" / "test_mapping_compiler.py").read_text()
PERSON = PERSON.split('PERSON = textwrap.dedent("""\\\n')[1].split('    """)')[0]
PERSON = "".join(line.removeprefix("    ") for line in PERSON.splitlines(keepends=True))


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """The reference contracts, tables and fragments, and only the mappings a test writes."""
    shutil.copytree(REPO / "contracts", tmp_path / "contracts")
    shutil.copytree(REPO / "mappings" / "tables", tmp_path / "mappings" / "tables")
    shutil.copytree(REPO / "mappings" / "fragments", tmp_path / "mappings" / "fragments")
    shutil.copy(REPO / "mappings" / "mapping.schema.json", tmp_path / "mappings")
    shutil.copy(REPO / "ccbmdm_project.yaml", tmp_path)
    return Project.load(tmp_path)


def write(project: Project, name: str, text: str) -> None:
    (project.mappings / name).write_text(text)


def add_table(project: Project, name: str, body: str) -> None:
    (project.mappings / "tables" / f"{name}.yaml").write_text(f"table: {name}\n{body}")


def findings(project: Project) -> list[Finding]:
    try:
        return list(compiler.generate(project).findings)
    except compiler.MappingError as exc:
        return exc.findings


def person(project: Project, old: str, new: str) -> None:
    assert old in PERSON
    write(project, "person-sync.request.yaml", PERSON.replace(old, new))


def header(project: Project, old: str, new: str) -> None:
    fragment = project.mappings / "fragments" / "sync-request-header.yaml"
    assert old in fragment.read_text()
    fragment.write_text(fragment.read_text().replace(old, new))
    write(project, "person-sync.request.yaml", PERSON)


def table_rule(table: str, body: str, rule: str) -> Callable[[Project], None]:
    def broken(project: Project) -> None:
        add_table(project, table, body)
        person(project, "{table: OUCCB2_OUMDM2_ContactType, key: personOrBusiness}", rule)

    return broken


def table_file(name: str, text: str) -> Callable[[Project], None]:
    def broken(project: Project) -> None:
        (project.mappings / "tables" / f"{name}.yaml").write_text(text)
        write(project, "person-sync.request.yaml", PERSON)

    return broken


TWO_VALUES = "keys: [a]\nvalues: [b, c]\nmiss: fail\nrows:\n  - {a: P, b: x, c: y}\n"
M = "mappings/person-sync.request.yaml"
T = "mappings/tables"

BROKEN: dict[str, tuple[Callable[[Project], None], list[str]]] = {
    "unknown-contract": (
        lambda p: person(p, "target: mdm/ContactSyncRequest", "target: mdm/ContactSyncRequst"),
        [
            (
                "mappings/person-sync.request.yaml:4:9: error[unknown-contract]: no contract "
                "named mdm/ContactSyncRequst (did you mean mdm/ContactSyncRequest?)"
            ),
        ],
    ),
    "unknown-fragment": (
        lambda p: person(p, "use: [sync-request-header]", "use: [sync-request-headr]"),
        [
            (
                "mappings/person-sync.request.yaml:1:1: error[unknown-fragment]: no fragment "
                "named sync-request-headr (did you mean sync-request-header?)"
            ),
        ],
    ),
    "target-cycle": (
        lambda p: person(
            p,
            "phone: phoneNumber\n      language: language\n",
            "phone: {target: language}\n      language: {target: phone}\n",
        ),
        [
            (
                "mappings/person-sync.request.yaml:12:7: error[target-cycle]: "
                "/ContactSyncRequest/contact: <phone> depends on itself through target rules"
            ),
        ],
    ),
    "conditional-required": (
        lambda p: person(p, "name: entityName", "name: {path: entityName, when: language}"),
        [
            (
                "mappings/person-sync.request.yaml:11:13: error[conditional-required]: "
                "/ContactSyncRequest/contact/name: <name> is required; it cannot be written only "
                "when a condition holds"
            ),
        ],
    ),
    "copy-shape": (
        lambda p: write(
            p,
            "person-sync.request.yaml",
            PERSON.split("  contact:")[0] + "  contact: {copy: person}\n",
        ),
        [
            (
                "mappings/person-sync.request.yaml:7:12: error[copy-shape]: "
                "/ContactSyncRequest/contact: copy: PersonType has no <contactType>, which "
                "ContactType requires"
            ),
            (
                "mappings/person-sync.request.yaml:7:12: error[copy-shape]: "
                "/ContactSyncRequest/contact: copy: PersonType has no <name>, which ContactType "
                "requires"
            ),
        ],
    ),
    "pick": (
        lambda p: person(p, "name: entityName", "name: {path: entityName, pick: first}"),
        [
            (
                "mappings/person-sync.request.yaml:11:13: error[pick]: "
                "/ContactSyncRequest/contact/name: pick: applies to a path that reaches several "
                "values; this one reaches one"
            ),
        ],
    ),
    "reverse": (
        table_rule("Wide", TWO_VALUES, "{table: Wide, key: personOrBusiness, reverse: true}"),
        [
            (
                "mappings/person-sync.request.yaml:10:20: error[reverse]: "
                "/ContactSyncRequest/contact/contactType: Wide has 1 key and 2 value columns; a "
                "reversed table needs one of each"
            ),
        ],
    ),
    "table-key": (
        lambda p: person(p, "key: personOrBusiness}", "key: [personOrBusiness, language]}"),
        [
            (
                "mappings/person-sync.request.yaml:10:20: error[table-key]: "
                "/ContactSyncRequest/contact/contactType: OUCCB2_OUMDM2_ContactType is keyed by "
                "1 column(s) (personOrBusiness); the rule gives 2"
            ),
        ],
    ),
    "table-column": (
        table_rule("Wide", TWO_VALUES, "{table: Wide, key: personOrBusiness}"),
        [
            (
                "mappings/person-sync.request.yaml:10:20: error[table-column]: "
                "/ContactSyncRequest/contact/contactType: Wide has value columns b, c; name one "
                "with column:"
            ),
        ],
    ),
    "map-coverage": (
        lambda p: header(
            p, "  changeType: changeType", "  changeType: {map: changeType, cases: {ADD: ADD}}"
        ),
        [
            (
                "mappings/fragments/sync-request-header.yaml:17:15: error[map-coverage]: "
                "/ContactSyncRequest/changeType: no case for CHANGE, DELETE of <changeType> (add "
                "cases or a default)"
            ),
        ],
    ),
    "arity": (
        lambda p: person(p, "name: entityName", "name: {fn: to_utc, args: []}"),
        [
            (
                "mappings/person-sync.request.yaml:11:13: error[arity]: "
                "/ContactSyncRequest/contact/name: to_utc takes 1 argument(s); 0 given (its "
                "signature: to_utc(instant: dateTime) -> dateTime)"
            ),
        ],
    ),
    "target-path": (
        lambda p: person(p, "phone: phoneNumber", "phone: {target: nosuch}"),
        [
            (
                "mappings/person-sync.request.yaml:12:23: error[target-path]: "
                "/ContactSyncRequest/contact/phone: <nosuch> is not an element of this structure "
                "computed before this rule"
            ),
        ],
    ),
    "file-name": (
        lambda p: write(p, "person.request.yaml", PERSON),
        [
            (
                "mappings/person.request.yaml:1:1: error[file-name]: the mapping of PERSON_SYNC "
                "request must be named person-sync.request.yaml"
            ),
        ],
    ),
    "unknown-flow": (
        lambda p: person(p, "flow: PERSON_SYNC", "flow: PERSON_SYNK"),
        [
            (
                "mappings/person-sync.request.yaml:1:1: error[unknown-flow]: flow PERSON_SYNK "
                "has no part request in contracts/flows.yaml"
            ),
        ],
    ),
    "table-name": (
        table_file("Named", "table: Other\nkeys: [a]\nvalues: [b]\nmiss: fail\nrows: []\n"),
        [
            (
                "mappings/tables/Named.yaml:1:8: error[table-name]: table Other is in "
                "Named.yaml; name the file Other.yaml"
            ),
        ],
    ),
    "table-columns": (
        table_file("Both", "table: Both\nkeys: [a]\nvalues: [a]\nmiss: fail\nrows: []\n"),
        [
            (
                "mappings/tables/Both.yaml:2:7: error[table-columns]: a column cannot be both a "
                "key and a value"
            ),
        ],
    ),
    "table-default": (
        table_file(
            "NoDefault", "table: NoDefault\nkeys: [a]\nvalues: [b]\nmiss: default\nrows: []\n"
        ),
        [
            (
                "mappings/tables/NoDefault.yaml:4:1: error[table-default]: miss: default needs a "
                "default row giving every value column"
            ),
        ],
    ),
    "table-row": (
        table_file(
            "Ragged", "table: Ragged\nkeys: [a]\nvalues: [b]\nmiss: fail\nrows:\n  - {a: x}\n"
        ),
        [
            (
                "mappings/tables/Ragged.yaml:6:5: error[table-row]: the row has no b (a row of "
                "Ragged has the columns a, b)"
            ),
        ],
    ),
    "table-duplicate": (
        table_file(
            "Twice",
            "table: Twice\nkeys: [a]\nvalues: [b]\nmiss: fail\nrows:\n  - {a: x, b: y}\n"
            "  - {a: x, b: z}\n",
        ),
        [
            ("mappings/tables/Twice.yaml:7:5: error[table-duplicate]: key x is also in row 1"),
        ],
    ),
}


@pytest.mark.parametrize("rule", list(BROKEN))
def test_each_mapping_rule_fires_where_it_is_broken(project: Project, rule: str) -> None:
    breaks, expected = BROKEN[rule]
    breaks(project)
    found = [str(f) for f in findings(project) if f.rule == rule]
    assert found == expected


# ---------------------------------------------------------------- contracts and the catalogue

HEAD = (
    '<?xml version="1.0"?>\n'
    '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:ccbmdm:ccb:v1"\n'
    '           targetNamespace="urn:ccbmdm:ccb:v1" elementFormDefault="qualified">\n'
    '  <xs:include schemaLocation="../common/types.xsd"/>\n'
)


def contract_findings(tmp_path: Path, body: str, folder: str = "ccb") -> list[str]:
    contracts = tmp_path / "contracts"
    (contracts / folder).mkdir(parents=True)
    (contracts / "common").mkdir(exist_ok=True)
    shutil.copy(REPO / "contracts" / "common" / "types.xsd", contracts / "common" / "types.xsd")
    (contracts / folder / "Thing.xsd").write_text(HEAD + body + "</xs:schema>\n")
    with pytest.raises(ContractError) as caught:
        read_contracts(contracts)
    return [str(finding) for finding in caught.value.findings]


THING = '  <xs:element name="Thing" type="ThingType"/>\n'


@pytest.mark.parametrize(
    ("body", "folder", "expected"),
    [
        (
            THING + '  <xs:complexType name="ThingType"><xs:sequence>\n'
            '    <xs:element name="id" type="CcbIDType"/>\n'
            "  </xs:sequence></xs:complexType>\n",
            "ccb",
            "contracts/ccb/Thing.xsd:7:27: error[unknown-type]: ThingType/id: no type named "
            "CcbIDType (did you mean CcbIdType?)",
        ),
        (
            THING + '  <xs:complexType name="ThingType"><xs:choice>\n'
            '    <xs:element name="id" type="CcbIdType"/>\n'
            "  </xs:choice></xs:complexType>\n",
            "ccb",
            "contracts/ccb/Thing.xsd:6:36: error[xsd-subset]: xs:choice is outside the supported "
            "XSD subset (see docs/contracts.md)",
        ),
        (
            THING,
            "mdm",
            "contracts/mdm/Thing.xsd:3:12: error[namespace]: target namespace 'urn:ccbmdm:ccb:v1' "
            "does not belong in folder mdm/; expected urn:ccbmdm:mdm:v1",
        ),
        (
            '  <xs:element name="Other" type="ThingType"/>\n'
            '  <xs:complexType name="ThingType"><xs:sequence/></xs:complexType>\n',
            "ccb",
            "contracts/ccb/Thing.xsd:5:3: error[message-root]: Other: root element Other must be "
            "named as its file, Thing",
        ),
        (
            THING + '  <xs:complexType name="ThingType"><xs:sequence/></xs:complexType>\n'
            '  <xs:complexType name="ThingType"><xs:sequence/></xs:complexType>\n',
            "ccb",
            "contracts/ccb/Thing.xsd:7:3: error[duplicate-type]: ThingType: complex type ThingType "
            "is also defined at contracts/ccb/Thing.xsd:6 (rename one)",
        ),
    ],
    ids=["unknown-type", "xsd-subset", "namespace", "message-root", "duplicate-type"],
)
def test_each_contract_rule_fires_where_it_is_broken(
    tmp_path: Path, body: str, folder: str, expected: str
) -> None:
    assert expected in contract_findings(tmp_path, body, folder)


def test_a_flow_listed_twice(tmp_path: Path) -> None:
    from ccbmdm.codegen.catalogue import CatalogueError, load_catalogue

    catalogue = (REPO / "contracts" / "flows.yaml").read_text()
    first = catalogue.index("  - number: 1\n")
    second = catalogue.index("  - number: 2\n")
    broken = tmp_path / "flows.yaml"
    broken.write_text(catalogue + catalogue[first:second])
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(broken, display="contracts/flows.yaml")
    line = catalogue.count("\n") + 2
    assert [str(f) for f in caught.value.findings] == [
        f"contracts/flows.yaml:{line}:11: error[duplicate-flow]: flow PERSON_SYNC: the flow "
        "code is listed twice"
    ]


def test_a_wrong_where_on_an_each_is_reported_at_the_list_it_filters(project: Project) -> None:
    """The each:'s items are compiled before its where:, and leave the list as the target."""
    sa = (REPO / "mappings" / "sa-sync.request.yaml").read_text()
    old = "        each: rateHistory\n"
    assert old in sa
    write(project, "sa-sync.request.yaml", sa.replace(old, old + "        where: rateSchedul\n"))
    found = [f for f in findings(project) if f.pos.file == "mappings/sa-sync.request.yaml"]
    assert [(f.rule, f.path) for f in found] == [
        ("unknown-source-path", "/UsageSubscriptionSyncRequest/usageSubscription/usageGroups")
    ]

"""`ccbmdm check` on a project with one mistake: one finding, at the mistake, in the words of
the mapping language, with what was probably meant; never an internal error."""

from __future__ import annotations

from pathlib import Path

import pytest
from case_support import ccbmdm, edit

from ccbmdm.codegen.project import Project, init_project

CONTACT_TYPE = "mappings/tables/OUCCB2_OUMDM2_ContactType.yaml"
PERSON = "mappings/person-sync.request.yaml"
LOOKUP = "contactType: {table: OUCCB2_OUMDM2_ContactType, key: personOrBusiness}"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return init_project(tmp_path / "project")


def check(capsys: pytest.CaptureFixture[str], project: Project) -> tuple[int, list[str]]:
    """The exit code and the finding lines of `ccbmdm check` (the count line left off)."""
    code, _, err = ccbmdm(capsys, "check", "--project-dir", str(project.root))
    lines = err.splitlines()
    assert lines and lines[-1].endswith("warning(s)"), err
    return code, lines[:-1]


@pytest.mark.parametrize(
    ("file", "old", "new", "finding"),
    [
        pytest.param(
            CONTACT_TYPE,
            '{personOrBusiness: "B", contactType: "BUSINESS"}',
            '{personOrBusiness: "B", contacType: "BUSINESS"}',
            f"{CONTACT_TYPE}:9:5: error[table-row]: the row has unknown column contacType and "
            "no contactType (did you mean contactType?)",
            id="value-column-typo",
        ),
        pytest.param(
            CONTACT_TYPE,
            '{personOrBusiness: "B", contactType: "BUSINESS"}',
            '{personOrBusines: "B", contactType: "BUSINESS"}',
            f"{CONTACT_TYPE}:9:5: error[table-row]: the row has unknown column personOrBusines "
            "and no personOrBusiness (did you mean personOrBusiness?)",
            id="key-column-typo",
        ),
        pytest.param(
            PERSON,
            LOOKUP,
            LOOKUP.replace("{table:", "{tabel:"),
            f"{PERSON}:12:21: error[schema]: unknown key tabel in a rule (did you mean table?)",
            id="rule-key-typo",
        ),
        pytest.param(
            CONTACT_TYPE,
            "miss: fail",
            "miss: sometimes",
            f"{CONTACT_TYPE}:6:7: error[schema]: miss: 'sometimes' is not one of fail, default, "
            "pass_through (see mappings/mapping.schema.json)",
            id="table-miss-not-a-choice",
        ),
        pytest.param(
            CONTACT_TYPE,
            "miss: fail",
            "miss: [fail",
            f"{CONTACT_TYPE}:7:5: error[yaml]: not valid YAML: expected ',' or ']', but got ':'",
            id="table-yaml-error",
        ),
        pytest.param(
            CONTACT_TYPE,
            "miss: fail",
            'miss: default\ndefault: {contacType: "UNKNOWN"}',
            f"{CONTACT_TYPE}:6:1: error[table-default]: miss: default needs a default row "
            "giving every value column",
            id="table-default-lacks-a-column",
        ),
        pytest.param(
            PERSON,
            "part: request",
            "part: [request",
            f"{PERSON}:4:7: error[yaml]: not valid YAML: expected ',' or ']', but got ':'",
            id="mapping-yaml-error",
        ),
        pytest.param(
            PERSON,
            "part: request",
            "part: reqest",
            f"{PERSON}:3:7: error[schema]: part: 'reqest' is not one of request, response, ack, "
            "notification (did you mean request?)",
            id="enum-typo",
        ),
        pytest.param(
            PERSON,
            LOOKUP,
            "contactType: [personOrBusiness]",
            f"{PERSON}:12:20: error[schema]: rules.contact.rules.contactType: expected a string "
            "or a mapping, got a list (see mappings/mapping.schema.json)",
            id="list-where-a-rule-goes",
        ),
        pytest.param(
            PERSON,
            LOOKUP,
            "contactType: {table: OUCCB2_OUMDM2_ContactType}",
            f"{PERSON}:12:20: error[schema]: a rule needs key (it has table)",
            id="missing-rule-key",
        ),
        pytest.param(
            PERSON,
            LOOKUP,
            "contactType: {table: OUCCB2_OUMDM2_ContactType, key: {path: a, when: {present: [a]}}}",
            f"{PERSON}:12:86: error[schema]: rules.contact.rules.contactType.key.when.present: "
            "expected a string, got a list (see mappings/mapping.schema.json)",
            id="list-where-a-path-goes",
        ),
        pytest.param(
            PERSON,
            "source: ccb/PersonSyncRequest",
            "sorce: ccb/PersonSyncRequest",
            f"{PERSON}:4:1: error[schema]: unknown key sorce in a mapping file "
            "(did you mean source?)",
            id="mapping-key-typo",
        ),
        pytest.param(
            "mappings/fragments/sync-ack.yaml",
            "syncRequestId: externalReferenceId",
            "syncRequestId: externalReferenceIdd",
            "mappings/fragments/sync-ack.yaml:8:18: error[unknown-source-path]: "
            "/SyncRequestUpdate/syncRequestId: SyncAcknowledgement (<the current node>) has no "
            "element <externalReferenceIdd> (did you mean externalReferenceId?)",
            id="fragment-used-by-eleven-mappings",
        ),
        pytest.param(
            "mappings/fragments/sync-ack.yaml",
            "syncRequestId: externalReferenceId",
            "syncRequestId: [externalReferenceId",
            "mappings/fragments/sync-ack.yaml:9:9: error[yaml]: not valid YAML: expected ',' or "
            "']', but got ':'",
            id="fragment-yaml-error",
        ),
        pytest.param(
            "mappings/sa-sync.ack.yaml",
            "use: [sync-ack]",
            "use: [sync-ak]",
            "mappings/sa-sync.ack.yaml:2:1: error[unknown-fragment]: no fragment named sync-ak "
            "(did you mean sync-ack?)",
            id="unknown-fragment",
        ),
        # Found by the fuzz test: the XSD parser's own error escaped for an element outside the
        # subset, and a missing include was reported at the file that is not there, followed by
        # every type it would have declared.
        pytest.param(
            "contracts/ccb/ContractOptionSyncRequest.xsd",
            '<xs:element name="optionType" type="CodeType">\n'
            "        <xs:annotation><xs:documentation>Contract option type, translated by the "
            "DynamicOptionType code table.</xs:documentation></xs:annotation>\n"
            "      </xs:element>",
            '<xs:elementt name="optionType" type="CodeType">\n'
            "        <xs:annotation><xs:documentation>Contract option type, translated by the "
            "DynamicOptionType code table.</xs:documentation></xs:annotation>\n"
            "      </xs:elementt>",
            "contracts/ccb/ContractOptionSyncRequest.xsd:30:7: error[xsd-subset]: xs:elementt is "
            "outside the supported XSD subset (see docs/contracts.md)",
            id="misspelt-xsd-element",
        ),
        pytest.param(
            "contracts/ccb/MeterReadSyncRequest.xsd",
            'schemaLocation="../common/types.xsd"',
            'schemaLocation="../common/types.sxd"',
            "contracts/ccb/MeterReadSyncRequest.xsd:4:15: error[xsd-subset]: xs:include names "
            "../common/types.sxd, which does not exist",
            id="missing-include",
        ),
    ],
)
def test_one_mistake_gives_one_finding(
    project: Project,
    capsys: pytest.CaptureFixture[str],
    file: str,
    old: str,
    new: str,
    finding: str,
) -> None:
    """No internal error, no cascade (an unknown table, a required element "not mapped") and
    no false warning (an unused table, when a mapping could not be read)."""
    edit(project.root / file, old, new)
    code, lines = check(capsys, project)
    assert (code, lines) == (1, [finding])


def test_a_table_no_mapping_uses_is_still_reported(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / PERSON, LOOKUP, 'contactType: {const: "PERSON"}')
    code, lines = check(capsys, project)
    assert code == 0
    assert lines == [
        f"{CONTACT_TYPE}:2:1: warning[unused-table]: no mapping uses code table "
        "OUCCB2_OUMDM2_ContactType"
    ]


def test_an_empty_table_row_is_a_finding(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by the fuzz test: an empty list item could not be read back with its position."""
    edit(project.root / CONTACT_TYPE, '  - {personOrBusiness: "P", contactType: "PERSON"}', "  -")
    code, lines = check(capsys, project)
    assert (code, lines) == (
        1,
        [
            f"{CONTACT_TYPE}:8:4: error[schema]: rows.0: expected a mapping, got nothing "
            "(see mappings/mapping.schema.json)"
        ],
    )

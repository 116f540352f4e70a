"""`ccbmdm lineage` and the lineage checks: what makes a target field, which source fields no
rule reads, and a warning for a source field that is new since the last compile and unread."""

from __future__ import annotations

from pathlib import Path

import pytest
from case_support import ccbmdm, edit

from ccbmdm.codegen.project import Project, init_project
from support import REPO

PERSON_XSD = "contracts/ccb/PersonSyncRequest.xsd"
PERSON_MAPPING = "mappings/person-sync.request.yaml"
CHANNEL = (
    '      <xs:element name="preferredChannel" type="CodeType" minOccurs="0">\n'
    "        <xs:annotation><xs:documentation>How the person wants to be reached."
    "</xs:documentation></xs:annotation>\n"
    "      </xs:element>\n"
)
ADDRESS = '      <xs:element name="address" type="AddressType" minOccurs="0">\n'


@pytest.fixture
def compiled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    """A new project, compiled once: the state a later check compares with."""
    project = init_project(tmp_path / "scratch")
    code, _, err = ccbmdm(capsys, "compile", "--project-dir", str(project.root))
    assert code == 0, err
    return project


def with_channel(project: Project) -> int:
    """Add ``person.preferredChannel`` to CCB's person, before its address; its line."""
    path = project.root / PERSON_XSD
    line = path.read_text(encoding="utf-8").splitlines().index(ADDRESS.rstrip("\n")) + 1
    edit(path, ADDRESS, CHANNEL + ADDRESS)
    return line


def lineage(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    return ccbmdm(capsys, "lineage", *args, "--project-dir", str(REPO))


@pytest.mark.parametrize(
    "name",
    [
        "mdm/ContactSyncRequest/targetMo",
        "person-sync.request:targetMo",
        "PERSON_SYNC.request:targetMo",
    ],
)
def test_a_field_through_a_fragment_and_a_code_table(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = lineage(capsys, name)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "targetMo in mappings/person-sync.request.yaml "
        "(PERSON_SYNC request: ccb/PersonSyncRequest -> mdm/ContactSyncRequest)",
        "  rule: mappings/fragments/sync-request-header.yaml:11:3: "
        "{table: OUCCB2_OUMDM2_MO, key: sendDetails.mo}",
        "  through fragment: sync-request-header",
        "  source: sendDetails.mo",
        "  table: OUCCB2_OUMDM2_MO (mappings/tables/OUCCB2_OUMDM2_MO.yaml)",
    ]


def test_a_field_in_a_structure_by_slashes_and_a_function(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = lineage(
        capsys, "mdm/UsageSubscriptionSyncRequest/usageSubscription/startDateTime"
    )
    assert code == 0
    assert out.splitlines()[1:] == [
        "  rule: mappings/sa-sync.request.yaml:16:7: {fn: start_of_day, args: [startDate, timeZone]}",
        "  source: serviceAgreement.startDate",
        "  source: serviceAgreement.timeZone",
        "  function: start_of_day",
    ]


def test_a_contract_two_mappings_write_shows_both(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = lineage(capsys, "mdm/UsageTransactionRequest/billCycle")
    assert code == 0
    heads = [line.split(" (")[0] for line in out.splitlines() if not line.startswith(" ")]
    assert heads == [
        "billCycle in mappings/batch-bd.request.yaml",
        "billCycle in mappings/online-bd.request.yaml",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "mdm/ContactSyncRequest/contact/nmae",
            "error: no rule of mdm/ContactSyncRequest writes contact.nmae; did you mean "
            "contact.name?",
        ),
        ("person-sync.reqest:contact.name", "did you mean person-sync.request?"),
        ("mdm/ContactSyncRequst/contact/name", "did you mean mdm/ContactSyncRequest?"),
        (
            "contact.nam",
            "error: no rule of any mapping writes contact.nam; did you mean contact.name?",
        ),
    ],
)
def test_an_unknown_field_fails_with_did_you_mean(
    capsys: pytest.CaptureFixture[str], name: str, message: str
) -> None:
    code, out, err = lineage(capsys, name)
    assert (code, out) == (1, "")
    assert message in err


def test_a_bare_name_several_mappings_write_lists_them(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lineage(capsys, "externalId")
    assert code == 1
    assert err.splitlines() == [
        "error: externalId is written by 2 rules; name one:",
        "  batch-bd.request:externalId",
        "  online-bd.request:externalId",
    ]


@pytest.mark.parametrize("flow", ["PERSON_SYNC", "person-sync"])
def test_unread_source_fields_of_one_flow(capsys: pytest.CaptureFixture[str], flow: str) -> None:
    code, out, _ = lineage(capsys, "--unread", "--flow", flow)
    assert code == 0
    assert out.splitlines() == [
        "mappings/person-sync.ack.yaml (PERSON_SYNC ack, from mdm/SyncAcknowledgement): "
        "0 source field(s) no rule reads",
        "mappings/person-sync.request.yaml (PERSON_SYNC request, from ccb/PersonSyncRequest): "
        "1 source field(s) no rule reads",
        "  person.personId",
    ]


def test_fields_read_inside_each_are_read(capsys: pytest.CaptureFixture[str]) -> None:
    """sa-sync.request reads every item field of rateHistory and spLinks through each:."""
    code, out, _ = lineage(capsys, "--unread", "--flow", "SA_SYNC")
    assert code == 0
    assert "serviceAgreement.rateHistory" not in out
    assert "ccb/ServiceAgreementSyncRequest): 0 source field(s)" in out


def test_unread_of_an_unknown_flow(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lineage(capsys, "--unread", "--flow", "persn-sync")
    assert code == 1
    assert "error: no mapping of flow persn-sync; did you mean PERSON_SYNC?" in err


def test_a_field_and_unread_together_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = lineage(capsys, "contact.name", "--unread")
    assert code == 1 and "name a target field, or use --unread" in err


@pytest.mark.slow
def test_a_new_source_field_no_rule_reads_is_a_warning(
    compiled: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    line = with_channel(compiled)
    code, out, err = ccbmdm(capsys, "check", "--project-dir", str(compiled.root))
    assert code == 0
    assert err.splitlines() == [
        f"{PERSON_XSD}:{line}:7: warning[unread-source]: ccb/PersonSyncRequest: "
        "person/preferredChannel is new and no rule reads it (map it in "
        f"{PERSON_MAPPING}, or list person.preferredChannel under unread: there)",
        "0 error(s), 1 warning(s)",
    ]
    assert out == "no errors, 1 warning(s)\n"
    code, out, _ = ccbmdm(
        capsys, "lineage", "--unread", "--flow", "person-sync", "--project-dir", str(compiled.root)
    )
    assert "  person.preferredChannel" in out.splitlines()


@pytest.mark.slow
def test_the_warning_lasts_until_the_next_compile(
    compiled: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    with_channel(compiled)
    code, _, err = ccbmdm(capsys, "compile", "--project-dir", str(compiled.root))
    assert code == 0 and "warning[unread-source]" in err
    code, out, err = ccbmdm(capsys, "check", "--project-dir", str(compiled.root))
    assert (code, out, err) == (0, "no errors\n", "")


@pytest.mark.slow
def test_no_warning_on_a_first_compile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = init_project(tmp_path / "scratch")
    with_channel(project)
    code, out, err = ccbmdm(capsys, "check", "--project-dir", str(project.root))
    assert (code, out, err) == (0, "no errors\n", "")


@pytest.mark.slow
def test_a_field_listed_under_unread_is_not_warned_about(
    compiled: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    with_channel(compiled)
    edit(compiled.root / PERSON_MAPPING, "rules:\n", "unread: [person.preferredChannel]\nrules:\n")
    code, out, err = ccbmdm(capsys, "check", "--project-dir", str(compiled.root))
    assert (code, out, err) == (0, "no errors\n", "")
    code, out, _ = ccbmdm(
        capsys, "lineage", "--unread", "--flow", "person-sync", "--project-dir", str(compiled.root)
    )
    assert code == 0
    assert out.splitlines()[1:] == [
        "mappings/person-sync.request.yaml (PERSON_SYNC request, from ccb/PersonSyncRequest): "
        "1 source field(s) no rule reads; 1 more listed under unread:",
        "  person.personId",
    ]


@pytest.mark.slow
def test_a_structure_listed_under_unread_covers_its_fields(
    compiled: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(compiled.root / PERSON_MAPPING, "rules:\n", "unread: [person]\nrules:\n")
    code, out, err = ccbmdm(
        capsys, "lineage", "--unread", "--flow", "person-sync", "--project-dir", str(compiled.root)
    )
    assert code == 0, err
    assert out.splitlines()[1:] == [
        "mappings/person-sync.request.yaml (PERSON_SYNC request, from ccb/PersonSyncRequest): "
        "0 source field(s) no rule reads; 1 more listed under unread:",
    ]


@pytest.mark.slow
def test_an_unread_path_the_source_does_not_have_is_an_error(
    compiled: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    with_channel(compiled)
    edit(
        compiled.root / PERSON_MAPPING,
        "rules:\n",
        "unread:\n  - person.preferredChannel\n  - person.preferedChanel\nrules:\n",
    )
    code, _, err = ccbmdm(capsys, "check", "--project-dir", str(compiled.root))
    assert code == 1
    assert (
        f"{PERSON_MAPPING}:10:5: error[unread-path]: ccb/PersonSyncRequest has no element "
        "person.preferedChanel (did you mean person.preferredChannel?)"
    ) in err.splitlines()

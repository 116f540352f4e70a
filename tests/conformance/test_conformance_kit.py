"""The conformance kit: cases read from a project, run against their goldens, reported per field
with the rule that wrote it; --update; malformed cases as findings; the pytest plugin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from case_support import ccbmdm, edit, report_of

from ccbmdm.codegen.project import Project, init_project
from support import REPO, run_python

# The reference cases, which `ccbmdm init` copies: how many there are, and per flow folder.
CASES = sorted(path.parent for path in (REPO / "conformance" / "cases").glob("*/*/case.yaml"))
PER_FLOW = {
    flow: sum(case.parent.name == flow for case in CASES) for flow in ("person-sync", "sp-sync")
}
PERSON_CHANGE = Path("cases/person-sync/person-change")
REQUEST_RULES = "mappings/person-sync.request.yaml"
ACK_RULES = "mappings/fragments/sync-ack.yaml"


def check(project: Project, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code, out, err = ccbmdm(capsys, "conformance", "--project-dir", str(project.root), *args)
    return code, out + err


def test_an_initialised_project_passes_its_reference_cases(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = check(project, capsys)
    assert code == 0, output
    last = f"{CASES[-1].parent.name}/{CASES[-1].name}"
    assert f"[{len(CASES)}/{len(CASES)}] {last} passed" in output
    assert " FAILED" not in output
    rows = {line.split("│")[1].strip(): line for line in output.splitlines() if "│" in line}
    for folder, flow in (("person-sync", "PERSON_SYNC"), ("sp-sync", "SP_SYNC")):
        count = str(PER_FLOW[folder])
        assert [cell.strip() for cell in rows[flow].split("│")[2:5]] == [count, count, "0"]


def test_a_changed_value_is_reported_with_the_rule_that_wrote_it(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / PERSON_CHANGE / "expected.xml", "<city>Quincy", "<city>Boston")
    code, output = check(project, capsys, "--case", "person-change")
    assert code == 1
    assert report_of(output, "person-sync/person-change") == [
        '/contact/address/city: expected "Boston", actual "Quincy"  '
        f"(written by {REQUEST_RULES}:23:11)"
    ]


def test_a_missing_and_an_extra_element_are_reported(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = project.root / PERSON_CHANGE / "expected.xml"
    edit(golden, "      <address2>Apt 3B</address2>\n", "")
    edit(golden, "<city>", "<address3>Rear</address3>\n      <city>")
    code, output = check(project, capsys, "--case", "person-change")
    assert code == 1
    assert report_of(output, "person-sync/person-change") == [
        f'/contact/address/address2: expected (absent), actual "Apt 3B"  '
        f"(written by {REQUEST_RULES}:21:11)",
        f'/contact/address/address3: expected "Rear", actual (absent)  '
        f"(written by {REQUEST_RULES}:22:11)",
    ]


def test_repeated_elements_in_another_order_differ_position_by_position(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = project.root / "cases/person-sync/ack-rejected/expected.xml"
    text = golden.read_text(encoding="utf-8")
    first = text.index("    <exceptionInfo>")
    second = text.index("    <exceptionInfo>", first + 1)
    end = text.index("  </result>")
    golden.write_text(
        text[:first] + text[second:end] + text[first:second] + text[end:], encoding="utf-8"
    )
    code, output = check(project, capsys, "--case", "person-sync/ack-rejected")
    assert code == 1
    assert report_of(output, "person-sync/ack-rejected") == [
        '/result/exceptionInfo[1]/comments: expected (absent), actual "Contact name is too '
        f'long"  (written by {ACK_RULES}:19:11)',
        "/result/exceptionInfo[1]/messageNumber: expected 16000, actual 16021  "
        f"(written by {ACK_RULES}:17:11)",
        '/result/exceptionInfo[1]/messageParameters[1]: expected (absent), actual "0001234567"  '
        f"(written by {ACK_RULES}:18:11)",
        '/result/exceptionInfo[2]/comments: expected "Contact name is too long", actual '
        f"(absent)  (written by {ACK_RULES}:19:11)",
        "/result/exceptionInfo[2]/messageNumber: expected 16021, actual 16000  "
        f"(written by {ACK_RULES}:17:11)",
        '/result/exceptionInfo[2]/messageParameters[1]: expected "0001234567", actual (absent)  '
        f"(written by {ACK_RULES}:18:11)",
    ]


def test_another_fault_code_is_reported_at_the_failing_rule(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / "cases/person-sync/unknown-country/case.yaml", "code: 1101", "code: 1102")
    code, output = check(project, capsys, "--flow", "person-sync", "-k", "unknown and country")
    assert code == 1, output
    assert "[1/1] person-sync/unknown-country FAILED" in output
    assert report_of(output, "person-sync/unknown-country") == [
        f"fault/code: expected 1102, actual 1101  (written by {REQUEST_RULES}:26:20)"
    ]


def test_ids_and_sending_times_are_normalised_but_their_presence_is_compared(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = project.root / PERSON_CHANGE / "expected.xml"
    edit(golden, "5f0c6a3e-8f1d-4c2b-9a77-0e4d2b9c1a01", "00000000-0000-4000-8000-000000000000")
    edit(golden, "2025-03-10T14:05:00Z", "2030-01-01T00:00:00Z")
    assert check(project, capsys, "--case", "person-change")[0] == 0
    edit(
        golden,
        "</messageId>",
        "</messageId>\n    <correlationId>00000000-0000-4000-8000-000000000001</correlationId>",
    )
    code, output = check(project, capsys, "--case", "person-change")
    assert code == 1
    assert report_of(output, "person-sync/person-change") == [
        '/messageHeader/correlationId: expected "<correlation-id>", actual (absent)  '
        "(written by mappings/fragments/sync-request-header.yaml:7:3)"
    ]


def test_update_rewrites_the_golden_and_says_what_changed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    golden = project.root / PERSON_CHANGE / "expected.xml"
    original = golden.read_text(encoding="utf-8")
    edit(golden, "<city>Quincy", "<city>Boston")
    code, output = check(project, capsys, "--update", "--case", "person-change")
    assert code == 0, output
    assert "[1/1] person-sync/person-change updated" in output
    assert '/contact/address/city: expected "Boston", actual "Quincy"' in output
    assert golden.read_text(encoding="utf-8") == original
    code, output = check(project, capsys, "--update", "--case", "person-change")
    assert code == 0 and "[1/1] person-sync/person-change unchanged" in output


def test_json_and_junit_reports(
    project: Project, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    edit(project.root / PERSON_CHANGE / "expected.xml", "<city>Quincy", "<city>Boston")
    junit = tmp_path / "reports" / "conformance.xml"
    code, out, _ = ccbmdm(
        capsys,
        "conformance",
        "--project-dir",
        str(project.root),
        "--format",
        "json",
        "--junit",
        str(junit),
    )
    assert code == 1
    cases = {c["case"]: c for c in json.loads(out)["cases"]}
    assert len(cases) == len(CASES)
    assert cases["person-sync/person-change"]["differences"] == [
        {
            "path": "/contact/address/city",
            "expected": '"Boston"',
            "actual": '"Quincy"',
            "rule": f"{REQUEST_RULES}:23:11",
        }
    ]
    from lxml import etree

    suites = {s.get("name"): s for s in etree.parse(str(junit)).getroot()}
    assert (
        suites["PERSON_SYNC"].get("tests") == str(PER_FLOW["person-sync"])
        and suites["PERSON_SYNC"].get("failures") == "1"
    )
    failure = suites["PERSON_SYNC"].find("testcase[@name='person-sync/person-change']/failure")
    assert failure is not None and "/contact/address/city" in (failure.text or "")


@pytest.mark.parametrize(
    ("old", "new", "finding"),
    [
        (
            "part: request",
            "part: reqest",
            "cases/person-sync/person-change/case.yaml:3:7: error[schema]: part: 'reqest' is "
            "not one of request, response, ack, notification (did you mean request?)",
        ),
        (
            "expected: expected.xml",
            "expected: golden.xml",
            "cases/person-sync/person-change/case.yaml:5:11: error[case]: expected: no file "
            "golden.xml beside case.yaml",
        ),
        (
            "part: request",
            "part: response",
            "cases/person-sync/person-change/case.yaml:3:7: error[case]: part: flow "
            "PERSON_SYNC has no mapping for part response (its parts: ack, request)",
        ),
        (
            "kind: mapping",
            "kind: mapping\ntables: {OUCCB2_OUMDM2_Nowhere: []}",
            "cases/person-sync/person-change/case.yaml:3:10: error[case]: tables: no code "
            "table OUCCB2_OUMDM2_Nowhere",
        ),
        (
            "kind: mapping",
            "kind: mapping\nclock: 2025-03-10T14:05:00",
            "cases/person-sync/person-change/case.yaml:3:8: error[case]: clock: "
            "2025-03-10T14:05:00 has no offset (add Z or +hh:mm)",
        ),
        (
            "kind: mapping",
            "kind: mapping\nclock: yesterday",
            "cases/person-sync/person-change/case.yaml:3:8: error[case]: clock:",
        ),
    ],
)
def test_a_malformed_case_is_a_finding_at_its_position(
    project: Project, capsys: pytest.CaptureFixture[str], old: str, new: str, finding: str
) -> None:
    edit(project.root / PERSON_CHANGE / "case.yaml", old, new)
    code, output = check(project, capsys)
    assert code == 1
    assert finding in output
    assert "Traceback" not in output


def test_an_unknown_flow_and_an_invalid_golden_are_findings(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    (project.cases / "person-sync").rename(project.cases / "persons-sync")
    code, output = check(project, capsys, "--case", "person-change")
    assert code == 1
    assert (
        "cases/persons-sync/person-change/case.yaml:1:1: error[case]: no flow PERSONS_SYNC"
        in output
    )
    (project.cases / "persons-sync").rename(project.cases / "person-sync")
    edit(project.root / PERSON_CHANGE / "expected.xml", "<entityVersion>4", "<entityVersion>four")
    code, output = check(project, capsys, "--case", "person-change")
    assert code == 1
    assert (
        "cases/person-sync/person-change/expected.xml:17:3: error[message]: not a valid "
        "mdm/ContactSyncRequest message" in output
    )


def test_pytest_collects_the_cases_of_an_initialised_project(tmp_path: Path) -> None:
    project = init_project(tmp_path / "project")
    edit(project.root / PERSON_CHANGE / "expected.xml", "<city>Quincy", "<city>Boston")
    result = run_python("-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", cwd=project.root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"1 failed, {len(CASES) - 1} passed" in result.stdout
    assert (
        "FAILED cases/person-sync/person-change/case.yaml::person-sync/person-change"
        in result.stdout
    )
    assert '/contact/address/city: expected "Boston", actual "Quincy"' in result.stdout


def test_the_context_of_a_case_is_its_clock_zone_rows_and_cross_reference(
    project: Project,
) -> None:
    from datetime import UTC, datetime

    from ccbmdm.conformance.cases import MappingCase, read_case
    from ccbmdm.conformance.runner import Kit

    edit(
        project.root / PERSON_CHANGE / "case.yaml",
        "kind: mapping",
        "kind: mapping\nclock: 2025-03-10T14:05:00Z\ntime_zone: America/Chicago\n"
        "xref:\n  PERSON: {'0001234567': C-000000418}\n"
        "tables:\n  OUCCB2_OUMDM2_Country:\n    - {ccbCountry: BMU, mdmCountry: BM}",
    )
    case = read_case(project.root / PERSON_CHANGE, project.root)
    assert isinstance(case, MappingCase)
    ctx = Kit(project).context(case)
    assert ctx.clock() == datetime(2025, 3, 10, 14, 5, tzinfo=UTC)
    assert ctx.time_zone == "America/Chicago"
    assert ctx.resolve(0, "PERSON", "0001234567") == "C-000000418"
    assert ctx.tables.lookup(0, "OUCCB2_OUMDM2_Country", ("BMU",), "mdmCountry") == "BM"
    assert ctx.tables.lookup(0, "OUCCB2_OUMDM2_Country", ("USA",), "mdmCountry") == "US"


def test_pytest_reports_a_project_that_does_not_compile_per_case(tmp_path: Path) -> None:
    project = init_project(tmp_path / "project")
    edit(project.mappings / "sp-sync.request.yaml", "timeZone: timeZone", "timeZone: timeZones")
    result = run_python("-m", "pytest", "-p", "no:cacheprovider", "-q", cwd=project.root)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{len(CASES)} failed" in result.stdout
    assert "the project does not compile:" in result.stdout
    assert "mappings/sp-sync.request.yaml:" in result.stdout
    assert "Traceback" not in result.stdout

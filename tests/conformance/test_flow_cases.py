"""Flow cases: a scenario through the runtime between the simulators, judged by its golden
message trail, hop by hop, and its end state; --update writes both; bad steps are findings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from case_support import ccbmdm, edit, report_of

from ccbmdm.codegen.project import Project, init_project

RENAME = Path("cases/person-sync/rename-after-go-live")
TRAIL = RENAME / "trail"
REQUEST = "02-bridge-to-mdm-person-sync-request.xml"
HOP_2 = "trail[2] bridge -> mdm person-sync request"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return init_project(tmp_path_factory.mktemp("flow-reference") / "project")


@pytest.fixture
def project(reference: Project, tmp_path: Path) -> Project:
    root = tmp_path / "project"
    shutil.copytree(reference.root, root)
    return Project.load(root)


def run_case(project: Project, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code, out, err = ccbmdm(
        capsys,
        "conformance",
        "--project-dir",
        str(project.root),
        "--case",
        "rename-after-go-live",
        *args,
    )
    return code, out + err


def test_a_flow_case_passes_with_its_trail_and_end_state(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = sorted(p.name for p in (project.root / TRAIL).iterdir())
    assert trail == [
        "01-ccb-to-bridge-person-sync-request.xml",
        REQUEST,
        "03-mdm-to-bridge-person-sync-ack.xml",
        "04-bridge-to-ccb-person-sync-ack.xml",
    ]
    code, output = run_case(project, capsys)
    assert code == 0, output
    assert "[1/1] person-sync/rename-after-go-live passed" in output


def test_a_changed_message_in_the_trail_names_the_hop_the_path_and_the_rule(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / TRAIL / REQUEST, "<city>Braintree</city>", "<city>Quincy</city>")
    code, output = run_case(project, capsys)
    assert code == 1
    assert report_of(output, "person-sync/rename-after-go-live") == [
        f'{HOP_2}/contact/address/city: expected "Quincy", actual "Braintree"  '
        "(written by mappings/person-sync.request.yaml:23:11)"
    ]


def test_a_missing_and_an_unexpected_hop_are_reported_in_order(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    trail = project.root / TRAIL
    (trail / "04-bridge-to-ccb-person-sync-ack.xml").unlink()
    (trail / "03-mdm-to-bridge-person-sync-ack.xml").rename(
        trail / "03-mdm-to-bridge-person-sync-request.xml"
    )
    code, output = run_case(project, capsys)
    assert code == 1
    assert report_of(output, "person-sync/rename-after-go-live") == [
        "trail[3]: expected mdm -> bridge person-sync request, "
        "actual mdm -> bridge person-sync ack",
        "trail[4]: expected (no such message), actual bridge -> ccb person-sync ack",
    ]


def test_an_end_state_difference_names_the_record_and_field(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / RENAME / "end-state.yaml", "state: SYNCHRONIZED", "state: ERROR")
    code, output = run_case(project, capsys)
    assert code == 1
    assert report_of(output, "person-sync/rename-after-go-live") == [
        'end-state.yaml/requests/sync_request/0/state: expected "ERROR", actual "SYNCHRONIZED"'
    ]


def test_update_rewrites_the_trail_and_end_state_and_says_what_changed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    case = project.root / RENAME
    edit(case / "case.yaml", "Okonkwo-Baptiste,Chidinma", "Okafor,Chidinma")
    code, output = run_case(project, capsys, "--update")
    assert code == 0, output
    lines = report_of(output.replace(" updated", " FAILED"), "person-sync/rename-after-go-live")
    assert (
        f'{HOP_2}/contact/name: expected "Okonkwo-Baptiste,Chidinma", actual "Okafor,Chidinma"'
        in " ".join(lines)
    )
    assert "<name>Okafor,Chidinma</name>" in (case / "trail" / REQUEST).read_text()
    assert "name: Okafor,Chidinma" in (case / "end-state.yaml").read_text()
    code, output = run_case(project, capsys)
    assert code == 0, output


def test_an_unknown_action_is_a_finding_at_its_position(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / RENAME / "case.yaml", "  - ccb.change:", "  - ccb.rename:")
    code, output = run_case(project, capsys)
    assert code == 1
    assert "cases/person-sync/rename-after-go-live/case.yaml:8:5: error[case]: when: no " in output
    assert "action ccb.rename" in output and "ccb.change" in output


def test_a_step_the_simulator_refuses_is_a_finding_at_the_step(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / RENAME / "case.yaml", 'key: "1000000001"', 'key: "1999999999"')
    code, output = run_case(project, capsys)
    assert code == 1
    assert (
        "rename-after-go-live/case.yaml:8:5: error[case]: CCB holds no PERSON 1999999999" in output
    )
    assert "Traceback" not in output


def test_a_golden_that_is_not_a_valid_message_is_a_finding_at_its_line(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(project.root / TRAIL / REQUEST, "<city>Braintree</city>", "<town>Braintree</town>")
    code, output = run_case(project, capsys)
    assert code == 1
    # the first problem in document order: <state> stands where <city> must be
    assert f"{TRAIL}/{REQUEST}:23:5: error[message]: not a valid mdm/ContactSyncRequest" in output
    assert "missing required element <city>" in output
    assert "Traceback" not in output

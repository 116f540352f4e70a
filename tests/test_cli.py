"""The command line: clear messages and exit codes, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from case_support import ccbmdm, edit

from bad_inputs import BAD_INPUTS, PERSON
from ccbmdm.codegen.project import Project, init_project
from ccbmdm.runtime.messages.codec import MAX_REPORTED
from support import REPO, sample


@pytest.fixture
def scratch(tmp_path: Path) -> Project:
    return init_project(tmp_path / "scratch")


def test_validate_a_good_message(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "contracts" / "samples" / "ccb" / "ServiceAgreementSyncRequest.xml"
    code, out, err = ccbmdm(capsys, "validate", str(path), "--project-dir", str(REPO))
    assert (code, out, err) == (0, "OK ccb/ServiceAgreementSyncRequest\n", "")


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_validate_bad_input_says_what_and_where(
    name: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data, expected = BAD_INPUTS[name]
    path = tmp_path / f"{name}.xml"
    path.write_bytes(data)
    code, out, err = ccbmdm(capsys, "validate", str(path), "--project-dir", str(REPO))
    assert code == 1 and out == ""
    assert "Traceback" not in err
    assert err.startswith(f"{path}:")
    assert expected in err, err


def test_validate_lists_the_first_hundred_problems_and_counts_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "unknown-elements.xml"
    path.write_text(PERSON.replace("<person>\n", "<person>\n" + "    <x/>\n" * 100_000))
    code, out, err = ccbmdm(capsys, "validate", str(path), "--project-dir", str(REPO))
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == f"{path}: does not satisfy ccb/PersonSyncRequest, 100000 problem(s):"
    assert lines[1] == f"{path}:21:5: /PersonSyncRequest/person/x[1]: unknown element <x>"
    assert lines[MAX_REPORTED + 1 :] == [f"{path}: and {100_000 - MAX_REPORTED} more problem(s)"]


def test_validate_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Stdin:
        buffer = __import__("io").BytesIO(sample("mdm/ContactSyncRequest"))

    monkeypatch.setattr(sys, "stdin", Stdin)
    assert ccbmdm(capsys, "validate", "-", "--project-dir", str(REPO))[:2] == (
        0,
        "OK mdm/ContactSyncRequest\n",
    )


def test_compile_and_check(scratch: Project, capsys: pytest.CaptureFixture[str]) -> None:
    where = ("--project-dir", str(scratch.root))
    code, _, err = ccbmdm(capsys, "compile", "--check", *where)
    assert code == 1 and "is stale; run `ccbmdm compile`" in err
    assert "stale: never compiled: target/python holds no build" in err
    code, out, _ = ccbmdm(capsys, "compile", *where)
    assert code == 0 and out.startswith("compiled 56 contracts and 39 mappings in ")
    code, out, _ = ccbmdm(capsys, "compile", "--check", *where)
    assert code == 0 and "is up to date" in out


def test_check_names_the_changed_input(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--project-dir", str(scratch.root))
    assert ccbmdm(capsys, "compile", *where)[0] == 0
    edit(scratch.mappings / "person-sync.request.yaml", "\n", "\n# reviewed\n")
    code, out, err = ccbmdm(capsys, "compile", "--check", *where)
    assert (code, out) == (1, "")
    assert [line for line in err.splitlines() if "stale:" in line] == [
        "  stale: mappings/person-sync.request.yaml changed"
    ]


def test_a_warm_compile_writes_nothing(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--project-dir", str(scratch.root))
    assert ccbmdm(capsys, "compile", *where)[0] == 0
    written = {p: p.stat().st_mtime_ns for p in scratch.target.rglob("*") if p.is_file()}
    code, out, _ = ccbmdm(capsys, "compile", *where)
    assert code == 0 and out.startswith("up to date: 56 contracts and 39 mappings")
    assert {p: p.stat().st_mtime_ns for p in scratch.target.rglob("*") if p.is_file()} == written
    # A changed input is compiled again.
    edit(scratch.mappings / "person-sync.request.yaml", "\n", "\n# reviewed\n")
    code, out, _ = ccbmdm(capsys, "compile", *where)
    assert code == 0 and out.startswith("compiled 56 contracts and 39 mappings in ")


def test_compile_reports_contract_problems_with_file_and_line(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    person = scratch.contracts / "ccb" / "PersonSyncRequest.xsd"
    person.write_text(person.read_text().replace('type="TextType"', 'type="TextTyp"', 1))
    code, out, err = ccbmdm(capsys, "compile", "--project-dir", str(scratch.root))
    assert code == 1 and out == ""
    assert (
        "contracts/ccb/PersonSyncRequest.xsd:33:37: error[unknown-type]: PersonType/entityName: "
        "no type named TextTyp (did you mean TextType?)\n" in err
    )


def test_commands_find_the_project_upward(
    scratch: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(scratch.contracts / "ccb")
    code, out, _ = ccbmdm(capsys, "validate", "../samples/ccb/PersonSyncRequest.xml")
    assert (code, out) == (0, "OK ccb/PersonSyncRequest\n")


def test_outside_a_project_the_error_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = ccbmdm(capsys, "compile")
    assert code == 1
    assert "no ccbmdm_project.yaml in" in err and "ccbmdm init DIR" in err


def test_init_refuses_to_overwrite(scratch: Project, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = ccbmdm(capsys, "init", str(scratch.root))
    assert code == 1 and "exists already; pass --force" in err
    code, out, _ = ccbmdm(capsys, "init", str(scratch.root), "--force")
    assert code == 0 and ": 0 files added, " in out and "you changed" not in out


def test_init_force_keeps_an_edited_table_and_restores_a_missing_file(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    table = scratch.mappings / "tables" / "OUCCB2_OUMDM2_ContactType.yaml"
    edited = table.read_text() + "# ours\n"
    table.write_text(edited)
    (scratch.mappings / "person-sync.ack.yaml").unlink()
    code, out, _ = ccbmdm(capsys, "init", str(scratch.root), "--force")
    assert code == 0
    assert "  added mappings/person-sync.ack.yaml" in out.splitlines()
    assert (
        "kept 1 file you changed: mappings/tables/OUCCB2_OUMDM2_ContactType.yaml "
        "(use --overwrite to replace it)"
    ) in out.splitlines()
    assert table.read_text() == edited
    assert (scratch.mappings / "person-sync.ack.yaml").is_file()


def test_init_overwrite_replaces_the_edited_tables_and_lists_them(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = [
        scratch.mappings / "tables" / name
        for name in ("OUCCB2_OUMDM2_ContactType.yaml", "OUCCB2_OUMDM2_DeviceConfigType.yaml")
    ]
    references = [table.read_text() for table in tables]
    for table, reference in zip(tables, references, strict=True):
        table.write_text(reference + "# ours\n")
    code, out, _ = ccbmdm(capsys, "init", str(scratch.root), "--overwrite")
    assert code == 0
    assert out.splitlines()[1:] == [
        "replaced 2 files you changed:",
        "  mappings/tables/OUCCB2_OUMDM2_ContactType.yaml",
        "  mappings/tables/OUCCB2_OUMDM2_DeviceConfigType.yaml",
    ]
    assert [table.read_text() for table in tables] == references


@pytest.mark.parametrize(
    "command", [[], ["init"], ["compile"], ["check"], ["validate"], ["transform"]]
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = ccbmdm(capsys, *command, "--help")
    assert code == 0 and "Usage:" in out


def test_the_installed_script_runs_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<PersonSyncRequest")
    result = subprocess.run(
        ["ccbmdm", "validate", str(bad), "--project-dir", str(REPO)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad}:1:19: XML rejected: ")
    assert "Traceback" not in result.stderr


# The console entry point, run with an exit handler and, if asked, a thread still running.
ENTRY = """
import atexit, sys, threading
atexit.register(print, "exit handler ran")
if sys.argv[1] == "thread":  # it ends once the main thread has (a normal exit waits for it)
    threading.Thread(target=lambda: (threading.main_thread().join(), print("thread ended"))).start()
sys.argv = ["ccbmdm", *sys.argv[2:]]
from ccbmdm.cli import main
main()
"""


@pytest.mark.parametrize("thread", ["none", "thread"])
def test_the_entry_point_ends_as_a_normal_exit_would(tmp_path: Path, thread: str) -> None:
    """It skips the interpreter's teardown, never what a normal exit does: the exit handlers
    run, what was printed is all there, the exit code is the command's, and a thread still
    running is waited for."""
    good = REPO / "contracts" / "samples" / "ccb" / "ServiceAgreementSyncRequest.xml"
    bad = tmp_path / "bad.xml"
    bad.write_bytes(b"<PersonSyncRequest")
    for message, code, printed in ((good, 0, "OK ccb/ServiceAgreementSyncRequest\n"), (bad, 1, "")):
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                ENTRY,
                thread,
                "validate",
                str(message),
                "--project-dir",
                str(REPO),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert result.returncode == code, result.stderr
        ended = "thread ended\n" if thread == "thread" else ""
        assert result.stdout == printed + ended + "exit handler ran\n"
        assert "Traceback" not in result.stderr


def test_check_reports_findings_with_position_and_path(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = scratch.mappings / "person-sync.request.yaml"
    mapping.write_text(mapping.read_text().replace("name: entityName", "name: entityNme"))
    code, _, err = ccbmdm(capsys, "check", "--project-dir", str(scratch.root))
    assert code == 1
    assert (
        "mappings/person-sync.request.yaml:13:13: error[unknown-source-path]: "
        "/ContactSyncRequest/contact/name: PersonType (<the current node>) has no element "
        "<entityNme> (did you mean entityName?)"
    ) in err
    assert "1 error(s)" in err


def test_check_passes_on_the_reference_project(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = ccbmdm(capsys, "check", "--project-dir", str(REPO))
    assert (code, out) == (0, "no errors\n")


def test_transform_prints_the_target_message(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "contracts" / "samples" / "ccb" / "ServiceAgreementSyncRequest.xml"
    code, out, err = ccbmdm(
        capsys, "transform", str(path), "--flow", "sa-sync", "--project-dir", str(REPO)
    )
    assert (code, err) == (0, "")
    assert out.startswith("<?xml version='1.0' encoding='UTF-8'?>\n<UsageSubscriptionSyncRequest")
    assert "<usType>RES-ELEC</usType>" in out
    assert "<startDateTime>2019-06-14T00:00:00-04:00</startDateTime>" in out


@pytest.mark.parametrize(
    ("clock", "error"),
    [
        ("2025-03-10T14:05:00Z", ""),
        ("'2025-03-10T14:05:00-05:00'", ""),
        ("2025-03-10T14:05:00", "clock: 2025-03-10T14:05:00 has no offset (add Z or +hh:mm)"),
    ],
)
def test_transform_reads_a_context_clock_quoted_or_not(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, clock: str, error: str
) -> None:
    context = tmp_path / "context.yaml"
    context.write_text(f"clock: {clock}\ntime_zone: America/New_York\n", encoding="utf-8")
    path = REPO / "contracts" / "samples" / "ccb" / "PersonSyncRequest.xml"
    code, out, err = ccbmdm(
        capsys,
        "transform",
        str(path),
        "--flow",
        "person-sync",
        "--context",
        str(context),
        "--project-dir",
        str(REPO),
    )
    assert (code, error in err) == ((1, True) if error else (0, True)), err
    assert ("<ContactSyncRequest" in out) != bool(error)


def test_transform_failure_names_the_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "person.xml"
    path.write_bytes(
        sample("ccb/PersonSyncRequest").replace(
            b"<country>USA</country>", b"<country>XXA</country>"
        )
    )
    code, out, err = ccbmdm(
        capsys, "transform", str(path), "--flow", "PERSON_SYNC", "--project-dir", str(REPO)
    )
    assert code == 1 and out == ""
    assert "mappings/person-sync.request.yaml:" in err
    # an address is personal data: the value only with --unmask, on the operator's terminal
    assert "reading /PersonSyncRequest/person/address/country = ***" in err
    assert "XXA" not in err
    assert "(fault 90000/1101;" in err
    code, _, err = ccbmdm(
        capsys,
        "transform",
        str(path),
        "--flow",
        "PERSON_SYNC",
        "--unmask",
        "--project-dir",
        str(REPO),
    )
    assert code == 1
    assert "reading /PersonSyncRequest/person/address/country = 'XXA'" in err


def test_transform_unknown_flow_lists_the_compiled_ones(capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "contracts" / "samples" / "ccb" / "PersonSyncRequest.xml"
    code, _, err = ccbmdm(
        capsys, "transform", str(path), "--flow", "PERSN_SYNC", "--project-dir", str(REPO)
    )
    assert code == 1 and "no mapping for flow PERSN_SYNC part request" in err


def test_status_and_discard_on_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ccbmdm.runtime.lifecycles.sync import capture
    from ccbmdm.runtime.store.sqlite import SqliteStore

    path = tmp_path / "runtime.db"
    store = SqliteStore(str(path))
    store.migrate()
    with store.transaction() as tx:
        capture(tx, "PERSON", ("0000000001",), None)
        tx.execute(
            f"UPDATE sync_request SET state = 'ERROR', reason = 'rejected by MDM', due_at = {tx.now}"
        )
    code, out, _ = ccbmdm(capsys, "status", "--store", str(path), "--project-dir", str(REPO))
    assert code == 0
    assert "sync_request" in out and "1 in ERROR:" in out
    assert "sync_request 1 PERSON 0000000001: rejected by MDM" in out
    code, _, err = ccbmdm(capsys, "discard", "1", "--store", str(path), "--project-dir", str(REPO))
    assert code == 2 and "Missing option '--reason'" in err  # the reason is required
    code, out, _ = ccbmdm(
        capsys, "discard", "1", "--reason", "merged by hand", "--store", str(path)
    )
    assert (code, out) == (0, "sync request 1 discarded\n")
    code, _, err = ccbmdm(capsys, "discard", "1", "--reason", "again", "--store", str(path))
    assert code == 1 and "sync request 1 is DISCARDED by an operator" in err


def test_status_without_a_store_says_what_to_pass(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ccbmdm(capsys, "status", "--project-dir", str(scratch.root))
    assert code == 1 and "no ccbmdm store at" in err and "name a store with --store" in err
    assert not (scratch.target / "runtime.db").exists()  # reading a store never creates one

"""The command line: clear messages and exit codes, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bad_inputs import BAD_INPUTS
from ccbmdm.cli import app, run
from ccbmdm.codegen.project import Project, init_project
from support import REPO, sample


def ccbmdm(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(lambda: app(list(args), standalone_mode=False))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


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
    assert code == 1 and "is stale; run `ccbmdm compile`" in err and "(missing)" in err
    code, out, _ = ccbmdm(capsys, "compile", *where)
    assert code == 0 and out.startswith("compiled 56 contracts and 39 mappings in ")
    code, out, _ = ccbmdm(capsys, "compile", "--check", *where)
    assert code == 0 and "is up to date" in out


def test_compile_reports_contract_problems_with_file_and_line(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    person = scratch.contracts / "ccb" / "PersonSyncRequest.xsd"
    person.write_text(person.read_text().replace('type="TextType"', 'type="TextTyp"', 1))
    code, out, err = ccbmdm(capsys, "compile", "--project-dir", str(scratch.root))
    assert code == 1 and out == ""
    assert "contracts/ccb/PersonSyncRequest.xsd:33: no type named TextTyp" in err


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
    assert ccbmdm(capsys, "init", str(scratch.root), "--force")[0] == 0


@pytest.mark.parametrize("command", [[], ["init"], ["compile"], ["validate"]])
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

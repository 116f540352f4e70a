"""A case that hangs is stopped at its time limit, reported as failed with the limit, and the run
goes on with the next case.

The hang is an honest one: the project's contract gives CCB ids a pattern that backtracks
catastrophically, and the case's input carries an id made to trigger it, so decoding the input
would take far longer than any test run; SIGALRM stops the regular expression where it is.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from case_support import copied

from ccbmdm.cli import app, run
from ccbmdm.codegen.project import Project, init_project
from ccbmdm.conformance.cases import read_case
from ccbmdm.conformance.limit import TimeLimitExceeded, limited, within
from ccbmdm.conformance.outcome import Outcome
from support import run_python

HANGING = "person-sync/person-change"
NEXT = "person-sync/unknown-country"  # the case after it, in path order


@pytest.fixture(scope="module")
def hanging(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project whose person-change input takes exponential time to decode."""
    project = init_project(tmp_path_factory.mktemp("hanging") / "project")
    types = project.contracts / "common" / "types.xsd"
    text = types.read_text(encoding="utf-8")
    catastrophic = text.replace(
        '<xs:pattern value="[0-9]{10}"/>', '<xs:pattern value="([0-9]+)+"/>', 1
    )
    assert catastrophic != text
    types.write_text(catastrophic, encoding="utf-8")
    case = project.cases / HANGING
    source = (case / "input.xml").read_text(encoding="utf-8")
    made = source.replace("<personId>0001234567</personId>", f"<personId>{'0' * 40}x</personId>")
    assert made != source
    (case / "input.xml").write_text(made, encoding="utf-8")
    return project


@pytest.fixture
def project(hanging: Project, tmp_path: Path) -> Project:
    return copied(hanging, tmp_path)


def conformance(
    capsys: pytest.CaptureFixture[str], project: Project, *args: str
) -> tuple[int, str]:
    code = run(lambda: app(["conformance", "--project-dir", str(project.root), *args]))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_a_hanging_case_is_stopped_at_its_own_limit_and_the_run_goes_on(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    case_file = project.cases / HANGING / "case.yaml"
    case_file.write_text(case_file.read_text(encoding="utf-8") + "time_limit_s: 0.5\n")
    code, output = conformance(capsys, project, "--case", HANGING, "--case", NEXT)
    assert code == 1
    lines = output.splitlines()
    at = lines.index(f"[1/2] {HANGING} FAILED")
    assert lines[at + 1] == (f"    {HANGING}: stopped: still running at its time limit of 0.5 s")
    assert f"[2/2] {NEXT} passed" in lines


def test_the_run_s_time_limit_applies_to_a_case_without_its_own(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = conformance(capsys, project, "--case", HANGING, "--time-limit", "0.3")
    assert code == 1
    assert f"    {HANGING}: stopped: still running at its time limit of 0.3 s" in output


def test_a_case_whose_first_interruption_was_dropped_is_interrupted_again() -> None:
    """A signal handler's exception raised inside a finalizer is printed and dropped: the case
    must still stop, at the next interruption."""
    dropped = []

    def case() -> str:
        try:
            while True:  # interrupted at the limit...
                pass
        except TimeLimitExceeded as lost:  # ...as a finalizer running then would drop it
            dropped.append(lost)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            pass
        return "ran on past its limit"

    handler = signal.getsignal(signal.SIGALRM)
    with pytest.raises(TimeLimitExceeded):
        within(0.2, case)
    assert len(dropped) == 1
    assert signal.getsignal(signal.SIGALRM) == handler  # restored
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # nothing left to fire


def test_a_case_s_limit_must_be_positive(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    case_file = project.cases / NEXT / "case.yaml"
    case_file.write_text(case_file.read_text(encoding="utf-8") + "time_limit_s: 0\n")
    code, output = conformance(capsys, project, "--case", NEXT)
    assert code == 1
    assert "cases/person-sync/unknown-country/case.yaml:8:" in output
    assert "time_limit_s" in output


def test_outside_the_main_thread_the_case_is_waited_for_and_reported(project: Project) -> None:
    case = read_case(project.cases / NEXT, project.root)
    release = threading.Event()
    found: list[Outcome] = []

    def hang() -> Outcome:
        release.wait()
        return Outcome(case, 0.0)

    elsewhere = threading.Thread(target=lambda: found.append(limited(case, 0.2, hang)))
    elsewhere.start()
    elsewhere.join()
    release.set()
    (outcome,) = found
    assert not outcome.passed
    assert outcome.problems == (
        f"{NEXT}: not stopped (it runs outside the main thread, where it cannot be interrupted; "
        "it goes on in the background): still running at its time limit of 0.2 s",
    )


def test_under_pytest_a_hanging_case_fails_at_its_limit(project: Project) -> None:
    case_file = project.cases / HANGING / "case.yaml"
    case_file.write_text(case_file.read_text(encoding="utf-8") + "time_limit_s: 0.5\n")
    result = run_python(
        "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", f"cases/{HANGING}", cwd=project.root
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout
    assert f"{HANGING}: stopped: still running at its time limit of 0.5 s" in result.stdout

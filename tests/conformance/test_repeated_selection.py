"""A repeated --flow or --case selects the union of its values, not only the last one."""

from __future__ import annotations

import json

import pytest

from ccbmdm.cli import app, run
from ccbmdm.conformance.suite import Selection
from support import REPO

CASES = sorted(path.parent for path in (REPO / "conformance" / "cases").glob("*/*/case.yaml"))


def selected(capsys: pytest.CaptureFixture[str], *args: str) -> list[str]:
    """The ids of the cases a run with ``args`` ran."""
    code = run(lambda: app(["conformance", "--project-dir", str(REPO), "--format", "json", *args]))
    output = capsys.readouterr().out
    assert code == 0, output
    return [case["case"] for case in json.loads(output)["cases"]]


def of_flow(folder: str) -> list[str]:
    return [f"{folder}/{case.name}" for case in CASES if case.parent.name == folder]


def test_repeated_flows_run_the_cases_of_each(capsys: pytest.CaptureFixture[str]) -> None:
    ran = selected(capsys, "--flow", "person-sync", "--flow", "SP_SYNC")
    assert ran == of_flow("person-sync") + of_flow("sp-sync")


def test_repeated_cases_run_each(capsys: pytest.CaptureFixture[str]) -> None:
    ran = selected(
        capsys, "--case", "person-sync/person-change", "--case", "sp-sync/service-point-change"
    )
    assert ran == ["person-sync/person-change", "sp-sync/service-point-change"]


def test_flows_and_cases_narrow_each_other() -> None:
    both = Selection(flows=("person-sync", "sp-sync"), cases=("person-change", "summer-cpp-option"))
    assert both("person-sync/person-change")
    assert not both("dop-sync/summer-cpp-option")
    assert not both("sp-sync/service-point-change")

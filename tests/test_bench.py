"""`ccbmdm bench`: the suite runs in quick mode and writes its results with the machine's
description (no time asserted: speed targets are the suite's own business)."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import platform
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.cli import app, run
from ccbmdm.docsite.benchmarks import MACHINE_FIELDS, Published, page
from support import REPO

# The scenarios as the suite defines them: whatever others are added, each must run.
sys.path.insert(0, str(REPO / "benchmarks"))
SCENARIOS: list[str] = list(importlib.import_module("suite").SCENARIOS)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, str, dict[str, Any]]:
    """The whole suite in quick mode, once for the module: every scenario of ``SCENARIOS``,
    whatever they are, so that a scenario added is run in CI too."""
    written = tmp_path_factory.mktemp("bench") / "bench.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        capture = io.StringIO()
        with contextlib.redirect_stdout(capture), contextlib.redirect_stderr(capture):
            code = run(lambda: app(["bench", "--quick", "--json", str(written)]))
    document = json.loads(written.read_text(encoding="utf-8")) if code == 0 else {}
    return code, capture.getvalue(), document


def test_quick_runs_every_scenario_and_writes_the_machine(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    code, said, document = quick_run
    assert code == 0, said
    assert {"machine", "date", "quick", "results"} <= set(document)
    assert document["quick"] is True
    assert datetime.fromisoformat(document["date"]).tzinfo is not None
    assert set(document["load"]) == {"start", "end"}
    assert set(document["pace"]) == {"start", "end"}
    assert all(ms > 0 for ms in document["pace"].values())
    machine = document["machine"]
    assert set(machine) >= {"cpu", "cores", "architecture", "system", "python", "sqlite"}
    assert "postgresql" in machine
    assert machine["cpu"] and machine["cores"] >= 1 and machine["sqlite"]
    assert machine["python"].startswith(platform.python_implementation())
    # every scenario ran, in the suite's order, and said what it measures
    assert list(document["scenarios"]) == list(SCENARIOS)
    ran = [r["scenario"] for r in document["results"]]
    assert list(dict.fromkeys(ran)) == list(SCENARIOS)


def test_every_result_is_a_row_of_the_table(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    code, said, document = quick_run
    assert code == 0, said
    for result in document["results"]:
        assert set(result) >= {"scenario", "name", "unit", "figure", "anchors", "ratio"}
        assert result["name"] and result["unit"]
        assert result["figure"] > 0, result
        assert all(value > 0 for value in result["anchors"].values()), result
        assert (result["ratio"] is None) is (result["ratio_kind"] is None), result
        assert (result["target"] is None) is (result["passed"] is None), result
        assert f"{result['scenario']}: " in said
    verdicts = [r["passed"] for r in document["results"] if r["passed"] is not None]
    assert verdicts and said.count("pass") + said.count("short") >= len(verdicts)


def test_the_codec_scenario_times_five_messages_against_xsdata(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    code, said, document = quick_run
    assert code == 0, said
    codec = [r for r in document["results"] if r["scenario"] == "codec"]
    assert [r["name"].split(" ")[0] for r in codec] == [
        "ccb/PersonSyncRequest",
        "ccb/ServiceAgreementSyncRequest",
        "ccb/BillDeterminantsResponse",
        "ccb/MeterReadHighLowResponse",
        "ccb/BillCycleSyncRequest",
    ]
    for result in codec:
        assert result["unit"] == "µs" and list(result["anchors"]) == ["lxml + xsdata"]
        assert result["ratio_kind"] == "speed-up" and result["target"] == "≥ 12x"
        assert result["passed"] is (result["ratio"] >= 12)


def test_the_run_renders_as_the_results_page(quick_run: tuple[int, str, dict[str, Any]]) -> None:
    code, said, document = quick_run
    assert code == 0, said
    text = page(Published("bench.json", document), None)
    assert re.findall(r"^## (.*)$", text, re.MULTILINE) == ["Machine", *SCENARIOS]
    assert text.count("<tr><td>") == len(document["results"])
    assert all(f"- **{label}**: " in text for label in MACHINE_FIELDS.values())


def test_the_intervals_scenario_gives_import_rates_and_the_store_size_on_each_store(
    quick_run: tuple[int, str, dict[str, Any]],
) -> None:
    code, said, document = quick_run
    assert code == 0, said
    results = [r for r in document["results"] if r["scenario"] == "intervals"]
    stores = ["SQLite", "PostgreSQL"] if len(results) == 8 else ["SQLite"]
    names = ("Green Button import", "Green Button values, parsed", "synthetic month")
    assert [r["name"] for r in results] == [
        f"{name}, {store}" for store in stores for name in (*names, "store per customer-month")
    ]
    for result in results:
        assert result["scenario"] == "intervals" and result["figure"] > 0
        assert list(result["anchors"]) == ["a row per interval"]
        assert result["anchors"]["a row per interval"] > 0
        if result["unit"] == "kB":
            assert result["target"] == "≤ 60 kB" and result["ratio"] is None
            assert result["passed"] is (result["figure"] <= 60)
            assert result["figure"] < result["anchors"]["a row per interval"]
        else:
            assert result["unit"] == "intervals/s" and result["ratio_kind"] == "speed-up"
            assert result["target"] is None and result["passed"] is None


def test_an_unknown_scenario_is_refused_with_the_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code = run(lambda: app(["bench", "--only", "codec,speed"]))
    assert code == 2
    said = " ".join(capsys.readouterr().err.split())
    assert f"no scenario named speed; the scenarios are {', '.join(SCENARIOS)}" in said


def test_outside_a_checkout_it_says_where_it_looked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ccbmdm.cli.bench as command

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(command, "SUITE", Path("benchmarks") / "absent.py")
    code = run(lambda: app(["bench", "--only", "codec"]))
    assert code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "ccbmdm bench runs from a source checkout" in said
    assert str(tmp_path.resolve()) in said


def test_the_runtime_scenario_says_so_when_no_postgresql_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SQLite's rows as measured (stand-in rates here), PostgreSQL's a row that says why it was
    not measured, and the suite goes on."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as `ccbmdm bench` finds them
    bench_runtime = importlib.import_module("bench_runtime")
    suite = importlib.import_module("suite")

    def rates(requests: int, batch: int, runs: int, logs_at: str = "info") -> list[float]:
        return [2000.0 if logs_at == "info" else 2500.0] * runs

    monkeypatch.setattr(bench_runtime, "sqlite_rates", rates)
    monkeypatch.setenv("CCBMDM_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:1/test")
    sqlite, logs, costs, postgres = suite.SCENARIOS["runtime"].run(True)
    assert (sqlite.figure, sqlite.anchors, sqlite.passed) == (2000.0, {"logs off": 2500.0}, False)
    assert (logs.figure, logs.target, logs.passed) == (1.25, "≤ 1.3x", True)
    assert costs.name == "SQLite, write transactions a request" and 0 < costs.figure < 5
    assert postgres.figure is None and postgres.passed is None
    assert postgres.name.startswith("PostgreSQL, one worker: not measured, no PostgreSQL answers")
    assert "127.0.0.1:1" in postgres.name


def test_a_scenario_that_cannot_run_is_reported_and_the_others_still_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of half an hour must not lose its other scenarios to one that fails."""
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # as `ccbmdm bench` finds them
    suite = importlib.import_module("suite")
    timing = importlib.import_module("timing")

    def broken(quick: bool) -> list[Any]:
        raise timing.BenchmarkFailed("its routes disagree on the message")

    failing = suite.Scenario("broken", "a scenario whose own check fails", broken)
    monkeypatch.setitem(suite.SCENARIOS, "broken", failing)
    written = tmp_path / "bench.json"
    code = run(lambda: app(["bench", "--quick", "--only", "broken,faults", "--json", str(written)]))
    assert code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "the broken scenario did not run: its routes disagree on the message" in said
    assert "1 of 2 scenarios did not run: broken: BenchmarkFailed" in said
    document = json.loads(written.read_text(encoding="utf-8"))
    assert document["failed"] == {"broken": "BenchmarkFailed: its routes disagree on the message"}
    assert {r["scenario"] for r in document["results"]} == {"faults"}

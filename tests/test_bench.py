"""`ccbmdm bench`: the suite runs in quick mode and writes its results with the machine's
description (no time asserted: speed targets are the suite's own business)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ccbmdm.cli import app, run
from support import REPO


def test_quick_codec_writes_the_machine_and_a_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    written = tmp_path / "bench.json"
    code = run(lambda: app(["bench", "--quick", "--only", "codec", "--json", str(written)]))
    assert code == 0, capsys.readouterr().err
    document = json.loads(written.read_text(encoding="utf-8"))
    assert set(document) == {"machine", "date", "quick", "results"}
    assert document["quick"] is True
    machine = document["machine"]
    for field in ("cpu", "cores", "python", "sqlite", "postgresql"):
        assert field in machine
    assert machine["cpu"] and machine["cores"] >= 1 and machine["sqlite"]
    results = document["results"]
    assert [r["name"].split(" ")[0] for r in results] == [
        "ccb/PersonSyncRequest",
        "ccb/ServiceAgreementSyncRequest",
        "ccb/BillDeterminantsResponse",
        "ccb/MeterReadHighLowResponse",
        "ccb/BillCycleSyncRequest",
    ]
    for result in results:
        assert result["scenario"] == "codec" and result["unit"] == "µs"
        assert result["figure"] > 0
        assert list(result["anchors"]) == ["lxml + xsdata"]
        assert result["anchors"]["lxml + xsdata"] > 0
        assert result["ratio"] > 0 and result["ratio_kind"] == "speed-up"
        assert result["target"] == "≥ 12x"
        assert result["passed"] is (result["ratio"] >= 12)
    shown = capsys.readouterr().out
    assert "codec" in shown and ("pass" in shown or "short" in shown)


def test_an_unknown_scenario_is_refused_with_the_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    code = run(lambda: app(["bench", "--only", "codec,speed"]))
    assert code == 2
    said = " ".join(capsys.readouterr().err.split())
    assert (
        "no scenario named speed; the scenarios are codec, mapping, compile, startup, billing"
        in said
    )


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

"""`ccbmdm bench`: the benchmark suite of a source checkout, as one table and as JSON.

The suite lives in the repository's benchmarks/ folder, which the installed package does not
carry: the command finds it in the working directory or a folder above it, else in the checkout
the package is installed from (docs/benchmarks.md, "One command").
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.markup import escape

from ccbmdm.cli.app import app, err, out
from ccbmdm.cli.failures import fail, say_error

SUITE = Path("benchmarks") / "suite.py"


def _benchmarks() -> Path:
    """The benchmarks/ folder of the checkout the command runs in or is installed from."""
    here = Path.cwd().resolve()
    package = Path(__file__).resolve().parents[2]
    for folder in (here, *here.parents, package):
        if (folder / SUITE).is_file():
            return folder / SUITE.parent
    fail(
        f"ccbmdm bench runs from a source checkout: {SUITE} not found under {here} or a "
        f"folder above it, nor in {package}; run it from the repository's folder (git clone, "
        "then pip install -e '.[test]')"
    )


def _suite() -> ModuleType:
    folder = str(_benchmarks())
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("suite")


def _chosen(suite: ModuleType, only: list[str] | None) -> list[Any]:
    names = [n.strip() for given in only or () for n in given.split(",") if n.strip()]
    unknown = [n for n in names if n not in suite.SCENARIOS]
    if unknown:
        fail(
            f"no scenario named {', '.join(unknown)}; the scenarios are "
            f"{', '.join(suite.SCENARIOS)}",
            2,
        )
    return [suite.SCENARIOS[n] for n in names] if names else list(suite.SCENARIOS.values())


def _load_average() -> float | None:
    """The machine's load over the last minute: how much other work the figures shared it with
    (None where the system does not say)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _pace_ms() -> float:
    """The time of a fixed piece of plain Python (a million additions in a loop, the best of
    five), in milliseconds: machines that print the same processor name and cores can differ
    by half in speed, and runs on two of them compare through it."""
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for number in range(1_000_000):
            total += number
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def _print_table(results: list[Any]) -> None:
    from rich.table import Column, Table

    from ccbmdm.docsite.benchmarks import figure, ratio

    # a scenario's name is never broken, however narrow the terminal
    widest = max((len(result.scenario) + 1 for result in results), default=0)
    scenario = Column("scenario", min_width=widest)
    table = Table(scenario, "this project", "anchors (same run)", "ratio", "target", "")
    for result in results:
        anchors = "\n".join(
            f"{escape(name)}: {figure(value, result.unit)}"
            for name, value in result.anchors.items()
        )
        verdict = {True: "[green]pass[/]", False: "[yellow]short[/]", None: ""}[result.passed]
        table.add_row(
            escape(f"{result.scenario}: {result.name}"),
            figure(result.figure, result.unit),
            anchors or "—",
            ratio(result.ratio, result.ratio_kind),
            result.target or "—",
            verdict,
        )
    out.print(table)


@app.command()
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="Small sizes, to show that every scenario works (under a minute)."
        ),
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Run only this scenario (repeat the option, or separate names by commas).",
            show_default=False,
        ),
    ] = None,
    json_file: Annotated[
        Path | None,
        typer.Option(
            "--json",
            help="Also write the machine's description and the results to this file, as JSON.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the benchmark suite of a source checkout: each scenario's figure against anchors
    measured in the same run, with its target; a target missed is "short", not a failure. A
    scenario that cannot run is reported and the others run; the command then exits 1."""
    suite = _suite()
    scenarios = _chosen(suite, only)
    machine = suite.machine_description()
    err.print(
        f"machine: {escape(machine['cpu'])}, {machine['cores']} cores, {machine['python']}, "
        f"SQLite {machine['sqlite']}, PostgreSQL {machine['postgresql'] or 'not found'}"
    )
    started = datetime.now(UTC)
    load = {"start": _load_average()}
    pace = {"start": _pace_ms()}
    results: list[Any] = []
    failed: dict[str, str] = {}  # scenario -> why it did not run; the others still run
    for scenario in scenarios:
        with err.status(f"{scenario.name}: {escape(scenario.what)}…"):
            try:
                results += scenario.run(quick)
            except Exception as exc:
                failed[scenario.name] = f"{type(exc).__name__}: {exc}"
                say_error(f"the {scenario.name} scenario did not run: {exc}")
    _print_table(results)
    load["end"] = _load_average()
    pace["end"] = _pace_ms()
    if json_file:
        document = {
            "machine": machine,
            "date": started.isoformat(timespec="seconds"),
            "quick": quick,
            "load": load,
            "pace": pace,
            "scenarios": {s.name: s.what for s in scenarios},
            "results": [r.as_json() for r in results],
            "failed": failed,
        }
        json_file.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        err.print(f"wrote {escape(str(json_file))}")
    if failed:
        fail(
            f"{len(failed)} of {len(scenarios)} scenarios did not run: "
            + "; ".join(f"{name}: {why}" for name, why in failed.items())
        )

"""The published benchmark results: the page that shows them, and the figures the guides quote.

`ccbmdm bench --json benchmarks/results.json` writes the results of a run with the machine it
ran on (docs/benchmarks.md, "One command"); the file is committed, and the site renders it as a
page. A guide never writes a speed figure by hand: it writes a reference, ``{{bench: …}}``,
which the build fills in from the same file, so that every figure of the site comes from one
run, whose date and machine the page states (docs/benchmarks.md, "Figures in the docs").
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccbmdm.errors import CcbmdmError

from .markdown import inline, table

RESULTS = Path("benchmarks") / "results.json"  # in the project's folder
PAGE = "benchmark-results.md"
TITLE = "Benchmark results"
RESULTS_TABLE = "benchmark-results"
WRITE = f"ccbmdm bench --json {RESULTS.as_posix()}"
# {{bench: …}} in a guide; a backslash before it keeps it as written (to show the syntax).
REFERENCE = re.compile(r"(\\?)\{\{bench:(.*?)\}\}")
FIELDS = ("figure", "ratio", "target", "verdict", "name", "anchor", "anchor:NAME", "example")
MACHINE_FIELDS = {
    "cpu": "processor",
    "cores": "cores",
    "architecture": "architecture",
    "system": "system",
    "python": "Python",
    "sqlite": "SQLite",
    "postgresql": "PostgreSQL",
}


class BenchmarkResultsError(CcbmdmError):
    """The results file cannot be read, or a guide refers to a figure it does not hold."""


@dataclass(frozen=True)
class Published:
    """One run of the suite as `ccbmdm bench --json` wrote it."""

    file: str  # as errors name it
    document: dict[str, Any]

    @property
    def results(self) -> list[dict[str, Any]]:
        return list(self.document["results"])

    def scenarios(self) -> list[str]:
        """The scenarios of the run, in the order they ran."""
        return list(dict.fromkeys(str(r["scenario"]) for r in self.results))


def load(root: Path) -> Published | None:
    """The results published in the project at ``root``, or None when it publishes none."""
    path = root / RESULTS
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkResultsError(
            f"{RESULTS}: cannot read the benchmark results: {exc}; write them again with {WRITE}"
        ) from None
    missing = [
        key
        for key in ("machine", "date", "quick", "results")
        if not isinstance(document, dict) or key not in document
    ]
    if missing:
        raise BenchmarkResultsError(
            f"{RESULTS}: not the results of ccbmdm bench (no {', '.join(missing)}); write them "
            f"again with {WRITE}"
        )
    return Published(RESULTS.as_posix(), document)


# units of things counted, shown whole
COUNTS = frozenset({"rows", "mutants"})


def figure(value: float | None, unit: str) -> str:
    """A figure as the table and the guides show it: a count whole, a ratio to the hundredth,
    seconds to the millisecond, the rest to one decimal (two below ten), with thousands
    separated."""
    if value is None:
        return "—"
    if unit == "x":
        return f"{value:.2f}x"
    digits = 0 if unit in COUNTS else 3 if unit == "s" else 2 if abs(value) < 10 else 1
    return f"{value:,.{digits}f} {unit}"


def ratio(value: float | None, kind: str | None) -> str:
    """A ratio as its target is written: times faster than the anchor, or times its time."""
    if value is None:
        return "—"
    return f"{value:.2f}x faster" if kind == "speed-up" else f"{value:.2f}x the time"


def verdict(passed: bool | None) -> str:
    return {True: "pass", False: "short", None: "—"}[passed]


def anchors(result: dict[str, Any]) -> str:
    return "; ".join(
        f"{name}: {figure(value, result['unit'])}" for name, value in result["anchors"].items()
    )


def machine(published: Published) -> str:
    """The machine in a few words: the processor, its cores and the Python."""
    described = published.document["machine"]
    return f"{described['cpu']}, {described['cores']} cores, {described['python']}"


def date(published: Published) -> str:
    """The day and minute of the run, in UTC as the file has it."""
    return str(published.document["date"]).replace("T", " ")[:16] + " UTC"


def mode(published: Published) -> str:
    return "a quick run" if published.document["quick"] else "a full run"


def page(published: Published, guide: str | None) -> str:
    """The page: when and on what the run was made, then a table per scenario."""
    how = f" How to run it and what each scenario measures: [Benchmarks]({guide})." if guide else ""
    quick = (
        " (small sizes, to show the suite works: less steady)"
        if published.document["quick"]
        else ""
    )
    lines = [
        f"# {TITLE}",
        "",
        f"Measured by `ccbmdm bench` on {date(published)}, {mode(published)}{quick}, on the "
        f"machine below, and published in `{published.file}`; the figures the guides quote come "
        f"from the same run.{how}",
        "",
        "Each anchor is measured in the same run as the figure it is compared with, in "
        "alternating batches: on a shared machine the absolute figures move with its load, the "
        "ratios much less. A target missed is *short*.",
        "",
        "## Machine",
        "",
        *(
            f"- **{label}**: {inline(_text(published.document['machine'].get(key)))}"
            for key, label in MACHINE_FIELDS.items()
        ),
        *_load(published),
        *_pace(published),
    ]
    described: dict[str, str] = published.document.get("scenarios", {})
    for scenario in published.scenarios():
        rows = [
            [
                str(r["name"]),
                figure(r["figure"], r["unit"]),
                anchors(r) or "—",
                ratio(r["ratio"], r["ratio_kind"]),
                r["target"] or "—",
                verdict(r["passed"]),
            ]
            for r in published.results
            if r["scenario"] == scenario
        ]
        lines += [f"## {scenario}", ""]
        if scenario in described:
            lines += [f"Measures {inline(described[scenario])}.", ""]
        lines.append(
            table(
                ["measure", "this project", "anchors (same run)", "ratio", "target", "result"],
                rows,
                RESULTS_TABLE,
            )
        )
    failed: dict[str, str] = published.document.get("failed") or {}
    if failed:
        lines += ["## Did not run", ""]
        lines += [f"- **{name}**: {inline(why)}" for name, why in failed.items()]
    return "\n".join(lines)


def _load(published: Published) -> list[str]:
    """The machine's load during the run, where the file has it (a line of the machine's list)."""
    load = _start_and_end(published, "load")
    if load is None:
        return []
    cores = published.document["machine"].get("cores")
    return [
        f"- **load average** (one minute): {load[0]:g} at the start, {load[1]:g} at "
        f"the end, on {cores} cores: beyond the cores, a figure includes waiting for one"
    ]


def _pace(published: Published) -> list[str]:
    """The machine's pace during the run, where the file has it (a line of the machine's
    list)."""
    pace = _start_and_end(published, "pace")
    if pace is None:
        return []
    return [
        f"- **pace** (a million additions in a Python loop, the best of five): "
        f"{pace[0]:g} ms at the start, {pace[1]:g} ms at the end: two runs compare "
        "through it, where the processor's name and cores are the same on a machine half as fast"
    ]


def _start_and_end(published: Published, key: str) -> tuple[float, float] | None:
    """A reading the file took at the run's start and end (``load``, ``pace``); None when it
    has not both (a file written before the reading was taken)."""
    reading = published.document.get(key) or {}
    start, end = reading.get("start"), reading.get("end")
    return None if start is None or end is None else (start, end)


def _text(value: object) -> str:
    return "not found" if value is None else str(value)


def fill(text: str, source: str, published: Published | None) -> str:
    """``text`` with each ``{{bench: …}}`` replaced by what it refers to in ``published``;
    ``source`` names the file in errors (with the line)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)[1:]
        line = text.count("\n", 0, match.start()) + 1
        where = f"{source}:{line}: {match.group(0)}"
        if published is None:
            raise BenchmarkResultsError(
                f"{where}: the project publishes no benchmark results ({RESULTS} not found); "
                f"write them with {WRITE}"
            )
        try:
            words = shlex.split(match.group(2))
        except ValueError as exc:
            raise BenchmarkResultsError(f"{where}: {exc}") from None
        return _resolve(words, published, where)

    return REFERENCE.sub(replace, text)


def _resolve(words: Sequence[str], published: Published, where: str) -> str:
    if len(words) == 1 and words[0] in ("date", "machine", "mode"):
        return {"date": date, "machine": machine, "mode": mode}[words[0]](published)
    if len(words) != 3:
        raise BenchmarkResultsError(
            f"{where}: write {{{{bench: date}}}}, {{{{bench: machine}}}}, {{{{bench: mode}}}} or "
            f'{{{{bench: SCENARIO "NAME" FIELD}}}}, FIELD one of {", ".join(FIELDS)}'
        )
    scenario, name, field = words
    result = _result(published, scenario, name, where)
    if field == "figure":
        return figure(result["figure"], result["unit"])
    if field == "ratio":
        return ratio(result["ratio"], result["ratio_kind"])
    if field == "target":
        return str(result["target"] or "—")
    if field == "verdict":
        return verdict(result["passed"])
    if field == "name":
        return str(result["name"])
    if field == "example":
        document = {**published.document, "results": [result]}
        document.pop("scenarios", None)
        return json.dumps(document, indent=2, ensure_ascii=False)
    if field == "anchor" or field.startswith("anchor:"):
        return _anchor(result, field.removeprefix("anchor").removeprefix(":"), where)
    raise BenchmarkResultsError(f"{where}: no field {field!r}; the fields are {', '.join(FIELDS)}")


def _result(published: Published, scenario: str, name: str, where: str) -> dict[str, Any]:
    """The result ``name`` of ``scenario``: named as the file names it, or without its
    parenthesis (a message's size in bytes, which changes with the sample)."""
    if scenario not in published.scenarios():
        raise BenchmarkResultsError(
            f"{where}: {published.file} has no scenario {scenario!r} (it has "
            f"{', '.join(published.scenarios())}); run ccbmdm bench with it and --json "
            f"{published.file}"
        )
    mine = [r for r in published.results if r["scenario"] == scenario]
    for result in mine:
        if name in (result["name"], str(result["name"]).split(" (", 1)[0]):
            return result
    raise BenchmarkResultsError(
        f"{where}: {published.file} has no result {name!r} in scenario {scenario} (it has "
        f"{', '.join(repr(r['name']) for r in mine)})"
    )


def _anchor(result: dict[str, Any], name: str, where: str) -> str:
    measured: dict[str, float] = result["anchors"]
    if not name and len(measured) == 1:
        name = next(iter(measured))
    if name not in measured:
        raise BenchmarkResultsError(
            f"{where}: {result['scenario']} {result['name']!r} has "
            + (f"anchors {', '.join(map(repr, measured))}: name one" if measured else "no anchor")
        )
    return figure(measured[name], result["unit"])

"""The published benchmark results in the site: the page made from `benchmarks/results.json`,
and the guides' ``{{bench: …}}`` references filled in from it, or refused with where and why."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.docsite.benchmarks import (
    RESULTS,
    RESULTS_TABLE,
    BenchmarkResultsError,
    Published,
    figure,
    fill,
    load,
    page,
)
from support import REPO

RUN: dict[str, Any] = {
    "machine": {
        "cpu": "Test CPU @ 1.00GHz",
        "cores": 2,
        "architecture": "x86_64",
        "system": "Linux",
        "python": "CPython 3.11.7",
        "sqlite": "3.40.1",
        "postgresql": None,
    },
    "date": "2026-12-07T00:10:05+00:00",
    "quick": False,
    "load": {"start": 3.5, "end": 4.25},
    "scenarios": {"codec": "the generated codec against lxml XMLSchema + xsdata"},
    "results": [
        {
            "scenario": "codec",
            "name": "ccb/PersonSyncRequest (1,020 bytes)",
            "unit": "µs",
            "figure": 145.04,
            "anchors": {"lxml + xsdata": 1280.4},
            "ratio": 8.83,
            "ratio_kind": "speed-up",
            "target": "≥ 12x",
            "passed": False,
        },
        {
            "scenario": "compile",
            "name": "warm, nothing changed",
            "unit": "s",
            "figure": 0.2791,
            "anchors": {"cold": 3.34, "other": 1.0},
            "ratio": 0.0836,
            "ratio_kind": "time",
            "target": "≤ 0.5 s",
            "passed": True,
        },
    ],
}


@pytest.fixture
def run() -> Published:
    return Published(RESULTS.as_posix(), json.loads(json.dumps(RUN)))


def test_references_are_filled_from_the_run(run: Published) -> None:
    text = (
        "On {{bench: date}} ({{bench: mode}}, {{bench: machine}}):\n"
        'the person took {{bench: codec "ccb/PersonSyncRequest" figure}} against '
        '{{bench: codec "ccb/PersonSyncRequest" anchor}}, '
        '{{bench: codec "ccb/PersonSyncRequest" ratio}} '
        '({{bench: codec "ccb/PersonSyncRequest" verdict}}, target '
        '{{bench: codec "ccb/PersonSyncRequest" target}}); '
        '{{bench:compile "warm, nothing changed" figure}} warm, '
        '{{bench: compile "warm, nothing changed" anchor:cold}} cold, '
        '{{bench: compile "warm, nothing changed" ratio}} '
        '({{bench: compile "warm, nothing changed" verdict}}); '
        '{{bench: codec "ccb/PersonSyncRequest (1,020 bytes)" name}}.'
    )
    assert fill(text, "guides/x.md", run) == (
        "On 2026-12-07 00:10 UTC (a full run, Test CPU @ 1.00GHz, 2 cores, CPython 3.11.7):\n"
        "the person took 145.0 µs against 1,280.4 µs, 8.83x faster (short, target ≥ 12x); "
        "0.279 s warm, 3.340 s cold, 0.08x the time (pass); "
        "ccb/PersonSyncRequest (1,020 bytes)."
    )


def test_an_example_is_the_file_with_one_row(run: Published) -> None:
    filled = fill('{{bench: codec "ccb/PersonSyncRequest" example}}', "guides/x.md", run)
    shown = json.loads(filled)
    assert set(shown) == {"machine", "date", "quick", "load", "results"}
    assert shown["results"] == [RUN["results"][0]]
    assert shown["machine"] == RUN["machine"]


def test_a_backslash_keeps_a_reference_as_written(run: Published) -> None:
    assert fill(r"write `\{{bench: date}}`", "guides/x.md", run) == "write `{{bench: date}}`"
    assert fill(r"`\{{bench: nothing here}}`", "guides/x.md", None) == "`{{bench: nothing here}}`"


@pytest.mark.parametrize(
    ("reference", "said"),
    [
        (
            '{{bench: runtime "SQLite" figure}}',
            "results.json has no scenario 'runtime' (it has codec, compile); run ccbmdm bench",
        ),
        (
            '{{bench: codec "ccb/Nothing" figure}}',
            "has no result 'ccb/Nothing' in scenario codec "
            "(it has 'ccb/PersonSyncRequest (1,020 bytes)')",
        ),
        ('{{bench: codec "ccb/PersonSyncRequest" speed}}', "no field 'speed'; the fields are"),
        (
            '{{bench: compile "warm, nothing changed" anchor}}',
            "has anchors 'cold', 'other': name one",
        ),
        ("{{bench: codec}}", "write {{bench: date}}, {{bench: machine}}, {{bench: mode}} or"),
        ('{{bench: codec "unclosed figure}}', "No closing quotation"),
    ],
)
def test_a_reference_the_run_cannot_answer_says_where_and_what(
    run: Published, reference: str, said: str
) -> None:
    text = f"# Title\n\nSome prose,\nthen {reference} in a line.\n"
    with pytest.raises(BenchmarkResultsError) as raised:
        fill(text, "docs/runtime.md", run)
    message = str(raised.value)
    assert message.startswith(f"docs/runtime.md:4: {reference}: ")
    assert said in message


def test_a_reference_without_a_results_file_says_how_to_write_one() -> None:
    with pytest.raises(BenchmarkResultsError) as raised:
        fill("a\n{{bench: date}}", "guides/x.md", None)
    assert str(raised.value) == (
        "guides/x.md:2: {{bench: date}}: the project publishes no benchmark results "
        "(benchmarks/results.json not found); write them with "
        "ccbmdm bench --json benchmarks/results.json"
    )


def test_a_project_without_results_publishes_none(tmp_path: Path) -> None:
    assert load(tmp_path) is None


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "cannot read the benchmark results: Expecting property name"),
        ('{"machine": {}, "results": []}', "not the results of ccbmdm bench (no date, quick)"),
    ],
)
def test_a_broken_results_file_is_refused(tmp_path: Path, content: str, said: str) -> None:
    (tmp_path / RESULTS).parent.mkdir()
    (tmp_path / RESULTS).write_text(content, encoding="utf-8")
    with pytest.raises(BenchmarkResultsError) as raised:
        load(tmp_path)
    assert str(raised.value).startswith("benchmarks/results.json: ")
    assert said in str(raised.value)
    assert str(raised.value).endswith("with ccbmdm bench --json benchmarks/results.json")


def test_the_page_has_the_machine_the_date_and_a_table_per_scenario(run: Published) -> None:
    text = page(run, "guides/benchmarks.md")
    assert "on 2026-12-07 00:10 UTC, a full run, on the machine below" in text
    assert "[Benchmarks](guides/benchmarks.md)" in text
    assert "- **processor**: Test CPU @ 1.00GHz\n- **cores**: 2\n" in text
    assert "- **PostgreSQL**: not found" in text
    assert "- **load average** (one minute): 3.5 at the start, 4.25 at the end, on 2 cores" in text
    assert re.findall(r"^## (.*)$", text, re.MULTILINE) == ["Machine", "codec", "compile"]
    assert "Measures the generated codec against lxml XMLSchema + xsdata." in text
    assert text.count(f'<table data-table="{RESULTS_TABLE}">') == 2
    assert (
        "<tr><td>ccb/PersonSyncRequest (1,020 bytes)</td> <td>145.0 µs</td> "
        "<td>lxml + xsdata: 1,280.4 µs</td> <td>8.83x faster</td> <td>≥ 12x</td> "
        "<td>short</td></tr>"
    ) in text
    assert "<td>cold: 3.340 s; other: 1.000 s</td>" in text and "<td>pass</td>" in text


def test_a_scenario_that_did_not_run_is_listed_with_why(run: Published) -> None:
    assert "Did not run" not in page(run, None)
    run.document["failed"] = {"recovery": "BenchmarkFailed: bridge killed on sqlite: still open"}
    text = page(run, None)
    assert re.findall(r"^## (.*)$", text, re.MULTILINE)[-1] == "Did not run"
    assert "- **recovery**: BenchmarkFailed: bridge killed on sqlite: still open" in text


def test_counts_print_whole_and_ratios_to_the_hundredth() -> None:
    assert figure(675.0, "mutants") == "675 mutants"
    assert figure(9_000_000.0, "rows") == "9,000,000 rows"
    assert figure(1.2549, "x") == "1.25x"
    assert figure(0.1364, "s") == "0.136 s"


def test_a_run_without_its_load_shows_none(run: Published) -> None:
    del run.document["load"]
    assert "load average" not in page(run, None)


def test_the_pace_is_shown_where_the_run_has_it(run: Published) -> None:
    """A run's pace (``ccbmdm bench`` times a fixed loop at its start and end) is a line of the
    machine's list; a file written before it was measured shows none."""
    assert "**pace**" not in page(run, None)
    run.document["pace"] = {"start": 41.5, "end": 40.0}
    assert (
        "- **pace** (a million additions in a Python loop, the best of five): 41.5 ms at the "
        "start, 40 ms at the end: two runs compare through it"
    ) in page(run, None)


def test_a_quick_run_says_so(run: Published) -> None:
    run.document["quick"] = True
    assert "a quick run (small sizes, to show the suite works: less steady)" in page(run, None)
    assert fill("{{bench: mode}}", "guides/x.md", run) == "a quick run"


def test_every_reference_in_the_docs_is_answered_by_the_published_results() -> None:
    """The repository's own guides against its own results file: what the site build does."""
    published = load(REPO)
    assert published is not None, f"{RESULTS} is published"
    for guide in sorted((REPO / "docs").glob("*.md")):
        fill(guide.read_text(encoding="utf-8"), f"docs/{guide.name}", published)  # none refused
    text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    filled = fill(text, "docs/benchmarks.md", published)
    assert len(re.findall(r"(?<!\\)\{\{bench:", text)) > 10
    assert filled.count(fill("{{bench: date}}", "x", published)) >= 4


def test_the_guides_can_be_written_with_their_references_as_written(tmp_path: Path) -> None:
    """What the docs benchmark builds: the figures of a run it has not published yet are
    neither looked up nor refused."""
    from ccbmdm.docsite.build import _copy_guides

    _copy_guides(REPO, tmp_path, None, figures=False)
    written = (tmp_path / "runtime.md").read_text(encoding="utf-8")
    assert written == (REPO / "docs" / "runtime.md").read_text(encoding="utf-8")
    assert '{{bench: runtime "PostgreSQL, one worker" figure}}' in written
    with pytest.raises(BenchmarkResultsError, match="publishes no benchmark results"):
        _copy_guides(REPO, tmp_path / "filled", None)

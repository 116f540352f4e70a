"""The guides of docs/ are run as they are written, so that what they show never drifts.

The convention (docs/nav.yaml says it too), read in each guide from top to bottom:

- A fenced ``console`` block holds commands: each line that starts with ``$ `` is one command,
  run by bash in a fresh scratch project made with ``ccbmdm init`` (the installed ``ccbmdm``
  first on PATH). The lines after a command, up to the next ``$ ``, are output it must print,
  in that order (within standard output, and within standard error), among its other lines
  (runs of spaces counted as one); ``...`` in such a line stands for any text (a time, a path, an id).
  A line ``[exit N]`` says the command exits with N; otherwise it must exit with 0.
  ``$ cd DIR`` moves the scratch working directory for the commands after it.
- A fenced block with ``title="PATH"`` in its info string is a file the reader writes: its
  text is written to PATH (relative to the working directory) before the next command runs.
- Every other block (``sh``: installing, long-running servers, benchmarks) is not run.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from support import REPO

DOCS = REPO / "docs"
NAV = yaml.safe_load((DOCS / "nav.yaml").read_text(encoding="utf-8"))
GUIDES: list[str] = NAV["Guides"]
# a fenced block, also indented inside a list item
FENCE = re.compile(
    r"^(?P<indent> *)```(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
TITLE = re.compile(r'title="(?P<path>[^"]+)"')
EXIT = re.compile(r"^\[exit (?P<code>\d+)\]$")
# The guides that show no command to run: concepts only explain, and the benchmarks run from
# the repository for minutes (sh blocks only; their scripts and options are checked below).
NOT_RUN = {"concepts.md", "benchmarks.md"}
# A command hung, not a slow one: the guides run side by side, on a machine CI shares.
COMMAND_S = 600


@dataclass
class Command:
    line: str
    expected: list[str] = field(default_factory=list)
    exit_code: int = 0


@dataclass
class File:
    path: str
    text: str


def blocks(page: str) -> list[tuple[str, str]]:
    """The fenced blocks of a page: (info string, text)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for block in FENCE.finditer(text):
        indent = len(block["indent"])
        body = "".join(line[indent:] for line in block["body"].splitlines(keepends=True))
        found.append((block["info"].strip(), body))
    return found


def steps(page: str) -> list[Command | File]:
    """What a reader of the page does, in order: commands and the files written."""
    found: list[Command | File] = []
    for info, body in blocks(page):
        title = TITLE.search(info)
        if title:
            found.append(File(title["path"], body))
        elif info.split(" ")[0] == "console":
            for line in body.splitlines():
                if line.startswith("$ "):
                    found.append(Command(line[2:]))
                elif found and isinstance(found[-1], Command) and line.strip():
                    exit_line = EXIT.match(line.strip())
                    if exit_line:
                        found[-1].exit_code = int(exit_line["code"])
                    else:
                        found[-1].expected.append(line)
    return found


def _words(line: str) -> str:
    return " ".join(line.split())


def matches(expected: str, actual: str) -> bool:
    """An expected line against a printed one: spaces collapsed, ``...`` any text."""
    pattern = ".*".join(re.escape(part) for part in _words(expected).split("..."))
    return re.fullmatch(pattern, _words(actual)) is not None


def missing_lines(expected: list[str], *streams: str) -> list[str]:
    """The expected lines not found among the streams' lines, in order within each stream (a
    terminal may show a warning on standard error before the output it interrupts)."""
    lines = [stream.splitlines() for stream in streams]
    positions = [0] * len(streams)
    missing = []
    for wanted in expected:
        found = next(
            (
                (number, index)
                for number, stream in enumerate(lines)
                for index in range(positions[number], len(stream))
                if matches(wanted, stream[index])
            ),
            None,
        )
        if found is None:
            missing.append(wanted)
        else:
            positions[found[0]] = found[1] + 1
    return missing


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCBMDM_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "100"  # the width the guides' tables were printed at
    env.pop("NO_COLOR", None)
    return env


def scratch_project(tmp_path: Path) -> Path:
    subprocess.run(
        ["ccbmdm", "init", "myproject"], cwd=tmp_path, env=environment(), check=True, text=True,
        capture_output=True,
    )  # fmt: skip
    return tmp_path / "myproject"


@dataclass
class Run:
    """What running a guide gave: the commands it ran, and the first step that did not do what
    the page shows (the steps after it depend on it, so they are not run)."""

    commands: int = 0
    failure: str | None = None


def run_guide(page: str, tmp_path: Path) -> Run:
    """Run the page's steps in a scratch project of its own under ``tmp_path``."""
    cwd = scratch_project(tmp_path)
    env = environment()
    run = Run()
    for step in steps(page):
        if isinstance(step, File):
            target = (cwd / step.path).resolve()
            if not target.is_relative_to(tmp_path):
                return Run(run.commands, f"{page}: {step.path} is outside the scratch project")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text, encoding="utf-8")
            continue
        words = shlex.split(step.line)
        if words[0] == "cd" and len(words) == 2:
            cwd = (cwd / words[1]).resolve()
            if not (cwd.is_relative_to(tmp_path) and cwd.is_dir()):
                return Run(run.commands, f"{page}: $ {step.line}: no such folder in the scratch")
            continue
        result = subprocess.run(
            ["bash", "-c", step.line],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_S,
        )
        run.commands += 1
        shown = f"{page}: $ {step.line}\n{result.stdout}{result.stderr}"
        if result.returncode != step.exit_code:
            return Run(run.commands, f"exit {result.returncode}, not {step.exit_code}: {shown}")
        missing = missing_lines(step.expected, result.stdout, result.stderr)
        if missing:
            return Run(run.commands, "not printed:\n" + "\n".join(missing) + f"\n\n{shown}")
    return run


RUN = [page for page in GUIDES if page not in NOT_RUN]


@pytest.fixture(scope="module")
def guide_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Run]:
    """The selected guides, run side by side: each has its own scratch project, and their
    commands are processes of their own."""
    pages = [
        str(item.callspec.params["page"])
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_a_guide_runs_as_written"
    ]
    with ThreadPoolExecutor(max_workers=max(len(pages), 1)) as pool:
        futures = {
            page: pool.submit(run_guide, page, tmp_path_factory.mktemp(page.removesuffix(".md")))
            for page in pages
        }
    return {page: future.result() for page, future in futures.items()}


def test_the_navigation_lists_every_page_of_docs() -> None:
    listed = [page for pages in NAV.values() for page in pages]
    assert list(NAV) == ["Guides", "Reference"]
    assert len(listed) == len(set(listed))
    assert sorted(listed) == sorted(p.name for p in DOCS.glob("*.md"))


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN)
def test_a_guide_runs_as_written(page: str, guide_runs: dict[str, Run]) -> None:
    run = guide_runs[page]
    assert run.failure is None, run.failure
    assert run.commands > 0


def test_getting_started_quotes_the_readme_commands() -> None:
    readme = re.findall(r"```sh\n(.*?)\n```", (REPO / "README.md").read_text(), re.DOTALL)[:2]
    quoted = [body.rstrip("\n") for info, body in blocks("getting-started.md") if info == "sh"]
    assert readme == quoted[:2]


def test_the_concepts_table_lists_the_catalogue() -> None:
    catalogue = yaml.safe_load((REPO / "contracts" / "flows.yaml").read_text(encoding="utf-8"))
    rows = re.findall(
        r"^\| (\d+) \| \[`(\w+)`\]\(flows\.md#[\w-]+\) \| ([^|]+) \| (\w+) \| (\w+) \|$",
        (DOCS / "concepts.md").read_text(encoding="utf-8"),
        re.MULTILINE,
    )
    assert rows == [
        (str(f["number"]), f["code"], f["name"], f["initiator"].upper(), f["mode"])
        for f in catalogue["flows"]
    ]


def test_the_benchmarks_guide_names_real_scripts_and_options() -> None:
    shown = [
        line
        for info, body in blocks("benchmarks.md")
        if info == "sh"
        for line in body.splitlines()
        if line.startswith("python benchmarks/")
    ]
    assert len(shown) >= 4
    for line in shown:
        script, *args = shlex.split(line)[1:]
        source = (REPO / script).read_text(encoding="utf-8")
        for option in (a for a in args if a.startswith("--")):
            assert f'"{option}"' in source, f"{script} has no option {option}"


def test_the_matching_rules() -> None:
    output = "a  b\nbuilt in 2.0 s into /tmp/x\nlast"
    assert missing_lines(["a b", "built in ... s into ...", "last"], output) == []
    assert missing_lines(["last", "a b"], output) == ["a b"]  # in order
    assert missing_lines(["warned", "a b", "last"], output, "warned") == []  # per stream
    assert missing_lines(["built in 3.0 s ..."], output) == ["built in 3.0 s ..."]
    assert steps("getting-started.md")  # the page has steps to run

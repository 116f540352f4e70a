"""Command start-up: `ccbmdm --help`, `validate` and `transform` of one message under 0.4 s.

Each command runs as a person runs it: a new process, timed from outside, with Python's
bytecode cache allowed (a first round fills it and is not counted), in the reference project.
The median of the rounds is the figure; beside it the processor time the process used, which
on a machine shared with other work does not wait for the processor as the wall time does.
Then the imports of `transform`, as `python -X importtime` reports them, by cumulative time:
what a change to start-up would move next.

Run: python benchmarks/bench_startup.py [--rounds 9] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from timing import machine

TARGET_S = 0.4
REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "contracts" / "samples" / "ccb" / "ServiceAgreementSyncRequest.xml"
COMMAND = str(Path(sys.executable).with_name("ccbmdm"))
PROJECT = ["--project-dir", str(REPO)]
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "validate": ["validate", str(SAMPLE), *PROJECT],
    "transform": ["transform", str(SAMPLE), "--flow", "SA_SYNC", *PROJECT],
}
# How `python -X importtime` runs the command line's entry point with the same arguments.
ENTRY = "import sys; from ccbmdm.cli import main; sys.argv[0] = 'ccbmdm'; sys.exit(main())"


def environment() -> dict[str, str]:
    """The process's environment, with the bytecode cache a person's installation has."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_once(arguments: list[str]) -> tuple[float, float]:
    """Wall and processor seconds of one command, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [COMMAND, *arguments], capture_output=True, env=environment(), cwd=REPO, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"`ccbmdm {' '.join(arguments)}` failed:\n{result.stderr.decode()}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu


def heaviest_imports(arguments: list[str], count: int) -> list[tuple[int, str]]:
    """The ``count`` imports with the largest cumulative time (µs) while the command runs."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", ENTRY, *arguments],
        capture_output=True,
        text=True,
        env=environment(),
        cwd=Path(COMMAND).parent,  # not the checkout, whose ccbmdm/ folder is not the package
        check=False,
    )
    found: list[tuple[int, str]] = []
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        found.append((int(cumulative), name.rstrip()))
    return sorted(found, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="three rounds, to prove it runs")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    print(machine())
    for arguments in COMMANDS.values():
        run_once(arguments)  # fills the bytecode cache and compiles the project if stale
    for name, arguments in COMMANDS.items():
        times, cpu = zip(*(run_once(arguments) for _ in range(rounds)), strict=True)
        print(
            f"ccbmdm {name}: median {statistics.median(times):.3f} s, min {min(times):.3f} s, "
            f"max {max(times):.3f} s ({rounds} rounds); processor: median "
            f"{statistics.median(cpu):.3f} s"
        )
    print(f"target: each under {TARGET_S} s")
    print("imports of `ccbmdm transform`, by cumulative time:")
    for micros, name in heaviest_imports(COMMANDS["transform"], 5 if args.quick else 25):
        print(f"  {micros / 1000:8.1f} ms  {name}")


if __name__ == "__main__":
    main()

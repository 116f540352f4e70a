"""Command start-up: `ccbmdm --help`, and `validate` and `transform` of one message, each as the
command runs (a new process, timed from outside), against a target of 0.4 s; beside them the
bare interpreter's start, the floor no command can go under.

Rounds alternate the commands and the interpreter, so that a change in the machine's load
touches them alike; the figures are medians.

Run: python benchmarks/bench_startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from timing import BenchmarkFailed, machine

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.4
COMMAND = str(Path(sys.executable).with_name("ccbmdm"))
SAMPLE = str(ROOT / "contracts" / "samples" / "ccb" / "ServiceAgreementSyncRequest.xml")
COMMANDS = {
    "ccbmdm --help": [COMMAND, "--help"],
    "ccbmdm validate": [COMMAND, "validate", SAMPLE],
    "ccbmdm transform": [COMMAND, "transform", SAMPLE, "--flow", "SA_SYNC", "--part", "request"],
}
INTERPRETER = "python -c pass"


def environment() -> dict[str, str]:
    """The environment with the bytecode cache a person's installation has: without it every
    run compiles every module again, which is not start-up."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def once(argv: list[str]) -> float:
    """Wall seconds of one process from its start to its end, which must succeed."""
    started = time.perf_counter()
    result = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, env=environment(), check=False
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchmarkFailed(f"`{' '.join(argv)}` failed:\n{result.stderr}")
    return seconds


def measure(rounds: int) -> dict[str, float]:
    """The median seconds of each command and of the bare interpreter, by name."""
    runs: dict[str, list[float]] = {name: [] for name in (INTERPRETER, *COMMANDS)}
    for _ in range(rounds):
        runs[INTERPRETER].append(once([sys.executable, "-c", "pass"]))
        for name, argv in COMMANDS.items():
            runs[name].append(once(argv))
    return {name: statistics.median(seconds) for name, seconds in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(machine())
    try:
        medians = measure(args.rounds)
    except BenchmarkFailed as exc:
        sys.exit(str(exc))
    for name, seconds in medians.items():
        print(f"{name:<20} {seconds:.3f} s, median of {args.rounds}")
    print(f"target: each command under {TARGET_S} s")


if __name__ == "__main__":
    main()

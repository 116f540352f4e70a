"""Mutation testing: `ccbmdm conformance --mutate` of the reference project, as the command runs
(a new process, timed from outside), with the processor time it used: on a machine shared with
other work the wall time also waits for a processor, the processor time does not.

Every mutant must be killed (the command exits with 1 otherwise, and so does this script). With
``--flow``, only those flows' mappings are mutated.

Run: python benchmarks/bench_conformance.py [--flow PERSON_SYNC ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from timing import BenchmarkFailed, machine

ROOT = Path(__file__).resolve().parents[1]
COMMAND = str(Path(sys.executable).with_name("ccbmdm"))


@dataclass(frozen=True)
class MutationRun:
    """One run of the command: its mutants, and its times."""

    mutants: int
    killed: int
    wall_s: float
    cpu_s: float
    mutants_s: float  # the time the command itself reports for running the mutants


def measure(flows: tuple[str, ...] = ()) -> MutationRun:
    """Run the command once over ``flows`` (every flow when empty); every mutant must die."""
    argv = [COMMAND, "conformance", "--mutate", "--format", "json"]
    for flow in flows:
        argv += ["--flow", flow]
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = os.times()
    if done.returncode != 0:
        raise BenchmarkFailed(f"`{' '.join(argv)}` failed:\n{done.stdout}{done.stderr}")
    document = json.loads(done.stdout)
    statuses = [mutant["status"] for mutant in document["mutants"]]
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return MutationRun(
        len(statuses), statuses.count("killed"), wall, cpu, float(document["seconds"])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", action="append", default=[], help="a flow to mutate (repeat)")
    args = parser.parse_args()
    print(machine())
    run = measure(tuple(args.flow))
    print(
        f"{run.mutants} mutants, {run.killed} killed; {run.wall_s:.1f} s wall, "
        f"{run.cpu_s:.1f} s of processor time, the mutants {run.mutants_s:.1f} s"
    )


if __name__ == "__main__":
    main()

"""`ccbmdm compile`, cold and warm: a compile with no changed input must take under 0.5 s.

A scratch copy of the reference project (`ccbmdm init`) is compiled once from nothing (cold),
then again and again with nothing changed (warm), each time as the command runs: a new process,
its start-up included, timed from outside. A warm compile reads the inputs and the manifest of
the build and writes nothing; each warm round checks that the command said so. Beside the wall
time, the processor time the process used: on a machine shared with other work the wall time
waits for the processor, the processor time does not.

Run: python benchmarks/bench_compile.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from timing import BenchmarkFailed, machine

from ccbmdm.codegen.project import init_project

TARGET_S = 0.5
COMMAND = str(Path(sys.executable).with_name("ccbmdm"))


class CompileTimes(NamedTuple):
    """A cold compile and the warm ones after it: wall and processor seconds, what cold said."""

    cold: float
    cold_cpu: float
    cold_said: str
    warm: list[float]
    warm_cpu: list[float]


def compile_once(project: Path) -> tuple[float, float, str]:
    """Wall and processor seconds of one `ccbmdm compile` in ``project``, and what it printed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(
        [COMMAND, "compile"], cwd=project, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise BenchmarkFailed(f"`ccbmdm compile` failed:\n{result.stderr}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, result.stdout


def measure(rounds: int) -> CompileTimes:
    """One cold compile of a scratch copy of the reference project, then ``rounds`` warm ones,
    each checked to have written nothing."""
    with tempfile.TemporaryDirectory() as folder:
        project = init_project(Path(folder) / "project").root
        cold, cold_cpu, said = compile_once(project)
        warm, cpu = [], []
        for round_ in range(1, rounds + 1):
            seconds, used, again = compile_once(project)
            if not again.startswith("up to date"):
                raise BenchmarkFailed(f"warm round {round_} compiled again:\n{again}")
            warm.append(seconds)
            cpu.append(used)
    return CompileTimes(cold, cold_cpu, said.splitlines()[0], warm, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(machine())
    try:
        times = measure(args.rounds)
    except BenchmarkFailed as exc:
        sys.exit(str(exc))
    print(f"cold: {times.cold:.2f} s, processor {times.cold_cpu:.2f} s ({times.cold_said})")
    warm = times.warm
    median = statistics.median(warm)
    print(f"warm: median {median:.3f} s, min {min(warm):.3f} s, max {max(warm):.3f} s")
    print(f"  processor: median {statistics.median(times.warm_cpu):.3f} s")
    print(f"target: a warm compile under {TARGET_S} s")


if __name__ == "__main__":
    main()

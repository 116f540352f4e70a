"""The start-up benchmark runs: each command timed, the heaviest imports listed (no time asserted;
the figures and the target are in docs/benchmarks.md)."""

from __future__ import annotations

import re

from support import REPO, run_python


def test_the_startup_benchmark_times_each_command_and_lists_imports() -> None:
    done = run_python(str(REPO / "benchmarks" / "bench_startup.py"), "--quick", cwd=REPO)
    assert done.returncode == 0, done.stderr
    for command in ("--help", "validate", "transform"):
        assert f"ccbmdm {command}: median " in done.stdout, done.stdout
    assert done.stdout.count("; processor: median ") == 3, done.stdout
    assert "target: each under 0.4 s" in done.stdout
    listed = done.stdout.split("imports of `ccbmdm transform`, by cumulative time:\n")[1]
    rows = listed.splitlines()
    assert len(rows) == 5, done.stdout
    assert all(re.fullmatch(r" +\d+\.\d ms  +[\w.]+", row) for row in rows), rows

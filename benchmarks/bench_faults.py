"""Fault reports: the time to reject a message grows linearly with its problems (issue: a report
of 8,000 problems took 27 s, each problem walking every element of its tag and every sibling).

A PersonSyncRequest gets n unknown elements, one a line, and goes through what a receiver does:
the hardened parse, the decode, the report with lines, columns and XPaths. The figure to read is
the time per problem, which must stay flat from 1,000 to 100,000 problems; the report itself
lists at most MAX_REPORTED of them.

Run: python benchmarks/bench_faults.py [--sizes 1000,10000,100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from timing import machine, settle

from ccbmdm.codegen.loader import load_contracts
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages.codec import MAX_REPORTED, ContractViolation

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = "ccb/PersonSyncRequest"


def with_unknown_elements(message: str, count: int) -> bytes:
    """The message with ``count`` unknown elements at the start of its person."""
    return message.replace("<person>\n", "<person>\n" + "    <x/>\n" * count, 1).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,2000,4000,8000,16000,32000,64000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    system, root = CONTRACT.split("/")
    message = (ROOT / "contracts" / "samples" / system / f"{root}.xml").read_text()
    registry = load_contracts(Project.load(ROOT))

    def reject(data: bytes) -> ContractViolation:
        try:
            registry.decode_afresh(data, CONTRACT)
        except ContractViolation as violation:
            return violation
        raise AssertionError("the message was accepted")

    settle()
    print(machine())
    print(f"message: {CONTRACT} with n unknown elements; the report lists {MAX_REPORTED}")
    print(f"{'problems':>9} {'bytes':>9} {'seconds':>9} {'us/problem':>11} {'listed':>7}")
    per_problem = []
    for size in sizes:
        data = with_unknown_elements(message, size)
        best = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            violation = reject(data)
            best = min(best, time.perf_counter() - started)
        assert violation.total == size and len(violation.problems) == min(size, MAX_REPORTED)
        per_problem.append(best / size)
        print(
            f"{size:>9} {len(data):>9} {best:>9.3f} {best / size * 1e6:>11.2f} "
            f"{len(violation.problems):>7}"
        )
    # Against the middle size: the smallest fit in the processor's caches and run faster.
    middle = len(sizes) // 2
    growth = per_problem[-1] / per_problem[middle]
    print(
        f"time per problem at {sizes[-1]} against {sizes[middle]}: {growth:.2f}x "
        f"(linear: about 1x; quadratic: {sizes[-1] / sizes[middle]:.1f}x)"
    )


if __name__ == "__main__":
    main()

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
from dataclasses import dataclass
from pathlib import Path

from timing import BenchmarkFailed, machine, settle

from ccbmdm.codegen.loader import load_contracts
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages.codec import MAX_REPORTED, ContractViolation

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = "ccb/PersonSyncRequest"


def with_unknown_elements(message: str, count: int) -> bytes:
    """The message with ``count`` unknown elements at the start of its person."""
    return message.replace("<person>\n", "<person>\n" + "    <x/>\n" * count, 1).encode()


SIZES = (1000, 2000, 4000, 8000, 16000, 32000, 64000, 100000)
# The time per problem at the largest size over the middle one: about 1 is linear.
TARGET_GROWTH = 1.5


@dataclass(frozen=True)
class Rejection:
    """The best time of rejecting a message with ``problems`` problems."""

    problems: int
    bytes: int
    seconds: float
    listed: int

    @property
    def per_problem(self) -> float:
        return self.seconds / self.problems


def growth(rejections: list[Rejection]) -> float:
    """The time per problem at the largest size over the middle size's (the smallest sizes fit
    in the processor's caches and run faster)."""
    return rejections[-1].per_problem / rejections[len(rejections) // 2].per_problem


def measure(sizes: tuple[int, ...], repeat: int) -> list[Rejection]:
    """Each size's best of ``repeat`` rejections, checked to report every problem."""
    system, root = CONTRACT.split("/")
    message = (ROOT / "contracts" / "samples" / system / f"{root}.xml").read_text()
    registry = load_contracts(Project.load(ROOT))

    def reject(data: bytes) -> ContractViolation:
        try:
            registry.decode_afresh(data, CONTRACT)
        except ContractViolation as violation:
            return violation
        raise BenchmarkFailed("the message was accepted")

    settle()
    rejections = []
    for size in sizes:
        data = with_unknown_elements(message, size)
        best = float("inf")
        for _ in range(repeat):
            started = time.perf_counter()
            violation = reject(data)
            best = min(best, time.perf_counter() - started)
        if violation.total != size or len(violation.problems) != min(size, MAX_REPORTED):
            raise BenchmarkFailed(f"{size} problems reported as {violation.total}")
        rejections.append(Rejection(size, len(data), best, len(violation.problems)))
    return rejections


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = tuple(int(size) for size in args.sizes.split(","))
    rejections = measure(sizes, args.repeat)
    print(machine())
    print(f"message: {CONTRACT} with n unknown elements; the report lists {MAX_REPORTED}")
    print(f"{'problems':>9} {'bytes':>9} {'seconds':>9} {'us/problem':>11} {'listed':>7}")
    for r in rejections:
        print(
            f"{r.problems:>9} {r.bytes:>9} {r.seconds:>9.3f} {r.per_problem * 1e6:>11.2f} "
            f"{r.listed:>7}"
        )
    middle = sizes[len(sizes) // 2]
    print(
        f"time per problem at {sizes[-1]} against {middle}: {growth(rejections):.2f}x "
        f"(linear: about 1x; quadratic: {sizes[-1] / middle:.1f}x)"
    )


if __name__ == "__main__":
    main()

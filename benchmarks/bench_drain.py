"""Draining a backlog, on SQLite: a worker that finds ``--requests`` Pending requests (after an
outage, an initial load) must move them at a flat rate, the last tenth as fast as the first;
a query whose cost grows with the rows already done would show as a falling rate.

The backlog is captured first, one change per person, each in its own business transaction;
then one worker runs every step as ``ccbmdm run``'s worker does until all is quiet. The rate of
each tenth comes from the store's own clock: the times the requests' moves to SYNCHRONIZED were
recorded (``transition``). The figure is the rate over tenths 7 to 9 over the rate over tenths 2
to 4 (the first and the last tenth fill and empty the four hops, and one tenth alone moves with
the machine's other work); the target is at least 0.8.

Run: python benchmarks/bench_drain.py [--requests 30000]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_runtime import load, sqlite_world, worker_of  # noqa: E402
from timing import BenchmarkFailed, machine  # noqa: E402

BATCH = 50
TARGET = 0.8  # the rate over tenths 7 to 9 over the rate over tenths 2 to 4
EARLY, LATE = slice(1, 4), slice(6, 9)
TENTHS = 10


@dataclass(frozen=True)
class Drain:
    """Requests a second in each tenth of the backlog, in the order they were done."""

    requests: int
    rates: list[float]

    @property
    def early(self) -> float:
        return rate(self.rates[EARLY])

    @property
    def late(self) -> float:
        return rate(self.rates[LATE])

    @property
    def flatness(self) -> float:
        return self.late / self.early

    @property
    def overall(self) -> float:
        return rate(self.rates)


def rate(rates: list[float]) -> float:
    """The rate over consecutive tenths: their requests over their time together."""
    return len(rates) / sum(1 / rate for rate in rates)


def measure(requests: int) -> Drain:
    """Capture the backlog, drain it with one worker, and time each tenth."""
    with sqlite_world("drain", BATCH) as (_, world):
        load(world, requests)
        worker_of(world).drain(max_rounds=10 + 4 * requests // BATCH)
        with world.store.transaction() as tx:
            done = [
                float(r["at"]) * 86400.0
                for r in tx.fetch(
                    "SELECT at FROM transition WHERE kind = 'sync_request' "
                    "AND state = 'SYNCHRONIZED' ORDER BY at"
                )
            ]
    if len(done) != requests:
        raise BenchmarkFailed(f"{len(done)} of {requests} requests were SYNCHRONIZED")
    # each tenth from the end of the one before, the first from the first request done (so
    # that filling the four hops is not counted as a slow start)
    edges = [done[0]] + [done[(requests * tenth) // TENTHS - 1] for tenth in range(1, TENTHS + 1)]
    rates = [(requests / TENTHS) / max(end - start, 1e-3) for start, end in pairwise(edges)]
    return Drain(requests, rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30_000)
    args = parser.parse_args()
    print(machine())
    found = measure(args.requests)
    print(f"{found.requests} requests drained by one worker, requests/s per tenth:")
    print("  " + ", ".join(f"{rate:.0f}" for rate in found.rates))
    print(
        f"tenths 7 to 9 at {found.flatness:.2f} times the rate of tenths 2 to 4 "
        f"(target: at least {TARGET}); "
        f"{found.overall:.0f} requests/s overall"
    )


if __name__ == "__main__":
    main()

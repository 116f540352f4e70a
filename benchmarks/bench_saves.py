"""The source system's saves while the integration is busy, on SQLite: how long a save waits for
the write lock while a worker moves a backlog, how long the worker's transactions hold it, and
how large the WAL grows.

SQLite has one write lock and no queue for it; the writer gate and the write budget
(docs/runtime.md, "SQLite's one write lock") keep a save from waiting behind more than the
worker transactions already begun. A backlog of ``--requests`` PERSON_SYNC requests is captured,
then a worker process runs every step as ``ccbmdm run``'s does until all is quiet, while this
process saves people through the business system every ``--pace`` seconds (a foreground
transaction each, which captures a change too), a tenth of the backlog at most. Every save must
succeed. The figures: the longest and the median wait of a save (the target: at most twice the
write budget, one worker transaction and a save of its own), the longest transaction of the
worker, and the largest WAL.

Run: python benchmarks/bench_saves.py [--requests 3000] [--pace 0.02]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_runtime import integration, load, sqlite_world, worker_of  # noqa: E402
from timing import BenchmarkFailed, machine  # noqa: E402

from ccbmdm.runtime.store import open_store  # noqa: E402
from ccbmdm.runtime.store.base import WriteSpan  # noqa: E402

BATCH = 50


@dataclass(frozen=True)
class Saves:
    """What the saves waited, what the worker held, and the WAL's largest size."""

    saves: int
    longest_wait_s: float
    median_wait_s: float
    worker_transactions: int
    longest_held_s: float
    wal_bytes: int
    budget_s: float

    @property
    def target_s(self) -> float:
        return 2 * self.budget_s


def work(database: str, ready: Connection, done: Connection) -> None:
    """The worker process: every step until all is quiet; sends the seconds each of its write
    transactions held the lock."""
    store = open_store(database)
    held: list[float] = []
    store.on_write = lambda span: held.append(span.held_s)
    runner = worker_of(integration(store, BATCH))
    ready.send(True)
    runner.drain(max_rounds=1_000_000)
    store.close()
    done.send(held)


def measure(requests: int, pace_s: float) -> Saves:
    """A backlog of ``requests``, a worker moving it, and saves every ``pace_s`` meanwhile
    (a tenth of ``requests`` at most, so that the worker's work has an end)."""
    context = multiprocessing.get_context("spawn")
    with sqlite_world("saves", BATCH) as (database, world):
        store = world.store
        load(world, requests)
        waits: list[float] = []

        def heard(span: WriteSpan) -> None:
            waits.append(span.waited_s)

        ready_in, ready_out = context.Pipe(duplex=False)
        done_in, done_out = context.Pipe(duplex=False)
        process = context.Process(target=work, args=(database, ready_out, done_out))
        process.start()
        ready_in.recv()
        wal = Path(f"{database}-wal")
        largest = 0
        store.on_write = heard
        saved = 0
        while not done_in.poll() and saved < requests // 10:
            world.people.change(f"{saved % requests:010d}", f"Person,Saved {saved}")
            saved += 1
            largest = max(largest, wal.stat().st_size if wal.exists() else 0)
            time.sleep(pace_s)  # a user's pace between saves
        store.on_write = None
        held: list[float] = done_in.recv()
        process.join()
        budget = store.write_budget_s
    if process.exitcode != 0:
        raise BenchmarkFailed(f"the worker process ended with {process.exitcode}")
    if not waits or not held:
        raise BenchmarkFailed("no save ran while the worker moved the backlog")
    return Saves(
        len(waits),
        max(waits),
        statistics.median(waits),
        len(held),
        max(held),
        largest,
        budget,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between saves")
    args = parser.parse_args()
    print(machine())
    found = measure(args.requests, args.pace)
    print(
        f"{found.saves} saves while a worker moved {args.requests} requests: the longest waited "
        f"{found.longest_wait_s:.3f} s (target: {found.target_s:.2f} s), the median "
        f"{found.median_wait_s * 1000:.1f} ms"
    )
    print(
        f"{found.worker_transactions} worker transactions, the longest held the lock "
        f"{found.longest_held_s:.3f} s (write budget {found.budget_s:.2f} s); the WAL grew to "
        f"{found.wal_bytes / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()

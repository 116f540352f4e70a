"""Latency under a steady load, on SQLite: from a change's commit in the business system to its
message's first send to the bridge, and to its acknowledgement (the request SYNCHRONIZED), p50
and p99.

The business system saves ``--rate`` people a second for ``--seconds`` (each save its own
transaction, which captures the change); a worker process runs every step as ``ccbmdm run``'s
worker does, with the default poll interval of 1 s (a round that finds nothing waits that long),
until every request is final. The times come from the store's own clock: a request's
``created_at``, its outbox row's ``first_attempt_at``, and the time its move to SYNCHRONIZED was
recorded (``transition``). The target: the p99 to the first send within the poll interval and a
round, 1.5 s.

Run: python benchmarks/bench_latency.py [--rate 100] [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_runtime import integration, sqlite_world, worker_of  # noqa: E402
from timing import BenchmarkFailed, machine  # noqa: E402

from ccbmdm.runtime.store import Store, open_store  # noqa: E402

BATCH = 50
POLL_S = 1.0  # the runtime's default poll interval
TARGET_S = 1.5


@dataclass(frozen=True)
class Latency:
    """Percentiles, in seconds, of the requests made at a steady rate."""

    requests: int
    sent_p50: float
    sent_p99: float
    acknowledged_p50: float
    acknowledged_p99: float


def work(database: str, ready: Connection, stop: Event) -> None:
    """The worker process: rounds, and the poll interval's wait after a round that found
    nothing, until ``stop`` is set."""
    store = open_store(database)
    runner = worker_of(integration(store, BATCH))
    runner.poll_interval_s = POLL_S
    stopping = threading.Event()  # the worker's own, set when the other process says so

    def relay() -> None:
        stop.wait()
        stopping.set()

    threading.Thread(target=relay, daemon=True).start()
    ready.send(True)
    runner.run(stopping)
    store.close()


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def open_requests(store: Store) -> int:
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT count(*) AS n FROM sync_request WHERE state NOT IN ('SYNCHRONIZED','ERROR')"
        )
    return int(row["n"]) if row else 0


def delays(store: Store) -> tuple[list[float], list[float]]:
    """Each request's seconds from its capture to its first send, and to SYNCHRONIZED."""
    with store.transaction() as tx:
        rows = tx.fetch(
            """SELECT (o.first_attempt_at - s.created_at) * 86400.0 AS sent,
                      (t.at - s.created_at) * 86400.0 AS acknowledged
                 FROM sync_request s
                 JOIN outbox o ON o.owner_type = 'sync_request' AND o.owner_id = s.id
                 JOIN transition t ON t.kind = 'sync_request' AND t.row_id = s.id
                                  AND t.state = 'SYNCHRONIZED'"""
        )
    return [float(r["sent"]) for r in rows], [float(r["acknowledged"]) for r in rows]


def measure(rate: float, seconds: float) -> Latency:
    """Saves at ``rate`` a second for ``seconds`` while a worker process runs."""
    context = multiprocessing.get_context("spawn")
    with sqlite_world("latency", BATCH) as (database, world):
        store = world.store
        ready_in, ready_out = context.Pipe(duplex=False)
        stop = context.Event()
        process = context.Process(target=work, args=(database, ready_out, stop))
        process.start()
        ready_in.recv()
        saves = round(rate * seconds)
        started = time.perf_counter()
        for index in range(saves):
            # a steady rate: each save at its own moment, however long the ones before took
            time.sleep(max(0.0, started + index / rate - time.perf_counter()))
            world.people.change(f"{index:010d}", f"Person,Number {index}")
        deadline = time.monotonic() + 120
        while open_requests(store) and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker finishes what the last saves captured
        stop.set()
        process.join()
        left = open_requests(store)
        sent, acknowledged = delays(store)
    if process.exitcode != 0 or left:
        raise BenchmarkFailed(f"{left} requests still open; the worker ended {process.exitcode}")
    if len(sent) != saves:
        raise BenchmarkFailed(f"{len(sent)} of {saves} requests were sent and acknowledged")
    return Latency(
        saves,
        percentile(sent, 0.5),
        percentile(sent, 0.99),
        percentile(acknowledged, 0.5),
        percentile(acknowledged, 0.99),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="saves a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(machine())
    found = measure(args.rate, args.seconds)
    print(
        f"{found.requests} changes at {args.rate:g} a second, one worker polling every "
        f"{POLL_S:g} s; from the commit:"
    )
    print(f"  to the first send: p50 {found.sent_p50:.3f} s, p99 {found.sent_p99:.3f} s")
    print(
        f"  to SYNCHRONIZED:   p50 {found.acknowledged_p50:.3f} s, "
        f"p99 {found.acknowledged_p99:.3f} s"
    )


if __name__ == "__main__":
    main()

"""Runtime throughput: PERSON_SYNC requests processed end to end per second.

Each request: the monitor's claim and snapshot comparison, the CCB message, the bridge mapping,
delivery over the in-process transport to a receiver that persists and deduplicates, the
acknowledgement mapped back, and the final state: four hops, each stored in an outbox, checked
against its contract, stored in an inbox and processed, the steps run as ``ccbmdm run``'s worker
runs them. Targets: SQLite with one worker at least 3,000/s (synchronous=FULL); PostgreSQL with
one worker at least 1,000/s, and with two at least 1.7 times one; logs at info at most 1.3
times the time without.

SQLite is measured at each batch size given (batching is the lever: fewer commits, each fsynced,
per message), the median of ``--repeat`` runs, each on a fresh database in a process of its own.
PostgreSQL is measured with 1, 2 and 4 worker processes, ``--repeat`` rounds of the three, and
the ratios are those of the medians. With ``--instructions``, one run per batch size is also
counted by callgrind (valgrind): the instructions a request costs, the same run after run
whatever else the machine is doing, where requests a second on a shared virtual machine vary by
a third from one minute to the next.

What a request costs the store is counted too (``costs_per_request``, through the store's
``on_write`` hook): write transactions, and on PostgreSQL the round trips to the server, which
a worker there spends most of its time waiting for.

The SQLite runs log as ``ccbmdm run`` does by default, JSON lines at info (every delivery,
receipt, processing and lifecycle move), into a file as a service's standard error would be;
``--logs off`` measures without them.

Run: python benchmarks/bench_runtime.py [--requests 3000] [--batch 50 200] [--repeat 5]
                                        [--pg postgresql://...] [--instructions] [--logs off]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event, Semaphore
from pathlib import Path
from typing import NamedTuple, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from timing import machine  # noqa: E402

from ccbmdm.codegen.loader import load_contracts, load_package  # noqa: E402
from ccbmdm.codegen.project import Project  # noqa: E402
from ccbmdm.runtime import logs  # noqa: E402
from ccbmdm.runtime.messaging.transport import InProcessTransport  # noqa: E402
from ccbmdm.runtime.store import Store, open_store  # noqa: E402
from ccbmdm.runtime.store.base import WriteSpan  # noqa: E402
from ccbmdm.runtime.worker import Worker, settle_collector  # noqa: E402
from runtime_world import Integration  # noqa: E402

SQLITE_TARGET = 3000.0  # requests/s, one worker, synchronous=FULL, logs at info
POSTGRES_TARGET = 1000.0  # requests/s, one worker
TWO_WORKERS_TARGET = 1.7  # two PostgreSQL workers over one
LOGS_TARGET = 1.3  # the time with logs at info over the time without


def integration(store: Store, batch: int) -> Integration:
    project = Project.load(ROOT)
    registry, package = load_contracts(project), load_package(project)
    return Integration(store, registry, package, InProcessTransport(), batch=batch)


def worker_of(world: Integration) -> Worker:
    """The world's steps as ``ccbmdm run``'s worker runs them: every step each round, the
    rescue of passed leases as a sweep once a second; each node's contracts and mappings loaded
    before the first round, as ``ccbmdm run``'s worker loads them (``Node.load_ahead``)."""
    nodes = (world.ccb, world.bridge, world.mdm)
    for node in nodes:
        node.load_ahead()
    steps = [lambda: sum(vars(world.monitor.step(world.batch)).values())]
    steps += [step for node in nodes for step in (node.send_due, node.process_due)]
    return Worker(steps, sweeps=[node.rescue_due for node in nodes])


def load(world: Integration, requests: int) -> None:
    """Capture one change per person, each in its own business transaction."""
    for index in range(requests):
        world.people.change(f"{index:010d}", f"Person,Number {index}")


def measure(store: Store, requests: int, batch: int = 50, counted: bool = False) -> float:
    """One worker runs every step until all is quiet; requests per second. ``counted``: the
    process runs under callgrind, which counts the run's instructions only."""
    world = integration(store, batch)
    load(world, requests)
    worker = worker_of(world)
    settle_collector()  # as a worker does before its first round
    with counting(counted):
        started = time.perf_counter()
        worker.drain(max_rounds=10 + 4 * requests // batch)
        seconds = time.perf_counter() - started
    states = {state for state, _ in world.requests()}
    assert states == {"SYNCHRONIZED"}, states
    return requests / seconds


class Costs(NamedTuple):
    """What a request costs the store, counted by its ``on_write`` hook: counts, which the
    machine's load does not move."""

    transactions: float  # write transactions committed (on SQLite, each an fsync when it wrote)
    round_trips: float  # times a transaction waited for the server (PostgreSQL; SQLite none)
    worker_ms: float  # the worker's processor time
    # the processor time of the PostgreSQL server process serving the worker, when the server
    # runs on this machine (its /proc entry readable); None on SQLite or a server elsewhere
    server_ms: float | None


def costs_per_request(store: Store, requests: int, batch: int) -> Costs:
    """What one worker's requests cost the store, from its first round to quiet, and what
    they cost the processors (on two cores shared with the server, the processor time a
    request takes in all bounds what any number of workers can reach)."""
    world = integration(store, batch)
    load(world, requests)
    worker = worker_of(world)
    server = _server_process(store)
    committed = round_trips = 0

    def heard(span: WriteSpan) -> None:
        nonlocal committed, round_trips
        committed += span.committed
        round_trips += span.round_trips

    store.on_write = heard
    worker_started, server_started = time.process_time(), _processor_s(server)
    try:
        worker.drain(max_rounds=10 + 4 * requests // batch)
    finally:
        store.on_write = None
    worker_s, server_s = time.process_time() - worker_started, _processor_s(server)
    return Costs(
        committed / requests,
        round_trips / requests,
        worker_s * 1000 / requests,
        None
        if server_s is None or server_started is None
        else (server_s - server_started) * 1000 / requests,
    )


def _server_process(store: Store) -> Path | None:
    """The /proc entry of the PostgreSQL process serving this thread's connection, when the
    server runs on this machine."""
    if store.dialect != "postgres":
        return None
    with store.transaction() as tx:
        row = tx.fetch_one("SELECT pg_backend_pid() AS pid")
    entry = Path(f"/proc/{row['pid']}/stat") if row is not None else None
    return entry if entry is not None and entry.exists() else None


def _processor_s(entry: Path | None) -> float | None:
    """The user and system seconds a process has had, from its /proc stat line."""
    if entry is None:
        return None
    fields = entry.read_text().rsplit(")", 1)[1].split()  # after the command's name
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def sqlite_rate(requests: int, batch: int, counted: bool = False, logs_at: str = "info") -> float:
    """One measurement on a fresh SQLite database, logging at ``logs_at`` (or ``off``)."""
    with tempfile.TemporaryDirectory() as folder, logging_into(Path(folder), logs_at):
        store = open_store(str(Path(folder) / "bench.db"))
        if counted:
            # Under callgrind the run is some fifty times slower: the write budget, a time on
            # the wall clock, would cut the batches a native run keeps whole.
            store.write_budget_s = math.inf
        store.migrate()
        try:
            return measure(store, requests, batch, counted)
        finally:
            store.close()


@contextmanager
def sqlite_world(name: str, batch: int) -> Iterator[tuple[str, Integration]]:
    """A fresh SQLite database in a folder of its own, migrated, and the integration on it:
    its file (for another process to open) and the world; both gone at the end."""
    with tempfile.TemporaryDirectory() as folder:
        database = str(Path(folder) / f"{name}.db")
        store = open_store(database)
        store.migrate()
        try:
            yield database, integration(store, batch)
        finally:
            store.close()


@contextmanager
def logging_into(folder: Path, level: str) -> Iterator[None]:
    """This process's standard error into a file, with the runtime's default logs on."""
    if level == "off":
        yield
        return
    with (folder / "stderr.jsonl").open("w") as stderr:
        sys.stderr = stderr
        logs.configure(cast(logs.Level, level), "json")
        try:
            yield
        finally:
            sys.stderr = sys.__stderr__


@contextmanager
def counting(counted: bool) -> Iterator[None]:
    """Callgrind's instruction count on inside, off outside (the set-up is not counted)."""
    if counted:
        subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], check=True)
    try:
        yield
    finally:
        if counted:
            subprocess.run(["callgrind_control", "-i", "off", str(os.getpid())], check=True)


def sqlite_rates(requests: int, batch: int, runs: int, logs_at: str = "info") -> list[float]:
    """``runs`` SQLite measurements, each in a process of its own: what one run leaves behind
    (its registry, its garbage) must not slow the next one down."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as pool:
        return [pool.apply(sqlite_rate, (requests, batch, False, logs_at)) for _ in range(runs)]


def postgres_rates(
    dsn: str, requests: int, batch: int, rounds: int, workers: tuple[int, ...] = (1, 2, 4)
) -> dict[int, list[float]]:
    """``rounds`` rounds of a measurement with each count of ``workers``, each on a schema of
    its own: rounds rather than runs in a row, so the machine's drift weighs on every count
    alike."""
    rates: dict[int, list[float]] = {count: [] for count in workers}
    for _ in range(rounds):
        for count, measured in rates.items():
            with scratch_schema(dsn) as scoped:
                measured.append(measure_workers(scoped, requests, count, batch))
    return rates


def instructions_per_request(requests: int, batch: int, logs_at: str) -> int:
    """One SQLite run of this file under callgrind, counted from the first round to the last."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian package valgrind)")
    with tempfile.TemporaryDirectory() as folder:
        counts = Path(folder) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={counts}",
                sys.executable,
                __file__,
                "--counted-run",
                str(requests),
                str(batch),
                *("--logs", logs_at),
            ],
            check=True,
            capture_output=True,
        )
        totals = [line for line in counts.read_text().splitlines() if line.startswith("totals:")]
    return int(totals[0].split()[1]) // requests


def worker(dsn: str, batch: int, ready: Semaphore, start: Event) -> None:
    """A worker process: every step of every node, round after round, until no request is
    left open (each process has its own in-process transport; the store is shared)."""
    store = open_store(dsn)
    world = integration(store, batch)
    runner = worker_of(world)
    settle_collector()
    ready.release()
    start.wait()
    while True:
        runner.drain()
        with store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT count(*) AS open FROM sync_request "
                "WHERE state NOT IN ('SYNCHRONIZED','ERROR')"
            )
        if row is not None and row["open"] == 0:
            break
        time.sleep(0.005)  # another worker holds the rest; look again shortly
    store.close()


def measure_workers(dsn: str, requests: int, workers: int, batch: int) -> float:
    """``workers`` processes share the load on one PostgreSQL schema; requests per second."""
    store = open_store(dsn)
    load(integration(store, batch), requests)
    context = multiprocessing.get_context("spawn")
    ready, start = context.Semaphore(0), context.Event()
    processes = [
        context.Process(target=worker, args=(dsn, batch, ready, start)) for _ in range(workers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        ready.acquire()
    started = time.perf_counter()
    start.set()
    for process in processes:
        process.join()
    seconds = time.perf_counter() - started
    with store.transaction() as tx:
        states = {r["state"] for r in tx.fetch("SELECT DISTINCT state FROM sync_request")}
    store.close()
    assert states == {"SYNCHRONIZED"}, states
    return requests / seconds


@contextmanager
def scratch_schema(dsn: str) -> Iterator[str]:
    """A DSN whose tables live in a schema of their own, dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        scoped = f"{dsn}?options=-csearch_path%3D{schema}"
        open_store(scoped).migrate()
        yield scoped
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[50, 200], help="batch sizes (SQLite)"
    )
    parser.add_argument(
        "--repeat", type=int, default=5, help="runs per SQLite batch size and per worker count"
    )
    parser.add_argument("--pg", help="a PostgreSQL DSN; a schema of its own is created and dropped")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count a request's instructions under callgrind, 1,000 requests a batch size "
        "(about a minute each)",
    )
    parser.add_argument(
        "--logs",
        choices=["info", "warning", "off"],
        default="info",
        help="SQLite runs: JSON lines into a file at this level, as `ccbmdm run` logs by "
        "default (info), or no logs (off)",
    )
    parser.add_argument("--counted-run", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.counted_run:  # the process callgrind counts (see instructions_per_request)
        requests, batch = args.counted_run
        sqlite_rate(requests, batch, counted=True, logs_at=args.logs)
        return
    print(machine())
    print(f"{args.requests} requests, logs: {args.logs}")
    for batch in args.batch:
        rates = sqlite_rates(args.requests, batch, args.repeat, args.logs)
        print(
            f"SQLite, synchronous=FULL, one worker, batch {batch:4d}: "
            f"{statistics.median(rates):8.0f} requests/s "
            f"(median of {len(rates)}: {', '.join(f'{r:.0f}' for r in sorted(rates))})"
        )
        if args.instructions:
            print(
                f"SQLite, batch {batch:4d}: "
                f"{instructions_per_request(1000, batch, args.logs):,} instructions a request "
                "(callgrind)"
            )
    if args.pg:
        batch = args.batch[0]
        with scratch_schema(args.pg) as scoped:
            store = open_store(scoped)
            costs = costs_per_request(store, args.requests, batch)
            store.close()
        print(
            f"PostgreSQL, batch {batch}, a request: {costs.transactions:.3f} write transactions, "
            f"{costs.round_trips:.2f} round trips"
        )
        print(f"PostgreSQL, batch {batch}, median of {args.repeat} rounds of 1, 2 and 4 workers")
        pg_rates = postgres_rates(args.pg, args.requests, batch, args.repeat)
        one = statistics.median(pg_rates[1])
        for workers, rates in pg_rates.items():
            print(
                f"PostgreSQL, {workers} worker{'s' if workers > 1 else ''}: "
                f"{statistics.median(rates):8.0f} requests/s "
                f"({statistics.median(rates) / one:.2f}x one worker; "
                f"runs: {', '.join(f'{r:.0f}' for r in rates)})"
            )


if __name__ == "__main__":
    main()

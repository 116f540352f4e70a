"""The demo at utility scale: `ccbmdm demo` at 1,000 and 10,000 customers on SQLite must grow
linearly (at most 10.5 times the time for 10 times the customers) and take under 120 s at
10,000; at 100,000 customers on PostgreSQL with 4 workers it must run to completion.

Each run is the demo as the command runs it (``run_demo`` on a fresh store), timed as a whole:
the wall time, the processor time of this process and of the worker processes it started (on a
machine shared with other work the wall time waits for the processor, the processor time does
not), and the store's size at the end.

Run: python benchmarks/bench_demo.py [--customers 1000 10000] [--store DSN] [--workers 4]
"""

from __future__ import annotations

import argparse
import itertools
import resource
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from timing import BenchmarkFailed, machine

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.sim.demo import fresh_store, run_demo
from ccbmdm.runtime.store.dsn import is_postgres

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 120.0  # 10,000 customers on SQLite
TARGET_GROWTH = 10.5  # the time at 10,000 customers over the time at 1,000
TARGET_STORE_MB = 60.0  # the store per 1,000 customer-months


@dataclass(frozen=True)
class DemoRun:
    """One demo: its size, wall and processor seconds, the store's bytes, its phases."""

    customers: int
    workers: int
    seconds: float
    cpu_seconds: float
    store_bytes: int
    phases: list[tuple[str, float]]
    tables: list[tuple[str, int]] = field(default_factory=list)  # the largest, with bytes


def _cpu() -> float:
    """Processor seconds of this process and of its children that have ended (the workers)."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(customers: int, store: str | None = None, workers: int = 1) -> DemoRun:
    """The demo at ``customers`` on a fresh store: a SQLite file in a scratch folder (None),
    or a schema of its own in the PostgreSQL database ``store`` names, dropped afterwards.
    Fails when a request ended in Error."""
    project = Project.load(ROOT)
    with tempfile.TemporaryDirectory() as folder:
        dsn = fresh_store(store or str(Path(folder) / "demo.db"))
        cpu, started = _cpu(), time.perf_counter()
        report = run_demo(project, dsn, customers, workers=workers)
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        size, tables = store_size(dsn), largest_tables(dsn)
        if is_postgres(dsn):
            _drop_schema(dsn)
    if report.errors:
        machine_, key, reason = report.errors[0]
        raise BenchmarkFailed(
            f"the demo at {customers} customers left {len(report.errors)} request(s) in Error, "
            f"the first: {machine_} {key}: {reason}"
        )
    return DemoRun(customers, workers, seconds, cpu, size, report.phases, tables)


def store_size(dsn: str) -> int:
    """The store's bytes: the SQLite file with its write-ahead log, or the demo schema's
    tables with their indexes and TOAST."""
    if not is_postgres(dsn):
        return sum(
            Path(f"{dsn}{suffix}").stat().st_size
            for suffix in ("", "-wal")
            if Path(f"{dsn}{suffix}").exists()
        )
    import psycopg

    with psycopg.connect(dsn) as connection:
        row = connection.execute(
            """SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'm')"""
        ).fetchone()
    return int(row[0]) if row else 0


def largest_tables(dsn: str, count: int = 12) -> list[tuple[str, int]]:
    """The store's largest tables and indexes with their bytes, what its size is made of:
    SQLite's ``dbstat`` (each index apart; none where SQLite was built without it), or
    PostgreSQL's tables with their indexes and TOAST."""
    if not is_postgres(dsn):
        import sqlite3

        with closing(sqlite3.connect(dsn)) as connection:
            try:
                rows = connection.execute(
                    "SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name "
                    "ORDER BY bytes DESC LIMIT ?",
                    (count,),
                ).fetchall()
            except sqlite3.OperationalError:  # a SQLite built without the dbstat table
                return []
        return [(str(name), int(size)) for name, size in rows]
    import psycopg

    with psycopg.connect(dsn) as connection:
        found = connection.execute(
            """SELECT c.relname, pg_total_relation_size(c.oid) AS bytes FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = current_schema() AND c.relkind = 'r'
               ORDER BY bytes DESC LIMIT %s""",
            (count,),
        ).fetchall()
    return [(str(name), int(size)) for name, size in found]


def _drop_schema(dsn: str) -> None:
    """A demo schema of 100,000 customers holds tens of gigabytes: it goes once measured."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as connection:
        row = connection.execute("SELECT current_schema()").fetchone()
        if row and str(row[0]).startswith("ccbmdm_demo_"):
            connection.execute(f"DROP SCHEMA {row[0]} CASCADE")


def described(run: DemoRun) -> str:
    workers = f", {run.workers} workers" if run.workers > 1 else ""
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in run.phases)
    return (
        f"{run.customers:>7,} customers{workers}: {run.seconds:7.1f} s "
        f"(processor {run.cpu_seconds:7.1f} s), store {run.store_bytes / 1e6:,.0f} MB\n"
        f"          {phases}\n"
        f"          largest: {', '.join(f'{n} {b / 1e6:,.1f} MB' for n, b in run.tables)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--store", help="a postgresql:// DSN (default: a scratch SQLite file)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(machine())
    runs = []
    for customers in args.customers:
        try:
            runs.append(measure(customers, args.store, args.workers))
        except BenchmarkFailed as exc:
            raise SystemExit(str(exc)) from None
        print(described(runs[-1]), flush=True)  # a long run's figures as soon as they are in
    for small, large in itertools.pairwise(runs):
        growth = large.seconds / small.seconds
        print(
            f"{small.customers:,} -> {large.customers:,} customers: {growth:.2f}x the time "
            f"({large.customers / small.customers:g}x the customers; "
            f"processor {large.cpu_seconds / small.cpu_seconds:.2f}x)"
        )


if __name__ == "__main__":
    main()

"""The benchmark suite behind `ccbmdm bench`: each scenario measures this project and its anchors
in the same run, and says whether the figure meets its target (docs/benchmarks.md, "One
command").

A scenario reuses its script's measuring function (``bench_<scenario>.py``), at a quick size
for `--quick` and a full size otherwise; the scripts print their own figures from the same
functions.
"""

from __future__ import annotations

import gc
import os
import platform
import sqlite3
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

# A ratio reads one of two ways, as the targets are written: how many times faster this
# project is than its anchor, or how many times the anchor's time it takes.
RatioKind = Literal["speed-up", "time"]


@dataclass(frozen=True)
class Target:
    """The bound a figure, or its ratio to the anchor, must reach."""

    bound: float
    at_least: bool
    on: Literal["ratio", "figure"]
    unit: str = "x"

    def met(self, figure: float, ratio: float | None) -> bool:
        value = figure if self.on == "figure" else ratio
        if value is None:
            return False
        return value >= self.bound if self.at_least else value <= self.bound

    def __str__(self) -> str:
        sign = "≥" if self.at_least else "≤"
        unit = self.unit if self.unit == "x" else f" {self.unit}"
        return f"{sign} {self.bound:g}{unit}"


@dataclass(frozen=True)
class Result:
    """One row of the table: this project's figure, its anchors' in the same run, the target."""

    scenario: str
    name: str
    unit: str
    figure: float | None  # None: not measured (the name says why)
    anchors: dict[str, float]
    ratio: float | None
    ratio_kind: RatioKind | None
    target: str | None
    passed: bool | None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def result(
    scenario: str,
    name: str,
    unit: str,
    figure: float | None,
    anchors: dict[str, float],
    ratio: tuple[float, RatioKind] | None,
    target: Target | None,
) -> Result:
    """A result, its pass or short decided by its target (None without one)."""
    value, kind = ratio if ratio else (None, None)
    return Result(
        scenario,
        name,
        unit,
        figure,
        anchors,
        value,
        kind,
        str(target) if target else None,
        target.met(figure, value) if target and figure is not None else None,
    )


@dataclass(frozen=True)
class Scenario:
    """A named measurement and the sizes it runs at."""

    name: str
    what: str
    measure: Callable[[bool], list[Result]]

    def run(self, quick: bool) -> list[Result]:
        """The scenario's results; the objects its timing froze out of the collector (settle)
        are collectable again afterwards, for the next scenario and the process alike."""
        try:
            return self.measure(quick)
        finally:
            gc.unfreeze()


# A typical message of five flows: a person, an SA with three SPs, bill determinants with their
# interval data, high-low boundaries, a bill cycle.
CODEC_CONTRACTS = (
    "ccb/PersonSyncRequest",
    "ccb/ServiceAgreementSyncRequest",
    "ccb/BillDeterminantsResponse",
    "ccb/MeterReadHighLowResponse",
    "ccb/BillCycleSyncRequest",
)


def codec(quick: bool) -> list[Result]:
    import bench_codec

    results = []
    for contract in CODEC_CONTRACTS:
        size, timed = bench_codec.measure(contract, 0.5 if quick else 5.0)
        results.append(
            result(
                "codec",
                f"{contract} ({size:,} bytes)",
                "µs",
                timed.ours * 1e6,
                {"lxml + xsdata": timed.theirs * 1e6},
                (timed.ratio, "speed-up"),
                Target(bench_codec.TARGET, at_least=True, on="ratio"),
            )
        )
    return results


def mapping(quick: bool) -> list[Result]:
    import bench_mapping

    transformer, whole = bench_mapping.measure(1.5 if quick else 5.0)
    target = Target(bench_mapping.TARGET_RATIO, at_least=False, on="ratio")
    return [
        result(
            "mapping",
            "SA_SYNC request, compiled transformer",
            "µs",
            transformer.ours * 1e6,
            {"hand-written": transformer.theirs * 1e6},
            (1 / transformer.ratio, "time"),
            target,
        ),
        result(
            "mapping",
            "SA_SYNC request, typed path",
            "µs",
            whole.ours * 1e6,
            {"XSLT (libxslt)": whole.theirs * 1e6},
            (1 / whole.ratio, "time"),
            target,
        ),
    ]


def compile_(quick: bool) -> list[Result]:
    import bench_compile

    times = bench_compile.measure(3 if quick else 11)
    warm = statistics.median(times.warm)
    return [
        result("compile", "cold", "s", times.cold, {}, None, None),
        result(
            "compile",
            "warm, nothing changed",
            "s",
            warm,
            {"cold": times.cold},
            (warm / times.cold, "time"),
            Target(bench_compile.TARGET_S, at_least=False, on="figure", unit="s"),
        ),
    ]


def startup(quick: bool) -> list[Result]:
    import bench_startup

    medians = bench_startup.measure(3 if quick else 11)
    floor = medians.pop(bench_startup.INTERPRETER)
    target = Target(bench_startup.TARGET_S, at_least=False, on="figure", unit="s")
    return [
        result("startup", name, "s", seconds, {bench_startup.INTERPRETER: floor}, None, target)
        for name, seconds in medians.items()
    ]


def runtime(quick: bool) -> list[Result]:
    import bench_runtime as bench

    from ccbmdm.runtime.store import open_store

    requests, runs = (600, 3) if quick else (3000, 5)
    on: list[float] = []
    off: list[float] = []
    for _ in range(runs):  # alternating, so that the machine's drift touches both alike
        on += bench.sqlite_rates(requests, 50, 1, "info")
        off += bench.sqlite_rates(requests, 50, 1, "off")
    logs = statistics.median(o / i for i, o in zip(on, off, strict=True))
    rate, unit = statistics.median(on), "requests/s"
    name = "PostgreSQL, one worker"
    results = [
        result(
            "runtime",
            "SQLite (synchronous=FULL), one worker, logs at info",
            unit,
            rate,
            {"logs off": statistics.median(off)},
            None,
            Target(bench.SQLITE_TARGET, at_least=True, on="figure", unit=unit),
        ),
        result(
            "runtime",
            "SQLite, logs at info against logs off",
            "x",
            logs,
            {},
            None,
            Target(bench.LOGS_TARGET, at_least=False, on="figure"),
        ),
    ]
    with bench.sqlite_world("costs", 50) as (_, world):
        costs = bench.costs_per_request(world.store, requests, 50).transactions
    results.append(
        result(
            "runtime", "SQLite, write transactions a request", "per request", costs, {}, None, None
        )
    )
    dsn, unavailable = postgres_dsn()
    if unavailable:
        return [
            *results,
            result("runtime", f"{name}: not measured, {unavailable}", unit, None, {}, None, None),
        ]
    with bench.scratch_schema(dsn) as scoped:
        store = open_store(scoped)
        try:
            pg_costs = bench.costs_per_request(store, requests, 50)
        finally:
            store.close()
    per_request = "per request"
    results += [
        result(
            "runtime",
            "PostgreSQL, write transactions a request",
            per_request,
            pg_costs.transactions,
            {},
            None,
            None,
        ),
        result(
            "runtime",
            "PostgreSQL, round trips a request",
            per_request,
            pg_costs.round_trips,
            {},
            None,
            None,
        ),
    ]
    rates = bench.postgres_rates(dsn, requests, 50, runs, (1, 2))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    if pg_costs.server_ms is not None:  # a server on this machine: its processor time read
        processor = pg_costs.worker_ms + pg_costs.server_ms
        results += [
            result(
                "runtime",
                "PostgreSQL, processor time a request (worker and server)",
                "ms",
                processor,
                {"the worker": pg_costs.worker_ms, "the server": pg_costs.server_ms},
                None,
                None,
            ),
            result(
                "runtime",
                "PostgreSQL, what the cores allow (cores over processor time a request)",
                unit,
                (os.cpu_count() or 1) * 1000 / processor,
                {"two workers": two, "one worker": one},
                None,
                None,
            ),
        ]
    return [
        *results,
        result(
            "runtime",
            name,
            unit,
            one,
            {"SQLite, one worker": rate},
            None,
            Target(bench.POSTGRES_TARGET, at_least=True, on="figure", unit=unit),
        ),
        result(
            "runtime",
            "PostgreSQL, two workers",
            unit,
            two,
            {"one worker": one},
            (two / one, "speed-up"),
            Target(bench.TWO_WORKERS_TARGET, at_least=True, on="ratio"),
        ),
    ]


def saves(quick: bool) -> list[Result]:
    import bench_saves

    found = bench_saves.measure(1000 if quick else 3000, 0.02)
    return [
        result(
            "saves",
            f"longest wait of a save ({found.saves} saves)",
            "s",
            found.longest_wait_s,
            {},
            None,
            Target(found.target_s, at_least=False, on="figure", unit="s"),
        ),
        result("saves", "median wait of a save", "ms", found.median_wait_s * 1e3, {}, None, None),
        result(
            "saves",
            f"longest worker transaction ({found.worker_transactions} transactions)",
            "s",
            found.longest_held_s,
            {},
            None,
            None,
        ),
        result("saves", "largest WAL", "MB", found.wal_bytes / 1e6, {}, None, None),
    ]


def latency(quick: bool) -> list[Result]:
    import bench_latency as bench

    found = bench.measure(100.0, 5.0 if quick else 30.0)
    target = Target(bench.TARGET_S, at_least=False, on="figure", unit="s")
    return [
        result("latency", "commit to first send, p50", "s", found.sent_p50, {}, None, None),
        result("latency", "commit to first send, p99", "s", found.sent_p99, {}, None, target),
        result(
            "latency", "commit to SYNCHRONIZED, p50", "s", found.acknowledged_p50, {}, None, None
        ),
        result(
            "latency", "commit to SYNCHRONIZED, p99", "s", found.acknowledged_p99, {}, None, None
        ),
    ]


def drain(quick: bool) -> list[Result]:
    import bench_drain as bench

    found = bench.measure(6_000 if quick else 30_000)
    backlog = f"(a backlog of {found.requests:,} requests)"
    return [
        result("drain", f"tenths 2 to 4 {backlog}", "requests/s", found.early, {}, None, None),
        result("drain", f"tenths 7 to 9 {backlog}", "requests/s", found.late, {}, None, None),
        result(
            "drain",
            f"tenths 7 to 9 over tenths 2 to 4 {backlog}",
            "x",
            found.flatness,
            {},
            None,
            Target(bench.TARGET, at_least=True, on="figure"),
        ),
    ]


def intervals(quick: bool) -> list[Result]:
    import bench_intervals

    dsn, unavailable = postgres_dsn()
    former = "a row per interval"
    results = []
    for found in bench_intervals.measure(
        10 if quick else 200, 2 if quick else 5, None if unavailable else dsn
    ):
        for name, rates in (
            ("Green Button import", found.espi),
            ("Green Button values, parsed", found.espi_written),
            ("synthetic month", found.generated),
        ):
            results.append(
                result(
                    "intervals",
                    f"{name}, {found.store}",
                    "intervals/s",
                    rates.ours,
                    {former: rates.former},
                    (rates.ratio, "speed-up"),
                    None,
                )
            )
        results.append(
            result(
                "intervals",
                f"store per customer-month, {found.store}",
                "kB",
                found.bytes_per_customer_month / 1000,
                {former: found.old_bytes_per_customer_month / 1000},
                None,
                Target(bench_intervals.TARGET_BYTES / 1000, at_least=False, on="figure", unit="kB"),
            )
        )
    return results


def billing(quick: bool) -> list[Result]:
    import bench_billing

    target = Target(bench_billing.TARGET_RATIO, at_least=False, on="ratio")
    results = []
    for name, months in (
        ("one channel, a month", [bench_billing.month(bench_billing.JULY, 1)]),
        ("a batch of channels", bench_billing.batch_months(20 if quick else 200)),
    ):
        intervals, timed = bench_billing.measure_engine(months, 1.0 if quick else 5.0)
        results.append(
            result(
                "billing",
                f"determinant engine, {name} ({intervals:,} intervals)",
                "intervals/s",
                intervals / timed.ours,
                {"numpy": intervals / timed.theirs},
                (1 / timed.ratio, "time"),
                target,
            )
        )
    customers = 60 if quick else 600
    run = bench_billing.measure_requests(customers)
    results.append(
        result(
            "billing",
            f"usage requests end to end, SQLite ({customers} customers)",
            "requests/s",
            run.per_second,
            {},
            None,
            None,
        )
    )
    return results


def demo(quick: bool) -> list[Result]:
    import bench_demo

    def rows(run: bench_demo.DemoRun, where: str, target: Target | None = None) -> list[Result]:
        """The run's time, and its store per 1,000 customer-months (the demo bills one month)."""
        name = f"{run.customers:,} customers, {where}"
        per_thousand = run.store_bytes / 1e6 * 1000 / run.customers
        store = Target(bench_demo.TARGET_STORE_MB, at_least=False, on="figure", unit="MB")
        return [
            result("demo", name, "s", run.seconds, {}, None, target),
            result(
                "demo",
                f"store per 1,000 customer-months, {name}",
                "MB",
                per_thousand,
                {},
                None,
                store,
            ),
        ]

    if quick:
        return rows(bench_demo.measure(200), "SQLite")
    small, large = bench_demo.measure(1000), bench_demo.measure(10_000)
    results = [
        *rows(small, "SQLite"),
        *rows(large, "SQLite", Target(bench_demo.TARGET_S, at_least=False, on="figure", unit="s")),
        result(
            "demo",
            "growth from 1,000 to 10,000 customers",
            "x",
            large.seconds / small.seconds,
            {"1,000 customers": small.seconds},
            None,
            Target(bench_demo.TARGET_GROWTH, at_least=False, on="figure"),
        ),
    ]
    dsn, unavailable = postgres_dsn()
    if not unavailable:
        results += rows(bench_demo.measure(100_000, dsn, workers=4), "PostgreSQL, 4 workers")
    return results


def faults(quick: bool) -> list[Result]:
    import bench_faults

    sizes = (1_000, 10_000, 100_000) if quick else bench_faults.SIZES
    rejections = bench_faults.measure(sizes, 2 if quick else 3)
    largest, middle = rejections[-1], rejections[len(rejections) // 2]
    return [
        result(
            "faults",
            f"time per problem ({largest.problems:,} problems)",
            "µs",
            largest.per_problem * 1e6,
            {f"{middle.problems:,} problems": middle.per_problem * 1e6},
            (bench_faults.growth(rejections), "time"),
            Target(bench_faults.TARGET_GROWTH, at_least=False, on="ratio"),
        ),
        result(
            "faults",
            f"a message rejected ({largest.bytes:,} bytes, {largest.problems:,} problems)",
            "ms",
            largest.seconds * 1e3,
            {},
            None,
            None,
        ),
    ]


def operator(quick: bool) -> list[Result]:
    import bench_operator as bench

    dsn, unavailable = postgres_dsn()
    if unavailable:
        return [result("operator", f"not measured, {unavailable}", "ms", None, {}, None, None)]
    size = bench.QUICK if quick else bench.FULL
    loaded, figures = bench.measure(dsn, size)
    rows = size.sync_requests + 2 * size.messages
    target = Target(bench.TARGET_S * 1000, at_least=False, on="figure", unit="ms")
    return [
        result("operator", "store, rows", "rows", rows, {}, None, None),
        result("operator", "store, loaded in", "s", loaded, {}, None, None),
        *(
            result(
                "operator",
                name,
                "ms",
                seconds * 1e3,
                {},
                None,
                None if name == bench.PROCESS else target,
            )
            for name, seconds in figures.items()
        ),
    ]


def docs(quick: bool) -> list[Result]:
    import bench_docs

    built = bench_docs.measure(1 if quick else 5)
    pages = built[-1][1]
    return [
        result(
            "docs",
            f"ccbmdm docs build ({pages} pages)",
            "s",
            statistics.median(seconds for seconds, _ in built),
            {},
            None,
            Target(bench_docs.TARGET_S, at_least=False, on="figure", unit="s"),
        )
    ]


def conformance(quick: bool) -> list[Result]:
    """Every flow in both modes: the whole run takes seconds, and a part would say less."""
    import bench_conformance

    run = bench_conformance.measure()
    return [
        result("conformance", "--mutate, mutants", "mutants", run.mutants, {}, None, None),
        result("conformance", "--mutate, mutants killed", "mutants", run.killed, {}, None, None),
        result("conformance", "--mutate, processor time", "s", run.cpu_s, {}, None, None),
        result("conformance", "--mutate, wall time", "s", run.wall_s, {}, None, None),
    ]


def recovery(quick: bool) -> list[Result]:
    import bench_recovery as bench

    dsn, unavailable = postgres_dsn()
    kinds = ("sqlite",) if quick or unavailable else ("sqlite", "postgres")
    target = Target(bench.TARGET_S, at_least=False, on="figure", unit="s")
    results = []
    for kind in kinds:
        for killed in ("bridge",) if quick else bench.SERVICES:
            open_at_kill, seconds = bench.measure(kind, killed, dsn)
            store = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[kind]
            name = f"{store}, {killed} killed ({open_at_kill} requests open)"
            results.append(result("recovery", name, "s", seconds, {}, None, target))
    return results


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("codec", "the generated codec against lxml XMLSchema + xsdata", codec),
        Scenario("mapping", "the compiled mapping against hand-written Python and XSLT", mapping),
        Scenario("compile", "ccbmdm compile of the reference project, cold and warm", compile_),
        Scenario("startup", "ccbmdm --help, validate and transform, each a new process", startup),
        Scenario("runtime", "PERSON_SYNC requests end to end, SQLite and PostgreSQL", runtime),
        Scenario("saves", "the source's saves on SQLite while a worker moves a backlog", saves),
        Scenario("latency", "from a change's commit to its send, at a steady rate", latency),
        Scenario("drain", "a backlog drained at a flat rate", drain),
        Scenario("billing", "the determinant engine against numpy; usage requests", billing),
        Scenario(
            "intervals", "interval data import and the store's size per customer-month", intervals
        ),
        Scenario("demo", "ccbmdm demo at 1,000 and 10,000 customers, 100,000 on PostgreSQL", demo),
        Scenario("faults", "rejecting a message with many problems: linear in them", faults),
        Scenario("operator", "status, metrics, show and the console on a large store", operator),
        Scenario("recovery", "every request final after a service is killed", recovery),
        Scenario("docs", "ccbmdm docs build of the reference project", docs),
        Scenario(
            "conformance", "ccbmdm conformance --mutate of the reference project", conformance
        ),
    )
}


def cpu_model() -> str:
    """The processor's name as the kernel reports it, else as Python's platform module does."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def postgres_dsn() -> tuple[str, str | None]:
    """The PostgreSQL the store tests use (CCBMDM_TEST_PG_DSN, else the local server), and why
    it cannot be used (no server answers), or None."""
    from support import choose_postgres

    return choose_postgres(os.environ)


def postgresql_version() -> str | None:
    """The server version of the PostgreSQL the store tests use, if one answers."""
    import psycopg

    dsn, unavailable = postgres_dsn()
    if unavailable:
        return None
    try:
        with psycopg.connect(dsn, connect_timeout=2) as connection:
            row = connection.execute("SHOW server_version").fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def machine_description() -> dict[str, object]:
    """What the figures were measured on, written beside them."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "architecture": platform.machine(),
        "system": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgresql_version(),
    }

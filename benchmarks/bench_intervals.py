"""Interval data import: intervals a second from a Green Button feed and from the demo's
synthetic generator, and the store's bytes per customer-month, against the former layout of one
row per interval in the same run (docs/simulators.md, "How interval values are kept").

A utility of ``--customers`` is synchronized into MDM, and a month of 15-minute data for it is
generated, round after round, alternating with the same generator writing the former layout (the
table migration 1 made, filled as MDM filled it before migration 4); the Green Button sample
feed (8,760 hourly values) is imported onto one SP the same way. Each round starts from empty
tables. The size is the interval table's with its key index after the last round: on SQLite its
pages (``dbstat``), on PostgreSQL ``pg_total_relation_size``. A customer-month is one customer's
month as the demo generates it: the month and the days of the billing windows that close it.
Target: at most 60 MB per 1,000 customer-months.

Run: python benchmarks/bench_intervals.py [--customers 100] [--rounds 3] [--pg DSN]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import date
from pathlib import Path
from typing import NamedTuple
from unittest import mock

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from timing import BenchmarkFailed, machine  # noqa: E402

from ccbmdm.codegen.loader import load_contracts, load_package  # noqa: E402
from ccbmdm.codegen.project import Project  # noqa: E402
from ccbmdm.runtime.sim.mdm import interval_days  # noqa: E402
from ccbmdm.runtime.sim.mdm.measurements import (  # noqa: E402
    Measurements,
    generate_interval_data,
    import_espi,
)
from ccbmdm.runtime.sim.mdm.usage_schema import MIGRATIONS  # noqa: E402
from ccbmdm.runtime.sim.synthetic import Plan  # noqa: E402
from ccbmdm.runtime.store import Store, Transaction, open_store  # noqa: E402
from support import postgres_schema  # noqa: E402
from usage_world import HOURLY_FEED, World, hourly  # noqa: E402

TARGET_BYTES = 60_000  # per customer-month: 60 MB per 1,000
MONTH = date(2025, 3, 1)
OLD_TABLE = "mdm_interval_value"
OLD_CREATE = str(MIGRATIONS[0][0])  # the former layout, as migration 1 made it


class Rates(NamedTuple):
    """Intervals a second of this layout and the former, medians of alternating rounds, and
    the median of the rounds' ratios (above 1, this layout is faster)."""

    ours: float
    former: float
    ratio: float


class Figures(NamedTuple):
    """One store's figures: this layout's and the former one's, measured in the same run."""

    store: str
    espi: Rates
    espi_written: Rates  # the parsed feed's values alone
    generated: Rates
    bytes_per_customer_month: float
    old_bytes_per_customer_month: float
    intervals: int  # generated per round


def old_write(
    self: Measurements, tx: Transaction, rows: Iterable[tuple[str, int, str, str]], *, replace: bool
) -> None:
    """The former ``Measurements.write_values``: a row per interval, 20,000 per statement."""
    write_rows(tx, self.store.dialect, list(rows), replace=replace)


def write_rows(
    tx: Transaction, dialect: str, rows: list[tuple[str, int, str, str]], *, replace: bool
) -> None:
    """Rows of the former layout, 20,000 per statement."""
    action = (
        "DO UPDATE SET value = excluded.value, quality_codes = excluded.quality_codes"
        if replace
        else "DO NOTHING"
    )
    for first in range(0, len(rows), 20_000):
        chunk = rows[first : first + 20_000]
        if dialect == "postgres":
            mcs, ends, values, codes = (list(column) for column in zip(*chunk, strict=True))
            tx.execute(
                f"""INSERT INTO {OLD_TABLE} (mc_id, end_at, value, quality_codes)
                    SELECT * FROM unnest(CAST(:mcs AS text[]), CAST(:ends AS bigint[]),
                                         CAST(:values AS text[]), CAST(:codes AS text[]))
                    ON CONFLICT (mc_id, end_at) {action}""",
                {"mcs": mcs, "ends": ends, "values": values, "codes": codes},
            )
        else:
            tx.execute_many(
                f"""INSERT INTO {OLD_TABLE} (mc_id, end_at, value, quality_codes)
                    VALUES (:mc, :end, :value, :codes) ON CONFLICT (mc_id, end_at) {action}""",
                [{"mc": m, "end": e, "value": v, "codes": c} for m, e, v, c in chunk],
            )


def old_write_days(
    tx: Transaction,
    dialect: str,
    touched: dict[tuple[str, int], dict[int, tuple[str, str]]],
    *,
    replace: bool,
) -> int:
    """The former layout's write of values grouped by (MC, day), as the demo's generator hands
    them over: a row per interval."""
    rows = [
        (mc, end, value, codes)
        for (mc, _), intervals in sorted(touched.items())
        for end, (value, codes) in sorted(intervals.items())
    ]
    write_rows(tx, dialect, rows, replace=replace)
    return len(rows)


@contextmanager
def former_layout() -> Iterator[None]:
    """MDM writing one row per interval, as before migration 4: through ``write_values`` and
    through the generator's write of whole days alike."""
    with (
        mock.patch.object(Measurements, "write_values", old_write),
        mock.patch.object(interval_days, "write_days", old_write_days),
    ):
        yield


def empty(store: Store, table: str) -> None:
    """A layout's table emptied (truncated on PostgreSQL: no dead rows left to count)."""
    with store.transaction() as tx:
        tx.execute(f"TRUNCATE {table}" if store.dialect == "postgres" else f"DELETE FROM {table}")


def table_bytes(store: Store, table: str) -> int:
    """The bytes a table and its indexes take in the store."""
    with store.transaction() as tx:
        if store.dialect == "postgres":
            row = tx.fetch_one("SELECT pg_total_relation_size(:t) AS n", {"t": table})
        else:
            row = tx.fetch_one(
                """SELECT sum(pgsize) AS n FROM dbstat
                   WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = :t)""",
                {"t": table},
            )
    assert row is not None
    return int(row["n"])


def same_values(store: Store) -> int:
    """The intervals both layouts hold, checked to be the same values and codes."""
    with store.transaction() as tx:
        former = [
            (str(row["mc_id"]), int(row["end_at"]), str(row["value"]), str(row["quality_codes"]))
            for row in tx.fetch(
                f"""SELECT mc_id, end_at, value, quality_codes FROM {OLD_TABLE}
                    ORDER BY mc_id, end_at"""
            )
        ]
        ours = [
            (mc, *row)
            for mc in dict.fromkeys(mc for mc, *_ in former)
            for row in interval_days.read(tx, mc, 0, 2**40).rows()
        ]
    if not former or ours != former:
        raise BenchmarkFailed("the two layouts hold different values for the same month")
    return len(ours)


def paired(ours: Callable[[], int], theirs: Callable[[], int], rounds: int) -> Rates:
    """Intervals a second of each route over rounds that alternate which goes first (each
    route returns the intervals it stored)."""
    mine: list[float] = []
    other: list[float] = []
    for round_ in range(rounds):
        order = ((ours, mine), (theirs, other))
        for route, samples in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            count = route()
            samples.append(count / (time.perf_counter() - started))
    ratios = [a / b for a, b in zip(mine, other, strict=True)]
    return Rates(statistics.median(mine), statistics.median(other), statistics.median(ratios))


def world(store: Store, plan: Plan, change: Callable[..., None] | None = None) -> World:
    store.migrate()
    project = Project.load(ROOT)
    made = World(store, load_contracts(project), load_package(project))
    made.utility(plan, change)
    with store.transaction() as tx:
        tx.execute(OLD_CREATE)
    return made


def measure_store(open_: Callable[[str], Store], name: str, customers: int, rounds: int) -> Figures:
    """The figures of one kind of store; ``open_`` opens a fresh store of it by a label."""
    store = open_("generated")
    try:
        world(store, Plan(customers=customers, commercial_share=0.15, month=MONTH, seed=7))

        def generate(table: str = interval_days.TABLE) -> int:
            empty(store, table)
            return generate_interval_data(store, MONTH, seed=3).values

        def generate_old() -> int:
            with former_layout():
                return generate(OLD_TABLE)

        made = paired(generate, generate_old, rounds)
        # each layout's table holds its last round's month
        size = table_bytes(store, interval_days.TABLE)
        old_size = table_bytes(store, OLD_TABLE)
        intervals = same_values(store)
    finally:
        store.close()
    feed_store = open_("espi")
    try:
        feed_world = world(
            feed_store, Plan(customers=1, commercial_share=0.0, month=date(2011, 3, 1)), hourly
        )
        sp_id = feed_world.customers[0].sp_id

        def load(table: str = interval_days.TABLE) -> int:
            empty(feed_store, table)
            return import_espi(feed_store, HOURLY_FEED, sp_id).values

        def load_old() -> int:
            with former_layout():
                return load(OLD_TABLE)

        loaded = paired(load, load_old, rounds)
        # the feed's values written again, parsed already: what the layout itself costs
        mc_id = import_espi(feed_store, HOURLY_FEED, sp_id).mc_id
        with feed_store.transaction() as tx:
            rows = [(mc_id, *row) for row in interval_days.read(tx, mc_id, 0, 2**40).rows()]
        measurements = Measurements(feed_store)

        def write(table: str = interval_days.TABLE) -> int:
            empty(feed_store, table)
            with feed_store.transaction() as tx:
                measurements.write_values(tx, rows, replace=True)
            return len(rows)

        def write_old() -> int:
            with former_layout():
                return write(OLD_TABLE)

        written = paired(write, write_old, rounds)
    finally:
        feed_store.close()
    return Figures(name, loaded, written, made, size / customers, old_size / customers, intervals)


def measure(customers: int, rounds: int, pg: str | None) -> list[Figures]:
    """The figures on SQLite, and on PostgreSQL when ``pg`` names a server."""
    found = []
    with tempfile.TemporaryDirectory() as folder:
        found.append(
            measure_store(
                lambda label: open_store(str(Path(folder) / f"{label}.db")),
                "SQLite",
                customers,
                rounds,
            )
        )
    if pg is not None:
        with ExitStack() as schemas:

            def open_pg(label: str) -> Store:
                return open_store(schemas.enter_context(postgres_schema(pg, f"bench_{label}")))

            found.append(measure_store(open_pg, "PostgreSQL", customers, rounds))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", help="a PostgreSQL DSN: the figures on it too")
    args = parser.parse_args()
    print(machine())
    for figures in measure(args.customers, args.rounds, args.pg):
        print(
            f"{figures.store}: {figures.intervals:,} intervals for {args.customers} customers\n"
            f"  Green Button import  {figures.espi.ours:10,.0f}/s  "
            f"(a row per interval {figures.espi.former:,.0f}/s, {figures.espi.ratio:.2f}x)\n"
            f"  its values, parsed   {figures.espi_written.ours:10,.0f}/s  "
            f"(a row per interval {figures.espi_written.former:,.0f}/s, "
            f"{figures.espi_written.ratio:.2f}x)\n"
            f"  synthetic month      {figures.generated.ours:10,.0f}/s  "
            f"(a row per interval {figures.generated.former:,.0f}/s, "
            f"{figures.generated.ratio:.2f}x)\n"
            f"  store                {figures.bytes_per_customer_month / 1000:10,.1f} kB "
            f"per customer-month (a row per interval "
            f"{figures.old_bytes_per_customer_month / 1000:,.1f} kB; target "
            f"≤ {TARGET_BYTES / 1000:g} kB)"
        )


if __name__ == "__main__":
    main()

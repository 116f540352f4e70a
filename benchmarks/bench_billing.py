"""Billing at utility scale: the determinant engine in intervals/s against a plain numpy
computation of the same TOU buckets and maximum demand (target: within 2x), and usage requests
answered per second end to end.

The engine's data is a month of 15-minute values of one delivered kWh channel per SP, in
America/New_York, as the MDM store hands them to it: columns of exact scaled integers
(docs/determinants.md PD-D16). Each call answers one usage request: the period's end found on
the data, every interval checked present, energy per TOU bucket and in total, maximum and
on-peak demand, each quantity with its counts and quality, as decimals. The anchor takes the
same month as numpy arrays (values as float64) and computes the same buckets and demands, as
an analyst would in a notebook; it checks nothing and answers floats. Both are given their
arrays ready, and both look TOUs up in a table of the map made beforehand. The engine also
keeps what depends only on the map and the period, never on the data (each date's kind, the
runs of one TOU: docs/determinants.md PD-D16), as it does for the SPs of a bill cycle, which
share their period; every pass after the first finds them, while the anchor classifies the
days afresh on each call.

One channel is July (2,976 intervals); a batch is many SPs, each with its own month of the
year (March and November with their clock changes), its own values and its own request, as a
nightly run bills them: the anchor computes each channel as it does the one.

End to end, a usage request goes the way flows 11 and 12 go (docs/flows.md §11): CCB's bill
segment creation sends the request, the MDM simulator calculates from its store over a month of
15-minute data with TOU and demand, answers, and CCB completes the bill segment from the
response; the figure is bill segments completed per second, the store SQLite with
synchronous=FULL as the runtime opens it by default.

The utility is the synthetic one of the demo (docs/simulators.md): residential customers on
RES-TOU, commercial ones on COM-DEM (demand with a ratchet), each with a 15-minute kWh channel,
synchronized into MDM and given a month of data (the spring clock change inside it) before the
clock starts; the billing run of every cycle and all that follows it until nothing is due is
timed. One worker, as ``ccbmdm run`` has by default.

Run: python benchmarks/bench_billing.py [--seconds 3] [--channels 200] [--customers 300]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time as clock
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from timing import BenchmarkFailed, Comparison, compare, machine, settle

from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants.engine import (
    CalculationRequest,
    Determinants,
    calculate,
)
from ccbmdm.runtime.sim.determinants.measurements import (
    Installation,
    IntervalChannel,
    IntervalColumns,
    Quality,
)
from ccbmdm.runtime.sim.determinants.usage_groups import (
    DayType,
    SqKey,
    UsageGroup,
    load_usage_group,
)

ROOT = Path(__file__).resolve().parents[1]
# The engine's time over the anchor's that it must stay within.
TARGET_RATIO = 2.0
ZONE = "America/New_York"
STEP = timedelta(minutes=15)
INSTALLED = datetime(2020, 1, 1, tzinfo=UTC)
DAY_MICROS = 86_400_000_000
MINUTE_MICROS = 60_000_000
JULY = date(2025, 7, 1)  # a summer month: on-peak hours on its weekdays


def usage_group() -> UsageGroup:
    """COM-DEM's TOU map, returning every energy bucket with the total and both demands."""
    base = load_usage_group("COM-DEM")
    assert base.tou_map is not None
    energy = [SqKey("KWH")] + [SqKey("KWH", tou) for tou in base.tou_map.tous]
    return UsageGroup("BENCH", base.tou_map, (*energy, SqKey("KW"), SqKey("KW", "ON")))


@dataclass(frozen=True)
class Month:
    """One SP's month: its request and its values, as columns and as the anchor's arrays."""

    request: CalculationRequest
    columns: IntervalColumns
    kwh: npt.NDArray[np.float64]

    @property
    def intervals(self) -> int:
        return len(self.columns.ends)

    def installation(self) -> Installation:
        """The SP's meter with the month as the store hands it to the engine: columns read
        afresh for each request, so nothing the engine derives from one request's columns
        (their spacing) is there for the next."""
        c = self.columns
        columns = IntervalColumns(c.ends, c.units, c.scale, c.codes, c.code_of, c.qualities)
        channel = IntervalChannel.from_columns("CH1", columns)
        return Installation("D1", INSTALLED, channels=(channel,))


def month(first: date, seed: int) -> Month:
    """A month of 15-minute values from legal midnight of ``first``: 0-3 kWh at scale 3, one
    in a hundred estimated."""
    time_zone = zone(ZONE)
    start = datetime.combine(first, time(0), time_zone).astimezone(UTC)
    following = date(first.year + first.month // 12, first.month % 12 + 1, first.day)
    end = datetime.combine(following, time(0), time_zone).astimezone(UTC)
    count = (end - start) // STEP
    rng = np.random.default_rng(seed)
    units = rng.integers(0, 3000, count, dtype=np.int64)
    code_of = (rng.random(count) < 0.01).astype(np.intp)
    first_end = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    ends = first_end + np.arange(1, count + 1, dtype=np.int64) * 900_000_000
    codes = (("1.0.0",), ("3.8.0",))
    columns = IntervalColumns(ends, units, 3, codes, code_of, (Quality.ACTUAL, Quality.ESTIMATED))
    request = CalculationRequest(start, end, end, ZONE)
    return Month(request, columns, units / 1000)


class Anchor:
    """The plain numpy computation: each interval's TOU from a (day kind x minute) table of
    the map, energy per TOU by bincount, maximum demand by max, in float64."""

    def __init__(self, group: UsageGroup) -> None:
        tou_map = group.tou_map
        assert tou_map is not None
        self.tous = tou_map.tous
        self.on = self.tous.index("ON")
        seasons = [s.season for s in tou_map.seasons]
        self.season_of_month = np.array(
            [seasons.index(tou_map.season_of(date(2001, m, 1))) for m in range(1, 13)]
        )
        rows = []
        for season in seasons:
            for day_type in DayType:
                windows = [
                    w for w in tou_map.windows if (w.season, w.day_type) == (season, day_type)
                ]
                if not windows and day_type is DayType.HOLIDAY:  # a holiday priced as a weekend
                    windows = [
                        w
                        for w in tou_map.windows
                        if (w.season, w.day_type) == (season, DayType.WEEKEND)
                    ]
                row = np.zeros(1440, dtype=np.intp)
                for w in windows:
                    row[w.start : w.end] = self.tous.index(w.tou)
                rows.append(row)
        self.table = np.stack(rows)
        self.holidays = np.array(
            [(d - date(1970, 1, 1)).days for d in tou_map.holidays], dtype=np.int64
        )
        offset = zone(ZONE).utcoffset(datetime(2001, 1, 15)) or timedelta(0)
        self.offset = offset // timedelta(microseconds=1) - 900_000_000

    def __call__(
        self, ends: npt.NDArray[np.int64], kwh: npt.NDArray[np.float64]
    ) -> tuple[float, npt.NDArray[np.float64], float, float]:
        """Total energy, energy per TOU, maximum demand and on-peak demand."""
        days, into = np.divmod(ends + self.offset, DAY_MICROS)
        # the kind of each date the intervals cover (season x day type), then of each interval
        dates = np.arange(days[0], days[-1] + 1)
        months = dates.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12
        holiday = np.isin(dates, self.holidays)
        day_type = np.where(holiday, 2, ((dates + 3) % 7 >= 5).astype(np.intp))
        kinds = self.season_of_month[months] * 3 + day_type
        tou = self.table[kinds[days - days[0]], into // MINUTE_MICROS]
        energy = np.asarray(np.bincount(tou, weights=kwh, minlength=len(self.tous)), np.float64)
        on_peak = kwh[tou == self.on]
        peak = float(on_peak.max()) * 4 if len(on_peak) else 0.0
        return float(kwh.sum()), energy, float(kwh.max()) * 4, peak


def check(
    answer: Determinants | Any, anchor: tuple[float, Any, float, float], tous: Sequence[str]
) -> None:
    """The engine and the anchor agree on every quantity to the engine's 3 decimals."""
    if not isinstance(answer, Determinants):
        raise BenchmarkFailed(f"the engine did not answer with determinants: {answer}")
    total, energy, demand, peak = anchor
    (period,) = answer.periods
    expected = {SqKey("KWH"): total, SqKey("KW"): demand, SqKey("KW", "ON"): peak}
    expected |= {SqKey("KWH", tou): float(energy[k]) for k, tou in enumerate(tous)}
    for key, value in expected.items():
        found = period.quantity(*key).quantity
        if abs(float(found) - value) > 0.0005:
            raise BenchmarkFailed(f"the engine's {key} is {found}, numpy's {value:.4f}")


def batch_months(channels: int) -> list[Month]:
    """``channels`` SPs, each billed over its own month of 2025 from its own start day."""
    rng = random.Random(18)
    return [
        month(date(2025, rng.randint(1, 12), rng.randint(1, 28)), seed) for seed in range(channels)
    ]


def measure_engine(months: Sequence[Month], seconds: float) -> tuple[int, Comparison]:
    """The intervals in ``months``, and the engine and the anchor timed over all of them in
    paired batches (seconds per pass)."""
    group = usage_group()
    anchor = Anchor(group)
    work = [(m.request, m.columns.ends, m.kwh, m) for m in months]
    for request, ends, kwh, m in work:
        check(calculate(request, [m.installation()], group), anchor(ends, kwh), anchor.tous)

    def engine() -> None:
        for request, _, _, m in work:
            calculate(request, [m.installation()], group)

    def numpy_anchor() -> None:
        for _, ends, kwh, _ in work:
            anchor(ends, kwh)

    settle()
    return sum(m.intervals for m in months), compare(engine, numpy_anchor, seconds)


@dataclass(frozen=True)
class Requests:
    """A billing run end to end: its usage requests, the intervals MDM held for them, and the
    seconds from the run to the last bill segment made from a response."""

    requests: int
    segments: Counter[str]
    intervals: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def measure_requests(customers: int) -> Requests:
    """The synthetic utility of ``customers`` billed once on a fresh SQLite store."""
    from ccbmdm.codegen.project import Project
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.config import DeliverySetting, reference_config
    from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
    from ccbmdm.runtime.sim.mdm.measurements import generate_interval_data
    from ccbmdm.runtime.sim.synthetic import CYCLES, Plan, generate

    # every node in process: a lease or a retry need not wait minutes (as in the demo)
    delivery = DeliverySetting(
        lease_s=30, backoff_base_s=0.05, backoff_factor=2, backoff_cap_s=1, poll_interval_s=0.01
    )
    time_zone = zone(ZONE)
    today = date.today()
    month = date(today.year if today < date(today.year, 3, 1) else today.year + 1, 3, 1)
    with tempfile.TemporaryDirectory() as folder:
        runtime = Runtime(
            reference_config(str(Path(folder) / "billing.db"), delivery), Project.load(ROOT)
        )
        try:
            ccb = runtime.systems["ccb"]
            assert isinstance(ccb, CcbSimulator)
            made = generate(ccb, Plan(customers=customers, month=month), converted=True)
            with runtime.store.transaction() as tx:
                for customer in made:  # each SA billed up to the month: its run covers it
                    ccb.billing.convert_history(
                        tx,
                        customer.sa_id,
                        customer.account_id,
                        datetime.combine(month - timedelta(days=28), time(0), time_zone),
                        datetime.combine(month, time(0), time_zone),
                    )
            ccb.initial_load()
            runtime.worker(batch=200).drain()
            data = generate_interval_data(runtime.store, month, seed=7)
            started = clock.perf_counter()
            segments = []
            with runtime.store.transaction() as tx:
                for cycle, _ in CYCLES:
                    entry = ccb.record(tx, "BILL CYCLE", (cycle,))
                    assert entry is not None
                    window = date.fromisoformat(entry["schedule"][0]["window_start_date"])
                    segments += ccb.billing.billing_run(tx, cycle, window)
            runtime.worker(batch=200).drain()
            seconds = clock.perf_counter() - started
            with runtime.store.transaction() as tx:
                found = [ccb.billing.segment(tx, segment) for segment in segments]
        finally:
            runtime.close()
    statuses = Counter(segment.status if segment else "missing" for segment in found)
    if statuses["FREEZABLE"] < len(segments) * 0.9:
        raise BenchmarkFailed(f"the billing run did not bill its customers: {dict(statuses)}")
    return Requests(len(segments), statuses, data.values, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--customers", type=int, default=300)
    args = parser.parse_args()
    print(machine())
    cases: list[tuple[str, Callable[[], list[Month]]]] = [
        ("one channel, July", lambda: [month(JULY, 1)]),
        (f"{args.channels} channels", lambda: batch_months(args.channels)),
    ]
    try:
        for name, made in cases:
            intervals, (ours, theirs, ratio) = measure_engine(made(), args.seconds)
            print(
                f"engine, {name}: {intervals / ours:12,.0f} intervals/s "
                f"({ours * 1e6:,.0f} us); numpy {intervals / theirs:12,.0f} intervals/s "
                f"({theirs * 1e6:,.0f} us); engine/numpy time {1 / ratio:.2f} "
                f"(target: at most {TARGET_RATIO:g})"
            )
        run = measure_requests(args.customers)
    except BenchmarkFailed as exc:
        sys.exit(str(exc))
    print(
        f"usage requests end to end, {args.customers} customers: {run.per_second:,.1f}/s "
        f"({run.requests} requests in {run.seconds:.1f} s; segments {dict(run.segments)}; "
        f"{run.intervals:,} intervals stored)"
    )


if __name__ == "__main__":
    main()

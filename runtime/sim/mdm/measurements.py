"""MDM's measurements: interval values per measuring component, and the read access that turns
MDM's master data and these values into the determinant engine's install events
(docs/determinants.md §1, §3-§5, §8; docs/flows.md §8-§10).

Interval values are keyed by the MC's production id and the interval-ending instant (PD-D01) as
UTC epoch seconds, and kept one row per MC and UTC day (``interval_days``); scalar readings are
the IMDs the master-data side loads (flow 10, and the installation and removal reads of flow 9).

Two ways bring interval data in: ``import_espi`` loads a Green Button feed onto an SP's interval
MC, and ``generate_interval_data`` makes a synthetic month for every installed interval MC.

Decisions:

* A value is written with the quality codes it came with; a Green Button reading without
  ReadingQuality counts as actual (``1.0.0``), its quality class otherwise mapping onto
  ``3.8.0`` or ``3.7.0`` (PD-D09).
* An imported feed goes onto the interval MC of the configuration still installed at the SP
  (the latest one when every event is closed); values outside that install event are skipped
  and counted, and an import replaces the values it covers.
* Synthetic data never overwrites a stored value, so an edit survives a second run. It covers
  the month from 00:00 of its first day in each SP's zone to the end of the billing windows
  that close it (the day after the latest window end MDM's bill cycles schedule in the next
  month), or to the month's end when MDM knows no such window.
* Synthetic shapes: residential meters follow a morning and a stronger evening peak on a low
  night base; commercial meters run at business hours on weekdays and at a low base otherwise.
  Each meter has its own size and noise from a generator seeded by the seed and its MC, so the
  data does not depend on the order meters are generated in. About one meter in four has one
  run of one to four estimated intervals (``3.8.0``).
* A scalar MC's readings are all its active IMDs, wherever they were read (its history serves
  estimation and high-low); of two at one instant a meter read wins over an install read.
* An SP linked to a US for part of the period contributes only while linked: its install
  events are clipped to the link.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants.measurements import (
    QUALITY_CODES,
    HowToUse,
    Installation,
    IntervalChannel,
    IntervalColumns,
    Quality,
    Reading,
    ReadingKind,
    Register,
    columns_of_texts,
    columns_of_units,
    instant,
)
from ccbmdm.runtime.sim.mdm import interval_days
from ccbmdm.runtime.sim.mdm.espi import EspiFeed, read_espi, read_espi_file
from ccbmdm.runtime.sim.mdm.records import (
    MeasuringComponent,
    Period,
    Records,
    ServicePoint,
    UsageSubscription,
    production_id,
)
from ccbmdm.runtime.sim.mdm.usage_schema import migrate
from ccbmdm.runtime.store import Store, Transaction

WATT_HOURS = 72  # ESPI UnitSymbolKind Wh, the unit espi.py converts to kWh
ACTUAL_CODES = QUALITY_CODES[Quality.ACTUAL]
ESTIMATED_CODES = QUALITY_CODES[Quality.ESTIMATED]
_READ_PRIORITY = {"METER_READ": 0, "REMOVAL": 1, "INSTALLATION": 2}


class MeasurementError(CcbmdmError, ValueError):
    """Measurements that cannot be stored as asked: names the SP or MC and what is wrong."""


def epoch(moment: datetime) -> int:
    """An instant as whole UTC epoch seconds (interval ends are whole seconds)."""
    return int(instant(moment).timestamp())


def from_epoch(seconds: int) -> datetime:
    """The UTC instant of epoch seconds. Every SP's month shares the same interval ends, so the
    instants are kept and shared (a datetime is immutable; a shared one also hashes once)."""
    found = _INSTANTS.get(seconds)
    if found is None:
        if len(_INSTANTS) >= _INSTANTS_KEPT:
            _INSTANTS.clear()
        found = _INSTANTS[seconds] = datetime.fromtimestamp(int(seconds), UTC)
    return found


_INSTANTS: dict[int, datetime] = {}
_INSTANTS_KEPT = 200_000  # a year of 15-minute ends is 35,040


def codes_text(codes: Iterable[str]) -> str:
    return " ".join(codes)


def codes_of(text: str) -> tuple[str, ...]:
    return tuple(text.split())


@dataclass(frozen=True)
class StoredValue:
    """One stored interval value."""

    mc_id: str
    end: datetime
    value: Decimal
    quality_codes: tuple[str, ...]


@dataclass(frozen=True)
class LinkedServicePoint:
    """An SP of a US over the part of a period it is linked."""

    service_point: ServicePoint
    link: Period


class Measurements:
    """Read access to MDM's measurements through its master data, by production id."""

    def __init__(self, store: Store) -> None:
        self.store = store
        migrate(store)
        self.records = Records(store)

    # -- interval values ---------------------------------------------------------------------

    def interval_columns(
        self, tx: Transaction, mc_id: str, after: datetime, until: datetime
    ) -> IntervalColumns:
        """The values of an interval MC stamped in ``(after, until]``, as the engine computes
        on them: read as columns, the values' integers straight from the bytes kept when they
        are plain decimals of one scale, else from their texts (a month holds thousands of
        values and a handful of code lists, each split once)."""
        scaled = interval_days.read_scaled(tx, mc_id, epoch(after), epoch(until))
        if scaled is not None:
            codes, code_of = _code_lists(scaled.codes)
            return columns_of_units(scaled.ends, scaled.units, scaled.scale, codes, code_of)
        found = interval_days.read(tx, mc_id, epoch(after), epoch(until))
        codes, code_of = _code_lists(found.codes)
        return columns_of_texts(found.ends, found.values, codes, code_of)

    def interval_value(self, tx: Transaction, mc_id: str, end: datetime) -> StoredValue | None:
        found = interval_days.read_one(tx, mc_id, epoch(end))
        if found is None:
            return None
        value, codes = found
        return StoredValue(mc_id, instant(end), Decimal(value), codes_of(codes))

    # -- scalar readings ---------------------------------------------------------------------

    def readings(self, tx: Transaction, mc_id: str) -> tuple[Reading, ...]:
        """The active IMDs of a scalar MC, one per instant (a meter read before an install
        read)."""
        rows = tx.fetch(
            """SELECT measurement_date_time, reading, quality_code, reason
               FROM mdm_scalar_measurement WHERE mc_id = :mc AND status = 'ACTIVE'""",
            {"mc": mc_id},
        )
        chosen: dict[datetime, tuple[int, Reading]] = {}
        for row in rows:
            at = self.records.instant(row["measurement_date_time"])
            assert at is not None
            rank = _READ_PRIORITY.get(str(row["reason"]), 9)
            reading = Reading(at, Decimal(row["reading"]), codes_of(row["quality_code"]))
            if at not in chosen or rank < chosen[at][0]:
                chosen[at] = (rank, reading)
        return tuple(reading for _, reading in sorted(chosen.values(), key=lambda c: c[1].at))

    def register(self, tx: Transaction, mc: MeasuringComponent) -> Register:
        return Register(
            mc=mc.production_id,
            uom=mc.uom,
            tou=mc.tou or "",
            sqi=mc.sqi or "",
            number_of_dials=mc.number_of_dials,
            decimal_positions=mc.decimal_positions,
            register_constant=mc.register_constant,
            reading_kind=ReadingKind(mc.reading_kind),
            how_to_use=HowToUse(mc.contribution),
            readings=self.readings(tx, mc.production_id),
        )

    # -- install events ----------------------------------------------------------------------

    def installations(
        self,
        tx: Transaction,
        sp_id: str,
        start: datetime,
        end: datetime,
        within: Period | None = None,
    ) -> tuple[Installation, ...]:
        """The SP's install events over ``[start, end]`` as the engine takes them, each with
        its registers' readings and its channels' values in ``(start, end]``; ``within``
        clips them to a link period."""
        low, high = instant(start), instant(end)
        if within is not None:
            low = max(low, within.start)
            high = min(high, within.end) if within.end is not None else high
        if low >= high:
            return ()
        rows = tx.fetch(
            """SELECT id FROM mdm_install_event
               WHERE sp_id = :sp AND status = 'ACTIVE' AND installation_date_time < :high
                 AND (removal_date_time IS NULL OR removal_date_time > :low)
               ORDER BY installation_date_time, id""",
            {"sp": sp_id, "low": tx.instant(low), "high": tx.instant(high)},
        )
        found = []
        for row in rows:
            event = self.records.install_event(tx, str(row["id"]))
            assert event is not None
            configuration = self.records.device_configuration(tx, event.device_configuration_id)
            if configuration is None:
                continue
            installed, removed = event.period.start, event.period.end
            if within is not None:
                installed = max(installed, within.start)
                if within.end is not None:
                    removed = within.end if removed is None else min(removed, within.end)
            if removed is not None and removed <= installed:
                continue
            registers, channels = [], []
            for mc in configuration.measuring_components:
                if mc.status != "ACTIVE":
                    continue
                if mc.interval:
                    assert mc.seconds_per_interval is not None
                    columns = self.interval_columns(tx, mc.production_id, low, high)
                    channels.append(
                        IntervalChannel.from_columns(
                            mc.production_id,
                            columns,
                            uom=mc.uom,
                            sqi=mc.sqi or "",
                            seconds_per_interval=mc.seconds_per_interval,
                        )
                    )
                else:
                    registers.append(self.register(tx, mc))
            found.append(
                Installation(
                    device=configuration.device_id,
                    installed_at=installed,
                    removed_at=removed,
                    registers=tuple(registers),
                    channels=tuple(channels),
                )
            )
        return tuple(found)

    def linked_service_points(
        self, tx: Transaction, us: UsageSubscription, start: datetime, end: datetime
    ) -> tuple[LinkedServicePoint, ...]:
        """The SPs linked to a US at some time in ``[start, end)``, with their link periods."""
        low, high = instant(start), instant(end)
        linked = []
        for link in us.service_points:
            if link.period.start >= high or (
                link.period.end is not None and link.period.end <= low
            ):
                continue
            sp = self.records.service_point(tx, link.sp_id)
            if sp is not None:
                linked.append(LinkedServicePoint(sp, link.period))
        return tuple(linked)

    def us_installations(
        self, tx: Transaction, us: UsageSubscription, start: datetime, end: datetime
    ) -> tuple[tuple[LinkedServicePoint, ...], tuple[Installation, ...]]:
        """A US's SPs over a period and their install events, clipped to the links (the US as
        the caller read it)."""
        points = self.linked_service_points(tx, us, start, end)
        installations: list[Installation] = []
        for point in points:
            installations += self.installations(
                tx, point.service_point.production_id, start, end, point.link
            )
        return points, tuple(installations)

    # -- measurement cycles ------------------------------------------------------------------

    def default_bill_cycle(self, tx: Transaction, measurement_cycle: str) -> str | None:
        """The bill cycle a measurement cycle defaults to: MDM's own entry, else ``MCnn`` gives
        ``Mnn`` ([BC-ACCT]); None when neither says."""
        row = tx.fetch_one(
            """SELECT default_bill_cycle FROM mdm_measurement_cycle
               WHERE measurement_cycle = :cycle""",
            {"cycle": measurement_cycle},
        )
        if row is not None:
            return str(row["default_bill_cycle"])
        digits = measurement_cycle[2:]
        if measurement_cycle.startswith("MC") and digits.isdigit():
            return f"M{digits}"
        return None

    def set_measurement_cycle(
        self,
        tx: Transaction,
        measurement_cycle: str,
        *,
        default_bill_cycle: str | None = None,
        read_dates: Iterable[date] = (),
    ) -> None:
        """MDM's own data of a measurement cycle: a default bill cycle other than the naming
        rule's, and scheduled read dates to add."""
        if default_bill_cycle is not None:
            tx.send(
                """INSERT INTO mdm_measurement_cycle (measurement_cycle, default_bill_cycle)
                   VALUES (:cycle, :bill_cycle) ON CONFLICT (measurement_cycle)
                   DO UPDATE SET default_bill_cycle = excluded.default_bill_cycle""",
                {"cycle": measurement_cycle, "bill_cycle": default_bill_cycle},
            )
        for day in read_dates:
            tx.send(
                """INSERT INTO mdm_measurement_cycle_read (measurement_cycle, read_date)
                   VALUES (:cycle, :day) ON CONFLICT DO NOTHING""",
                {"cycle": measurement_cycle, "day": day.isoformat()},
            )

    # -- writing -----------------------------------------------------------------------------

    def write_values(
        self, tx: Transaction, rows: Iterable[tuple[str, int, str, str]], *, replace: bool
    ) -> None:
        """Store ``(mc_id, end epoch, value text, codes text)``; ``replace``: a value already
        stored for an instant is overwritten, else kept."""
        interval_days.write(tx, self.store.dialect, rows, replace=replace)

    def record_edit(
        self,
        tx: Transaction,
        mc_id: str,
        kind: str,
        at: datetime,
        old: tuple[Decimal, tuple[str, ...]] | None,
        new: tuple[Decimal, tuple[str, ...]],
    ) -> None:
        """Keep the replaced version of an edited measurement (PD-D09)."""
        tx.send(
            f"""INSERT INTO mdm_measurement_edit (mc_id, kind, measured_at, old_value,
                  old_quality_codes, new_value, new_quality_codes, edited_at)
                VALUES (:mc, :kind, :at, :old, :old_codes, :new, :new_codes, {tx.now})""",
            {
                "mc": mc_id,
                "kind": kind,
                "at": epoch(at),
                "old": None if old is None else str(old[0]),
                "old_codes": None if old is None else codes_text(old[1]),
                "new": str(new[0]),
                "new_codes": codes_text(new[1]),
            },
        )


# -- Green Button import ------------------------------------------------------------------------


@dataclass(frozen=True)
class EspiImport:
    """What an import stored: the MC, the values written and those outside the install event."""

    mc_id: str
    seconds_per_interval: int
    values: int
    skipped: int
    gaps: int
    first_end: datetime | None
    last_end: datetime | None


def import_espi(
    store: Store, feed: bytes | str | Path, sp_id: str, *, system: str = "CCB"
) -> EspiImport:
    """Load a Green Button feed as the interval channel of the SP's installed configuration's
    interval MC; ``sp_id`` is the SP's key in ``system`` (the CCB SP id)."""
    parsed: EspiFeed = read_espi(feed) if isinstance(feed, bytes) else read_espi_file(feed)
    channel = parsed.channel()
    measurements = Measurements(store)
    with store.transaction() as tx:
        sp = production_id(tx, system, "D1-SP", (sp_id,))
        if sp is None:
            raise MeasurementError(f"MDM has no SP for {system} SP {sp_id}")
        event_row = tx.fetch_one(
            """SELECT id FROM mdm_install_event WHERE sp_id = :sp AND status = 'ACTIVE'
               ORDER BY CASE WHEN removal_date_time IS NULL THEN 0 ELSE 1 END,
                        installation_date_time DESC, id DESC LIMIT 1""",
            {"sp": sp},
        )
        if event_row is None:
            raise MeasurementError(f"SP {sp_id} has no configuration installed")
        event = measurements.records.install_event(tx, str(event_row["id"]))
        assert event is not None
        configuration = measurements.records.device_configuration(tx, event.device_configuration_id)
        assert configuration is not None
        interval = [
            mc for mc in configuration.measuring_components if mc.interval and mc.status == "ACTIVE"
        ]
        if len(interval) != 1:
            raise MeasurementError(
                f"SP {sp_id}: the installed configuration has {len(interval)} interval MCs; "
                "a feed goes onto exactly one"
            )
        mc = interval[0]
        if channel.reading_type.uom != WATT_HOURS or mc.uom != "KWH":
            raise MeasurementError(
                f"SP {sp_id}: the feed measures {channel.reading_type.uom_name}, MC "
                f"{mc.register_id} {mc.uom}; only Wh feeds load onto a KWH MC"
            )
        if channel.interval_length != mc.seconds_per_interval:
            raise MeasurementError(
                f"SP {sp_id}: the feed has {channel.interval_length}-second intervals, MC "
                f"{mc.register_id} {mc.seconds_per_interval}-second ones; they must match"
            )
        step = timedelta(seconds=channel.interval_length)
        rows: list[tuple[str, int, str, str]] = []
        skipped = 0
        for reading in channel.readings:
            inside = event.period.start <= reading.end - step and (
                event.period.end is None or reading.end <= event.period.end
            )
            if not inside:
                skipped += 1
                continue
            codes = (
                ACTUAL_CODES if reading.quality is None else QUALITY_CODES[Quality(reading.quality)]
            )
            rows.append((mc.production_id, epoch(reading.end), str(reading.kwh), codes_text(codes)))
        measurements.write_values(tx, rows, replace=True)
    return EspiImport(
        mc_id=mc.production_id,
        seconds_per_interval=channel.interval_length,
        values=len(rows),
        skipped=skipped,
        gaps=len(channel.gaps),
        first_end=from_epoch(rows[0][1]) if rows else None,
        last_end=from_epoch(rows[-1][1]) if rows else None,
    )


# -- synthetic interval data --------------------------------------------------------------------


@dataclass(frozen=True)
class _Meter:
    mc_id: str
    seconds: int
    time_zone: str
    commercial: bool
    installed: datetime
    removed: datetime | None


@dataclass(frozen=True)
class GeneratedData:
    meters: int
    values: int
    start: date
    end: date  # excluded


def generate_interval_data(
    store: Store,
    month: date,
    seed: int,
    progress: Callable[[int], None] | None = None,
    *,
    batch: int = 50,
) -> GeneratedData:
    """Synthetic kWh for every interval MC installed during ``month`` and its billing windows,
    written ``batch`` meters per transaction; ``progress`` is told the meters done."""
    measurements = Measurements(store)
    first = month.replace(day=1)
    with store.transaction() as tx:
        last = _data_end(tx, first)
        meters = _installed_meters(tx, measurements.records, first, last)
    profiles: dict[tuple[str, int], _Profile] = {}
    total = 0
    for start in range(0, len(meters), batch):
        group = meters[start : start + batch]
        days: dict[tuple[str, int], interval_days.Day] = {}
        for meter in group:
            key = (meter.time_zone, meter.seconds)
            if key not in profiles:
                profiles[key] = _Profile.of(meter.time_zone, meter.seconds, first, last)
            for day, count in _meter_days(meter, profiles[key], seed):
                total += count
                earlier = days.get((meter.mc_id, day.day))
                if earlier is not None:  # a meter listed twice (installed again) keeps the
                    # first values of an end
                    day = interval_days.Day.of(
                        meter.mc_id, day.day, day.intervals() | earlier.intervals()
                    )
                days[(meter.mc_id, day.day)] = day
        with store.transaction() as tx:
            interval_days.keep_days(tx, store.dialect, list(days.values()))
        if progress is not None:
            progress(len(group))
    return GeneratedData(len(meters), total, first, last)


def _code_lists(texts: list[str]) -> tuple[tuple[tuple[str, ...], ...], list[int]]:
    """The distinct code lists of a range's values, each split once, and each value's index
    into them."""
    index = {text: number for number, text in enumerate(dict.fromkeys(texts))}
    return tuple(map(codes_of, index)), list(map(index.__getitem__, texts))


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _data_end(tx: Transaction, first: date) -> date:
    following = _next_month(first)
    row = tx.fetch_one(
        """SELECT max(window_end_date) AS last FROM mdm_bill_cycle_schedule
           WHERE window_start_date >= :low AND window_start_date < :high""",
        {"low": following.isoformat(), "high": _next_month(following).isoformat()},
    )
    if row is None or row["last"] is None:
        return following
    return max(following, date.fromisoformat(str(row["last"])) + timedelta(days=1))


def _installed_meters(tx: Transaction, records: Records, first: date, last: date) -> list[_Meter]:
    # a day's margin either side: SPs' zones place the span's bounds within it
    low = datetime.combine(first - timedelta(days=1), datetime.min.time(), UTC)
    high = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    rows = tx.fetch(
        """SELECT m.id AS mc_id, m.seconds_per_interval, s.time_zone, s.sp_type,
                  e.installation_date_time, e.removal_date_time
           FROM mdm_install_event e
           JOIN mdm_service_point s ON s.id = e.sp_id
           JOIN mdm_measuring_component m ON m.device_configuration_id = e.device_configuration_id
           WHERE e.status = 'ACTIVE' AND m.status = 'ACTIVE' AND m.kind = 'INTERVAL'
             AND m.uom = 'KWH' AND e.installation_date_time < :high
             AND (e.removal_date_time IS NULL OR e.removal_date_time > :low)
           ORDER BY m.id, e.installation_date_time""",
        {"low": tx.instant(low), "high": tx.instant(high)},
    )
    meters = []
    for row in rows:
        installed = records.instant(row["installation_date_time"])
        assert installed is not None
        meters.append(
            _Meter(
                mc_id=str(row["mc_id"]),
                seconds=int(row["seconds_per_interval"]),
                time_zone=str(row["time_zone"]),
                commercial="COM" in str(row["sp_type"]).upper(),
                installed=installed,
                removed=records.instant(row["removal_date_time"]),
            )
        )
    return meters


@dataclass(frozen=True)
class _Profile:
    """The span's interval ends in one zone and length, with the load shapes at each."""

    ends: tuple[int, ...]
    residential: tuple[float, ...]
    commercial: tuple[float, ...]
    per_day: int

    @classmethod
    def of(cls, time_zone: str, seconds: int, first: date, last: date) -> _Profile:
        sp_zone = zone(time_zone)
        start = datetime.combine(first, datetime.min.time(), sp_zone).astimezone(UTC)
        stop = datetime.combine(last, datetime.min.time(), sp_zone).astimezone(UTC)
        step = timedelta(seconds=seconds)
        ends, residential, commercial = [], [], []
        moment = start + step
        while moment <= stop:
            local = (moment - step / 2).astimezone(sp_zone)  # the middle of the interval
            hour = local.hour + local.minute / 60
            weekend = local.weekday() >= 5
            ends.append(int(moment.timestamp()))
            residential.append(_residential(hour, weekend))
            commercial.append(_commercial(hour, weekend))
            moment += step
        return cls(tuple(ends), tuple(residential), tuple(commercial), 86_400 // seconds)


def _bump(hour: float, centre: float, width: float) -> float:
    return math.exp(-(((hour - centre) / width) ** 2))


def _residential(hour: float, weekend: bool) -> float:
    morning = 0.9 * _bump(hour, 9.0 if weekend else 7.5, 1.5)
    evening = 1.6 * _bump(hour, 19.0, 2.2)
    return 0.45 + morning + evening


def _commercial(hour: float, weekend: bool) -> float:
    if weekend:
        return 0.3
    open_hours = 1.0 / (1 + math.exp(-(hour - 7.5) * 3)) / (1 + math.exp((hour - 18.5) * 3))
    return 0.3 + 1.2 * open_hours


def _meter_days(
    meter: _Meter, profile: _Profile, seed: int
) -> Iterator[tuple[interval_days.Day, int]]:
    """The meter's synthetic values, day by day (UTC, as ``interval_days`` keeps them) with
    each day's count: kWh to three decimals, drawn in the order of the ends from a generator
    seeded by the MC; a quarter of the meters have a run of up to four estimated intervals."""
    rng = random.Random(f"{seed}:{meter.mc_id}")
    daily_kwh = rng.uniform(180, 650) if meter.commercial else rng.uniform(14, 38)
    shape = profile.commercial if meter.commercial else profile.residential
    scale = daily_kwh * 1000 / profile.per_day / (sum(shape) / len(shape) if shape else 1)
    estimated: set[int] = set()
    if shape and rng.random() < 0.25:
        run = rng.randint(1, 4)
        begin = rng.randrange(0, max(1, len(shape) - run))
        estimated = set(range(begin, begin + run))
    ends = profile.ends
    low = int(meter.installed.timestamp()) + meter.seconds
    first = bisect.bisect_left(ends, low)
    last = (
        len(ends)
        if meter.removed is None
        else bisect.bisect_right(ends, int(meter.removed.timestamp()))
    )
    # Wh as int(scale * shape * (0.8 + 0.4 * draw)) for each end in turn: the same floating
    # point operations in the same order over arrays, so the same values as one by one.
    uniform = rng.random
    draws = numpy.fromiter((uniform() for _ in range(first, last)), float, last - first)
    wh = (scale * numpy.asarray(shape[first:last]) * (0.8 + 0.4 * draws)).astype(numpy.int64)
    units = wh.tolist()
    actual, flagged = codes_text(ACTUAL_CODES), codes_text(ESTIMATED_CODES)
    start = first
    while start < last:
        day = interval_days.day_of(ends[start])
        stop = bisect.bisect_right(ends, (day + 1) * interval_days.DAY, start, last)
        codes = [actual] * (stop - start)
        for i in estimated.intersection(range(start, stop)):
            codes[i - start] = flagged
        yield (
            interval_days.Day.of_units(
                meter.mc_id, day, ends[start:stop], units[start - first : stop - first], 3, codes
            ),
            stop - start,
        )
        start = stop

"""Standard time, the interval grid and TOU bucketing (docs/determinants.md PD-D01, PD-D02, §6).

MDM evaluates TOU maps in standard time, so an interval is bucketed by its start in the SP's zone
without daylight saving: in summer the legal hour 00:00-01:00 belongs to the previous standard
date. The interval grid is anchored at standard midnight for the same reason, which for every
length up to an hour is also the legal grid.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from ccbmdm.runtime.sim.determinants.measurements import instant
from ccbmdm.runtime.sim.determinants.usage_groups import DayType, TouMap

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = _EPOCH.date().toordinal()
_MICROSECOND = timedelta(microseconds=1)
_DAY_MICROSECONDS = 86_400_000_000
_MINUTE_MICROSECONDS = 60_000_000


def legal_time(moment: datetime, time_zone: ZoneInfo) -> datetime:
    """``moment`` with the SP's legal offset as a fixed offset: it prints as the contracts want
    (``-04:00``) and, unlike a zone-aware time in the repeated autumn hour, compares by instant."""
    local = moment.astimezone(time_zone)
    fixed = moment.astimezone(_fixed(local.utcoffset() or timedelta(0)))  # faster than replace
    return fixed.replace(fold=1) if local.fold else fixed  # the repeated hour's second time


@functools.lru_cache(maxsize=256)
def _fixed(offset: timedelta) -> timezone:
    """The fixed-offset zone of ``offset``: a zone has a few, and every reported time needs one."""
    return timezone(offset)


@functools.lru_cache(maxsize=64)
def _standard_offset(time_zone: ZoneInfo) -> timedelta:
    """A zone's standard offset: its UTC offset without daylight saving (any date tells it)."""
    sample = datetime(2001, 1, 15, tzinfo=time_zone)
    return (sample.utcoffset() or timedelta(0)) - (sample.dst() or timedelta(0))


def standard_time(moment: datetime, time_zone: ZoneInfo) -> datetime:
    """``moment`` as naive standard local time: UTC plus the zone's standard offset."""
    local = moment.astimezone(time_zone)
    offset = (local.utcoffset() or timedelta(0)) - (local.dst() or timedelta(0))
    return (moment.astimezone(UTC) + offset).replace(tzinfo=None)


def _into_day(moment: datetime, seconds: int, time_zone: ZoneInfo) -> timedelta:
    """How far ``moment`` lies past the last grid instant at or before it: its standard time
    of day (UTC plus the standard offset in force, as ``standard_time``) modulo the length."""
    local = moment.astimezone(time_zone)
    offset = (local.utcoffset() or timedelta(0)) - (local.dst() or timedelta(0))
    micros = (moment - _EPOCH + offset) // _MICROSECOND
    return _MICROSECOND * (micros % _DAY_MICROSECONDS % (seconds * 1_000_000))


def on_grid(moment: datetime, seconds: int, time_zone: ZoneInfo) -> bool:
    return not _into_day(moment, seconds, time_zone)


def grid_floor(moment: datetime, seconds: int, time_zone: ZoneInfo) -> datetime:
    return instant(moment) - _into_day(moment, seconds, time_zone)


def grid_ceiling(moment: datetime, seconds: int, time_zone: ZoneInfo) -> datetime:
    """The next interval end at or after ``moment``: where PD-D01 moves a boundary MDM found
    itself (a scalar read, an exchange) that is not on the grid."""
    past = _into_day(moment, seconds, time_zone)
    return instant(moment) + (timedelta(seconds=seconds) - past if past else timedelta(0))


@dataclass(frozen=True)
class TouOverride:
    """A dynamic option event in force over ``[start, end)``: its option's TOU map replaces the
    usage group's (``[TOU-DOP]``)."""

    start: datetime
    end: datetime
    tou_map: TouMap

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", instant(self.start))
        object.__setattr__(self, "end", instant(self.end))


@dataclass(frozen=True)
class TouCalendar:
    """Which TOU an interval falls in, for one SP zone, map and set of option events."""

    time_zone: ZoneInfo
    tou_map: TouMap | None
    overrides: Sequence[TouOverride] = ()
    _by_minute: dict[tuple[date, int], str] = field(default_factory=dict, compare=False)

    def tou_of(self, end: datetime, seconds: int) -> str:
        """The TOU of the interval stamped ``end``; blank without a map. Outside an override
        the TOU depends only on the standard-time day and minute, which a month's intervals
        share day after day, so each is looked up once."""
        start = end - timedelta(seconds=seconds)
        if self.tou_map is None and not self.overrides:
            return ""
        override = next((o.tou_map for o in self.overrides if o.start <= start < o.end), None)
        if override is not None:
            return override.tou_at(standard_time(start, self.time_zone))
        if self.tou_map is None:
            return ""
        standard = start.astimezone(UTC).replace(tzinfo=None) + _standard_offset(self.time_zone)
        key = (standard.date(), standard.hour * 60 + standard.minute)
        tou = self._by_minute.get(key)
        if tou is None:
            tou = self._by_minute[key] = self.tou_map.tou_at(standard)
        return tou

    def tous_of(self, first_end: datetime, count: int, seconds: int) -> list[str]:
        """The TOUs of ``count`` consecutive intervals of ``seconds``, the first stamped
        ``first_end`` (each ``seconds`` after the one before, as datetime arithmetic on
        ``first_end`` steps): ``tou_of`` of each, in order. Outside an override a TOU depends
        only on the season and day type of the interval's standard-time date and its minute of
        the day, so each date is classified once and takes its run from that day kind's row."""
        tou_map = self.tou_map
        if tou_map is None and not self.overrides:
            return [""] * count
        if tou_map is None or self.overrides or first_end.tzinfo is not UTC:
            return [
                self.tou_of(first_end + timedelta(seconds=seconds * k), seconds)
                for k in range(count)
            ]
        step = seconds * 1_000_000
        first_start = (first_end - _EPOCH) // _MICROSECOND - step
        offset = _standard_offset(self.time_zone) // _MICROSECOND
        rows: dict[tuple[str, DayType, int], tuple[str, ...]] = {}
        found: list[str] = []
        while len(found) < count:
            number, into = divmod(first_start + len(found) * step + offset, _DAY_MICROSECONDS)
            on = date.fromordinal(_EPOCH_DAY + number)
            phase, first = into % step, into // step
            kind = (tou_map.season_of(on), tou_map.day_type_of(on), phase)
            row = rows.get(kind)
            if row is None:
                row = rows[kind] = _day_row(tou_map, on, step, phase)
            found.extend(row[first : first + count - len(found)])
        return found

    def tou_runs(self, first_end: int, count: int, seconds: int) -> TouRuns:
        """The TOUs of ``count`` consecutive intervals of ``seconds`` as runs, the first
        interval stamped ``first_end`` microseconds after the epoch: ``tous_of`` of each, from
        the same day rows, each date classified once per map and each day kind's row made once
        per interval length. Outside an override the runs depend only on the map and the span,
        which every SP billed over the same period shares: they are made once per span."""
        tou_map = self.tou_map
        if tou_map is None and not self.overrides:
            return TouRuns.of(("",), np.zeros(count, dtype=np.intp))
        if tou_map is None or self.overrides:
            named = self.tous_of(_EPOCH + _MICROSECOND * first_end, count, seconds)
            codes = tuple(dict.fromkeys(named))
            index = {code: k for k, code in enumerate(codes)}
            return TouRuns.of(codes, np.fromiter(map(index.__getitem__, named), np.intp, count))
        step = seconds * 1_000_000
        offset = _standard_offset(self.time_zone) // _MICROSECOND
        first_day, into = divmod(first_end - step + offset, _DAY_MICROSECONDS)
        phase, slot = into % step, into // step
        return _MapRows.of(tou_map).runs(first_day, step, phase, slot, count)


@dataclass(frozen=True, eq=False)
class TouRuns:
    """The TOUs of a span of consecutive intervals as runs, each a stretch of intervals of one
    TOU: a month of 15-minute intervals has a few dozen, so a channel's values are bucketed
    by adding and comparing whole runs (``np.add.reduceat``) rather than by a mask over every
    interval for every TOU."""

    tous: tuple[str, ...]
    starts: npt.NDArray[np.intp]  # each run's first interval, from 0, increasing
    tou_of: npt.NDArray[np.intp]  # each run's TOU, an index into tous
    values: tuple[int, ...]  # the intervals of each TOU
    choose: npt.NDArray[np.int64]  # one row a TOU, 1 for each of its runs
    _runs_of: dict[int, npt.NDArray[np.intp]] = field(default_factory=dict, repr=False)

    def runs_of(self, k: int) -> npt.NDArray[np.intp]:
        """The runs of TOU ``k``: found when first asked for (most spans ask for one TOU's, to
        find its highest value, if any) and kept with the runs."""
        found = self._runs_of.get(k)
        if found is None:
            found = self._runs_of[k] = np.flatnonzero(self.tou_of == k)
        return found

    @classmethod
    def of(cls, tous: tuple[str, ...], by_interval: npt.NDArray[np.intp]) -> TouRuns:
        """The runs of intervals whose TOUs are ``by_interval``, indexes into ``tous``."""
        count = len(by_interval)
        starts = np.flatnonzero(by_interval[1:] != by_interval[:-1]) + 1
        starts = np.concatenate((np.zeros(min(count, 1), dtype=np.intp), starts))
        tou_of = by_interval[starts]
        choose = (tou_of == np.arange(len(tous))[:, None]).astype(np.int64)
        bounds = np.concatenate((starts, np.full(1, count, dtype=np.intp)))
        values: list[int] = (choose @ (bounds[1:] - bounds[:-1])).tolist()
        return cls(tous, starts, tou_of, tuple(values), choose)


def _day_row(tou_map: TouMap, on: date, step: int, phase: int) -> tuple[str, ...]:
    """The TOUs of the intervals of ``step`` microseconds that start ``phase`` after standard
    midnight and then every ``step`` through the day, on a date of ``on``'s season and day
    type: kept for every date of that kind (``TouMap.tou_at`` reads nothing else of it)."""
    key = (tou_map, tou_map.season_of(on), tou_map.day_type_of(on), step, phase)
    row = _DAY_ROWS.get(key)
    if row is None:
        minutes = [start // _MINUTE_MICROSECONDS for start in range(phase, _DAY_MICROSECONDS, step)]
        row = tuple(
            tou_map.tou_at(datetime.combine(on, time(minute // 60, minute % 60)))
            for minute in minutes
        )
        if len(_DAY_ROWS) >= 1024:
            _DAY_ROWS.clear()
        _DAY_ROWS[key] = row
    return row


_DAY_ROWS: dict[tuple[TouMap, str, DayType, int, int], tuple[str, ...]] = {}


class _MapRows:
    """A TOU map's dates by day kind and each kind's TOUs by interval, as indexes into the
    map's TOUs, and the runs of the spans asked for: what ``TouCalendar.tou_runs`` reads, made
    once per map."""

    def __init__(self, tou_map: TouMap) -> None:
        self.tou_map, self.tous = tou_map, tou_map.tous
        self.index = {tou: k for k, tou in enumerate(self.tous)}
        self.kind_of: dict[int, int] = {}  # a date (days after the epoch): its kind
        self.dates: list[date] = []  # a date of each kind
        self.kinds_by: dict[tuple[str, DayType], int] = {}
        self.tables: dict[tuple[int, int], npt.NDArray[np.intp]] = {}
        self.spans: dict[tuple[int, int, int, int, int], TouRuns] = {}

    @classmethod
    def of(cls, tou_map: TouMap) -> _MapRows:
        rows = _MAPS.get(id(tou_map))
        if rows is None or rows.tou_map is not tou_map:
            if len(_MAPS) >= 64:
                _MAPS.clear()
            rows = _MAPS[id(tou_map)] = cls(tou_map)
        return rows

    def runs(self, first_day: int, step: int, phase: int, slot: int, count: int) -> TouRuns:
        """The runs of ``count`` intervals of ``step`` from ``phase``, the first the ``slot``-th
        of the date ``first_day`` days after the epoch."""
        key = (first_day, step, phase, slot, count)
        found = self.spans.get(key)
        if found is None:
            per_day = len(range(phase, _DAY_MICROSECONDS, step))
            days = (slot + count - 1) // per_day + 1 if count else 0
            kinds = self.kinds(first_day, days, step, phase)
            by_interval = self.tables[step, phase][kinds].ravel()[slot : slot + count]
            if len(self.spans) >= 1024:  # a nightly run meets a few dozen spans
                self.spans.clear()
            found = self.spans[key] = TouRuns.of(self.tous, by_interval)
        return found

    def kinds(self, first_day: int, days: int, step: int, phase: int) -> npt.NDArray[np.intp]:
        """The kind of each of ``days`` dates from ``first_day``, with the row of each kind
        made for intervals of ``step`` from ``phase``, date by date as ``tous_of`` meets them."""
        table = self.tables.get((step, phase))
        kinds = []
        for number in range(first_day, first_day + days):
            kind = self.kind_of.get(number)
            if kind is None:
                on = date.fromordinal(_EPOCH_DAY + number)
                named = (self.tou_map.season_of(on), self.tou_map.day_type_of(on))
                kind = self.kind_of[number] = self.kinds_by.setdefault(named, len(self.dates))
                if kind == len(self.dates):
                    self.dates.append(on)
            if table is None or kind >= len(table):
                table = self.tables[step, phase] = self.table(step, phase)
            kinds.append(kind)
        return np.array(kinds, dtype=np.intp)

    def table(self, step: int, phase: int) -> npt.NDArray[np.intp]:
        """The TOU of each interval of each day kind known so far, one row a kind."""
        rows = [_day_row(self.tou_map, on, step, phase) for on in self.dates]
        return np.array([[self.index[tou] for tou in row] for row in rows], dtype=np.intp)


_MAPS: dict[int, _MapRows] = {}

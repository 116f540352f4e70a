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

from ccbmdm.runtime.sim.measurements import instant
from ccbmdm.runtime.sim.usage_groups import DayType, TouMap

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = _EPOCH.date().toordinal()
_MICROSECOND = timedelta(microseconds=1)
_DAY_MICROSECONDS = 86_400_000_000
_MINUTE_MICROSECONDS = 60_000_000


def legal_time(moment: datetime, time_zone: ZoneInfo) -> datetime:
    """``moment`` with the SP's legal offset as a fixed offset: it prints as the contracts want
    (``-04:00``) and, unlike a zone-aware time in the repeated autumn hour, compares by instant."""
    local = moment.astimezone(time_zone)
    return local.replace(tzinfo=timezone(local.utcoffset() or timedelta(0)))


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
    """How far ``moment`` lies past the last grid instant at or before it."""
    local = standard_time(moment, time_zone)
    since_midnight = timedelta(hours=local.hour, minutes=local.minute, seconds=local.second)
    since_midnight += timedelta(microseconds=local.microsecond)
    return since_midnight % timedelta(seconds=seconds)


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

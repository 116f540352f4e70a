"""Usage groups: MDM's calculation rules for a rate, one YAML file per group named by its
external id, which equals the CCB rate schedule code (docs/determinants.md PD-D14).

A file is checked completely when it is loaded, so a TOU map with a gap fails with its file, key
and the uncovered hours instead of leaving an interval without a bucket at billing time.

Decisions:

* Holidays of a season without ``HOLIDAY`` windows are priced as its weekend, as most tariffs do;
  ``HOLIDAY`` windows, when given, must tile the day like the others.
* ``sqs`` takes ``KWH/<tou>`` literally (one SQ per TOU of the map) or a named TOU (``KWH/ON``).
* ``ratchet`` and ``KW/BILLED`` come together: PD-D08 returns billed demand whenever the group
  defines a ratchet, so one without the other is an error in the file.
* YAML 1.1 reads ``ON``/``OFF`` as booleans and ``13:00`` as a number: such values are rejected
  with a hint to quote them, never reinterpreted.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import yaml

DAY_MINUTES = 24 * 60
DEFAULT_PRECISION = 3
ON_PEAK = "ON"


class UsageGroupError(ValueError):
    """A usage group file that cannot be used: names the file, the key and what is wrong."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        super().__init__(f"{source}: {key}: {problem}")


class SqKey(NamedTuple):
    """What keys a service quantity: UOM, TOU and SQI; a blank TOU or SQI is ``""``."""

    uom: str
    tou: str = ""
    sqi: str = ""

    def __str__(self) -> str:
        return "/".join(part for part in self if part)


class DayType(StrEnum):
    WEEKDAY = "WEEKDAY"
    WEEKEND = "WEEKEND"
    HOLIDAY = "HOLIDAY"


@dataclass(frozen=True)
class Season:
    """Inclusive months; ``month_from`` > ``month_to`` wraps the year end (November-February)."""

    season: str
    month_from: int
    month_to: int

    def contains(self, month: int) -> bool:
        if self.month_from <= self.month_to:
            return self.month_from <= month <= self.month_to
        return month >= self.month_from or month <= self.month_to


@dataclass(frozen=True)
class TouWindow:
    """``[start, end)`` in minutes after standard-time midnight (PD-D02)."""

    season: str
    day_type: DayType
    start: int
    end: int
    tou: str


@dataclass(frozen=True)
class TouMap:
    seasons: tuple[Season, ...]
    windows: tuple[TouWindow, ...]
    holidays: frozenset[date] = frozenset()

    @cached_property
    def _tiles(self) -> dict[tuple[str, DayType], tuple[list[int], list[str]]]:
        tiles: dict[tuple[str, DayType], list[TouWindow]] = {}
        for window in self.windows:
            tiles.setdefault((window.season, window.day_type), []).append(window)
        return {
            key: ([w.start for w in ordered], [w.tou for w in ordered])
            for key, ordered in ((k, sorted(v, key=lambda w: w.start)) for k, v in tiles.items())
        }

    @property
    def tous(self) -> tuple[str, ...]:
        """The map's TOU codes in the order the windows first name them."""
        return tuple(dict.fromkeys(window.tou for window in self.windows))

    def season_of(self, day: date) -> str:
        for season in self.seasons:
            if season.contains(day.month):
                return season.season
        raise ValueError(f"no season of the TOU map contains month {day.month}")

    def day_type_of(self, day: date) -> DayType:
        if day in self.holidays:
            return DayType.HOLIDAY
        return DayType.WEEKEND if day.weekday() >= 5 else DayType.WEEKDAY

    def tou_at(self, standard: datetime) -> str:
        """The TOU of a standard-time moment (naive, the zone's standard offset applied)."""
        day = standard.date()
        season, day_type = self.season_of(day), self.day_type_of(day)
        tile = self._tiles.get((season, day_type))
        if tile is None and day_type is DayType.HOLIDAY:
            tile = self._tiles.get((season, DayType.WEEKEND))
        if tile is None:
            raise ValueError(f"the TOU map has no {day_type} windows in season {season}")
        starts, tous = tile
        return tous[bisect_right(starts, standard.hour * 60 + standard.minute) - 1]


@dataclass(frozen=True)
class Ratchet:
    """Billed demand is at least ``p`` times the highest measured demand of ``n`` periods."""

    p: Decimal
    n: int


@dataclass(frozen=True)
class HighLowFactors:
    low: Decimal = Decimal("0.6")
    high: Decimal = Decimal("1.4")
    default_adc_by_sp_type: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageGroup:
    name: str
    tou_map: TouMap | None = None
    sqs: tuple[SqKey, ...] = (SqKey("KWH"),)
    ratchet: Ratchet | None = None
    exchange_is_date_break: bool = False
    precision: Mapping[str, int] = field(default_factory=dict)
    tou_check_tolerance: Decimal = Decimal(0)
    high_low: HighLowFactors = HighLowFactors()

    def precision_of(self, uom: str) -> int:
        return self.precision.get(uom, DEFAULT_PRECISION)


DEFAULTS = UsageGroup("")  # the rules that apply when no usage group is known (high-low)


# -- loading ------------------------------------------------------------------------------------

_KEYS = {
    "touMap",
    "sqs",
    "ratchet",
    "exchangeIsDateBreak",
    "precision",
    "touCheckTolerance",
    "highLow",
}
_TIME = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)$")
_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,29}$")


def usage_group_names() -> tuple[str, ...]:
    """The usage groups shipped with the simulator."""
    folder = resources.files("ccbmdm.runtime.sim") / "usage_groups"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_usage_group(name: str) -> UsageGroup:
    """A shipped usage group by its external id (``RES-TOU``)."""
    resource = resources.files("ccbmdm.runtime.sim") / "usage_groups" / f"{name}.yaml"
    if not _CODE.match(name) or not resource.is_file():
        raise UsageGroupError(f"{name}.yaml", "(file)", "no such usage group is shipped")
    return parse_usage_group(name, yaml.safe_load(resource.read_text("utf-8")), f"{name}.yaml")


def read_usage_group(path: Path) -> UsageGroup:
    """A usage group file anywhere; its external id is the file name without ``.yaml``."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as error:
        raise UsageGroupError(path.name, "(file)", f"not valid YAML: {error}") from None
    return parse_usage_group(path.stem, data, path.name)


def parse_usage_group(name: str, data: Any, source: str) -> UsageGroup:
    """Check and build a usage group from its parsed YAML; ``source`` names it in errors."""
    p = _Parser(source)
    body = p.mapping(data if data is not None else {}, "(top level)", required=(), allowed=_KEYS)
    tou_map = p.tou_map(body["touMap"]) if "touMap" in body else None
    ratchet = p.ratchet(body["ratchet"]) if "ratchet" in body else None
    sqs = p.sqs(body.get("sqs", ["KWH"]), tou_map)
    billed = SqKey("KW", "", "BILLED") in sqs
    if billed and ratchet is None:
        raise UsageGroupError(source, "sqs", "KW/BILLED needs a ratchet (PD-D08)")
    if ratchet is not None and not billed:
        raise UsageGroupError(source, "ratchet", "a ratchet returns billed demand: list KW/BILLED")
    return UsageGroup(
        name=name,
        tou_map=tou_map,
        sqs=sqs,
        ratchet=ratchet,
        exchange_is_date_break=p.boolean(
            body.get("exchangeIsDateBreak", False), "exchangeIsDateBreak"
        ),
        precision=p.precision(body.get("precision", {})),
        tou_check_tolerance=p.decimal(
            body.get("touCheckTolerance", 0), "touCheckTolerance", minimum=Decimal(0)
        ),
        high_low=p.high_low(body["highLow"]) if "highLow" in body else HighLowFactors(),
    )


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> UsageGroupError:
        return UsageGroupError(self.source, key, problem)

    def mapping(
        self, value: Any, key: str, required: tuple[str, ...], allowed: set[str]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.fail(key, f"unknown key(s) {', '.join(unknown)}; allowed: {sorted(allowed)}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(key, f"missing key(s) {', '.join(missing)}")
        return value

    def listing(self, value: Any, key: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list, got {_kind(value)}")
        return value

    def code(self, value: Any, key: str) -> str:
        if isinstance(value, bool):
            raise self.fail(key, 'YAML read a boolean: quote codes such as "ON" and "OFF"')
        if not isinstance(value, str) or not _CODE.match(value):
            raise self.fail(key, f"expected an upper-case code, got {value!r}")
        return value

    def integer(self, value: Any, key: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, f"expected a whole number from {low} to {high}, got {value!r}")
        return value

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def decimal(self, value: Any, key: str, minimum: Decimal | None = None) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(key, f"expected a number, got {_kind(value)}")
        try:
            number = Decimal(repr(value) if isinstance(value, float) else str(value))
        except InvalidOperation:
            raise self.fail(key, f"expected a number, got {value!r}") from None
        if not number.is_finite() or (minimum is not None and number < minimum):
            raise self.fail(key, f"expected a number of at least {minimum}, got {value!r}")
        return number

    def time(self, value: Any, key: str) -> int:
        if not isinstance(value, str):
            raise self.fail(key, f'expected a quoted time "HH:MM", got {value!r}')
        match = _TIME.match(value)
        minutes = int(match[1]) * 60 + int(match[2]) if match else -1
        if not 0 <= minutes <= DAY_MINUTES:
            raise self.fail(key, f'expected a time from "00:00" to "24:00", got {value!r}')
        return minutes

    def tou_map(self, value: Any) -> TouMap:
        body = self.mapping(
            value, "touMap", ("seasons", "windows"), {"seasons", "holidays", "windows"}
        )
        seasons = tuple(
            self.season(s, f"touMap.seasons[{i}]")
            for i, s in enumerate(self.listing(body["seasons"], "touMap.seasons"))
        )
        for month in range(1, 13):
            owners = [s.season for s in seasons if s.contains(month)]
            if len(owners) != 1:
                problem = "no season" if not owners else f"seasons {', '.join(owners)} all"
                raise self.fail("touMap.seasons", f"{problem} contain month {month}")
        names = [s.season for s in seasons]
        holidays = frozenset(
            self.holiday(h, f"touMap.holidays[{i}]")
            for i, h in enumerate(self.listing(body.get("holidays", []), "touMap.holidays"))
        )
        windows = tuple(
            self.window(w, f"touMap.windows[{i}]", names)
            for i, w in enumerate(self.listing(body["windows"], "touMap.windows"))
        )
        self.check_tiling(names, windows)
        return TouMap(seasons=seasons, windows=windows, holidays=holidays)

    def season(self, value: Any, key: str) -> Season:
        body = self.mapping(
            value, key, ("season", "monthFrom", "monthTo"), {"season", "monthFrom", "monthTo"}
        )
        return Season(
            self.code(body["season"], f"{key}.season"),
            self.integer(body["monthFrom"], f"{key}.monthFrom", 1, 12),
            self.integer(body["monthTo"], f"{key}.monthTo", 1, 12),
        )

    def holiday(self, value: Any, key: str) -> date:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise self.fail(key, f"expected a date YYYY-MM-DD, got {value!r}") from None

    def window(self, value: Any, key: str, seasons: list[str]) -> TouWindow:
        fields = {"season", "dayType", "from", "to", "tou"}
        body = self.mapping(value, key, tuple(sorted(fields)), fields)
        season = self.code(body["season"], f"{key}.season")
        if season not in seasons:
            raise self.fail(f"{key}.season", f"{season} is not one of the seasons {seasons}")
        day_type = self.code(body["dayType"], f"{key}.dayType")
        if day_type not in DayType.__members__:
            raise self.fail(
                f"{key}.dayType", f"expected WEEKDAY, WEEKEND or HOLIDAY, got {day_type}"
            )
        start, end = self.time(body["from"], f"{key}.from"), self.time(body["to"], f"{key}.to")
        if start >= end:
            raise self.fail(key, f"from {body['from']} is not before to {body['to']}")
        return TouWindow(
            season, DayType(day_type), start, end, self.code(body["tou"], f"{key}.tou")
        )

    def check_tiling(self, seasons: list[str], windows: tuple[TouWindow, ...]) -> None:
        for season in seasons:
            for day_type in DayType:
                tile = sorted(
                    (w for w in windows if w.season == season and w.day_type is day_type),
                    key=lambda w: w.start,
                )
                if not tile and day_type is DayType.HOLIDAY:
                    continue  # holidays fall back to the weekend windows
                where = f"touMap.windows ({season} {day_type})"
                if not tile:
                    raise self.fail(where, "no windows: each season needs WEEKDAY and WEEKEND")
                reached = 0
                for window in tile:
                    if window.start > reached:
                        raise self.fail(where, f"gap {_hhmm(reached)}-{_hhmm(window.start)}")
                    if window.start < reached:
                        raise self.fail(
                            where,
                            f"overlap {_hhmm(window.start)}-{_hhmm(min(reached, window.end))}",
                        )
                    reached = window.end
                if reached < DAY_MINUTES:
                    raise self.fail(where, f"gap {_hhmm(reached)}-24:00")

    def sqs(self, value: Any, tou_map: TouMap | None) -> tuple[SqKey, ...]:
        keys: list[SqKey] = []
        tous = tou_map.tous if tou_map else ()
        for i, entry in enumerate(self.listing(value, "sqs")):
            key = f"sqs[{i}]"
            if not isinstance(entry, str):
                raise self.fail(key, f"expected text such as KWH or KW/ON, got {entry!r}")
            if entry == "KWH":
                keys.append(SqKey("KWH"))
            elif entry == "KWH/<tou>":
                if not tous:
                    raise self.fail(key, "KWH/<tou> needs a touMap")
                keys.extend(SqKey("KWH", tou) for tou in tous)
            elif entry.startswith("KWH/") and entry[4:] in tous:
                keys.append(SqKey("KWH", entry[4:]))
            elif entry == "KW":
                keys.append(SqKey("KW"))
            elif entry == "KW/ON":
                if ON_PEAK not in tous:
                    raise self.fail(key, "KW/ON needs a touMap with an ON window")
                keys.append(SqKey("KW", ON_PEAK))
            elif entry == "KW/BILLED":
                keys.append(SqKey("KW", "", "BILLED"))
            else:
                raise self.fail(
                    key,
                    f"{entry!r} is not one of KWH, KWH/<tou>, KWH/<a TOU of the map {list(tous)}>,"
                    " KW, KW/ON, KW/BILLED",
                )
        duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
        if duplicates:
            raise self.fail("sqs", f"listed more than once: {', '.join(duplicates)}")
        return tuple(keys)

    def ratchet(self, value: Any) -> Ratchet:
        body = self.mapping(value, "ratchet", ("p", "n"), {"p", "n"})
        p = self.decimal(body["p"], "ratchet.p", minimum=Decimal(0))
        if p > 1:
            raise self.fail("ratchet.p", f"expected a share from 0 to 1, got {body['p']!r}")
        return Ratchet(p, self.integer(body["n"], "ratchet.n", 1, 120))

    def precision(self, value: Any) -> dict[str, int]:
        body = self.mapping(
            value, "precision", (), set(value) if isinstance(value, dict) else set()
        )
        return {
            self.code(uom, "precision"): self.integer(places, f"precision.{uom}", 0, 6)
            for uom, places in body.items()
        }

    def high_low(self, value: Any) -> HighLowFactors:
        body = self.mapping(value, "highLow", (), {"low", "high", "defaultAdcBySpType"})
        low = self.decimal(body.get("low", "0.6"), "highLow.low", minimum=Decimal(0))
        high = self.decimal(body.get("high", "1.4"), "highLow.high", minimum=Decimal(0))
        if not low <= 1 <= high:
            raise self.fail("highLow", f"expected low ≤ 1 ≤ high, got {low} and {high}")
        defaults = body.get("defaultAdcBySpType", {})
        adc = self.mapping(
            defaults,
            "highLow.defaultAdcBySpType",
            (),
            set(defaults) if isinstance(defaults, dict) else set(),
        )
        return HighLowFactors(
            low,
            high,
            {
                self.code(sp_type, "highLow.defaultAdcBySpType"): self.decimal(
                    daily, f"highLow.defaultAdcBySpType.{sp_type}", minimum=Decimal(0)
                )
                for sp_type, daily in adc.items()
            },
        )


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"

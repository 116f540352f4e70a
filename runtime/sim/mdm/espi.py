"""NAESB ESPI (Green Button) feeds read as interval channels for the MDM simulator.

ESPI stamps each IntervalReading with the UTC start of its interval (epoch seconds) and a duration,
and gives its value as an integer in the ReadingType's unit scaled by ``powerOfTenMultiplier``.
MDM holds interval-ending values in kWh (docs/determinants.md PD-D01, PD-D03), so this module
converts at the edge: ``end = start + duration``, ``kWh = value * 10^multiplier / 1000`` for Wh,
exactly.

A feed is read through ``runtime.messages.xmlsafe`` (no DTD, no entities, a size cap) and checked
before anything reaches a channel: one interval length per channel that divides a day, no
overlapping or duplicated intervals, every value on one grid. Gaps are allowed and reported, never
filled: missing data is not zero (PD-D10).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from lxml import etree

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.messages.functions import zone as iana_zone
from ccbmdm.runtime.messages.lexical import format_datetime, parse_integer
from ccbmdm.runtime.messages.xmlsafe import XmlLimits, XmlRejected, parse_partner_xml

ATOM = "http://www.w3.org/2005/Atom"
ESPI = "http://naesb.org/espi"

# A year of 15-minute data for a few channels is tens of megabytes; the partner-message default
# (16 MB) is sized for single messages.
ESPI_LIMITS = XmlLimits(max_bytes=128 * 1024 * 1024)

Quality = Literal["ACTUAL", "EDITED", "ESTIMATED"]
FlowDirection = Literal["DELIVERED", "RECEIVED", "NET"]

SECONDS_PER_DAY = 86_400
WATT_HOUR = 72

# ESPI UnitSymbolKind names, for messages. There is no kWh code: kWh is 72 (Wh) with
# powerOfTenMultiplier 3. 169 is the therm, a gas unit.
UNIT_NAMES: dict[int, str] = {
    0: "none",
    5: "A",
    29: "V",
    33: "Hz",
    38: "W",
    42: "m³",
    61: "VA",
    63: "VAr",
    65: "cos φ",
    71: "VAh",
    72: "Wh",
    73: "VArh",
    111: "count",
    119: "ft³",
    122: "ft³/h",
    125: "m³/h",
    128: "US gal",
    129: "US gal/h",
    132: "BTU",
    133: "BTU/h",
    169: "therm",
}

# ESPI AccumulationKind.
ACCUMULATION_NAMES: dict[int, str] = {
    0: "none",
    1: "bulkQuantity",
    2: "continuousCumulative",
    3: "cumulative",
    4: "deltaData",
    6: "indicating",
    9: "summation",
    10: "timeDelta",
    12: "instantaneous",
    13: "latchingQuantity",
    14: "boundedQuantity",
}
DELTA_DATA = 4

# ESPI UnitMultiplierKind: the powers of ten the schema allows.
MULTIPLIERS = frozenset({-12, -9, -6, -3, -2, -1, 0, 1, 2, 3, 6, 9, 12})

# ESPI FlowDirectionKind codes that say which way the energy went.
FLOW_DIRECTIONS: dict[int, FlowDirection] = {1: "DELIVERED", 19: "RECEIVED", 4: "NET"}

# ESPI QualityOfReading codes by the MDM quality class they count as (see ``quality_class``).
QUALITY_NAMES: dict[int, str] = {
    0: "valid",
    7: "manually edited",
    8: "estimated using reference day",
    9: "estimated using linear interpolation",
    10: "questionable",
    11: "derived",
    12: "projected (forecast)",
    13: "mixed",
    14: "raw",
    15: "normalized for weather",
    16: "other",
    17: "validated",
    18: "verified",
    19: "revenue-quality",
}
ESTIMATED_CODES = frozenset({8, 9, 12, 13, 15})
EDITED_CODES = frozenset({7})


class EspiError(CcbmdmError):
    """A feed that cannot become an interval channel: what is wrong and where.

    ``path`` is the element path (``/feed/entry[5]/content/IntervalBlock/IntervalReading[3]``),
    ``reading`` the reading's number within its MeterReading (document order, from 1), ``line``
    and ``column`` the position in the file.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str = "<feed>",
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        reading: int | None = None,
    ) -> None:
        self.reason = reason
        self.source = source
        self.path = path
        self.line = line
        self.column = column
        self.reading = reading
        where = [source]
        if line is not None:
            where.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        if reading is not None:
            where.append(f"reading {reading}")
        if path is not None:
            where.append(path)
        super().__init__(f"{': '.join(where)}: {reason}")


@dataclass(frozen=True)
class ReadingType:
    """How a MeterReading's values are to be read: unit, scale, accumulation, direction."""

    uom: int
    uom_name: str
    power_of_ten_multiplier: int
    accumulation_behaviour: int | None
    flow_direction_code: int | None
    interval_length: int | None  # seconds, as the ReadingType states it
    commodity: int | None = None
    kind: int | None = None

    @property
    def accumulation_name(self) -> str | None:
        code = self.accumulation_behaviour
        return None if code is None else ACCUMULATION_NAMES.get(code, f"code {code}")

    @property
    def flow_direction(self) -> FlowDirection | None:
        """DELIVERED (forward), RECEIVED (reverse) or NET; None where the feed does not say."""
        code = self.flow_direction_code
        return None if code is None else FLOW_DIRECTIONS.get(code)

    @property
    def is_interval_energy(self) -> bool:
        """Values are consumption per interval (deltaData), not register or demand values.

        A ReadingType that does not state its accumulation is taken as deltaData, the Green
        Button norm for interval data."""
        return self.accumulation_behaviour in (None, DELTA_DATA)


@dataclass(frozen=True)
class IntervalReading:
    """One interval value, interval-ending (PD-D01): it covers ``[end - L, end)``."""

    end: datetime  # UTC
    kwh: Decimal
    quality: Quality | None  # None: the feed carries no ReadingQuality for it
    quality_codes: tuple[int, ...]  # the ESPI QualityOfReading codes as sent
    number: int  # position within its MeterReading, document order, from 1
    line: int | None


@dataclass(frozen=True)
class Gap:
    """Intervals the feed does not cover between two readings: missing data, never zero."""

    start: datetime  # UTC
    end: datetime
    intervals: int


@dataclass(frozen=True)
class MeterReading:
    """One channel: readings of one ReadingType and one interval length, sorted by end."""

    href: str
    title: str
    reading_type: ReadingType
    interval_length: int  # seconds
    readings: tuple[IntervalReading, ...]
    gaps: tuple[Gap, ...]

    @property
    def length(self) -> timedelta:
        return timedelta(seconds=self.interval_length)


@dataclass(frozen=True)
class LocalTimeParameters:
    """The feed's own statement of its local time. Informational: the SP's IANA zone rules."""

    tz_offset: int  # seconds east of UTC, standard time
    dst_offset: int  # seconds added while daylight saving is in force
    dst_start_rule: str | None
    dst_end_rule: str | None

    @property
    def standard_offset(self) -> timedelta:
        return timedelta(seconds=self.tz_offset)


@dataclass(frozen=True)
class UsagePoint:
    href: str
    title: str
    service_kind: int | None  # ESPI ServiceKind: 0 electricity, 1 gas, 2 water, ...
    meter_readings: tuple[MeterReading, ...]
    local_time: LocalTimeParameters | None  # the one it links, else the feed's


@dataclass(frozen=True)
class EspiFeed:
    source: str
    title: str
    usage_points: tuple[UsagePoint, ...]
    local_time: LocalTimeParameters | None  # the first the feed carries, if any

    @property
    def meter_readings(self) -> tuple[MeterReading, ...]:
        return tuple(mr for up in self.usage_points for mr in up.meter_readings)

    def channel(self) -> MeterReading:
        """The feed's one interval-energy channel; a feed with several must be chosen from."""
        channels = [mr for mr in self.meter_readings if mr.reading_type.is_interval_energy]
        if len(channels) != 1:
            titles = ", ".join(repr(mr.title or mr.href) for mr in channels) or "none"
            raise EspiError(
                f"the feed has {len(channels)} interval-energy MeterReadings ({titles}); "
                "exactly one was expected",
                source=self.source,
            )
        return channels[0]


@dataclass(frozen=True)
class LocalInterval:
    """An interval in the SP's legal time, for display and checks: ends carry their offset."""

    start: datetime
    end: datetime
    kwh: Decimal
    quality: Quality | None


@dataclass(frozen=True)
class MonthTotal:
    """The kWh of a calendar month in the SP's legal time, with how many intervals it has."""

    year: int
    month: int
    kwh: Decimal
    intervals: int
    expected_intervals: int

    @property
    def complete(self) -> bool:
        return self.intervals == self.expected_intervals


def quality_class(codes: Iterable[int]) -> Quality:
    """The MDM class of a reading's ESPI QualityOfReading codes, with PD-D09's precedence.

    ESTIMATED when any code says the value is not a plain measurement: 8 (estimated using a
    reference day), 9 (estimated by linear interpolation), 12 (projected), 13 (mixed: it may hold
    estimated parts) or 15 (normalized for weather). Otherwise EDITED for 7 (manually edited).
    Otherwise ACTUAL: 0 valid, 10 questionable, 11 derived, 14 raw, 16 other, 17 validated,
    18 verified and 19 revenue-quality all describe measured values, questionable or raw ones
    included (validation is the MDM's own job). A reading without ReadingQuality has no class
    (None); downstream it counts as ACTUAL, the feed being the custodian's billing data.
    """
    found = set(codes)
    if found & ESTIMATED_CODES:
        return "ESTIMATED"
    if found & EDITED_CODES:
        return "EDITED"
    return "ACTUAL"


def read_espi_file(path: str | Path, *, limits: XmlLimits = ESPI_LIMITS) -> EspiFeed:
    path = Path(path)
    return read_espi(path.read_bytes(), source=str(path), limits=limits)


def read_espi(data: bytes, *, source: str = "<feed>", limits: XmlLimits = ESPI_LIMITS) -> EspiFeed:
    """Parse and check an ESPI Atom feed, plain or containerized, into its channels."""
    try:
        root = parse_partner_xml(data, limits)
    except XmlRejected as exc:
        raise EspiError(exc.reason, source=source, line=exc.line, column=exc.column) from None
    return _FeedReader(source).read(root)


# --- the Atom structure -------------------------------------------------------------------------


@dataclass
class _Entry:
    element: etree._Element
    self_href: str | None
    up_href: str | None
    related: frozenset[str]
    title: str


@dataclass
class _Resource:
    """An ESPI element inside an entry's content, with the entry's links."""

    entry: _Entry
    element: etree._Element

    def linked_from(self, hrefs: frozenset[str]) -> bool:
        # Plain feeds link a resource by its own href; containerized ones link the collection
        # it sits in (its ``up``), e.g. a UsagePoint's related ``…/UsagePoint/1/MeterReading``.
        entry = self.entry
        return (entry.self_href is not None and entry.self_href in hrefs) or (
            entry.up_href is not None and entry.up_href in hrefs
        )


@dataclass
class _Resources:
    usage_points: list[_Resource] = field(default_factory=list)
    meter_readings: list[_Resource] = field(default_factory=list)
    reading_types: list[_Resource] = field(default_factory=list)
    interval_blocks: list[_Resource] = field(default_factory=list)
    local_times: list[_Resource] = field(default_factory=list)


def _atom(name: str) -> str:
    return f"{{{ATOM}}}{name}"


def _espi(name: str) -> str:
    return f"{{{ESPI}}}{name}"


def element_path(element: etree._Element) -> str:
    """A readable path: local names, with a position where a name repeats among siblings."""
    parts: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [child for child in parent if child.tag == node.tag]
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        parts.append(name)
        node = parent
    return "/" + "/".join(reversed(parts))


class _FeedReader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(
        self, reason: str, element: etree._Element | None = None, *, reading: int | None = None
    ) -> EspiError:
        if element is None:
            return EspiError(reason, source=self.source, reading=reading)
        return EspiError(
            reason,
            source=self.source,
            path=element_path(element),
            line=element.sourceline,
            reading=reading,
        )

    # -- structure

    def read(self, root: etree._Element) -> EspiFeed:
        if root.tag != _atom("feed"):
            raise self.fail(
                f"the root element is {etree.QName(root).text}, not an Atom feed ({ATOM})", root
            )
        resources = self.resources(root)
        if not resources.usage_points:
            raise self.fail("the feed has no UsagePoint entry", root)
        feed_local_time = (
            self.local_time(resources.local_times[0].element) if resources.local_times else None
        )
        claimed_readings: dict[int, _Resource] = {}
        claimed_blocks: dict[int, _Resource] = {}
        usage_points: list[UsagePoint] = []
        for up in resources.usage_points:
            related = up.entry.related
            readings = [mr for mr in resources.meter_readings if mr.linked_from(related)]
            channels: list[MeterReading] = []
            for mr in readings:
                self.claim(claimed_readings, mr, up, "MeterReading", "UsagePoint")
                blocks = [
                    ib for ib in resources.interval_blocks if ib.linked_from(mr.entry.related)
                ]
                for ib in blocks:
                    self.claim(claimed_blocks, ib, mr, "IntervalBlock", "MeterReading")
                channels.append(self.meter_reading(mr, resources.reading_types, blocks))
            linked_times = [lt for lt in resources.local_times if lt.linked_from(related)]
            usage_points.append(
                UsagePoint(
                    href=up.entry.self_href or "",
                    title=up.entry.title,
                    service_kind=self.optional_int(up.element, "ServiceCategory/espi:kind"),
                    meter_readings=tuple(channels),
                    local_time=(
                        self.local_time(linked_times[0].element)
                        if linked_times
                        else feed_local_time
                    ),
                )
            )
        for kind, found, claimed, owner in (
            ("MeterReading", resources.meter_readings, claimed_readings, "UsagePoint"),
            ("IntervalBlock", resources.interval_blocks, claimed_blocks, "MeterReading"),
        ):
            for resource in found:
                if id(resource) not in claimed:
                    raise self.fail(
                        f"this {kind} is linked to no {owner}: no {owner} entry has a related "
                        f"link to its self ({resource.entry.self_href}) or up "
                        f"({resource.entry.up_href}) link",
                        resource.element,
                    )
        return EspiFeed(
            source=self.source,
            title=root.findtext(_atom("title")) or "",
            usage_points=tuple(usage_points),
            local_time=feed_local_time,
        )

    def resources(self, root: etree._Element) -> _Resources:
        found = _Resources()
        kinds = {
            _espi("UsagePoint"): found.usage_points,
            _espi("MeterReading"): found.meter_readings,
            _espi("ReadingType"): found.reading_types,
            _espi("IntervalBlock"): found.interval_blocks,
            _espi("LocalTimeParameters"): found.local_times,
        }
        for entry_element in root.iterchildren(_atom("entry")):
            entry = self.entry(entry_element)
            for content in entry_element.iterchildren(_atom("content")):
                # A containerized entry may carry several IntervalBlocks in one content.
                for element in content.iterchildren():
                    bucket = kinds.get(etree.QName(element).text)
                    if bucket is not None:
                        bucket.append(_Resource(entry, element))
        return found

    def entry(self, element: etree._Element) -> _Entry:
        self_href: str | None = None
        up_href: str | None = None
        related: set[str] = set()
        for link in element.iterchildren(_atom("link")):
            href = link.get("href")
            if not href:
                continue
            rel = link.get("rel", "alternate")
            if rel == "self":
                self_href = href
            elif rel == "up":
                up_href = href
            elif rel == "related":
                related.add(href)
        title = element.findtext(_atom("title")) or ""
        return _Entry(element, self_href, up_href, frozenset(related), title.strip())

    def claim(
        self, claimed: dict[int, _Resource], item: _Resource, owner: _Resource, kind: str, by: str
    ) -> None:
        previous = claimed.get(id(item))
        if previous is not None and previous is not owner:
            raise self.fail(
                f"this {kind} is linked from two {by} entries (lines "
                f"{previous.element.sourceline} and {owner.element.sourceline})",
                item.element,
            )
        claimed[id(item)] = owner

    # -- resources

    def meter_reading(
        self, mr: _Resource, reading_types: list[_Resource], blocks: list[_Resource]
    ) -> MeterReading:
        types = [rt for rt in reading_types if rt.linked_from(mr.entry.related)]
        if not types:
            raise self.fail(
                "the MeterReading has no ReadingType: none of its related links "
                f"({', '.join(sorted(mr.entry.related)) or 'none'}) names a ReadingType entry",
                mr.element,
            )
        if len(types) > 1:
            raise self.fail(
                f"the MeterReading links {len(types)} ReadingTypes; one was expected", mr.element
            )
        reading_type = self.reading_type(types[0].element)
        readings, length = self.interval_readings(mr.element, blocks, reading_type)
        ordered, gaps = self.checked_sequence(readings, length)
        return MeterReading(
            href=mr.entry.self_href or "",
            title=mr.entry.title,
            reading_type=reading_type,
            interval_length=length,
            readings=tuple(ordered),
            gaps=tuple(gaps),
        )

    def reading_type(self, element: etree._Element) -> ReadingType:
        uom = self.optional_int(element, "uom")
        if uom is None:
            raise self.fail("the ReadingType has no uom, so its values have no unit", element)
        if uom != WATT_HOUR:
            name = UNIT_NAMES.get(uom, "not an ESPI unit this importer knows")
            raise self.fail(
                f"unit code {uom} ({name}) is not supported: interval energy must be in Wh "
                "(uom 72), scaled by powerOfTenMultiplier (3 for kWh)",
                element.find(_espi("uom")),
            )
        multiplier = self.optional_int(element, "powerOfTenMultiplier") or 0
        if multiplier not in MULTIPLIERS:
            raise self.fail(
                f"powerOfTenMultiplier {multiplier} is not an ESPI UnitMultiplierKind "
                f"({', '.join(str(m) for m in sorted(MULTIPLIERS))})",
                element.find(_espi("powerOfTenMultiplier")),
            )
        interval_length = self.optional_int(element, "intervalLength")
        return ReadingType(
            uom=uom,
            uom_name=UNIT_NAMES[uom],
            power_of_ten_multiplier=multiplier,
            accumulation_behaviour=self.optional_int(element, "accumulationBehaviour"),
            flow_direction_code=self.optional_int(element, "flowDirection"),
            interval_length=interval_length,
            commodity=self.optional_int(element, "commodity"),
            kind=self.optional_int(element, "kind"),
        )

    def local_time(self, element: etree._Element) -> LocalTimeParameters:
        return LocalTimeParameters(
            tz_offset=self.required_int(element, "tzOffset"),
            dst_offset=self.optional_int(element, "dstOffset") or 0,
            dst_start_rule=element.findtext(_espi("dstStartRule")),
            dst_end_rule=element.findtext(_espi("dstEndRule")),
        )

    # -- readings

    def interval_readings(
        self, owner: etree._Element, blocks: list[_Resource], reading_type: ReadingType
    ) -> tuple[list[_Timed], int]:
        """Every reading of the channel in document order, and the channel's interval length."""
        readings: list[_Timed] = []
        first: _Timed | None = None
        exponent = reading_type.power_of_ten_multiplier - 3  # Wh → kWh
        number = 0
        for block in blocks:
            for element in block.element.iterchildren(_espi("IntervalReading")):
                number += 1
                timed = self.timed(element, number, exponent)
                if timed is None:
                    continue
                if first is None:
                    first = timed
                    self.check_length(timed, reading_type)
                elif timed.duration != first.duration:
                    raise self.fail(
                        f"duration {timed.duration} s differs from the {first.duration} s of "
                        f"reading {first.number} (line {first.element.sourceline}): all readings "
                        "of a channel share one interval length",
                        timed.element,
                        reading=number,
                    )
                readings.append(timed)
        if first is not None:
            return readings, first.duration
        if reading_type.interval_length is None:
            raise self.fail(
                "the MeterReading has no readings and its ReadingType no intervalLength", owner
            )
        return readings, reading_type.interval_length

    def timed(self, element: etree._Element, number: int, exponent: int) -> _Timed | None:
        period = element.find(_espi("timePeriod"))
        if period is None:
            raise self.fail("the IntervalReading has no timePeriod", element, reading=number)
        start = self.required_int(period, "start", reading=number)
        duration = self.required_int(period, "duration", reading=number)
        if duration <= 0 or SECONDS_PER_DAY % duration:
            raise self.fail(
                f"duration {duration} s does not divide a day ({SECONDS_PER_DAY} s): not an "
                "interval length a channel can have",
                period.find(_espi("duration")),
                reading=number,
            )
        try:
            start_at = datetime.fromtimestamp(start, UTC)
        except (OverflowError, OSError, ValueError):
            raise self.fail(
                f"start {start} is not a representable UTC instant (epoch seconds)",
                period.find(_espi("start")),
                reading=number,
            ) from None
        codes = tuple(self.quality_codes(element, number))
        value = self.optional_int(element, "value", reading=number)
        if value is None:
            # A reading without a value measures nothing: the interval stays missing (a gap).
            return None
        return _Timed(
            element=element,
            number=number,
            start=start_at,
            duration=duration,
            kwh=Decimal(f"{value}E{exponent}"),
            codes=codes,
        )

    def quality_codes(self, element: etree._Element, number: int) -> Iterator[int]:
        for quality in element.iterchildren(_espi("ReadingQuality")):
            code = self.required_int(quality, "quality", reading=number)
            if code not in QUALITY_NAMES:
                raise self.fail(
                    f"quality {code} is not an ESPI QualityOfReading code",
                    quality,
                    reading=number,
                )
            yield code

    def check_length(self, first: _Timed, reading_type: ReadingType) -> None:
        stated = reading_type.interval_length
        if stated is not None and stated != first.duration:
            raise self.fail(
                f"duration {first.duration} s differs from the ReadingType's intervalLength "
                f"{stated} s",
                first.element,
                reading=first.number,
            )

    def checked_sequence(
        self, readings: list[_Timed], length: int
    ) -> tuple[list[IntervalReading], list[Gap]]:
        """Sort by start; overlaps and duplicates are errors, gaps are listed."""
        ordered = sorted(readings, key=lambda timed: timed.start)
        gaps: list[Gap] = []
        step = timedelta(seconds=length)
        for before, after in pairwise(ordered):
            previous_end = before.start + step
            if after.start == before.start:
                raise self.fail(
                    f"the interval starting {format_datetime(after.start)} duplicates reading "
                    f"{before.number} (line {before.element.sourceline})",
                    after.element,
                    reading=after.number,
                )
            if after.start < previous_end:
                raise self.fail(
                    f"the interval [{format_datetime(after.start)}, "
                    f"{format_datetime(after.start + step)}) overlaps reading {before.number} "
                    f"(line {before.element.sourceline}), which ends "
                    f"{format_datetime(previous_end)}",
                    after.element,
                    reading=after.number,
                )
            missing, off_grid = divmod(int((after.start - previous_end).total_seconds()), length)
            if off_grid:
                raise self.fail(
                    f"the interval starting {format_datetime(after.start)} is off the "
                    f"{length}-second grid of reading {before.number} "
                    f"(line {before.element.sourceline})",
                    after.element,
                    reading=after.number,
                )
            if missing:
                gaps.append(Gap(previous_end, after.start, missing))
        return [timed.reading(step) for timed in ordered], gaps

    # -- values

    def optional_int(
        self, element: etree._Element, path: str, *, reading: int | None = None
    ) -> int | None:
        child = element.find(f"espi:{path}", {"espi": ESPI})
        if child is None:
            return None
        try:
            return parse_integer(child.text or "")
        except ValueError as exc:
            raise self.fail(
                f"{etree.QName(child).localname}: {exc}", child, reading=reading
            ) from None

    def required_int(
        self, element: etree._Element, path: str, *, reading: int | None = None
    ) -> int:
        value = self.optional_int(element, path, reading=reading)
        if value is None:
            raise self.fail(
                f"{etree.QName(element).localname} has no {path}", element, reading=reading
            )
        return value


@dataclass
class _Timed:
    element: etree._Element
    number: int
    start: datetime
    duration: int
    kwh: Decimal
    codes: tuple[int, ...]

    def reading(self, step: timedelta) -> IntervalReading:
        return IntervalReading(
            end=self.start + step,
            kwh=self.kwh,
            quality=quality_class(self.codes) if self.codes else None,
            quality_codes=self.codes,
            number=self.number,
            line=self.element.sourceline,
        )


# --- the SP's legal time ------------------------------------------------------------------------


def _zone(zone: str | ZoneInfo) -> ZoneInfo:
    return zone if isinstance(zone, ZoneInfo) else iana_zone(zone)


def _require_interval_energy(channel: MeterReading) -> None:
    if not channel.reading_type.is_interval_energy:
        raise EspiError(
            f"MeterReading {channel.title or channel.href!r} holds "
            f"{channel.reading_type.accumulation_name} values, not consumption per interval "
            f"(deltaData, accumulationBehaviour {DELTA_DATA})"
        )


def local_series(channel: MeterReading, zone: str | ZoneInfo) -> tuple[LocalInterval, ...]:
    """The channel in the SP's legal time: each interval's start and end with its offset.

    Computed in absolute time and then shown in the zone, so that a spring-forward day has 23
    hourly intervals and a fall-back day 25 (docs/determinants.md §5).
    """
    _require_interval_energy(channel)
    tz = _zone(zone)
    step = channel.length
    return tuple(
        LocalInterval(
            start=(reading.end - step).astimezone(tz),
            end=reading.end.astimezone(tz),
            kwh=reading.kwh,
            quality=reading.quality,
        )
        for reading in channel.readings
    )


def _month_start(year: int, month: int, tz: ZoneInfo) -> datetime:
    """Local midnight of the first of the month, as a UTC instant."""
    return datetime(year, month, 1, tzinfo=tz).astimezone(UTC)


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def monthly_totals(channel: MeterReading, zone: str | ZoneInfo) -> tuple[MonthTotal, ...]:
    """kWh per calendar month of the SP's legal time, for the months the channel touches.

    An interval ``[T - L, T)`` belongs to the month holding it whole (PD-D01); one that straddles
    a local month boundary is off the SP's interval grid and an error. ``expected_intervals`` is
    the month's length in absolute time over L, so partial months at a feed's ends show.
    """
    _require_interval_energy(channel)
    tz = _zone(zone)
    step = channel.length
    totals: dict[tuple[int, int], list[Decimal]] = {}
    for reading in channel.readings:
        start = reading.end - step
        local = start.astimezone(tz)
        key = (local.year, local.month)
        if reading.end > _month_start(*_next_month(*key), tz):
            raise EspiError(
                f"the interval ending {format_datetime(reading.end.astimezone(tz))} straddles "
                f"the start of a month in {tz.key}: the channel is off the SP's interval grid",
                line=reading.line,
                reading=reading.number,
            )
        totals.setdefault(key, []).append(reading.kwh)
    result: list[MonthTotal] = []
    for (year, month), values in sorted(totals.items()):
        span = _month_start(*_next_month(year, month), tz) - _month_start(year, month, tz)
        result.append(
            MonthTotal(
                year=year,
                month=month,
                kwh=sum(values, Decimal(0)),
                intervals=len(values),
                expected_intervals=span // step,
            )
        )
    return tuple(result)

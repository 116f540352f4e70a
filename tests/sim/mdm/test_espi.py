"""NAESB ESPI (Green Button) feeds read into interval-ending kWh channels.

The real feeds in tests/data/greenbutton are checked against a second, independent reading of the
same XML (ElementTree, scaled by hand); the malformed ones are variations of the abridged feed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ccbmdm.runtime.messages.lexical import format_datetime
from ccbmdm.runtime.messages.xmlsafe import XmlLimits
from ccbmdm.runtime.sim.mdm.espi import (
    EspiError,
    EspiFeed,
    local_series,
    monthly_totals,
    quality_class,
    read_espi,
    read_espi_file,
)
from support import REPO

DATA = REPO / "tests" / "data" / "greenbutton"
YEAR_2011 = DATA / "Coastal_Multi_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_5.xml"
NINE_DAYS = DATA / "TestGBDataHourlyNineDaysBinnedDaily.xml"
CONTAINERIZED = DATA / "electric_containerized.xml"
NS = {"atom": "http://www.w3.org/2005/Atom", "espi": "http://naesb.org/espi"}
PACIFIC = "America/Los_Angeles"  # the 2011 feeds' LocalTimeParameters: UTC-8 with US DST
EASTERN = "America/New_York"  # the nine-day feed's: UTC-5 with US DST
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def year_2011() -> EspiFeed:
    return read_espi_file(YEAR_2011)


def abridged(*replacements: tuple[str, str]) -> bytes:
    """The abridged feed with each (old, new) applied once; old must occur."""
    text = CONTAINERIZED.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode()


def line_of(data: bytes, marker: str, occurrence: int = 1) -> int:
    text = data.decode()
    at = -1
    for _ in range(occurrence):
        at = text.index(marker, at + 1)
    return text.count("\n", 0, at) + 1


def reading_error(data: bytes) -> EspiError:
    with pytest.raises(EspiError) as caught:
        read_espi(data, source="feed.xml")
    return caught.value


# --- an independent second reading of the raw XML -------------------------------------------------


def raw_readings(path: Path) -> list[tuple[int, int, int]]:
    """(start, duration, value) of every IntervalReading, straight from the XML."""
    root = ElementTree.parse(path).getroot()
    return [
        (
            int(reading.findtext("espi:timePeriod/espi:start", namespaces=NS) or ""),
            int(reading.findtext("espi:timePeriod/espi:duration", namespaces=NS) or ""),
            int(reading.findtext("espi:value", namespaces=NS) or ""),
        )
        for reading in root.iterfind(".//espi:IntervalReading", NS)
    ]


def raw_multiplier(path: Path) -> tuple[int, int]:
    root = ElementTree.parse(path).getroot()
    reading_type = root.find(".//espi:ReadingType", NS)
    assert reading_type is not None
    uom = int(reading_type.findtext("espi:uom", namespaces=NS) or "")
    return uom, int(reading_type.findtext("espi:powerOfTenMultiplier", namespaces=NS) or "")


def raw_month_totals(path: Path, zone: str) -> dict[tuple[int, int], tuple[Decimal, int]]:
    """kWh and interval count per local month of each interval's start, scaled by hand."""
    uom, multiplier = raw_multiplier(path)
    assert uom == 72  # Wh
    totals: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    counts: Counter[tuple[int, int]] = Counter()
    for start, _, value in raw_readings(path):
        local = datetime.fromtimestamp(start, ZoneInfo(zone))
        totals[local.year, local.month] += Decimal(value) * Decimal(10) ** multiplier / 1000
        counts[local.year, local.month] += 1
    return {key: (totals[key], counts[key]) for key in totals}


# --- the real feeds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "count"), [(YEAR_2011, 8760), (NINE_DAYS, 216), (CONTAINERIZED, 8)]
)
def test_each_feed_parses_with_the_readme_reading_count(path: Path, count: int) -> None:
    feed = read_espi_file(path)
    (usage_point,) = feed.usage_points
    (channel,) = usage_point.meter_readings
    assert feed.channel() is channel
    assert len(channel.readings) == count == len(raw_readings(path))
    assert channel.interval_length == 3600
    reading_type = channel.reading_type
    assert (reading_type.uom, reading_type.uom_name) == (72, "Wh")
    assert reading_type.power_of_ten_multiplier == 0
    assert (reading_type.accumulation_behaviour, reading_type.accumulation_name) == (4, "deltaData")
    assert reading_type.flow_direction == "DELIVERED"
    assert reading_type.interval_length == 3600
    assert usage_point.service_kind == 0  # electricity
    assert [reading.number for reading in channel.readings] == list(range(1, count + 1))


def test_readings_are_interval_ending_utc_instants_in_exact_kwh(year_2011: EspiFeed) -> None:
    first = year_2011.channel().readings[0]
    # <start>1293868800</start> (2011-01-01T08:00Z), <duration>3600</duration>, <value>450</value>
    assert first.end == datetime(2011, 1, 1, 9, tzinfo=UTC)
    assert first.end.utcoffset() == timedelta(0)
    assert first.kwh == Decimal("0.450") and str(first.kwh) == "0.450"
    assert first.quality is None and first.quality_codes == ()
    assert first.line == line_of(YEAR_2011.read_bytes(), "<IntervalReading>")


def test_the_2011_feed_is_continuous_hourly_for_the_whole_year(year_2011: EspiFeed) -> None:
    channel = year_2011.channel()
    ends = [reading.end for reading in channel.readings]
    assert channel.gaps == ()
    assert all(after - before == HOUR for before, after in pairwise(ends))
    # Local midnight to local midnight in Pacific time: PST (UTC-8) at both ends.
    assert ends[0] - HOUR == datetime(2011, 1, 1, 8, tzinfo=UTC)
    assert ends[-1] == datetime(2012, 1, 1, 8, tzinfo=UTC)


def test_the_2011_local_series_has_a_23_and_a_25_hour_day(year_2011: EspiFeed) -> None:
    series = local_series(year_2011.channel(), PACIFIC)
    hours_per_day = Counter(interval.start.date() for interval in series)
    assert len(hours_per_day) == 365
    assert hours_per_day[date(2011, 3, 13)] == 23
    assert hours_per_day[date(2011, 11, 6)] == 25
    assert {day: n for day, n in hours_per_day.items() if n != 24} == {
        date(2011, 3, 13): 23,
        date(2011, 11, 6): 25,
    }
    stamps = [format_datetime(interval.end) for interval in series]
    # Spring forward: 01:00-08:00 is followed by 03:00-07:00; no stamp has local hour 02.
    spring = stamps.index("2011-03-13T01:00:00-08:00")
    assert stamps[spring + 1] == "2011-03-13T03:00:00-07:00"
    assert not [stamp for stamp in stamps if stamp.startswith("2011-03-13T02")]
    # Fall back: the label 01:00 occurs twice, first in daylight time, then in standard time.
    assert [stamp for stamp in stamps if stamp.startswith("2011-11-06T01:00")] == [
        "2011-11-06T01:00:00-07:00",
        "2011-11-06T01:00:00-08:00",
    ]
    assert stamps[0] == "2011-01-01T01:00:00-08:00"
    assert stamps[-1] == "2012-01-01T00:00:00-08:00"
    assert [interval.kwh for interval in series] == [r.kwh for r in year_2011.channel().readings]


def test_2011_month_totals_equal_an_independent_reading_of_the_xml(year_2011: EspiFeed) -> None:
    expected = raw_month_totals(YEAR_2011, PACIFIC)
    totals = monthly_totals(year_2011.channel(), PACIFIC)
    assert [(t.year, t.month) for t in totals] == [(2011, month) for month in range(1, 13)]
    assert {(t.year, t.month): (t.kwh, t.intervals) for t in totals} == expected
    # Exactly, not approximately: the totals keep the readings' three decimals.
    assert all(t.kwh.as_tuple().exponent == -3 for t in totals)
    assert sum(t.kwh for t in totals) == sum(v for _, _, v in raw_readings(YEAR_2011)) / Decimal(
        1000
    )
    # Whole months in legal time: March loses an hour, November gains one.
    assert [t.expected_intervals for t in totals] == [
        744, 672, 743, 720, 744, 720, 744, 744, 720, 744, 721, 744
    ]  # fmt: skip
    assert all(t.complete for t in totals)


def test_nine_day_month_total_equals_an_independent_reading_of_the_xml() -> None:
    channel = read_espi_file(NINE_DAYS).channel()
    (january,) = monthly_totals(channel, EASTERN)
    assert (january.year, january.month) == (2014, 1)
    assert {(2014, 1): (january.kwh, january.intervals)} == raw_month_totals(NINE_DAYS, EASTERN)
    assert (january.intervals, january.expected_intervals, january.complete) == (216, 744, False)


def test_the_containerized_feed_reports_its_gap() -> None:
    feed = read_espi_file(CONTAINERIZED)
    channel = feed.channel()
    assert [r.kwh for r in channel.readings] == [
        Decimal(v) for v in ("0.450", "0.430", "0.418", "0.410", "0.595", "0.591", "0.611", "0.581")
    ]
    (gap,) = channel.gaps
    assert (gap.start, gap.end, gap.intervals) == (
        datetime(2011, 1, 1, 12, tzinfo=UTC),
        datetime(2011, 1, 1, 20, tzinfo=UTC),
        8,
    )
    (total,) = monthly_totals(channel, PACIFIC)
    assert (total.kwh, total.intervals) == (Decimal("4.086"), 8)


def test_local_time_parameters_are_kept_as_information() -> None:
    feed = read_espi_file(NINE_DAYS)
    local_time = feed.usage_points[0].local_time
    assert local_time is not None and local_time == feed.local_time
    assert local_time.standard_offset == timedelta(hours=-5)
    assert (local_time.dst_offset, local_time.dst_start_rule, local_time.dst_end_rule) == (
        3600,
        "360E2000",
        "B40E2000",
    )


def test_a_month_boundary_inside_an_interval_is_off_the_sp_grid(year_2011: EspiFeed) -> None:
    # Hourly data stamped on UTC hours does not tile India's half-hour-offset days.
    with pytest.raises(EspiError, match="straddles the start of a month in Asia/Kolkata"):
        monthly_totals(year_2011.channel(), "Asia/Kolkata")


# --- scaling, quality, structure ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("multiplier", "value", "kwh"),
    [("3", "2", "2"), ("-3", "450", "0.000450"), ("6", "-1", "-1E+3"), ("0", "1", "0.001")],
)
def test_power_of_ten_multiplier_scales_exactly(multiplier: str, value: str, kwh: str) -> None:
    data = abridged(
        (
            "<powerOfTenMultiplier>0</powerOfTenMultiplier>",
            f"<powerOfTenMultiplier>{multiplier}</powerOfTenMultiplier>",
        ),
        ("<value>450</value>", f"<value>{value}</value>"),
    )
    first = read_espi(data).channel().readings[0]
    assert first.kwh == Decimal(kwh)
    assert first.kwh.as_tuple() == Decimal(kwh).as_tuple()


@pytest.mark.parametrize(
    ("codes", "quality"),
    [
        ([0], "ACTUAL"),
        ([14], "ACTUAL"),
        ([17, 19], "ACTUAL"),
        ([7], "EDITED"),
        ([0, 7], "EDITED"),
        ([8], "ESTIMATED"),
        ([9], "ESTIMATED"),
        ([7, 9], "ESTIMATED"),
        ([12], "ESTIMATED"),
    ],
)
def test_reading_quality_maps_to_mdm_classes(codes: list[int], quality: str) -> None:
    qualities = "".join(
        f"<ReadingQuality><quality>{code}</quality></ReadingQuality>" for code in codes
    )
    data = abridged(("<IntervalReading>", f"<IntervalReading>{qualities}"))
    first, second = read_espi(data).channel().readings[:2]
    assert (first.quality, first.quality_codes) == (quality, tuple(codes))
    assert (second.quality, second.quality_codes) == (None, ())
    assert quality_class(codes) == quality


def test_an_unknown_quality_code_is_rejected() -> None:
    data = abridged(
        (
            "<IntervalReading>",
            "<IntervalReading><ReadingQuality><quality>5</quality></ReadingQuality>",
        )
    )
    error = reading_error(data)
    assert "quality 5 is not an ESPI QualityOfReading code" in str(error)
    assert error.reading == 1


def test_prefixed_atom_direct_links_and_several_blocks_in_one_entry() -> None:
    data = b"""<?xml version="1.0"?>
<atom:feed xmlns:atom="http://www.w3.org/2005/Atom" xmlns:ns="http://naesb.org/espi">
  <atom:title>two blocks, one entry</atom:title>
  <atom:entry>
    <atom:link rel="self" href="UP/1"/>
    <atom:link rel="related" href="UP/1/MR/1"/>
    <atom:content><ns:UsagePoint><ns:ServiceCategory><ns:kind>0</ns:kind></ns:ServiceCategory></ns:UsagePoint></atom:content>
  </atom:entry>
  <atom:entry>
    <atom:link rel="self" href="UP/1/MR/1"/>
    <atom:link rel="related" href="RT/1"/>
    <atom:link rel="related" href="UP/1/MR/1/IB/1"/>
    <atom:content><ns:MeterReading/></atom:content>
  </atom:entry>
  <atom:entry>
    <atom:link rel="self" href="RT/1"/>
    <atom:content><ns:ReadingType>
      <ns:accumulationBehaviour>4</ns:accumulationBehaviour><ns:flowDirection>19</ns:flowDirection>
      <ns:intervalLength>900</ns:intervalLength><ns:powerOfTenMultiplier>3</ns:powerOfTenMultiplier>
      <ns:uom>72</ns:uom></ns:ReadingType></atom:content>
  </atom:entry>
  <atom:entry>
    <atom:link rel="self" href="UP/1/MR/1/IB/1"/>
    <atom:content>
      <ns:IntervalBlock>
        <ns:IntervalReading><ns:timePeriod><ns:duration>900</ns:duration><ns:start>1741500000</ns:start></ns:timePeriod><ns:value>1</ns:value></ns:IntervalReading>
      </ns:IntervalBlock>
      <ns:IntervalBlock>
        <ns:IntervalReading><ns:timePeriod><ns:duration>900</ns:duration><ns:start>1741500900</ns:start></ns:timePeriod><ns:value>2</ns:value></ns:IntervalReading>
      </ns:IntervalBlock>
    </atom:content>
  </atom:entry>
</atom:feed>"""
    feed = read_espi(data)
    assert feed.title == "two blocks, one entry"
    assert feed.local_time is None
    channel = feed.channel()
    assert channel.reading_type.flow_direction == "RECEIVED"
    assert channel.interval_length == 900
    assert [(r.end, r.kwh) for r in channel.readings] == [
        (datetime(2025, 3, 9, 6, 15, tzinfo=UTC), Decimal(1)),
        (datetime(2025, 3, 9, 6, 30, tzinfo=UTC), Decimal(2)),
    ]


def test_a_reading_without_a_value_is_a_gap_not_a_zero() -> None:
    data = abridged(("<value>430</value>", ""))
    channel = read_espi(data).channel()
    assert len(channel.readings) == 7
    assert [(g.start, g.intervals) for g in channel.gaps] == [
        (datetime(2011, 1, 1, 9, tzinfo=UTC), 1),
        (datetime(2011, 1, 1, 12, tzinfo=UTC), 8),
    ]


def test_register_values_are_no_interval_channel() -> None:
    data = abridged(
        (
            "<accumulationBehaviour>4</accumulationBehaviour>",
            "<accumulationBehaviour>1</accumulationBehaviour>",
        )
    )
    feed = read_espi(data)
    (meter_reading,) = feed.meter_readings
    assert meter_reading.reading_type.accumulation_name == "bulkQuantity"
    with pytest.raises(EspiError, match="exactly one was expected"):
        feed.channel()
    with pytest.raises(EspiError, match="bulkQuantity values, not consumption per interval"):
        monthly_totals(meter_reading, PACIFIC)


# --- malformed feeds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uom", "name"), [("169", "therm"), ("38", "W"), ("4242", "not an ESPI unit")]
)
def test_a_unit_other_than_wh_is_rejected_naming_its_code(uom: str, name: str) -> None:
    data = abridged(("<uom>72</uom>", f"<uom>{uom}</uom>"))
    error = reading_error(data)
    assert f"unit code {uom} ({name}" in str(error)
    assert error.line == line_of(data, f"<uom>{uom}</uom>")
    assert error.path is not None and error.path.endswith("/content/ReadingType/uom")


def test_mixed_durations_are_rejected_naming_the_reading() -> None:
    data = abridged(
        (
            "<duration>3600</duration>\n            <start>1293872400</start>",
            "<duration>1800</duration>\n            <start>1293872400</start>",
        )
    )
    error = reading_error(data)
    assert error.reading == 2
    assert error.line == line_of(data, "<IntervalReading>", 2)
    assert error.path == "/feed/entry[5]/content/IntervalBlock/IntervalReading[2]"
    assert "duration 1800 s differs from the 3600 s of reading 1" in error.reason
    assert str(error).startswith(f"feed.xml: line {error.line}: reading 2: /feed/entry[5]")


def test_a_duration_across_blocks_must_match_too() -> None:
    data = abridged(
        ("<intervalLength>3600</intervalLength>", "<intervalLength>900</intervalLength>"),
        *[("<duration>3600</duration>", "<duration>900</duration>")] * 4,
    )
    error = reading_error(data)
    assert error.reading == 5
    assert "duration 3600 s differs from the 900 s of reading 1" in error.reason


def test_a_duration_that_does_not_divide_a_day_is_rejected() -> None:
    data = abridged(
        ("<intervalLength>3600</intervalLength>", "<intervalLength>7000</intervalLength>"),
        *[("<duration>3600</duration>", "<duration>7000</duration>")] * 8,
    )
    error = reading_error(data)
    assert error.reading == 1
    assert "duration 7000 s does not divide a day" in error.reason
    assert error.line == line_of(data, "<duration>7000</duration>", 1)


def test_a_duration_other_than_the_reading_types_interval_length_is_rejected() -> None:
    data = abridged(
        ("<intervalLength>3600</intervalLength>", "<intervalLength>900</intervalLength>")
    )
    assert "differs from the ReadingType's intervalLength 900 s" in reading_error(data).reason


def test_overlapping_intervals_are_rejected_with_both_positions() -> None:
    # Reading 3 starts half an hour into reading 2.
    data = abridged(("<start>1293876000</start>", "<start>1293874200</start>"))
    error = reading_error(data)
    assert error.reading == 3
    assert error.line == line_of(data, "<IntervalReading>", 3)
    assert (
        "the interval [2011-01-01T09:30:00Z, 2011-01-01T10:30:00Z) overlaps reading 2 "
        f"(line {line_of(data, '<IntervalReading>', 2)}), which ends 2011-01-01T10:00:00Z"
    ) in error.reason


def test_a_duplicated_interval_is_rejected() -> None:
    data = abridged(
        (
            "<start>1293912000</start>\n          </timePeriod>",
            "<start>1293868800</start>\n          </timePeriod>",
        )
    )
    error = reading_error(data)
    assert error.reading == 5
    assert "the interval starting 2011-01-01T08:00:00Z duplicates reading 1" in error.reason


def test_a_reading_off_the_channel_grid_is_rejected() -> None:
    data = abridged(
        (
            "<start>1293912000</start>\n          </timePeriod>",
            "<start>1293912060</start>\n          </timePeriod>",
        )
    )
    assert "is off the 3600-second grid of reading 4" in reading_error(data).reason


def test_text_that_is_not_xml_is_rejected_with_its_position() -> None:
    error = reading_error(b"<feed><entry></feed>")
    assert error.line == 1 and error.column is not None
    assert str(error).startswith("feed.xml: line 1, column")
    assert "mismatch" in error.reason.lower()
    assert "empty" in reading_error(b"  ").reason


@pytest.mark.parametrize(
    "declaration",
    ['<!ENTITY wh "450">', '<!ENTITY wh SYSTEM "file:///etc/hostname">'],
    ids=["internal", "external"],
)
def test_a_dtd_or_entity_is_rejected(declaration: str) -> None:
    data = abridged(
        (
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE feed [{declaration}]>',
        ),
        ("<value>450</value>", "<value>&wh;</value>"),
    )
    error = reading_error(data)
    assert "DTD not allowed" in error.reason
    assert str(error).startswith("feed.xml: line 1, column 1: ")


def test_a_feed_over_the_size_cap_is_rejected() -> None:
    with pytest.raises(EspiError, match="over the 1000-byte cap"):
        read_espi(CONTAINERIZED.read_bytes(), limits=XmlLimits(max_bytes=1000))


def test_a_non_integer_start_is_rejected() -> None:
    data = abridged(("<start>1293872400</start>", "<start>1293872400.5</start>"))
    error = reading_error(data)
    assert error.reading == 2
    assert "'1293872400.5' is not an integer" in error.reason


def test_an_interval_block_linked_to_no_meter_reading_is_rejected() -> None:
    data = abridged(
        (
            'rel="up" href="https://services.greenbuttondata.org/DataCustodian/espi/1_1/resource/RetailCustomer/3/UsagePoint/1/MeterReading/01/IntervalBlock"/>',
            'rel="up" href="elsewhere"/>',
        )
    )
    error = reading_error(data)
    assert "this IntervalBlock is linked to no MeterReading" in error.reason
    assert error.path == "/feed/entry[5]/content/IntervalBlock"


def test_a_meter_reading_without_reading_type_is_rejected() -> None:
    data = abridged(
        ('ReadingType/07"/>\n    <title>Hourly', 'ReadingType/99"/>\n    <title>Hourly')
    )
    assert "the MeterReading has no ReadingType" in reading_error(data).reason


def test_a_document_that_is_not_an_atom_feed_is_rejected() -> None:
    error = reading_error(b"<feed><entry/></feed>")
    assert "the root element is feed, not an Atom feed" in error.reason

"""The mapping language's function library."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from ccbmdm.runtime.messages import functions as fn
from ccbmdm.runtime.messages.lexical import format_datetime


def test_start_of_day_takes_the_legal_offset_of_that_day() -> None:
    assert (
        format_datetime(fn.start_of_day(date(2025, 3, 8), "America/New_York"))
        == "2025-03-08T00:00:00-05:00"
    )
    assert (
        format_datetime(fn.start_of_day(date(2025, 3, 10), "America/New_York"))
        == "2025-03-10T00:00:00-04:00"
    )


def test_one_instant_is_written_with_each_value_s_own_offset() -> None:
    """Equal instants with different offsets (or a repeated hour's two folds) compare equal
    in Python; each is written with its own offset all the same, however often it comes."""
    instant = datetime(2025, 11, 2, 5, 30, tzinfo=UTC)
    eastern = instant.astimezone(timezone(timedelta(hours=-5)))
    # 01:30 in New York, the second time that night, and the first time
    repeated = fn.in_zone(datetime(2025, 11, 2, 6, 30, tzinfo=UTC), "America/New_York")
    first_time = repeated.replace(fold=0)
    assert instant == eastern and repeated == first_time
    for _ in range(2):
        assert format_datetime(instant) == "2025-11-02T05:30:00Z"
        assert format_datetime(eastern) == "2025-11-02T00:30:00-05:00"
        assert format_datetime(first_time) == "2025-11-02T01:30:00-04:00"
        assert format_datetime(repeated) == "2025-11-02T01:30:00-05:00"
        assert format_datetime(instant.replace(tzinfo=None)) == "2025-11-02T05:30:00"


def test_unknown_zone_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'Mars/Olympus' is not a time zone of the IANA database"):
        fn.start_of_day(date(2025, 1, 1), "Mars/Olympus")


def test_zone_conversions() -> None:
    instant = datetime(2025, 7, 1, 4, 0, tzinfo=UTC)
    assert format_datetime(fn.in_zone(instant, "America/Chicago")) == "2025-06-30T23:00:00-05:00"
    assert fn.date_of(instant, "America/Chicago") == date(2025, 6, 30)
    assert fn.to_utc(datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2)))) == datetime(
        2024, 12, 31, 22, tzinfo=UTC
    )


def test_status_at() -> None:
    at = datetime(2025, 1, 1, tzinfo=UTC)
    assert fn.status_at(None, at) == "ACTIVE"
    assert fn.status_at(at + timedelta(seconds=1), at) == "ACTIVE"
    assert fn.status_at(at, at) == "INACTIVE"


def test_numbers_and_units() -> None:
    assert fn.convert_unit(Decimal("1500"), "Wh", "kWh") == Decimal("1.5")
    with pytest.raises(ValueError, match="cannot convert kWh"):
        fn.convert_unit(Decimal(1), "kWh", "kW")
    assert fn.round_(Decimal("2.345"), 2) == Decimal("2.34")
    assert fn.number_text(Decimal("2.5"), 3) == "2.500"
    assert fn.multiply(Decimal("1.5"), Decimal("2")) == Decimal("3.0")
    assert fn.minutes_to_seconds(15) == 900
    assert fn.concat("a", "-", "b") == "a-b" and fn.join(", ", ("x", "y")) == "x, y"


@dataclass
class Clock:
    time_zone: str = "America/New_York"
    clock: object = field(default=lambda: datetime(2025, 3, 10, 3, 30, tzinfo=UTC))


def test_now_and_today_read_the_context() -> None:
    context = Clock()
    assert fn.now(context) == datetime(2025, 3, 10, 3, 30, tzinfo=UTC)  # type: ignore[arg-type]
    assert fn.today(context) == date(2025, 3, 9)  # type: ignore[arg-type]  # still the 9th in New York

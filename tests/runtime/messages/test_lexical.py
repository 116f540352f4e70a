"""XSD lexical forms: the usual texts, read the short way, mean what the general reading gives."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from ccbmdm.runtime.messages.lexical import InvalidValue, parse_date, parse_datetime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-12T15:22:41Z", datetime(2025, 3, 12, 15, 22, 41, tzinfo=UTC)),
        (
            "2019-06-14T00:00:00-04:00",
            datetime(2019, 6, 14, tzinfo=timezone(timedelta(hours=-4))),
        ),
        (
            "2025-01-01T00:00:00+13:59",
            datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=13, minutes=59))),
        ),
        ("2025-01-01T00:00:00+14:00", datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=14)))),
        ("2025-01-01T00:00:00.250Z", datetime(2025, 1, 1, 0, 0, 0, 250000, tzinfo=UTC)),
        ("  2025-03-12T15:22:41Z\n", datetime(2025, 3, 12, 15, 22, 41, tzinfo=UTC)),
        ("2025-03-12T15:22:41", datetime(2025, 3, 12, 15, 22, 41)),
    ],
)
def test_date_times_are_read_alike_whichever_way(text: str, expected: datetime) -> None:
    value = parse_datetime(text)
    assert value == expected
    assert value.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("2025-01-01T00:00:00+14:01", "'2025-01-01T00:00:00+14:01' has an offset outside"),
        ("2025-01-01T00:00:00-14:30", "'2025-01-01T00:00:00-14:30' has an offset outside"),
        ("2025-02-30T00:00:00Z", "'2025-02-30T00:00:00Z' is not a valid date-time: "),
        ("2025-01-01T24:30:00+01:00", "'2025-01-01T24:30:00+01:00' is not a valid date-time: "),
        ("2025-01-01T00:00:00.1234567Z", "has more than 6 fractional digits of a second"),
        ("2025-01-01 00:00:00Z", "is not a date-time (YYYY-MM-DDThh:mm:ss with an offset)"),
    ],
)
def test_date_times_are_refused_with_the_same_words_whichever_way(text: str, words: str) -> None:
    with pytest.raises(InvalidValue, match=re.escape(words)):
        parse_datetime(text)


def test_dates_are_read_as_written_or_collapsed_and_refused_alike() -> None:
    assert parse_date("2025-03-12") == date(2025, 3, 12)
    assert parse_date(" 2025-03-12\t") == date(2025, 3, 12)
    with pytest.raises(InvalidValue, match=r"'2025-3-12' is not a date \(YYYY-MM-DD\)"):
        parse_date("2025-3-12")
    with pytest.raises(InvalidValue, match="'2025-02-30' is not a valid date: "):
        parse_date(" 2025-02-30 ")

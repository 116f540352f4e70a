"""The interval profiles flow cases load into MDM: a value per interval of a period in absolute
time, runs that change some of them, missing intervals left out."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ccbmdm.conformance.interval_profile import profile_values


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_spring_forward_day_has_92_quarter_hours() -> None:
    rows = profile_values(
        at("2025-03-09T00:00:00-05:00"), at("2025-03-10T00:00:00-04:00"), 900, "0.25"
    )
    assert len(rows) == 92
    assert sum(r.kwh for r in rows) == Decimal("23.00")
    assert rows[0].end == at("2025-03-09T00:15:00-05:00")  # interval-ending stamps (PD-D01)
    assert rows[-1].end == at("2025-03-10T00:00:00-04:00")
    assert {r.codes for r in rows} == {("1.0.0",)}


def test_runs_change_values_and_quality_and_leave_missing_intervals_out() -> None:
    rows = profile_values(
        at("2025-07-16T00:00:00-04:00"),
        at("2025-07-16T02:00:00-04:00"),
        900,
        "0.30",
        [
            {"from": "2025-07-16T00:00:00-04:00", "to": "2025-07-16T01:00:00-04:00", "kwh": "0.80"},
            {
                "from": "2025-07-16T00:30:00-04:00",
                "to": "2025-07-16T00:45:00-04:00",
                "quality": "ESTIMATED",
            },
            {
                "from": "2025-07-16T01:00:00-04:00",
                "to": "2025-07-16T01:30:00-04:00",
                "missing": True,
            },
            {
                "from": "2025-07-16T01:45:00-04:00",
                "to": "2025-07-16T02:00:00-04:00",
                "quality": ["1.0.0", "3.6.1"],
            },
        ],
    )
    shown = [(r.end.astimezone(UTC).strftime("%H:%M"), str(r.kwh), " ".join(r.codes)) for r in rows]
    assert shown == [
        ("04:15", "0.80", "1.0.0"),
        ("04:30", "0.80", "1.0.0"),
        ("04:45", "0.80", "3.8.0"),
        ("05:00", "0.80", "1.0.0"),
        ("05:45", "0.30", "1.0.0"),
        ("06:00", "0.30", "1.0.0 3.6.1"),
    ]


@pytest.mark.parametrize(
    ("kwh", "runs", "message"),
    [
        ("0.25", [{"from": "2025-07-16T00:00:00-04:00"}], "run 1 takes from, to"),
        ("0.25", [{"from": "x", "to": "y"}], "run 1: 'x' is not a date-time"),
        (
            "0.25",
            [
                {
                    "from": "2025-07-16T00:00:00-04:00",
                    "to": "2025-07-16T01:00:00-04:00",
                    "quality": "GOOD",
                }
            ],
            "quality 'GOOD' is none of",
        ),
        ("a lot", [], "kwh 'a lot' is not a decimal"),
        (None, [], "has no kwh"),
    ],
)
def test_a_profile_that_cannot_be_loaded_says_why(
    kwh: str | None, runs: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        profile_values(
            at("2025-07-16T00:00:00-04:00"), at("2025-07-16T01:00:00-04:00"), 900, kwh, runs
        )


def test_a_period_of_part_intervals_is_refused() -> None:
    with pytest.raises(ValueError, match="not whole intervals"):
        profile_values(
            at("2025-07-16T00:00:00-04:00"), at("2025-07-16T00:20:00-04:00"), 900, "0.25"
        )

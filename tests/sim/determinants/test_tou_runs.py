"""A period's TOUs as runs (docs/determinants.md PD-D16): expanded interval by interval they are
the TOU of each interval, over clock-change days, holidays, spans that start mid-day and option
events; and whole months computed run by run answer as the value-by-value engine did."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sim.determinants.conftest import answer

import reference_engine
from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants import engine
from ccbmdm.runtime.sim.determinants.engine import CalculationRequest
from ccbmdm.runtime.sim.determinants.measurements import (
    QUALITY_CODES,
    Installation,
    IntervalChannel,
    IntervalValue,
    Quality,
)
from ccbmdm.runtime.sim.determinants.tou import TouCalendar, TouOverride, TouRuns
from ccbmdm.runtime.sim.determinants.usage_groups import TouMap, UsageGroup, load_usage_group

NY = zone("America/New_York")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INSTALLED = datetime(2020, 1, 1, tzinfo=UTC)
HOLIDAYS = frozenset({date(2025, 1, 1), date(2025, 7, 4), date(2025, 11, 27), date(2025, 12, 25)})
DAYS = st.dates(min_value=date(2025, 1, 1), max_value=date(2025, 12, 31)) | st.sampled_from(
    [date(2025, 3, 8), date(2025, 3, 9), date(2025, 11, 1), date(2025, 11, 2), date(2025, 7, 3)]
)


def with_holidays(name: str) -> UsageGroup:
    """A shipped usage group whose map also keeps four holidays (priced as its weekends)."""
    group = load_usage_group(name)
    assert group.tou_map is not None
    return replace(group, tou_map=replace(group.tou_map, holidays=HOLIDAYS))


def expanded(runs: TouRuns) -> list[str]:
    """Each interval's TOU, run by run."""
    bounds = [*runs.starts.tolist(), sum(runs.values)]
    return [
        runs.tous[tou]
        for tou, first, after in zip(runs.tou_of.tolist(), bounds, bounds[1:], strict=False)
        for _ in range(after - first)
    ]


@settings(max_examples=150, deadline=None)
@given(
    DAYS,
    st.sampled_from([300, 900, 3600]),
    st.integers(0, 95),
    st.integers(1, 40 * 96),
    st.sampled_from(["RES-TOU", "COM-DEM", "TEST-TOU-T"]),
    st.booleans(),
    st.booleans(),
)
def test_runs_give_each_interval_its_tou(
    day: date,
    seconds: int,
    into: int,
    count: int,
    name: str,
    holidays: bool,
    option_event: bool,
) -> None:
    group = with_holidays(name) if holidays else load_usage_group(name)
    overrides: tuple[TouOverride, ...] = ()
    step = timedelta(seconds=seconds)
    first_end = datetime.combine(day, time(0), NY).astimezone(UTC) + step * (1 + into)
    if option_event:
        option_map = load_usage_group("TEST-TOU-T").tou_map
        assert isinstance(option_map, TouMap)
        overrides = (TouOverride(first_end + step * 3, first_end + step * 40, option_map),)
    calendar = TouCalendar(NY, group.tou_map, overrides)
    runs = calendar.tou_runs((first_end - EPOCH) // timedelta(microseconds=1), count, seconds)
    assert sum(runs.values) == count
    assert runs.starts[0] == 0 and bool((np.diff(runs.starts) > 0).all())
    assert expanded(runs) == calendar.tous_of(first_end, count, seconds)


def month_of_values(first: date, seed: int, large: bool) -> IntervalChannel:
    """A month of 15-minute values from legal midnight of ``first``, one in fifty estimated and
    one in a hundred edited, and with ``large`` one value beyond 64 bits once scaled."""
    rng = np.random.default_rng(seed)
    start = datetime.combine(first, time(0), NY).astimezone(UTC)
    following = date(first.year + first.month // 12, first.month % 12 + 1, first.day)
    count = (datetime.combine(following, time(0), NY).astimezone(UTC) - start) // timedelta(
        minutes=15
    )
    units = rng.integers(0, 3000, count).tolist()
    if large:
        units[count // 2] = 10**21
    kinds = rng.random(count).tolist()
    quality = [
        Quality.ESTIMATED if k < 0.02 else Quality.EDITED if k < 0.03 else Quality.ACTUAL
        for k in kinds
    ]
    values = tuple(
        IntervalValue(
            start + timedelta(minutes=15) * (k + 1),
            Decimal(units[k]).scaleb(-3),
            QUALITY_CODES[quality[k]],
        )
        for k in range(count)
    )
    return IntervalChannel("CH1", values=values)


@pytest.mark.parametrize(
    ("first", "name", "large"),
    [
        (date(2025, 7, 1), "COM-DEM", False),  # weekdays on-peak, and the July 4 holiday
        (date(2025, 3, 1), "RES-TOU", False),  # the spring clock change inside
        (date(2025, 10, 15), "COM-DEM", True),  # the autumn one, and a value beyond int64
        (date(2025, 11, 1), "TEST-TOU-T", False),
    ],
)
def test_a_month_computed_run_by_run_answers_as_the_value_by_value_engine(
    first: date, name: str, large: bool
) -> None:
    group = with_holidays(name)
    channel = month_of_values(first, first.month, large)
    start = channel.values[0].end - timedelta(minutes=15)
    end = channel.values[-1].end
    request = CalculationRequest(start, end, end, "America/New_York")
    installations = (Installation("D1", INSTALLED, channels=(channel,)),)
    expected = answer(reference_engine.calculate, request, installations, group)
    assert expected[0] == "answer"
    assert answer(engine.calculate, request, installations, group) == expected

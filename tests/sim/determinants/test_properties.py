"""Properties of the determinant engine that must hold for any data: TOU buckets add up to the
total, a date break never changes the energy of the whole, quantization is half-up, rollover
and net metering are exact, and VEE fills only short gaps with values between the neighbours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants.engine import (
    CalculationRequest,
    DateBreak,
    Determinants,
    calculate,
)
from ccbmdm.runtime.sim.determinants.estimation import fill_gaps
from ccbmdm.runtime.sim.determinants.measurements import (
    ImplausibleRegisterDecrease,
    Installation,
    IntervalChannel,
    IntervalValue,
    Quality,
    Reading,
    Register,
    quantize,
)
from ccbmdm.runtime.sim.determinants.registers import measured_quantity
from ccbmdm.runtime.sim.determinants.usage_groups import UsageGroup, load_usage_group

NY = zone("America/New_York")
STEP = timedelta(minutes=15)
INSTALLED = datetime(2020, 1, 1, tzinfo=UTC)
DAYS = st.dates(min_value=date(2025, 1, 1), max_value=date(2025, 12, 31)) | st.sampled_from(
    [date(2025, 3, 9), date(2025, 11, 2)]  # the clock-change days, always tried
)
MILLIS = st.lists(st.integers(0, 5000), min_size=100, max_size=100)  # values at scale 3


def legal_day(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), NY)
    return start, datetime.combine(day + timedelta(days=1), time(0), NY)


def day_channel(day: date, millis: list[int]) -> tuple[datetime, datetime, IntervalChannel]:
    start, end = legal_day(day)
    count = (end.astimezone(UTC) - start.astimezone(UTC)) // STEP
    first = start.astimezone(UTC)
    data = tuple(
        IntervalValue.of(first + STEP * (k + 1), Decimal(millis[k]).scaleb(-3))
        for k in range(count)
    )
    return start, end, IntervalChannel("CH1", values=data)


def run(
    start: datetime,
    end: datetime,
    installation: Installation,
    group: UsageGroup,
    breaks: tuple[DateBreak, ...] = (),
) -> Determinants:
    req = CalculationRequest(start, end, end, "America/New_York", date_breaks=breaks)
    result = calculate(req, [installation], group)
    assert isinstance(result, Determinants)
    return result


GROUPS = st.sampled_from(["RES-TOU", "TEST-TOU-T"])


@settings(max_examples=60, deadline=None)
@given(DAYS, MILLIS, GROUPS)
def test_tou_buckets_always_sum_to_the_total(day: date, millis: list[int], name: str) -> None:
    start, end, channel = day_channel(day, millis)
    group = load_usage_group(name)
    (period,) = run(start, end, Installation("D1", INSTALLED, channels=(channel,)), group).periods
    total = period.quantity("KWH")
    buckets = [sq for sq in period.service_quantities if sq.tou]
    assert sum(sq.quantity for sq in buckets) == total.quantity
    assert sum(sq.value_count for sq in buckets) == total.value_count == len(channel.values)


@settings(max_examples=60, deadline=None)
@given(DAYS, MILLIS, st.integers(1, 91))
def test_a_break_at_any_grid_point_keeps_the_energy_of_the_whole(
    day: date, millis: list[int], cut: int
) -> None:
    start, end, channel = day_channel(day, millis)
    group = load_usage_group("RES-TOU")
    installation = Installation("D1", INSTALLED, channels=(channel,))
    whole = run(start, end, installation, group).periods[0]
    moment = start.astimezone(UTC) + STEP * cut
    parts = run(start, end, installation, group, (DateBreak(moment),)).periods
    assert [p.end_date_time for p in parts] == [moment, end]
    for sq in whole.service_quantities:
        assert sum(p.quantity(*sq.key).quantity for p in parts) == sq.quantity
        assert sum(p.quantity(*sq.key).value_count for p in parts) == sq.value_count


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 27), st.integers(0, 10_000), st.integers(0, 20_000))
def test_a_break_between_two_reads_keeps_the_pair_consumption(
    day: int, start_value: int, used: int
) -> None:
    first, last = datetime(2025, 2, 1, tzinfo=NY), datetime(2025, 3, 1, tzinfo=NY)
    register = Register(
        "MC1",
        "KWH",
        readings=(Reading.of(first, str(start_value)), Reading.of(last, str(start_value + used))),
    )
    installation = Installation("D1", INSTALLED, registers=(register,))
    group = UsageGroup("FLAT")
    whole = run(first, last, installation, group).periods[0].quantity("KWH").quantity
    split = run(first, last, installation, group, (DateBreak(first + timedelta(days=day)),))
    assert sum(p.quantity("KWH").quantity for p in split.periods) == whole == used


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False),
    st.integers(0, 6),
)
def test_quantization_is_half_up_with_exactly_the_precision(value: Decimal, places: int) -> None:
    result = quantize(value, places)
    scaled = abs(value) * 10**places
    whole = int(scaled)
    expected = Decimal(whole + (1 if scaled - whole >= Decimal("0.5") else 0)).scaleb(-places)
    assert result == (expected if value >= 0 else -expected)
    assert result.as_tuple().exponent == -places
    assert not (result.is_zero() and result.is_signed())


@given(st.integers(1, 8), st.data())
def test_rollover_is_exact_within_the_threshold(dials: int, data: st.DataObject) -> None:
    capacity = 10**dials
    register = Register("MC1", "KWH", number_of_dials=dials)
    start = data.draw(st.integers(0, capacity - 1))
    used = data.draw(st.integers(0, capacity // 2))
    end = (start + used) % capacity
    measured = measured_quantity(register, Decimal(start), Decimal(end))
    assert (measured.quantity, measured.rollover) == (Decimal(used), start + used >= capacity)
    drop = data.draw(st.integers(1, capacity // 2 - 1))
    if start >= drop:
        with pytest.raises(ImplausibleRegisterDecrease):
            measured_quantity(register, Decimal(start), Decimal(start - drop))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 50_000), st.integers(0, 40_000), st.integers(0, 50_000), st.integers(0, 40_000)
)
def test_net_is_delivered_minus_received(
    forward: int, delivered: int, reverse: int, received: int
) -> None:
    first, last = datetime(2025, 1, 1, tzinfo=NY), datetime(2025, 2, 1, tzinfo=NY)

    def register(mc: str, sqi: str, start: int, used: int) -> Register:
        end = (start + used) % 10**6
        readings = (Reading.of(first, str(start)), Reading.of(last, str(end)))
        return Register(mc, "KWH", sqi=sqi, number_of_dials=6, readings=readings)

    installation = Installation(
        "D1",
        INSTALLED,
        registers=(
            register("F", "DEL", forward, delivered),
            register("R", "REC", reverse, received),
        ),
    )
    (period,) = run(first, last, installation, UsageGroup("NET")).periods
    net = period.quantity("KWH", sqi="NET").quantity
    assert net == delivered - received
    assert period.quantity("KWH", sqi="NET").quantity_text == f"{delivered - received}.000"


@given(
    st.integers(1, 8),
    st.decimals(min_value=0, max_value=100, places=2),
    st.decimals(min_value=0, max_value=100, places=3),
)
def test_vee_fills_only_short_gaps_between_the_neighbours(
    gap: int, before: Decimal, after: Decimal
) -> None:
    start = datetime(2025, 1, 15, tzinfo=UTC)
    ends = [start + STEP * (k + 1) for k in range(gap + 2)]
    channel = IntervalChannel(
        "CH1", values=(IntervalValue.of(ends[0], before), IntervalValue.of(ends[-1], after))
    )
    filled = fill_gaps(channel, start, ends[-1])
    if gap > 4:
        assert filled == channel
        return
    added = [v for v in filled.values if v.end not in (ends[0], ends[-1])]
    assert [v.end for v in added] == ends[1:-1]
    low, high = min(before, after), max(before, after)
    for value in added:
        assert low <= value.value <= high
        assert value.quality is Quality.ESTIMATED
        assert value.value.as_tuple().exponent == -3  # the larger scale of the neighbours

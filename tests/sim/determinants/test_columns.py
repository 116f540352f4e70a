"""The engine's exact columns answer every request as the value-by-value engine did
(docs/determinants.md PD-D16): randomised channels over clock-change days and ordinary ones, with
gaps short and long, estimated and edited values, mixed scales, values too large for int64,
delivered and received channels, date breaks, estimation allowed or not, and channels made from
columns as a store reads them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from hypothesis import event, given, settings
from hypothesis import strategies as st
from sim.determinants.conftest import answer

import reference_engine
from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants import engine
from ccbmdm.runtime.sim.determinants.engine import BillCondition, CalculationRequest, DateBreak
from ccbmdm.runtime.sim.determinants.measurements import (
    QUALITY_CODES,
    Installation,
    IntervalChannel,
    IntervalValue,
    Quality,
    columns_of,
    columns_of_texts,
    columns_of_units,
    values_of,
)
from ccbmdm.runtime.sim.determinants.usage_groups import load_usage_group
from ccbmdm.runtime.sim.mdm import interval_amounts

NY = zone("America/New_York")
INSTALLED = datetime(2020, 1, 1, tzinfo=UTC)
DAYS = st.dates(min_value=date(2025, 1, 1), max_value=date(2025, 12, 28)) | st.sampled_from(
    [date(2025, 3, 8), date(2025, 3, 9), date(2025, 11, 1), date(2025, 11, 2)]
)
CODES = st.sampled_from(
    [
        QUALITY_CODES[Quality.ACTUAL],
        QUALITY_CODES[Quality.ESTIMATED],
        QUALITY_CODES[Quality.EDITED],
        ("1.0.0", "3.6.1"),  # actual, flagged zero usage
    ]
)


@st.composite
def amounts(draw: st.DrawFn, scale: int | None) -> Decimal:
    """A value at ``scale`` (None: any of 0 to 3), now and then one too large for int64 once
    scaled."""
    places = draw(st.integers(0, 3)) if scale is None else scale
    if draw(st.integers(0, 40)) == 0:
        return Decimal(draw(st.integers(10**19, 10**22))).scaleb(-places)
    return Decimal(draw(st.integers(0, 9_999))).scaleb(-places)


@st.composite
def channel(
    draw: st.DrawFn,
    mc: str,
    sqi: str,
    start: datetime,
    end: datetime,
    seconds: int,
    scale: int | None,
) -> IntervalChannel:
    """Values on the grid of ``[start, end)`` at ``scale`` (None: mixed), some missing: gaps
    VEE fills, and now and then a run longer than it may."""
    step = timedelta(seconds=seconds)
    count = (end - start) // step
    values = []
    k = 0
    gaps = draw(st.sampled_from([0, 0, 1, 3]))  # in a hundred intervals
    while k < count:
        if draw(st.integers(0, 99)) < gaps:  # a gap of 1 to 6 intervals
            k += draw(st.integers(1, 6))
            continue
        k += 1
        values.append(IntervalValue(start + step * k, draw(amounts(scale)), draw(CODES)))
    return IntervalChannel(mc, sqi=sqi, seconds_per_interval=seconds, values=tuple(values))


@st.composite
def cases(
    draw: st.DrawFn, one_scale: bool = False
) -> tuple[CalculationRequest, tuple[Installation, ...], str]:
    """A request over 1 to 3 days and an SP with one to two channels; ``one_scale``: each
    channel's values at one scale, as a store that reads columns keeps them."""
    first = draw(DAYS)
    days = draw(st.integers(1, 3))
    start = datetime.combine(first, time(0), NY).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=days), time(0), NY).astimezone(UTC)
    seconds = draw(st.sampled_from([900, 3600]))
    sqis = draw(st.sampled_from([("",), ("DEL",), ("DEL", "REC")]))
    scales = [draw(st.integers(0, 3)) if one_scale else None for _ in sqis]
    channels = tuple(
        draw(channel(f"CH{k}", sqi, start, end, seconds, scales[k])) for k, sqi in enumerate(sqis)
    )
    step = timedelta(seconds=seconds)
    grid = (end - start) // step
    early = draw(st.integers(0, min(8, grid - 1)))
    breaks: tuple[DateBreak, ...] = ()
    if draw(st.booleans()):
        breaks = (DateBreak(start + step * draw(st.integers(1, grid - early - 1 or 1))),)
    request = CalculationRequest(
        start,
        end - step * early,
        end,
        "America/New_York",
        bill_condition=draw(st.sampled_from([BillCondition.INTERIM, BillCondition.CLOSING])),
        date_breaks=tuple(b for b in breaks if start < b.date_time < end),
        return_interval_data=draw(st.booleans()),
    )
    group = draw(st.sampled_from(["RES-TOU", "COM-DEM", "TEST-TOU-T"]))
    return request, (Installation("D1", INSTALLED, channels=channels),), group


@settings(max_examples=200, deadline=None)
@given(cases())
def test_the_columns_answer_as_the_value_by_value_engine(
    case: tuple[CalculationRequest, tuple[Installation, ...], str],
) -> None:
    request, installations, name = case
    group = load_usage_group(name)
    expected = answer(reference_engine.calculate, request, installations, group)
    event(expected[0] if expected[0] == "answer" else expected[1][0])
    assert answer(engine.calculate, request, installations, group) == expected


@settings(max_examples=60, deadline=None)
@given(cases(one_scale=True))
def test_a_channel_made_from_columns_answers_as_one_made_from_values(
    case: tuple[CalculationRequest, tuple[Installation, ...], str],
) -> None:
    request, installations, name = case
    group = load_usage_group(name)
    (installation,) = installations
    from_columns = tuple(
        IntervalChannel.from_columns(
            c.mc, columns_of(c.values), c.uom, c.sqi, c.seconds_per_interval
        )
        for c in installation.channels
    )
    made = (Installation("D1", INSTALLED, channels=from_columns),)
    ours = answer(engine.calculate, request, made, group)
    expected = answer(reference_engine.calculate, request, installations, group)
    if request.return_interval_data and ours[0] == "answer":
        # values echoed from columns carry the channel's scale: equal by value, not by digits
        ours_result = engine.calculate(request, made, group)
        reference = reference_engine.calculate(request, installations, group)
        assert ours_result == reference
    else:
        assert ours == expected


DECIMAL_TEXTS = st.one_of(
    st.from_regex(r"[+-]?[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
    st.sampled_from(["5.", ".5", "1E+2", "-0.0", "0.000", "12345678901234567890.5", "7e-3"]),
)


ONE_SCALE_TEXTS = st.sampled_from(["", r"\.[0-9]", r"\.[0-9]{3}", r"\.[0-9]{4}"]).flatmap(
    lambda places: st.lists(
        st.from_regex(r"[+-]?[0-9]{1,17}" + places, fullmatch=True), min_size=1, max_size=40
    )
)


@given(
    texts=st.lists(DECIMAL_TEXTS, min_size=1, max_size=40) | ONE_SCALE_TEXTS,
    flagged=st.sets(st.integers(0, 39)),
)
def test_columns_read_from_texts_are_the_columns_of_the_values(
    texts: list[str], flagged: set[int]
) -> None:
    """A store's month is turned into columns straight from its texts (the plain ones scaled
    from their digits, any other read as a Decimal): the same columns as those of the values
    made one by one, whatever the texts' scales, signs, zeros and forms; and so are those made
    from the integers the packer reads texts of one scale as (``interval_amounts.scaled``)."""
    ends = [1_750_000_000 + 900 * k for k in range(1, len(texts) + 1)]
    actual, estimated = QUALITY_CODES[Quality.ACTUAL], QUALITY_CODES[Quality.ESTIMATED]
    code_of = [1 if k in flagged else 0 for k in range(len(texts))]
    columns = columns_of_texts(ends, texts, (actual, estimated), code_of)
    values = [
        IntervalValue.of(
            datetime.fromtimestamp(end, UTC), text, Quality.ESTIMATED if c else Quality.ACTUAL
        )
        for end, text, c in zip(ends, texts, code_of, strict=True)
    ]
    assert values_of(columns) == tuple(values)  # equal ends, codes and values (by value)
    assert columns.scale == max(max(-Decimal(t).as_tuple().exponent, 0) for t in texts)  # type: ignore[operator]
    uniform = interval_amounts.scaled(texts)
    if uniform is not None:
        assert values_of(columns_of_units(ends, *uniform, (actual, estimated), code_of)) == tuple(
            values
        )
    expected = columns_of(values)
    assert [int(u) * 10 ** (columns.scale - expected.scale) for u in expected.units.tolist()] == [
        int(u) for u in columns.units.tolist()
    ]

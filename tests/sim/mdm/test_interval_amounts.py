"""A day's interval values packed as bytes: every text reads back exactly as it was written,
whatever it is (decimals of mixed scales, signs, exponents, leading or trailing zeros, a
negative zero, any other text); a day of 15-minute decimals takes at most a quarter of its
texts' bytes; bytes that are not a packed day are refused with what is wrong."""

from __future__ import annotations

import itertools
import math
import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbmdm.runtime.sim.mdm import interval_amounts
from ccbmdm.runtime.sim.mdm.interval_amounts import Damaged, pack, plain, unpack
from ccbmdm.runtime.sim.mdm.interval_days import Day


def decimal_texts() -> st.SearchStrategy[str]:
    """A decimal's text at any scale, as Decimal prints it (exponents included)."""
    return st.builds(
        lambda units, scale: str(Decimal(units).scaleb(-scale)),
        st.integers(-(10**12), 10**12),
        st.integers(-3, 8),
    )


ODD = ["-0.0", "-0", "-0.000", "007", "+1", ".5", "5.", "1e3", "1E+3", "0.4500", " ", "", "١٢"]
VALUE_TEXTS = st.one_of(
    decimal_texts(),
    st.sampled_from(ODD),
    st.text(max_size=12),
    st.integers(-(10**30), 10**30).map(str),
)


@given(values=st.lists(VALUE_TEXTS, max_size=200))
def test_any_value_texts_read_back_exactly(values: list[str]) -> None:
    assert unpack(pack(values)) == values


STEP_EDGES = st.sampled_from([0, 1, 63, 64, 8191, 8192, 8193, 2**40, 2**63, 2**70])


@given(
    first=st.integers(-(2**70), 2**70),
    steps=st.lists(st.tuples(STEP_EDGES, st.booleans()), max_size=60),
    scale=st.integers(0, 6),
)
def test_integers_at_a_scale_pack_as_their_texts_whatever_their_differences(
    first: int, steps: list[tuple[int, bool]], scale: int
) -> None:
    """A generator's integers (``pack_units``) read back as their texts, and pack to the same
    bytes as those texts: differences that a lookup encodes (under 8,192 either way) and
    those encoded one by one (larger, beyond 64 bits too) alike, side by side."""
    units = list(
        itertools.accumulate((-step if down else step for step, down in steps), initial=first)
    )
    spelled = interval_amounts.texts(units, scale)
    packed = interval_amounts.pack_units(units, scale)
    assert unpack(packed) == spelled
    assert packed == pack(spelled)


@st.composite
def days(draw: st.DrawFn) -> tuple[int, dict[int, tuple[str, str]]]:
    """A UTC day's intervals: a 5-, 15- or 60-minute channel with gaps, values mostly of one
    scale and some of others, and quality codes."""
    day = draw(st.integers(19_000, 21_000))
    seconds = draw(st.sampled_from([300, 900, 3600]))
    ends = range(day * 86_400 + seconds, (day + 1) * 86_400 + 1, seconds)
    kept = draw(st.lists(st.sampled_from(ends), min_size=1, max_size=len(ends), unique=True))
    scale = draw(st.integers(0, 4))
    usual = st.integers(-(10**6), 10**7).map(lambda n: str(Decimal(n).scaleb(-scale)))
    texts = st.one_of(usual, usual, usual, VALUE_TEXTS)
    codes = st.sampled_from(["1.0.0", "1.0.0", "3.8.0", "3.7.0", "3.8.0 2.6.1", "2.0.1"])
    return day, {end: (draw(texts), draw(codes)) for end in kept}


@given(day=days())
def test_a_day_of_values_with_gaps_and_codes_packs_and_unpacks_to_the_same_texts(
    day: tuple[int, dict[int, tuple[str, str]]],
) -> None:
    number, intervals = day
    packed = Day.of("MC", number, intervals)
    assert isinstance(packed.amounts, bytes)
    assert packed.intervals() == intervals


def quarter_hours(seed: int, scale: int = 3) -> list[str]:
    """A household's day of 15-minute kWh at ``scale`` decimals (14 to 38 kWh a day, morning
    and evening peaks, each value within 20% of the shape), as the demo draws them."""
    draw = random.Random(seed)
    hours = [(i + 0.5) / 4 for i in range(96)]
    shape = [
        0.45 + 0.9 * math.exp(-(((h - 7.5) / 1.5) ** 2)) + 1.6 * math.exp(-(((h - 19) / 2.2) ** 2))
        for h in hours
    ]
    kwh = draw.uniform(14, 38) / sum(shape)
    return [
        str(Decimal(int(kwh * s * (0.8 + 0.4 * draw.random()) * 10**scale)).scaleb(-scale))
        for s in shape
    ]


def test_a_household_day_of_kwh_takes_at_most_a_quarter_of_its_texts() -> None:
    for seed in range(50):
        values = quarter_hours(seed)
        assert len(pack(values)) <= len(" ".join(values).encode()) / 4, values


def test_a_value_at_another_scale_is_listed_apart_and_the_day_stays_compact() -> None:
    values = quarter_hours(1)
    corrected = [*values[:50], "1.2", *values[51:]]  # a correction sent with one decimal
    finer = [*values[:50], "1.23456", *values[51:]]
    assert unpack(pack(corrected)) == corrected and unpack(pack(finer)) == finer
    # a few bytes more: where it is listed, and the steps to it and back
    assert len(pack(corrected)) <= len(pack(values)) + 8
    assert len(pack(finer)) <= len(pack(values)) + 10
    coarse = [str(Decimal(v).quantize(Decimal("0.01"))) for v in values]
    coarse[7] = "0.125"  # the day's scale is its most common one: one value listed apart
    assert unpack(pack(coarse)) == coarse
    assert len(pack(coarse)) <= len(pack(values))


def test_a_text_that_is_not_a_plain_decimal_is_kept_as_it_is_among_decimals() -> None:
    values = quarter_hours(2)
    for odd in ODD:
        day = [*values[:10], odd, *values[11:]]
        assert unpack(pack(day)) == day
        assert len(pack(day)) <= len(pack(values)) + len(odd.encode()) + 4


def test_plain_decimals_are_those_one_integer_and_scale_spell_back() -> None:
    assert plain("0.126") == (126, 3)
    assert plain("-12.50") == (-1250, 2)
    assert plain("0") == (0, 0)
    assert plain("-0.001") == (-1, 3)
    for other in ODD:
        assert plain(other) is None or other == "0.4500"
    assert plain("0.4500") == (4500, 4)
    for number, scale in [(126, 3), (-1250, 2), (0, 0), (0, 3), (-1, 3), (10**40, 1)]:
        assert plain(interval_amounts.text_of(number, scale)) == (number, scale)


def test_flat_or_coarse_data_is_deflated() -> None:
    zeros = ["0.000"] * 96  # a solar export channel at night, a vacant premises
    packed = pack(zeros)
    assert packed[0] == interval_amounts.DECIMALS | interval_amounts.DEFLATED
    assert len(packed) < 16 and unpack(packed) == zeros
    noisy = quarter_hours(3)
    assert pack(noisy)[0] == interval_amounts.DECIMALS


def test_bytes_that_are_not_a_packed_day_are_refused_with_what_is_wrong() -> None:
    packed = pack(quarter_hours(4))
    with pytest.raises(Damaged, match="form 2, which this version does not know"):
        unpack(bytes([2]) + packed[1:])
    with pytest.raises(Damaged, match="no bytes"):
        unpack(b"")
    with pytest.raises(Damaged, match="95 values where 96 were written"):
        unpack(packed[:-1])
    with pytest.raises(Damaged, match="do not inflate"):
        unpack(bytes([interval_amounts.DECIMALS | interval_amounts.DEFLATED, 1, 2, 3]))
    day = Day("MC-7", 20_000, "900:900:96", packed[:-1], None)
    with pytest.raises(ValueError, match=r"MC MC-7, day 20000: 95 values where 96 .* damaged"):
        day.unpacked()


@given(st.lists(st.integers(-(10**12), 10**12), max_size=50), st.integers(0, 6))
def test_integers_are_spelled_at_their_scale_as_a_stored_day_reads_them(
    numbers: list[int], scale: int
) -> None:
    """What a generator writes (``texts``) is what ``unpack`` gives back for those integers,
    looked up or made afresh alike."""
    expected = [interval_amounts.text_of(number, scale) for number in numbers]
    assert interval_amounts.texts(numbers, scale) == expected  # made, or some looked up
    assert interval_amounts.texts(numbers, scale) == expected  # every one looked up


@given(
    months=st.lists(
        st.lists(st.one_of(decimal_texts(), st.sampled_from(ODD)), max_size=120), max_size=6
    ),
    scale=st.integers(0, 4),
    deltas=st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=300),
)
def test_days_read_together_as_integers_are_the_texts_they_hold(
    months: list[list[str]], scale: int, deltas: list[int]
) -> None:
    """Read together, days give each value's integer at their one scale, in order, with each
    day's count; any day the integers cannot give exactly (another scale, a text kept as it is)
    makes the whole read decline, never give another value."""
    running = list(itertools.accumulate(deltas))  # large steps, up and down
    plain_days = [running[i : i + 96] for i in range(0, len(running), 96)]
    only_plain = not months
    for texts in [[interval_amounts.text_of(n, scale) for n in day] for day in plain_days]:
        months.append(texts)
    decoded = interval_amounts.scaled_days([pack(texts) for texts in months])
    if decoded is None:
        assert not only_plain, "plain days of one scale are read together"
        return
    units, found_scale, counts = decoded
    assert counts == [len(texts) for texts in months]
    spelled = [interval_amounts.text_of(int(n), found_scale) for n in units]
    assert spelled == [text for texts in months for text in texts]


def test_plain_days_of_one_scale_are_read_together_and_others_decline() -> None:
    flat, noisy = ["0.250"] * 96, [f"{n / 1000:.3f}" for n in range(100, 196)]
    decoded = interval_amounts.scaled_days([pack(flat), pack(noisy)])
    assert decoded is not None
    units, scale, counts = decoded
    assert (units.tolist(), scale, counts) == ([250] * 96 + list(range(100, 196)), 3, [96, 96])
    assert interval_amounts.scaled_days([pack(["1.25"]), pack(["1.5"])]) is None  # two scales
    assert interval_amounts.scaled_days([pack(["1.25", "1.5"])]) is None  # one listed apart
    assert interval_amounts.scaled_days([pack(["1.25"]), b"\x07"]) is None  # unknown form

"""The golden cases G-01 … G-21 of docs/determinants.md, each with exactly the document's numbers."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ccbmdm.runtime.functions import zone
from ccbmdm.runtime.sim.corrections import (
    Correction,
    CorrectionOutcome,
    SentUsage,
    changed_quantities,
    correction_outcome,
    touched_usages,
)
from ccbmdm.runtime.sim.determinants import (
    BillCondition,
    CalculationRequest,
    Determinants,
    PriorDemand,
    Skip,
    calculate,
    sa_is_skipped,
)
from ccbmdm.runtime.sim.estimation import fill_gaps, reestimate_bad_estimate
from ccbmdm.runtime.sim.high_low import ReadCheck, classify_consumption, high_low_boundaries
from ccbmdm.runtime.sim.measurements import (
    HowToUse,
    ImplausibleRegisterDecrease,
    Installation,
    InsufficientData,
    IntervalChannel,
    IntervalValue,
    Quality,
    Reading,
    Register,
    TouSumCheckFailed,
)
from ccbmdm.runtime.sim.tou import TouCalendar
from ccbmdm.runtime.sim.usage_groups import (
    DEFAULTS,
    HighLowFactors,
    UsageGroup,
    load_usage_group,
)

NY = "America/New_York"
JAN1, FEB1 = "2025-01-01T00:00:00-05:00", "2025-02-01T00:00:00-05:00"
A, E, ED = Quality.ACTUAL, Quality.ESTIMATED, Quality.EDITED


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def read(when: str, value: str, quality: Quality = A) -> Reading:
    return Reading.of(at(when), value, quality)


def meter(
    *registers: Register,
    device: str = "D1",
    installed: str = "2024-01-01T00:00:00-05:00",
    removed: str | None = None,
    channels: Iterable[IntervalChannel] = (),
) -> Installation:
    return Installation(
        device,
        at(installed),
        at(removed) if removed else None,
        tuple(registers),
        tuple(channels),
    )


def request(
    start: str, end_from: str, end_to: str | None = None, **options: Any
) -> CalculationRequest:
    return CalculationRequest(
        at(start),
        at(end_from),
        at(end_to or end_from),
        NY,
        **options,
    )


def determinants(
    req: CalculationRequest, installations: Iterable[Installation], group: UsageGroup = DEFAULTS
) -> Determinants:
    result = calculate(req, installations, group)
    assert isinstance(result, Determinants)
    return result


def january(*registers: Register, **options: Any) -> Determinants:
    """One meter read on 1 January and 1 February."""
    return determinants(request(JAN1, FEB1, **options), [meter(*registers)])


def day_values(
    first: str, count: int, value: str = "0.25", minutes: int = 15
) -> list[IntervalValue]:
    """``count`` interval-ending values after ``first`` (the day's start), stamped in UTC."""
    start = at(first).astimezone(UTC)
    step = timedelta(minutes=minutes)
    return [IntervalValue.of(start + step * (k + 1), value) for k in range(count)]


def local_labels(values: Iterable[IntervalValue]) -> list[str]:
    return [v.end.astimezone(zone(NY)).isoformat(timespec="minutes") for v in values]


def interval_day(
    start: str,
    end: str,
    values: Iterable[IntervalValue],
    group: UsageGroup = DEFAULTS,
    **options: Any,
) -> Determinants:
    channel = IntervalChannel("CH1", values=tuple(values))
    return determinants(request(start, end, **options), [meter(channels=[channel])], group)


# -- §3 registers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("constant", "expected"), [("1", "500.000"), ("40", "20000.000")])
def test_g01_cumulative_register_times_its_constant(constant: str, expected: str) -> None:
    register = Register(
        "MC1",
        "KWH",
        register_constant=Decimal(constant),
        readings=(read(JAN1, "12345"), read(FEB1, "12845")),
    )
    sq = january(register).periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.quality, sq.value_count) == (expected, A, 1)


def test_g02_rollover_within_the_threshold() -> None:
    register = Register("MC1", "KWH", readings=(read(JAN1, "99850"), read(FEB1, "00150")))
    result = january(register)
    assert result.periods[0].quantity("KWH").quantity_text == "300.000"
    (pair,) = result.register_reads
    assert (pair.measured_quantity, pair.rollover) == (Decimal(300), True)


def test_g03_implausible_decrease_gives_no_quantity() -> None:
    register = Register("MC1", "KWH", readings=(read(JAN1, "50000"), read(FEB1, "10000")))
    with pytest.raises(ImplausibleRegisterDecrease) as raised:
        january(register)
    assert (raised.value.category, raised.value.number) == (90000, 1302)
    assert "60000" in raised.value.text


def test_g04_decimal_dials_do_not_count_toward_capacity() -> None:
    register = Register(
        "MC1",
        "KWH",
        number_of_dials=5,
        decimal_positions=1,
        readings=(read(JAN1, "99999.5"), read(FEB1, "00000.7")),
    )
    result = january(register)
    assert result.register_reads[0].measured_quantity == Decimal("1.2")
    assert result.periods[0].quantity("KWH").quantity_text == "1.200"


def test_g05_peak_register_is_its_end_reading_times_the_constant() -> None:
    register = Register(
        "MC2",
        "KW",
        decimal_positions=3,
        register_constant=Decimal(40),
        how_to_use=HowToUse.PEAK,
        readings=(read(FEB1, "3.250"),),
    )
    assert january(register).periods[0].quantity("KW").quantity_text == "130.000"


def tou_registers(check: str) -> list[Register]:
    def register(mc: str, tou: str, used: str, how: HowToUse = HowToUse.ADD) -> Register:
        return Register(
            mc, "KWH", tou=tou, how_to_use=how, readings=(read(JAN1, "10000"), read(FEB1, used))
        )

    return [
        register("ON", "ON", "10120"),
        register("MID", "MID", "10200"),
        register("OFF", "OFF", "10480"),
        register("TOTAL", "", check, HowToUse.CHECK),
    ]


def test_g06_tou_registers_pass_the_sum_check() -> None:
    (period,) = january(*tou_registers("10800")).periods
    assert {(sq.tou, sq.quantity_text) for sq in period.service_quantities} == {
        ("ON", "120.000"),
        ("MID", "200.000"),
        ("OFF", "480.000"),
    }


def test_g06_tou_registers_fail_the_sum_check() -> None:
    with pytest.raises(TouSumCheckFailed) as raised:
        january(*tou_registers("10810"))
    assert raised.value.number == 1303


def test_g07_deducted_sub_meter() -> None:
    main = Register("MAIN", "KWH", readings=(read(JAN1, "20000"), read(FEB1, "21000")))
    sub = Register(
        "SUB", "KWH", how_to_use=HowToUse.SUBTRACT, readings=(read(JAN1, "500"), read(FEB1, "650"))
    )
    result = determinants(request(JAN1, FEB1), [meter(main), meter(sub, device="D2")])
    assert result.periods[0].quantity("KWH").quantity_text == "850.000"


# -- §4 meter exchange --------------------------------------------------------------------------

MAR1, APR1, EXCHANGE = (
    "2025-03-01T00:00:00-05:00",
    "2025-04-01T00:00:00-04:00",
    "2025-03-12T10:00:00-04:00",
)


def exchange(removal: Quality = A) -> list[Installation]:
    old = meter(
        Register("OLD-E", "KWH", readings=(read(MAR1, "1000"), read(EXCHANGE, "1400", removal))),
        Register(
            "OLD-D",
            "KW",
            decimal_positions=1,
            how_to_use=HowToUse.PEAK,
            readings=(read(EXCHANGE, "5.8"),),
        ),
        device="OLD",
        removed=EXCHANGE,
    )
    new = meter(
        Register(
            "NEW-E",
            "KWH",
            number_of_dials=6,
            register_constant=Decimal(2),
            readings=(read(EXCHANGE, "0"), read(APR1, "250")),
        ),
        Register(
            "NEW-D",
            "KW",
            decimal_positions=1,
            register_constant=Decimal(2),
            how_to_use=HowToUse.PEAK,
            readings=(read(APR1, "3.4"),),
        ),
        device="NEW",
        installed=EXCHANGE,
    )
    return [old, new]


def test_g08_meter_exchange_sums_energy_and_takes_the_larger_peak() -> None:
    result = determinants(request(MAR1, APR1), exchange())
    (period,) = result.periods
    assert period.quantity("KWH").quantity_text == "900.000"
    assert period.quantity("KW").quantity_text == "6.800"
    assert period.quantity("KWH").quality is A
    energy = {
        (r.device, r.end_reading, r.final_quantity)
        for r in result.register_reads
        if r.mc.endswith("-E")
    }
    assert energy == {
        ("OLD", Decimal(1400), Decimal("400.000")),
        ("NEW", Decimal(250), Decimal("500.000")),
    }


def test_g08_estimated_removal_read_makes_the_energy_estimated() -> None:
    (period,) = determinants(request(MAR1, APR1), exchange(removal=E)).periods
    sq = period.quantity("KWH")
    assert (sq.quantity_text, sq.quality, sq.estimated_count) == ("900.000", E, 1)
    assert period.quantity("KW").quality is A


# -- §5 intervals and daylight saving -----------------------------------------------------------

SPRING, SPRING_END = "2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00"
AUTUMN, AUTUMN_END = "2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00"


def test_g09_spring_forward_day_has_92_intervals() -> None:
    values = day_values(SPRING, 92)
    labels = local_labels(values)
    assert (labels[0], labels[-1]) == ("2025-03-09T00:15-05:00", "2025-03-10T00:00-04:00")
    assert labels[labels.index("2025-03-09T01:45-05:00") + 1] == "2025-03-09T03:00-04:00"
    assert not [label for label in labels if label[11:13] == "02"]
    sq = interval_day(SPRING, SPRING_END, values).periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.value_count) == ("23.000", 92)


def test_g10_fall_back_day_has_100_intervals() -> None:
    values = day_values(AUTUMN, 100)
    labels = local_labels(values)
    assert (labels[0], labels[-1]) == ("2025-11-02T00:15-04:00", "2025-11-03T00:00-05:00")
    for label in ("01:00", "01:15", "01:30", "01:45"):
        assert [x for x in labels if x[11:16] == label] == [
            f"2025-11-02T{label}-04:00",
            f"2025-11-02T{label}-05:00",
        ]
    sq = interval_day(AUTUMN, AUTUMN_END, values).periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.value_count) == ("25.000", 100)
    in_utc = interval_day(
        "2025-11-02T04:00:00Z", "2025-11-03T05:00:00Z", day_values(AUTUMN, 100)
    ).periods[0]
    assert in_utc.quantity("KWH").quantity_text == "25.000"


# -- §6 TOU ---------------------------------------------------------------------------------------

JULY16, JULY17 = "2025-07-16T00:00:00-04:00", "2025-07-17T00:00:00-04:00"


def tou_day() -> list[IntervalValue]:
    """G-11's Wednesday: 0.30, 0.80 for the 20 ON stamps, 1.10 at 21:15 EDT."""
    values = []
    for v in day_values(JULY16, 96, "0.30"):
        label = v.end.astimezone(zone(NY)).strftime("%H:%M")
        if "14:15" <= label <= "19:00":
            v = IntervalValue.of(v.end, "0.80")
        elif label == "21:15":
            v = IntervalValue.of(v.end, "1.10")
        values.append(v)
    return values


def test_g11_tou_day_in_standard_time() -> None:
    (period,) = interval_day(JULY16, JULY17, tou_day(), load_usage_group("RES-TOU")).periods
    on, off, total = (
        period.quantity("KWH", "ON"),
        period.quantity("KWH", "OFF"),
        period.quantity("KWH"),
    )
    assert (on.quantity_text, on.value_count) == ("16.000", 20)
    assert (off.quantity_text, off.value_count) == ("23.600", 76)
    assert (total.quantity_text, total.value_count) == ("39.600", 96)
    assert set(period.keys) == {on.key, off.key, total.key}


@pytest.mark.parametrize(
    ("start", "end", "count", "first_on", "last_on", "off"),
    [
        (SPRING, SPRING_END, 92, "2025-03-09T08:15-04:00", "2025-03-09T12:00-04:00", "19.000"),
        (AUTUMN, AUTUMN_END, 100, "2025-11-02T07:15-05:00", "2025-11-02T11:00-05:00", "21.000"),
    ],
)
def test_g12_tou_on_dst_days(
    start: str, end: str, count: int, first_on: str, last_on: str, off: str
) -> None:
    group = load_usage_group("TEST-TOU-T")
    values = day_values(start, count)
    assert group.tou_map is not None
    calendar = TouCalendar(zone(NY), group.tou_map)
    on_labels = local_labels(v for v in values if calendar.tou_of(v.end, 900) == "ON")
    assert (len(on_labels), on_labels[0], on_labels[-1]) == (16, first_on, last_on)
    (period,) = interval_day(start, end, values, group).periods
    assert period.quantity("KWH", "ON").quantity_text == "4.000"
    assert period.quantity("KWH", "OFF").quantity_text == off


# -- §7 demand ----------------------------------------------------------------------------------

JAN15, JAN16 = "2025-01-15T00:00:00-05:00", "2025-01-16T00:00:00-05:00"


def peak_day(peak: str) -> list[IntervalValue]:
    values = day_values(JAN15, 96, "0.50")
    values[40] = IntervalValue.of(values[40].end, peak)
    return values


def test_g13a_interval_demand_is_four_times_the_quarter_hour_energy() -> None:
    (period,) = interval_day(JAN15, JAN16, peak_day("3.125"), load_usage_group("COM-DEM")).periods
    assert period.quantity("KW").quantity_text == "12.500"


def test_g13b_maximum_and_on_peak_demand() -> None:
    (period,) = interval_day(JULY16, JULY17, tou_day(), load_usage_group("COM-DEM")).periods
    assert period.quantity("KW").quantity_text == "4.400"
    assert period.quantity("KW", "ON").quantity_text == "3.200"
    assert period.quantity("KWH").quantity_text == "39.600"


def test_g13c_ratchet_sets_billed_demand() -> None:
    history = [
        Decimal(v)
        for v in (
            "30.0",
            "15.0",
            "20.0",
            "18.0",
            "9.0",
            "11.0",
            "12.0",
            "14.0",
            "10.0",
            "8.0",
            "7.0",
            "6.0",
        )
    ]
    prior = tuple(
        PriorDemand(f"U{k}", datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=30 * k), demand)
        for k, demand in enumerate(history)
    )  # the oldest, 30.0, is 12 periods back: outside N = 11
    (period,) = interval_day(
        JAN15, JAN16, peak_day("3.125"), load_usage_group("COM-DEM"), prior_demands=prior
    ).periods
    assert period.quantity("KW").quantity_text == "12.500"
    assert period.quantity("KW", sqi="BILLED").quantity_text == "16.000"


# -- §8 quality -----------------------------------------------------------------------------------


def test_g14_estimated_end_read() -> None:
    register = Register("MC1", "KWH", readings=(read(JAN1, "5000"), read(FEB1, "5600", E)))
    result = january(register, estimate_date_reached=True)
    sq = result.periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.quality) == ("600.000", E)
    assert result.register_reads[0].end_estimated is True
    assert result.register_reads[0].start_estimated is False


def test_g14_estimated_then_edited_intervals() -> None:
    values = day_values(JAN15, 96)
    estimated = [
        IntervalValue.of(v.end, v.value, E) if k in (3, 50, 90) else v for k, v in enumerate(values)
    ]
    sq = interval_day(JAN15, JAN16, estimated).periods[0].quantity("KWH")
    assert (sq.quality, sq.value_count, sq.estimated_count, sq.edited_count) == (E, 96, 3, 0)
    edited = [
        IntervalValue.of(v.end, v.value, ED) if k in (3, 50, 90) else v
        for k, v in enumerate(values)
    ]
    sq = interval_day(JAN15, JAN16, edited).periods[0].quantity("KWH")
    assert (sq.quality, sq.value_count, sq.estimated_count, sq.edited_count) == (ED, 96, 0, 3)


def g15_channel(gap: int) -> IntervalChannel:
    values = day_values(JAN15, 3 + gap)
    kept = [
        IntervalValue.of(values[0].end, "1.0"),
        IntervalValue.of(values[1].end, "1.2"),
        IntervalValue.of(values[-1].end, "2.0"),
    ]
    return IntervalChannel("CH1", values=tuple(kept))


def test_g15_linear_interpolation_across_a_short_gap() -> None:
    filled = fill_gaps(g15_channel(3), at(JAN15), at(JAN15) + timedelta(minutes=15 * 6))
    assert [(str(v.value), v.quality_codes) for v in filled.values] == [
        ("1.0", ("1.0.0",)),
        ("1.2", ("1.0.0",)),
        ("1.4", ("3.8.0",)),
        ("1.6", ("3.8.0",)),
        ("1.8", ("3.8.0",)),
        ("2.0", ("1.0.0",)),
    ]


def test_g15_a_gap_longer_than_four_intervals_stays_missing() -> None:
    channel = g15_channel(5)
    assert fill_gaps(channel, at(JAN15), at(JAN15) + timedelta(minutes=15 * 8)) == channel


# -- §9 zero versus missing ---------------------------------------------------------------------


def test_g16_zero_consumption_is_billed() -> None:
    register = Register("MC1", "KWH", readings=(read(JAN1, "7210"), read(FEB1, "7210")))
    sq = january(register).periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.quality) == ("0.000", A)


@pytest.mark.parametrize("online", [False, True], ids=["batch", "online"])
def test_g16_a_missing_end_read_is_insufficient_data_never_zero(online: bool) -> None:
    register = Register("MC1", "KWH", readings=(read(JAN1, "7210"),))
    with pytest.raises(InsufficientData) as raised:
        january(register, online=online)
    assert raised.value.number == 1301


def test_g16_zero_intervals_are_billed_and_missing_ones_are_not() -> None:
    sq = interval_day(JAN15, JAN16, day_values(JAN15, 96, "0.000")).periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.quality, sq.value_count) == ("0.000", A, 96)
    for estimation in (False, True):
        with pytest.raises(InsufficientData):
            interval_day(
                JAN15,
                JAN16,
                [],
                bill_condition=BillCondition.CLOSING if estimation else BillCondition.INTERIM,
            )


# -- §10 net metering ---------------------------------------------------------------------------


def test_g17_net_metering_registers() -> None:
    forward = Register("FWD", "KWH", sqi="DEL", readings=(read(JAN1, "1000"), read(FEB1, "1300")))
    reverse = Register("REV", "KWH", sqi="REC", readings=(read(JAN1, "500"), read(FEB1, "900")))
    (period,) = january(forward, reverse).periods
    assert period.quantity("KWH", sqi="DEL").quantity_text == "300.000"
    assert period.quantity("KWH", sqi="REC").quantity_text == "400.000"
    net = period.quantity("KWH", sqi="NET")
    assert (net.quantity, net.quantity_text) == (Decimal("-100.000"), "-100.000")


# -- §11 high-low ---------------------------------------------------------------------------------


def g18_register(history: bool) -> Register:
    readings = (read("2024-12-02T00:00:00-05:00", "11400"),) if history else ()
    return Register("MC1", "KWH", readings=(*readings, read(JAN1, "12000")))


@pytest.mark.parametrize("history", [True, False], ids=["adc-from-history", "default-adc"])
def test_g18_high_low_boundaries(history: bool) -> None:
    group = UsageGroup("RES", high_low=HighLowFactors(default_adc_by_sp_type={"RES": Decimal(20)}))
    bounds = high_low_boundaries(
        g18_register(history), at("2025-01-26T00:00:00-05:00"), NY, group, sp_type="RES"
    )
    assert bounds.days == 25
    assert (bounds.expected_consumption, bounds.low_consumption, bounds.high_consumption) == (
        Decimal("500.000"),
        Decimal("300.000"),
        Decimal("700.000"),
    )
    assert (bounds.estimated_reading, bounds.low_reading, bounds.high_reading) == (
        Decimal(12500),
        Decimal(12300),
        Decimal(12700),
    )
    assert bounds.basis_reading == Decimal(12000)


@pytest.mark.parametrize(
    ("consumption", "symmetric", "literal", "percent"),
    [
        (1100, ReadCheck.VERY_HIGH, ReadCheck.VERY_HIGH, 57),
        (800, ReadCheck.HIGH, ReadCheck.HIGH, 14),
        (700, ReadCheck.IN_RANGE, ReadCheck.IN_RANGE, None),
        (300, ReadCheck.IN_RANGE, ReadCheck.IN_RANGE, None),
        (200, ReadCheck.LOW, ReadCheck.VERY_LOW, 33),
        (100, ReadCheck.VERY_LOW, ReadCheck.LOW, 67),
    ],
)
def test_g18_read_classification(
    consumption: int, symmetric: ReadCheck, literal: ReadCheck, percent: int | None
) -> None:
    for literal_text, expected in ((False, symmetric), (True, literal)):
        result = classify_consumption(
            Decimal(consumption), Decimal(300), Decimal(700), 50, 50, literal_ccb_text=literal_text
        )
        assert (result.check, result.percent) == (expected, percent)


# -- §12 replacement reads ----------------------------------------------------------------------

MAR1_EST = "2025-03-01T00:00:00-05:00"


def g19_register(february_read: str) -> Register:
    return Register(
        "MC1",
        "KWH",
        readings=(read(JAN1, "7400"), read(FEB1, february_read), read(MAR1_EST, "8500")),
    )


def test_g19_a_corrected_boundary_read_rebills_both_periods_oldest_first() -> None:
    sent_p1 = determinants(request(JAN1, FEB1), [meter(g19_register("8000"))])
    sent_p2 = determinants(request(FEB1, MAR1_EST), [meter(g19_register("8000"))])
    assert sent_p1.periods[0].quantity("KWH").quantity_text == "600.000"
    assert sent_p2.periods[0].quantity("KWH").quantity_text == "500.000"
    p1 = SentUsage("0000000001", at(JAN1), at(FEB1), frozenset({"MC1"}), used_on_bill=True)
    p2 = SentUsage("0000000002", at(FEB1), at(MAR1_EST), frozenset({"MC1"}), used_on_bill=True)
    correction = [Correction("MC1", at(FEB1), Decimal(8000), Decimal(7900))]
    assert touched_usages([p2, p1], correction) == (p1, p2)  # two notifications, oldest first

    rebill_p1 = determinants(request(JAN1, FEB1), [meter(g19_register("7900"))])
    rebill_p2 = determinants(request(FEB1, MAR1_EST), [meter(g19_register("7900"))])
    assert rebill_p1.periods[0].quantity("KWH").quantity_text == "500.000"
    assert rebill_p2.periods[0].quantity("KWH").quantity_text == "600.000"
    total = sum(r.periods[0].quantity("KWH").quantity for r in (rebill_p1, rebill_p2))
    assert total == Decimal("1100.000")
    for usage, sent, rebill in ((p1, sent_p1, rebill_p1), (p2, sent_p2, rebill_p2)):
        (change,) = changed_quantities(sent, rebill)
        assert change.key == ("KWH", "", "")
        assert (
            correction_outcome(usage, correction, sent, rebill)
            is CorrectionOutcome.SUBSEQUENT_CORRECTION
        )


JAN31, MAR2 = "2025-01-31T00:00:00-05:00", "2025-03-02T00:00:00-05:00"


def test_g20_a_bad_estimate_is_prorated_between_actual_reads() -> None:
    billed = (read(JAN1, "5000"), read(JAN31, "5600", E), read(MAR2, "5500"))
    register = Register("MC1", "KWH", readings=billed)
    estimated_end: dict[str, Any] = {"estimate_date_reached": True}
    sent_p1 = determinants(request(JAN1, JAN31, **estimated_end), [meter(register)])
    assert sent_p1.periods[0].quantity("KWH").quantity_text == "600.000"
    with pytest.raises(ImplausibleRegisterDecrease):  # without PD-D12: 5500 - 5600
        determinants(request(JAN31, MAR2), [meter(register)])

    corrected = reestimate_bad_estimate(register, at(JAN31))
    assert corrected is not None
    assert (corrected.value, corrected.quality) == (Decimal(5250), E)
    fixed = Register("MC1", "KWH", readings=(billed[0], corrected, billed[2]))
    p1 = determinants(request(JAN1, JAN31, **estimated_end), [meter(fixed)])
    sq = p1.periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.quality) == ("250.000", E)
    p2 = determinants(request(JAN31, MAR2), [meter(fixed)])
    assert p2.periods[0].quantity("KWH").quantity_text == "250.000"
    assert p2.register_reads[0].start_estimated is True


# -- §13 summary billing ------------------------------------------------------------------------

SCHEDULE = (date(2025, 1, 24), date(2025, 3, 26), date(2025, 4, 25))


def test_g21_february_run_is_skipped_until_the_next_scheduled_read() -> None:
    register = Register("MC1", "KWH", readings=(read("2025-01-24T10:00:00-05:00", "1000"),))
    result = calculate(
        request(
            "2025-01-24T10:00:00-05:00",
            "2025-02-24T00:00:00-05:00",
            "2025-03-01T00:00:00-05:00",
            summary_billed=True,
            scheduled_read_dates=SCHEDULE,
        ),
        [meter(register)],
        DEFAULTS,
    )
    assert isinstance(result, Skip)
    assert result.next_scheduled_read_date == date(2025, 3, 26)
    assert sa_is_skipped(result.next_scheduled_read_date, date(2025, 2, 28))


def test_g21_march_run_ends_at_the_scheduled_read() -> None:
    assert not sa_is_skipped(date(2025, 3, 26), date(2025, 3, 28))
    read_at = "2025-03-26T10:30:00-04:00"
    register = Register(
        "MC1", "KWH", readings=(read("2025-01-24T10:00:00-05:00", "1000"), read(read_at, "1450"))
    )
    result = determinants(
        request(
            "2025-01-24T10:00:00-05:00",
            "2025-03-24T00:00:00-04:00",
            "2025-03-29T00:00:00-04:00",
            summary_billed=True,
            scheduled_read_dates=SCHEDULE,
        ),
        [meter(register)],
    )
    (period,) = result.periods
    assert period.end_date_time == at(read_at)
    assert period.quantity("KWH").quantity_text == "450.000"

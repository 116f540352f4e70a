"""The engine's rules around the golden cases: period ends and date breaks, alignment, estimation,
net interval data, option events, interval data returned, corrections and high-low edges."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ccbmdm.runtime.sim.determinants.engine import (
    BillCondition,
    CalculationRequest,
    DateBreak,
    Determinants,
    PriorDemand,
    calculate,
)
from ccbmdm.runtime.sim.determinants.estimation import fill_gaps
from ccbmdm.runtime.sim.determinants.high_low import (
    ReadCheck,
    classify_consumption,
    high_low_boundaries,
)
from ccbmdm.runtime.sim.determinants.measurements import (
    HowToUse,
    Installation,
    InsufficientData,
    IntervalChannel,
    IntervalValue,
    MisalignedPeriod,
    Quality,
    Reading,
    Register,
    quality_of,
)
from ccbmdm.runtime.sim.determinants.tou import TouOverride
from ccbmdm.runtime.sim.determinants.usage_groups import (
    DEFAULTS,
    HighLowFactors,
    UsageGroup,
    load_usage_group,
)
from ccbmdm.runtime.sim.mdm.corrections import (
    Correction,
    CorrectionOutcome,
    SentUsage,
    correction_outcome,
)

NY = "America/New_York"
A, E = Quality.ACTUAL, Quality.ESTIMATED
JAN1, FEB1 = "2025-01-01T00:00:00-05:00", "2025-02-01T00:00:00-05:00"
JAN15, JAN16 = "2025-01-15T00:00:00-05:00", "2025-01-16T00:00:00-05:00"
JULY16, JULY17 = "2025-07-16T00:00:00-04:00", "2025-07-17T00:00:00-04:00"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def read(when: str, value: str, quality: Quality = A) -> Reading:
    return Reading.of(at(when), value, quality)


def values(first: str, count: int, value: str = "0.25", minutes: int = 15) -> list[IntervalValue]:
    start, step = at(first).astimezone(UTC), timedelta(minutes=minutes)
    return [IntervalValue.of(start + step * (k + 1), value) for k in range(count)]


def channel(
    data: Iterable[IntervalValue], mc: str = "CH1", sqi: str = "", minutes: int = 15
) -> IntervalChannel:
    return IntervalChannel(mc, sqi=sqi, seconds_per_interval=minutes * 60, values=tuple(data))


def meter(
    *registers: Register,
    channels: Iterable[IntervalChannel] = (),
    device: str = "D1",
    installed: str = "2024-01-01T00:00:00-05:00",
    removed: str | None = None,
) -> Installation:
    return Installation(
        device, at(installed), at(removed) if removed else None, registers, tuple(channels)
    )


def request(
    start: str, end_from: str, end_to: str | None = None, **options: Any
) -> CalculationRequest:
    return CalculationRequest(at(start), at(end_from), at(end_to or end_from), NY, **options)


def run(
    req: CalculationRequest, installations: Iterable[Installation], group: UsageGroup = DEFAULTS
) -> Determinants:
    result = calculate(req, installations, group)
    assert isinstance(result, Determinants)
    return result


def kwh(result: Determinants, period: int = 0, tou: str = "", sqi: str = "") -> str:
    return result.periods[period].quantity("KWH", tou, sqi).quantity_text


# -- alignment and period ends (PD-D01, PD-D04) -------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "start", "breaks"),
    [
        (15, "2025-01-15T00:07:00-05:00", ()),
        (60, "2025-01-15T00:15:00-05:00", ()),
        (15, JAN15, (DateBreak(at("2025-01-15T12:10:00-05:00")),)),
    ],
)
def test_a_request_off_the_interval_grid_is_misaligned(
    minutes: int, start: str, breaks: tuple[DateBreak, ...]
) -> None:
    req = request(start, JAN16, date_breaks=breaks)
    with pytest.raises(MisalignedPeriod) as raised:
        run(
            req,
            [
                meter(
                    channels=[
                        channel(values(JAN15, 96 * 15 // minutes, minutes=minutes), minutes=minutes)
                    ]
                )
            ],
        )
    assert raised.value.number == 1304


def test_a_quarter_hour_start_is_aligned_for_15_minute_data() -> None:
    result = run(
        request("2025-01-15T00:15:00-05:00", JAN16),
        [meter(channels=[channel(values(JAN15, 96))])],
    )
    assert kwh(result) == "23.750"


WINDOW = ("2025-01-16T00:00:00-05:00", "2025-01-18T00:00:00-05:00")


@pytest.mark.parametrize(
    ("count", "end"),
    [
        (96 * 3, "2025-01-18T00:00:00-05:00"),  # complete: the window's end
        (96 + 96 + 24, "2025-01-17T06:00:00-05:00"),  # complete to 06:00 on the 17th
        (96, "2025-01-16T00:00:00-05:00"),  # complete exactly to the window's start
    ],
)
def test_interval_period_ends_where_the_data_is_complete(count: int, end: str) -> None:
    (period,) = run(
        request(JAN15, *WINDOW), [meter(channels=[channel(values(JAN15, count))])]
    ).periods
    assert period.end_date_time == at(end)
    assert period.end_date_time.utcoffset() == timedelta(hours=-5)


def test_interval_data_ending_before_the_window_is_insufficient() -> None:
    with pytest.raises(InsufficientData, match="before the window"):
        run(request(JAN15, *WINDOW), [meter(channels=[channel(values(JAN15, 95))])])


def test_a_short_gap_stops_the_period_unless_estimation_is_allowed() -> None:
    data = [v for k, v in enumerate(values(JAN15, 96 * 3)) if k not in (136, 137)]
    setup = [meter(channels=[channel(data)])]
    (period,) = run(request(JAN15, *WINDOW), setup).periods
    assert period.end_date_time == at("2025-01-16T10:00:00-05:00")  # the gap starts here
    (period,) = run(request(JAN15, *WINDOW, estimate_date_reached=True), setup).periods
    sq = period.quantity("KWH")
    assert (period.end_date_time, sq.quality, sq.estimated_count) == (at(WINDOW[1]), E, 2)


def test_the_latest_actual_read_in_the_window_ends_a_scalar_period() -> None:
    register = Register(
        "MC1",
        "KWH",
        readings=(
            read(JAN1, "1000"),
            read("2025-01-31T09:00:00-05:00", "1300"),
            read("2025-02-02T11:00:00-05:00", "1320"),
            read("2025-02-03T00:00:00-05:00", "1330", E),
        ),
    )
    req = request(
        JAN1, "2025-01-30T00:00:00-05:00", "2025-02-04T00:00:00-05:00", estimate_date_reached=True
    )
    result = run(req, [meter(register)])
    assert result.periods[0].end_date_time == at("2025-02-02T11:00:00-05:00")
    assert kwh(result) == "320.000"


def adc_register(*extra: Reading) -> Register:
    history = (read("2024-11-01T00:00:00-04:00", "1000"), read("2024-12-01T00:00:00-05:00", "1300"))
    return Register("MC1", "KWH", readings=(*history, read(JAN1, "1610"), *extra))


def test_mdm_estimates_the_end_from_the_average_daily_consumption() -> None:
    result = run(request(JAN1, FEB1, bill_condition=BillCondition.CLOSING), [meter(adc_register())])
    sq = result.periods[0].quantity("KWH")
    assert (sq.quantity_text, sq.quality) == ("310.000", E)  # 610 kWh over 61 days, 31 days
    assert (result.register_reads[0].end_reading, result.register_reads[0].end_estimated) == (
        Decimal(1920),
        True,
    )


def test_mdm_estimates_from_the_sp_types_default_without_history() -> None:
    register = Register("MC1", "KWH", readings=(read(JAN1, "1610"),))
    group = UsageGroup("G", high_low=HighLowFactors(default_adc_by_sp_type={"RES": Decimal(12)}))
    closing = request(JAN1, FEB1, bill_condition=BillCondition.CLOSING, sp_type="RES")
    assert kwh(run(closing, [meter(register)], group)) == "372.000"
    with pytest.raises(InsufficientData, match="cannot be estimated"):
        run(request(JAN1, FEB1, bill_condition=BillCondition.CLOSING), [meter(register)], group)


def test_online_requests_estimate_only_for_a_closing_segment() -> None:
    assert not request(JAN1, FEB1, online=True, estimate_date_reached=True).estimation_allowed
    assert request(
        JAN1, FEB1, online=True, bill_condition=BillCondition.INITIAL_AND_CLOSING
    ).estimation_allowed
    assert not request(JAN1, FEB1).estimation_allowed
    with pytest.raises(InsufficientData):
        run(request(JAN1, FEB1, online=True, estimate_date_reached=True), [meter(adc_register())])


def test_nothing_installed_is_insufficient_data() -> None:
    with pytest.raises(InsufficientData, match="no measuring component"):
        run(request(JAN1, FEB1), [meter(installed="2025-03-01T00:00:00-05:00")])


def test_request_and_measurement_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="no offset"):
        Reading.of(datetime(2025, 1, 1), "1")
    with pytest.raises(ValueError, match="startDateTime < endDateTimeFrom"):
        request(FEB1, JAN1)
    with pytest.raises(ValueError, match="IANA"):
        CalculationRequest(at(JAN1), at(FEB1), at(FEB1), "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="outside its 5 dials"):
        Register("MC1", "KWH", readings=(read(JAN1, "100000"),))
    with pytest.raises(ValueError, match="two readings"):
        Register("MC1", "KWH", readings=(read(JAN1, "1"), read("2025-01-01T05:00:00Z", "2")))
    with pytest.raises(ValueError, match="does not divide a day"):
        IntervalChannel("CH1", seconds_per_interval=7 * 60)


def test_reading_quality_classes() -> None:
    assert quality_of(["1.0.0", "3.8.0"]) is E
    assert quality_of(["3.7.0"]) is Quality.EDITED
    assert quality_of(["1.0.0", "3.6.1"]) is A  # zero usage flagged is still actual
    with pytest.raises(ValueError, match=r"system\.category\.index"):
        quality_of(["estimated"])


# -- date breaks and exchanges (PD-D15, PD-D07) -------------------------------------------------


def test_a_rate_break_splits_interval_data_without_summing_across_it() -> None:
    data = values(JAN15, 48, "0.25") + values("2025-01-15T12:00:00-05:00", 48, "0.50")
    req = request(JAN15, JAN16, date_breaks=(DateBreak(at("2025-01-15T12:00:00-05:00")),))
    result = run(req, [meter(channels=[channel(data)])])
    first, second = result.periods
    assert (first.end_date_time, second.start_date_time) == (at("2025-01-15T12:00:00-05:00"),) * 2
    assert (kwh(result, 0), kwh(result, 1)) == ("12.000", "24.000")
    assert first.quantity("KWH").value_count == second.quantity("KWH").value_count == 48


def test_a_rate_break_between_reads_prorates_an_estimated_reading() -> None:
    register = Register("MC1", "KWH", readings=(read(JAN1, "1000"), read(FEB1, "1310")))
    peak = Register(
        "MC2", "KW", decimal_positions=1, how_to_use=HowToUse.PEAK, readings=(read(FEB1, "7.5"),)
    )
    req = request(JAN1, FEB1, date_breaks=(DateBreak(at("2025-01-16T00:00:00-05:00")),))
    result = run(req, [meter(register, peak)])
    assert (kwh(result, 0), kwh(result, 1)) == ("150.000", "160.000")  # 15 and 16 of 31 days
    assert result.periods[0].quantity("KWH").quality is E
    assert [p.quantity("KW").quantity_text for p in result.periods] == ["7.500", "7.500"]
    energy = [r for r in result.register_reads if r.mc == "MC1"]
    assert [(r.end_reading, r.end_estimated) for r in energy] == [
        (Decimal(1150), True),
        (Decimal(1310), False),
    ]


MAR1, APR1, EXCHANGE = (
    "2025-03-01T00:00:00-05:00",
    "2025-04-01T00:00:00-04:00",
    "2025-03-12T10:00:00-04:00",
)


def test_an_exchange_is_a_date_break_where_the_group_declares_it() -> None:
    old = meter(
        Register("OLD-E", "KWH", readings=(read(MAR1, "1000"), read(EXCHANGE, "1400"))),
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
    group = UsageGroup("EXCH", exchange_is_date_break=True)
    first, second = run(request(MAR1, APR1), [old, new], group).periods
    assert (first.end_date_time, second.start_date_time) == (at(EXCHANGE), at(EXCHANGE))
    assert (first.quantity("KWH").quantity_text, first.quantity("KW").quantity_text) == (
        "400.000",
        "5.800",
    )
    assert (second.quantity("KWH").quantity_text, second.quantity("KW").quantity_text) == (
        "500.000",
        "6.800",
    )


def test_an_interval_meter_exchange_off_the_grid_moves_to_the_next_interval_end() -> None:
    exchange = "2025-01-15T12:07:00-05:00"
    old = meter(channels=[channel(values(JAN15, 49), mc="OLD")], device="OLD", removed=exchange)
    new = meter(
        channels=[channel(values("2025-01-15T12:15:00-05:00", 47, "0.50"), mc="NEW")],
        device="NEW",
        installed=exchange,
    )
    result = run(request(JAN15, JAN16), [old, new])
    assert kwh(result) == "35.750"  # 49 x 0.25 + 47 x 0.50
    first, second = run(
        request(JAN15, JAN16), [old, new], UsageGroup("X", exchange_is_date_break=True)
    ).periods
    assert first.end_date_time == at("2025-01-15T12:15:00-05:00")
    assert (first.quantity("KWH").quantity_text, second.quantity("KWH").quantity_text) == (
        "12.250",
        "23.500",
    )


def test_a_scalar_read_off_the_grid_ends_the_period_at_the_next_interval_end() -> None:
    read_at = "2025-01-16T10:07:00-05:00"
    register = Register("MC1", "KWH", readings=(read(JAN15, "100"), read(read_at, "160")))
    setup = [meter(register, channels=[channel(values(JAN15, 96 + 41), mc="CH1")])]
    group = UsageGroup("MIX")
    result = run(request(JAN15, JAN16, "2025-01-17T00:00:00-05:00"), setup, group)
    (period,) = result.periods
    assert period.end_date_time == at("2025-01-16T10:15:00-05:00")
    assert result.register_reads[0].end_date_time == at(read_at)
    sq = period.quantity("KWH")  # the register's 60 kWh plus 137 intervals of 0.25
    assert (sq.quantity_text, sq.value_count) == ("94.250", 138)


# -- DST periods, hourly data, option events, net intervals ------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        ("2025-03-01T00:00:00-05:00", "2025-03-31T00:00:00-04:00", 719),
        ("2025-10-15T00:00:00-04:00", "2025-11-14T00:00:00-05:00", 721),
    ],
)
def test_thirty_day_periods_across_a_clock_change(start: str, end: str, hours: int) -> None:
    result = run(request(start, end), [meter(channels=[channel(values(start, hours * 4, "0.25"))])])
    sq = result.periods[0].quantity("KWH")
    assert (sq.value_count, sq.quantity) == (hours * 4, Decimal(hours))
    with pytest.raises(InsufficientData):
        run(request(start, end), [meter(channels=[channel(values(start, hours * 4 - 1))])])


def test_hourly_data_gives_demand_equal_to_the_hours_energy() -> None:
    data = values(JAN15, 24, "1.0", minutes=60)
    data[9] = IntervalValue.of(data[9].end, "7.5")
    (period,) = run(
        request(JAN15, JAN16),
        [meter(channels=[channel(data, minutes=60)])],
        load_usage_group("COM-DEM"),
    ).periods
    assert (period.quantity("KW").quantity_text, period.quantity("KW").value_count) == ("7.500", 24)
    assert period.quantity("KWH").quantity_text == "30.500"
    on = period.quantity("KW", "ON")  # winter: no on-peak hours, which is not missing data
    assert (on.quantity_text, on.value_count) == ("0.000", 0)


def test_a_dynamic_option_event_replaces_the_tou_map_while_in_force() -> None:
    group = load_usage_group("RES-TOU")
    option_map = load_usage_group("TEST-TOU-T").tou_map
    assert option_map is not None
    setup = [meter(channels=[channel(values(JULY16, 96))])]
    assert kwh(run(request(JULY16, JULY17), setup, group), tou="ON") == "5.000"
    event = TouOverride(at(JULY16), at(JULY17), option_map)
    result = run(request(JULY16, JULY17, tou_overrides=(event,)), setup, group)
    assert (kwh(result, tou="ON"), kwh(result, tou="OFF")) == ("4.000", "20.000")


def test_net_interval_channels_per_tou_bucket() -> None:
    delivered = channel(values(JULY16, 96, "0.30"), mc="DEL", sqi="DEL")
    received = channel(values(JULY16, 96, "0.50"), mc="REC", sqi="REC")
    result = run(
        request(JULY16, JULY17),
        [meter(channels=[delivered, received])],
        load_usage_group("RES-TOU"),
    )
    period = result.periods[0]
    assert (
        kwh(result, tou="ON", sqi="DEL"),
        kwh(result, tou="ON", sqi="REC"),
        kwh(result, tou="ON", sqi="NET"),
    ) == (
        "6.000",
        "10.000",
        "-4.000",
    )
    assert kwh(result, sqi="NET") == "-19.200"
    assert period.quantity("KWH", sqi="NET").value_count == 192
    assert ("KWH", "", "") not in period.keys  # every energy SQ is per SQI
    demand = run(
        request(JULY16, JULY17),
        [meter(channels=[delivered, received])],
        load_usage_group("COM-DEM"),
    )
    assert demand.periods[0].quantity("KW").quantity_text == "1.200"  # delivered only


def test_interval_data_is_returned_only_when_asked() -> None:
    data = [v for k, v in enumerate(values(JAN15, 96)) if k != 10]
    setup = [meter(channels=[channel(data)])]
    assert run(request(JAN15, JAN16, estimate_date_reached=True), setup).interval_data == ()
    (block,) = run(
        request(JAN15, JAN16, estimate_date_reached=True, return_interval_data=True), setup
    ).interval_data
    assert (block.mc, block.uom, block.seconds_per_interval, len(block.readings)) == (
        "CH1",
        "KWH",
        900,
        96,
    )
    assert block.readings[0].end_date_time.isoformat() == "2025-01-15T00:15:00-05:00"
    assert block.readings[10].quality_codes == ("3.8.0",)
    assert block.readings[11].quality_codes == ("1.0.0",)


# -- ratchet history and the TOU check tolerance -----------------------------------------------


def test_a_rebill_leaves_the_superseded_ut_out_of_the_ratchet_history() -> None:
    data = values(JAN15, 96, "0.50")
    prior = (
        PriorDemand("OLDER", at("2024-12-15T00:00:00-05:00"), Decimal(10)),
        PriorDemand("REPLACED", at(JAN15), Decimal(25)),
        PriorDemand("LATER", at("2025-02-15T00:00:00-05:00"), Decimal(40)),
    )
    group, setup = load_usage_group("COM-DEM"), [meter(channels=[channel(data)])]
    billed = run(request(JAN15, JAN16, prior_demands=prior), setup, group).periods[0]
    assert billed.quantity("KW", sqi="BILLED").quantity_text == "20.000"  # 0.8 x 25
    rebill = run(
        request(JAN15, JAN16, prior_demands=prior, previous_usage_id="REPLACED"), setup, group
    )
    assert rebill.periods[0].quantity("KW", sqi="BILLED").quantity_text == "8.000"  # 0.8 x 10


def test_the_tou_check_tolerance_is_in_the_registers_uom() -> None:
    registers = [
        Register("ON", "KWH", tou="ON", readings=(read(JAN1, "0"), read(FEB1, "300"))),
        Register("OFF", "KWH", tou="OFF", readings=(read(JAN1, "0"), read(FEB1, "500"))),
        Register(
            "TOTAL", "KWH", how_to_use=HowToUse.CHECK, readings=(read(JAN1, "0"), read(FEB1, "810"))
        ),
    ]
    result = run(
        request(JAN1, FEB1), [meter(*registers)], UsageGroup("T", tou_check_tolerance=Decimal(10))
    )
    assert result.periods[0].keys == (("KWH", "OFF", ""), ("KWH", "ON", ""))
    assert [r.how_to_use for r in result.register_reads][-1] is HowToUse.CHECK


# -- VEE edges --------------------------------------------------------------------------------


def test_interpolated_values_take_the_larger_scale_of_their_neighbours() -> None:
    data = values(JAN15, 4)
    gap = channel([IntervalValue.of(data[0].end, "1.0"), IntervalValue.of(data[3].end, "2.00")])
    filled = fill_gaps(gap, at(JAN15), data[3].end)
    assert [str(v.value) for v in filled.values] == ["1.0", "1.33", "1.67", "2.00"]


def test_flat_fill_at_the_data_edges_within_four_intervals() -> None:
    data = values(JAN15, 10)
    known = channel([IntervalValue.of(data[k].end, value) for k, value in ((2, "0.7"), (6, "0.9"))])
    filled = fill_gaps(known, at(JAN15), data[9].end)
    by_end = {v.end: str(v.value) for v in filled.values}
    # flat before the first value, 0.75 / 0.80 / 0.85 half-up to one decimal, flat after the last
    assert [by_end[v.end] for v in data] == [
        "0.7",
        "0.7",
        "0.7",
        "0.8",
        "0.8",
        "0.9",
        "0.9",
        "0.9",
        "0.9",
        "0.9",
    ]
    longer = channel([IntervalValue.of(data[0].end, "0.7")])
    assert fill_gaps(longer, at(JAN15), data[9].end) == longer  # 9 missing at the edge: too long


# -- corrections --------------------------------------------------------------------------------


def test_an_interval_correction_touches_only_the_period_its_interval_lies_in() -> None:
    boundary = at(JAN16)
    correction = Correction(
        "CH1", boundary, Decimal("0.25"), Decimal("0.30"), seconds_per_interval=900
    )
    assert correction.touches(at(JAN15), boundary)
    assert not correction.touches(boundary, at("2025-01-17T00:00:00-05:00"))
    scalar = Correction("MC1", boundary, Decimal(1), Decimal(2))
    assert scalar.touches(at(JAN15), boundary) and scalar.touches(
        boundary, at("2025-01-17T00:00:00-05:00")
    )


def test_correction_outcomes() -> None:
    setup = [meter(channels=[channel(values(JAN15, 96))])]
    sent = run(request(JAN15, JAN16), setup)
    data = values(JAN15, 96)
    data[5] = IntervalValue.of(data[5].end, "0.40", E)
    changed = run(request(JAN15, JAN16), [meter(channels=[channel(data)])])
    touching = [Correction("CH1", data[5].end, Decimal("0.25"), Decimal("0.40"), ("3.8.0",), 900)]
    elsewhere = [
        Correction("OTHER", data[5].end, Decimal("0.25"), Decimal("0.40"), ("3.8.0",), 900)
    ]
    billed = SentUsage("U1", at(JAN15), at(JAN16), frozenset({"CH1"}), used_on_bill=True)
    unbilled = SentUsage("U1", at(JAN15), at(JAN16), frozenset({"CH1"}), used_on_bill=False)
    assert (
        correction_outcome(billed, touching, sent, changed)
        is CorrectionOutcome.SUBSEQUENT_CORRECTION
    )
    assert correction_outcome(unbilled, touching, sent, changed) is CorrectionOutcome.STALE
    assert correction_outcome(billed, touching, sent, sent) is CorrectionOutcome.UNCHANGED
    assert correction_outcome(billed, elsewhere, sent, changed) is CorrectionOutcome.UNCHANGED
    failed = InsufficientData("a value was deleted")
    assert (
        correction_outcome(billed, touching, sent, failed)
        is CorrectionOutcome.SUBSEQUENT_CORRECTION
    )


# -- high-low edges -----------------------------------------------------------------------------


def test_high_low_readings_wrap_past_the_dials() -> None:
    register = Register(
        "MC1", "KWH", readings=(read("2024-12-02T00:00:00-05:00", "99200"), read(JAN1, "99800"))
    )
    bounds = high_low_boundaries(register, at("2025-01-26T00:00:00-05:00"), NY)
    assert (bounds.estimated_reading, bounds.low_reading, bounds.high_reading) == (
        Decimal(300),
        Decimal(100),
        Decimal(500),
    )


def test_high_low_rounds_readings_to_the_registers_decimals() -> None:
    register = Register(
        "MC1",
        "KWH",
        decimal_positions=1,
        readings=(read("2024-12-01T00:00:00-05:00", "1000.0"), read(JAN1, "1100.0")),
    )  # 100 kWh over 31 days
    bounds = high_low_boundaries(register, at("2025-01-02T00:00:00-05:00"), NY)
    assert (bounds.estimated_reading, bounds.low_reading, bounds.high_reading) == (
        Decimal("1103.2"),
        Decimal("1101.9"),
        Decimal("1104.5"),
    )
    assert bounds.expected_consumption == Decimal("3.226")


@pytest.mark.parametrize(
    "register",
    [
        Register("PK", "KW", how_to_use=HowToUse.PEAK, readings=(read(JAN1, "5"),)),
        Register("MC1", "KWH", readings=(read(JAN1, "5", E),)),
        Register("MC1", "KWH", readings=(read("2024-12-20T00:00:00-05:00", "1"), read(JAN1, "5"))),
    ],
    ids=["peak", "no-actual-read", "short-history-no-default"],
)
def test_registers_high_low_cannot_evaluate(register: Register) -> None:
    with pytest.raises(InsufficientData):
        high_low_boundaries(register, at(FEB1), NY, sp_type="RES")


def test_any_consumption_over_a_zero_expectation_is_very_high() -> None:
    result = classify_consumption(Decimal(5), Decimal(0), Decimal(0), 50, 50)
    assert (result.check, result.percent) == (ReadCheck.VERY_HIGH, None)
    assert (
        classify_consumption(Decimal(0), Decimal(0), Decimal(0), 50, 50).check is ReadCheck.IN_RANGE
    )


def test_output_times_carry_the_legal_offset_and_compare_as_instants() -> None:
    autumn, after = "2025-11-02T00:00:00-04:00", "2025-11-03T00:00:00-05:00"
    repeated = at("2025-11-02T06:00:00Z")  # 01:00 EST, the second 01:00 of the day
    req = request(autumn, after, date_breaks=(DateBreak(repeated),))
    first, second = run(req, [meter(channels=[channel(values(autumn, 100))])]).periods
    assert first.end_date_time.isoformat() == "2025-11-02T01:00:00-05:00"
    assert first.end_date_time == repeated == second.start_date_time
    assert (first.quantity("KWH").value_count, second.quantity("KWH").value_count) == (8, 92)
    assert second.end_date_time.isoformat() == "2025-11-03T00:00:00-05:00"

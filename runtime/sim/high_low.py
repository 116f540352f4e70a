"""High-low boundaries of a register read (flow 14; docs/determinants.md §11, PD-D11) and CCB's
classification of a read against them.

Decisions:

* Only cumulative, non-peak registers are evaluated; any other register, and one with neither
  30 days of history nor a default ADC for its SP type, cannot be evaluated (90000/1301, which
  docs/flows.md PD-F33 reports per register).
* Expected, low and high consumption are written at the UOM's precision (PD-D03); readings at the
  register's decimal positions.
* With no expected consumption (no elapsed day or a zero ADC), any consumption above it is
  very high and has no percentage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from enum import StrEnum

from ccbmdm.runtime.functions import zone
from ccbmdm.runtime.sim.measurements import (
    ARITHMETIC,
    HowToUse,
    InsufficientData,
    ReadingKind,
    Register,
    instant,
    quantize,
)
from ccbmdm.runtime.sim.registers import average_daily_consumption, calendar_days, round_reading
from ccbmdm.runtime.sim.tou import legal_time
from ccbmdm.runtime.sim.usage_groups import DEFAULTS, UsageGroup


@dataclass(frozen=True)
class HighLowBoundaries:
    mc: str
    estimated_reading: Decimal
    low_reading: Decimal
    high_reading: Decimal
    expected_consumption: Decimal
    low_consumption: Decimal
    high_consumption: Decimal
    basis_reading: Decimal
    basis_read_date_time: datetime
    average_daily_consumption: Decimal
    days: int


def high_low_boundaries(
    register: Register,
    evaluation_date_time: datetime,
    time_zone: str,
    usage_group: UsageGroup | None = None,
    sp_type: str | None = None,
) -> HighLowBoundaries:
    """PD-D11 for one register on a read date: the expected, low and high readings from the last
    actual reading and the average daily consumption. ``usage_group`` is the one of the US active
    at the register's SP on that date, None for the defaults."""
    group = usage_group or DEFAULTS
    sp_zone = zone(time_zone)
    at = instant(evaluation_date_time)
    if register.how_to_use is HowToUse.PEAK or register.reading_kind is ReadingKind.CONSUMPTIVE:
        raise InsufficientData(f"register {register.mc} is not a cumulative register", register.mc)
    basis = next((r for r in reversed(register.readings) if r.at <= at and not r.estimated), None)
    if basis is None:
        raise InsufficientData(f"register {register.mc} has no actual reading", register.mc)
    daily = average_daily_consumption(register, at, sp_zone)
    if daily is None and sp_type is not None:
        daily = group.high_low.default_adc_by_sp_type.get(sp_type)
    if daily is None:
        raise InsufficientData(
            f"register {register.mc} has under 30 days of history and SP type {sp_type} "
            "has no default average daily consumption",
            register.mc,
        )
    days = calendar_days(basis.at, at, sp_zone)
    places = group.precision_of(register.uom)
    with localcontext(ARITHMETIC):
        expected = daily * days
        low, high = expected * group.high_low.low, expected * group.high_low.high

        def reading(consumption: Decimal) -> Decimal:
            return round_reading(register, basis.value + consumption / register.register_constant)

        return HighLowBoundaries(
            mc=register.mc,
            estimated_reading=reading(expected),
            low_reading=reading(low),
            high_reading=reading(high),
            expected_consumption=quantize(expected, places),
            low_consumption=quantize(low, places),
            high_consumption=quantize(high, places),
            basis_reading=basis.value,
            basis_read_date_time=legal_time(basis.at, sp_zone),
            average_daily_consumption=daily,
            days=days,
        )


class ReadCheck(StrEnum):
    VERY_HIGH = "VERY_HIGH"
    HIGH = "HIGH"
    IN_RANGE = "IN_RANGE"
    LOW = "LOW"
    VERY_LOW = "VERY_LOW"


@dataclass(frozen=True)
class ReadClassification:
    check: ReadCheck
    percent: int | None  # how far outside the boundary, rounded half-up; None in range


def _percent(numerator: Decimal, denominator: Decimal) -> int:
    with localcontext(ARITHMETIC):
        return int((numerator / denominator * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def classify_consumption(
    consumption: Decimal,
    low_consumption: Decimal,
    high_consumption: Decimal,
    very_high_cutoff: int,
    very_low_cutoff: int,
    literal_ccb_text: bool = False,
) -> ReadClassification:
    """CCB's High / Very High and Low / Very Low rules. PD-D11 classifies the low side like the
    high side (very low at or above the cutoff); ``literal_ccb_text`` applies the published text,
    which calls a read very low at or below it."""
    if consumption > high_consumption:
        if high_consumption <= 0:
            return ReadClassification(ReadCheck.VERY_HIGH, None)
        percent = _percent(consumption - high_consumption, high_consumption)
        very = percent >= very_high_cutoff
        return ReadClassification(ReadCheck.VERY_HIGH if very else ReadCheck.HIGH, percent)
    if consumption < low_consumption:
        percent = _percent(low_consumption - consumption, low_consumption)
        very = percent <= very_low_cutoff if literal_ccb_text else percent >= very_low_cutoff
        return ReadClassification(ReadCheck.VERY_LOW if very else ReadCheck.LOW, percent)
    return ReadClassification(ReadCheck.IN_RANGE, None)

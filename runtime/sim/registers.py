"""Register (scalar) consumption: read pairs, rollover, proration between reads and the average
daily consumption of a register's history (docs/determinants.md §3, §11, PD-D05, PD-D11, PD-D12)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from itertools import pairwise
from zoneinfo import ZoneInfo

from ccbmdm.runtime.sim.measurements import (
    ARITHMETIC,
    QUALITY_CODES,
    HowToUse,
    ImplausibleRegisterDecrease,
    InsufficientData,
    Quality,
    Reading,
    ReadingKind,
    Register,
)

HISTORY = timedelta(days=365)
MINIMUM_DAYS_COVERED = 30
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Measured:
    quantity: Decimal
    rollover: bool = False


def measured_quantity(register: Register, start: Decimal | None, end: Decimal) -> Measured:
    """What one read pair measured, before the register constant (§3). A peak or consumptive
    register measures its end reading; a cumulative one the difference, wrapped past its
    capacity when that stays within the plausibility threshold, else 90000/1302."""
    if register.how_to_use is HowToUse.PEAK or register.reading_kind is ReadingKind.CONSUMPTIVE:
        return Measured(end)
    if start is None:
        raise InsufficientData(f"register {register.mc} has no start reading", register.mc)
    with localcontext(ARITHMETIC):
        difference = end - start
        if difference >= 0:
            return Measured(difference)
        wrapped = register.capacity + difference
        if wrapped <= register.rollover_threshold * register.capacity:
            return Measured(wrapped, rollover=True)
    raise ImplausibleRegisterDecrease(
        f"register {register.mc} went from {start} to {end}: {wrapped} past its capacity "
        f"{register.capacity} is above {register.rollover_threshold} of it",
        register.mc,
        str(start),
        str(end),
    )


def round_reading(register: Register, value: Decimal) -> Decimal:
    """A computed reading as the register shows it: within its dials, half-up to its decimal
    positions."""
    with localcontext(ARITHMETIC):
        places = Decimal(1).scaleb(-register.decimal_positions)
        rounded = (value % register.capacity).quantize(places, rounding=ROUND_HALF_UP)
        return rounded % register.capacity


def neighbours(register: Register, at: datetime) -> tuple[Reading | None, Reading | None]:
    """The readings just before and just after ``at`` (either may be missing)."""
    instants = [reading.at for reading in register.readings]
    before = bisect_left(instants, at)
    after = bisect_right(instants, at)
    return (
        register.readings[before - 1] if before else None,
        register.readings[after] if after < len(instants) else None,
    )


def prorated_reading(register: Register, before: Reading, after: Reading, at: datetime) -> Reading:
    """The reading at ``at`` between two readings, prorating their consumption over elapsed
    time (PD-D12); it is an estimate. A peak register carries the pair's peak."""
    if register.how_to_use is HowToUse.PEAK:
        return Reading(at, after.value, QUALITY_CODES[Quality.ESTIMATED])
    if register.reading_kind is ReadingKind.CONSUMPTIVE:
        raise InsufficientData(
            f"consumptive register {register.mc} has no reading at {at.isoformat()}", register.mc
        )
    measured = measured_quantity(register, before.value, after.value).quantity
    with localcontext(ARITHMETIC):
        share = Decimal((at - before.at) // _MICROSECOND) / Decimal(
            (after.at - before.at) // _MICROSECOND
        )
        value = round_reading(register, before.value + measured * share)
    return Reading(at, value, QUALITY_CODES[Quality.ESTIMATED])


def calendar_days(start: datetime, end: datetime, time_zone: ZoneInfo) -> int:
    """Calendar days between two instants' legal dates."""
    return (end.astimezone(time_zone).date() - start.astimezone(time_zone).date()).days


def average_daily_consumption(
    register: Register, until: datetime, time_zone: ZoneInfo
) -> Decimal | None:
    """Accepted consumption of the last 365 days over the days its actual read pairs cover,
    in billed units; None under 30 days covered (PD-D11). Implausible pairs are left out."""
    if register.how_to_use is HowToUse.PEAK or register.reading_kind is ReadingKind.CONSUMPTIVE:
        return None
    history = [r for r in register.readings if until - HISTORY <= r.at <= until and not r.estimated]
    consumption, days = Decimal(0), 0
    with localcontext(ARITHMETIC):
        for start, end in pairwise(history):
            try:
                measured = measured_quantity(register, start.value, end.value).quantity
            except ImplausibleRegisterDecrease:
                continue
            consumption += measured * register.register_constant
            days += calendar_days(start.at, end.at, time_zone)
        if days < MINIMUM_DAYS_COVERED:
            return None
        return consumption / days

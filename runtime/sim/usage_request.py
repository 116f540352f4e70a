"""A usage request as MDM's determinant engine takes it and the answer it gives: the service
quantities of each usage period, the read pairs and interval data behind them, or a
summary-billing skip (docs/flows.md §11, §12, §15; docs/determinants.md §1, §13).

Decisions:

* A summary-billed SA is never skipped on a closing segment, nor when no scheduled read date is
  known (PD-D13).
* Times in an answer carry the SP's legal offset as a fixed offset (PD-C05).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum

from ccbmdm.runtime.functions import zone
from ccbmdm.runtime.sim.measurements import HowToUse, Quality, decimal_text, instant
from ccbmdm.runtime.sim.tou import TouOverride
from ccbmdm.runtime.sim.usage_groups import SqKey


class BillCondition(StrEnum):
    INITIAL = "D2IL"
    INTERIM = "D2IM"
    CLOSING = "D2CL"
    INITIAL_AND_CLOSING = "D2IC"


class DateBreakReason(StrEnum):
    RATE = "RATE"
    SAREL = "SAREL"
    EXCHANGE = "EXCHANGE"


@dataclass(frozen=True)
class DateBreak:
    date_time: datetime
    reason: DateBreakReason = DateBreakReason.RATE

    def __post_init__(self) -> None:
        object.__setattr__(self, "date_time", instant(self.date_time))


@dataclass(frozen=True)
class PriorDemand:
    """The measured maximum demand of an earlier Sent UT of the US (ratchet history)."""

    usage_id: str
    end_date_time: datetime
    demand: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "end_date_time", instant(self.end_date_time))


@dataclass(frozen=True)
class CalculationRequest:
    """A usage request as MDM calculates it (docs/flows.md §11, §12, §15), in the SP's zone.

    ``online`` marks flow 12 (and get usage); ``estimate_date_reached`` says the bill cycle's
    estimate date has come for a batch request (PD-D04)."""

    start_date_time: datetime
    end_date_time_from: datetime
    end_date_time_to: datetime
    time_zone: str
    bill_condition: BillCondition = BillCondition.INTERIM
    online: bool = False
    estimate_date_reached: bool = False
    date_breaks: tuple[DateBreak, ...] = ()
    sp_type: str | None = None
    previous_usage_id: str | None = None
    prior_demands: tuple[PriorDemand, ...] = ()
    return_interval_data: bool = False
    summary_billed: bool = False
    scheduled_read_dates: tuple[date, ...] = ()
    tou_overrides: tuple[TouOverride, ...] = ()

    def __post_init__(self) -> None:
        for name in ("start_date_time", "end_date_time_from", "end_date_time_to"):
            object.__setattr__(self, name, instant(getattr(self, name)))
        zone(self.time_zone)
        if not self.start_date_time < self.end_date_time_from <= self.end_date_time_to:
            raise ValueError("expected startDateTime < endDateTimeFrom <= endDateTimeTo")

    @property
    def closing(self) -> bool:
        return self.bill_condition in (BillCondition.CLOSING, BillCondition.INITIAL_AND_CLOSING)

    @property
    def estimation_allowed(self) -> bool:
        """PD-D04: a closing segment always; a batch request once the estimate date is reached."""
        return self.closing or (not self.online and self.estimate_date_reached)


@dataclass(frozen=True)
class ServiceQuantity:
    uom: str
    tou: str
    sqi: str
    quantity: Decimal
    quality: Quality
    value_count: int
    estimated_count: int
    edited_count: int

    @property
    def key(self) -> SqKey:
        return SqKey(self.uom, self.tou, self.sqi)

    @property
    def quantity_text(self) -> str:
        return decimal_text(self.quantity)


@dataclass(frozen=True)
class UsagePeriod:
    start_date_time: datetime
    end_date_time: datetime
    service_quantities: tuple[ServiceQuantity, ...]

    def quantity(self, uom: str, tou: str = "", sqi: str = "") -> ServiceQuantity:
        key = SqKey(uom, tou, sqi)
        for sq in self.service_quantities:
            if sq.key == key:
                return sq
        raise KeyError(f"no service quantity {key} in the period")

    @property
    def keys(self) -> tuple[SqKey, ...]:
        return tuple(sq.key for sq in self.service_quantities)


@dataclass(frozen=True)
class RegisterRead:
    """One read pair behind the determinants (a bill segment read detail, [BSEG-RDG])."""

    device: str
    mc: str
    start_reading: Decimal
    start_date_time: datetime
    start_estimated: bool
    end_reading: Decimal
    end_date_time: datetime
    end_estimated: bool
    register_constant: Decimal
    how_to_use: HowToUse
    measured_quantity: Decimal
    final_quantity: Decimal
    rollover: bool


@dataclass(frozen=True)
class IntervalReading:
    end_date_time: datetime
    value: Decimal
    quality_codes: tuple[str, ...]


@dataclass(frozen=True)
class IntervalData:
    mc: str
    uom: str
    seconds_per_interval: int
    readings: tuple[IntervalReading, ...]


@dataclass(frozen=True)
class Determinants:
    periods: tuple[UsagePeriod, ...]
    register_reads: tuple[RegisterRead, ...] = ()
    interval_data: tuple[IntervalData, ...] = ()


@dataclass(frozen=True)
class Skip:
    """A summary-billing skip answer ([SUMBILL], PD-D13)."""

    skip_reason: str
    next_scheduled_read_date: date


def summary_billing_skip(request: CalculationRequest) -> Skip | None:
    """PD-D13: a summary-billed US with no scheduled read in the cutoff window is skipped until
    the cycle's next scheduled read date."""
    if not request.summary_billed or request.closing:
        return None
    sp_zone = zone(request.time_zone)
    window_start = request.end_date_time_from.astimezone(sp_zone).date()
    last = request.end_date_time_to.astimezone(sp_zone)
    window_end = last.date() - timedelta(days=1 if last.time() == time(0) else 0)
    upcoming = sorted(day for day in request.scheduled_read_dates if day >= window_start)
    if not upcoming or upcoming[0] <= window_end:
        return None
    return Skip("summary billed: no scheduled read in the cutoff window", upcoming[0])


def sa_is_skipped(next_scheduled_read_date: date, segment_end_date: date) -> bool:
    """CCB's side of a skip: the SA is skipped while the stored next scheduled read date is
    after the segment end date ([SUMBILL])."""
    return next_scheduled_read_date > segment_end_date

"""What a corrected read or interval means for usage transactions already sent
(docs/determinants.md §12, docs/lifecycles.md PD-L09, docs/flows.md §13 PD-F14).

The simulator recalculates a touched UT from the corrected data and compares the result with
what it sent; ``correction_outcome`` then says whether CCB must be told.

Decisions:

* A scalar correction touches a UT whose period contains its instant, boundaries included (the
  boundary reads belong to both neighbouring UTs); an interval value touches the UT whose period
  contains the interval it covers (PD-D01).
* Only a correction that changes what was billed counts: an SQ whose quantity, quality or counts
  differ, a usage period that appears or disappears, or a recalculation that now fails. A
  correction that changes nothing billed leaves the UT as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from ccbmdm.runtime.sim.measurements import QUALITY_CODES, DeterminantsFault, Quality, instant
from ccbmdm.runtime.sim.usage_groups import SqKey
from ccbmdm.runtime.sim.usage_request import Determinants, ServiceQuantity


@dataclass(frozen=True)
class Correction:
    """A corrected measurement; ``seconds_per_interval`` is None for a scalar reading."""

    mc: str
    measurement_date_time: datetime
    old_value: Decimal
    new_value: Decimal
    quality_codes: tuple[str, ...] = QUALITY_CODES[Quality.EDITED]
    seconds_per_interval: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "measurement_date_time", instant(self.measurement_date_time))

    def touches(self, start: datetime, end: datetime) -> bool:
        moment = self.measurement_date_time
        if self.seconds_per_interval is None:
            return start <= moment <= end
        return start <= moment - timedelta(seconds=self.seconds_per_interval) and moment <= end


@dataclass(frozen=True)
class SentUsage:
    """A Sent UT as the correction rules need it: its period, the MCs it used, its flag."""

    usage_id: str
    start_date_time: datetime
    end_date_time: datetime
    mcs: frozenset[str]
    used_on_bill: bool

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_date_time", instant(self.start_date_time))
        object.__setattr__(self, "end_date_time", instant(self.end_date_time))

    def touched_by(self, corrections: Iterable[Correction]) -> bool:
        return any(
            c.mc in self.mcs and c.touches(self.start_date_time, self.end_date_time)
            for c in corrections
        )


def touched_usages(
    usages: Iterable[SentUsage], corrections: Sequence[Correction]
) -> tuple[SentUsage, ...]:
    """The Sent UTs a set of corrections touches, oldest first: the order CCB rebills them in
    (docs/lifecycles.md §5)."""
    return tuple(
        sorted((u for u in usages if u.touched_by(corrections)), key=lambda u: u.start_date_time)
    )


@dataclass(frozen=True)
class QuantityChange:
    start_date_time: datetime
    end_date_time: datetime
    key: SqKey
    sent: ServiceQuantity | None
    recalculated: ServiceQuantity | None


def changed_quantities(
    sent: Determinants, recalculated: Determinants
) -> tuple[QuantityChange, ...]:
    """The SQs that differ between what was sent and a recalculation, per usage period."""

    def index(d: Determinants) -> dict[tuple[datetime, datetime, SqKey], ServiceQuantity]:
        return {
            (instant(p.start_date_time), instant(p.end_date_time), sq.key): sq
            for p in d.periods
            for sq in p.service_quantities
        }

    before, after = index(sent), index(recalculated)
    return tuple(
        QuantityChange(start, end, key, before.get((start, end, key)), after.get((start, end, key)))
        for start, end, key in sorted(before.keys() | after.keys())
        if before.get((start, end, key)) != after.get((start, end, key))
    )


class CorrectionOutcome(StrEnum):
    SUBSEQUENT_CORRECTION = "SUBSEQUENT_CORRECTION"  # notify CCB (flow 13)
    STALE = "STALE"  # not used on a bill: mark it, send nothing
    UNCHANGED = "UNCHANGED"


def correction_outcome(
    usage: SentUsage,
    corrections: Sequence[Correction],
    sent: Determinants,
    recalculated: Determinants | DeterminantsFault,
) -> CorrectionOutcome:
    """PD-L09: a correction that changes a Sent UT's determinants puts it in Subsequent
    Correction when it is used on a bill, else marks it stale."""
    if not usage.touched_by(corrections):
        return CorrectionOutcome.UNCHANGED
    if not isinstance(recalculated, DeterminantsFault) and not changed_quantities(
        sent, recalculated
    ):
        return CorrectionOutcome.UNCHANGED
    return (
        CorrectionOutcome.SUBSEQUENT_CORRECTION if usage.used_on_bill else CorrectionOutcome.STALE
    )

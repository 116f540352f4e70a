"""Estimation: VEE's gap fill of interval data, a register reading MDM estimates to end a period,
and the re-estimate of a billed estimate that a later actual read proves too high
(docs/determinants.md §8, PD-D04, PD-D09, PD-D10, PD-D12).

Decisions:

* An end reading is estimated from the register's own average daily consumption (PD-D11), else
  from the usage group's default for the SP type; the default is a whole-register figure, so a
  TOU register without 30 days of history cannot be estimated. Peak registers carry their last
  reading forward; consumptive registers are not estimated.
* Elapsed time, not calendar days, prorates between two reads; across the 23- and 25-hour days
  that is what the meter saw.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from zoneinfo import ZoneInfo

import numpy as np

from ccbmdm.runtime.sim.determinants.measurements import (
    ARITHMETIC,
    EPOCH,
    MICROSECOND,
    QUALITY_CODES,
    DeterminantsFault,
    HowToUse,
    ImplausibleRegisterDecrease,
    IntervalChannel,
    IntervalValue,
    Quality,
    Reading,
    ReadingKind,
    Register,
    instant,
)
from ccbmdm.runtime.sim.determinants.registers import (
    average_daily_consumption,
    measured_quantity,
    neighbours,
    prorated_reading,
    round_reading,
)

MAXIMUM_GAP = 4  # intervals VEE may estimate in one gap (PD-D09)
_ESTIMATED = QUALITY_CODES[Quality.ESTIMATED]


def _scale(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def fill_gaps(
    channel: IntervalChannel, start: datetime, end: datetime, maximum_gap: int = MAXIMUM_GAP
) -> IntervalChannel:
    """The channel with the missing intervals of ``(start, end]`` estimated (PD-D09): linear
    between the two neighbours of a gap of at most ``maximum_gap`` intervals, each value
    half-up to the larger scale of the neighbours; flat from the single neighbour at a data
    edge within the same limit. Longer gaps stay missing: missing never becomes zero."""
    step = timedelta(seconds=channel.seconds_per_interval)
    start, end = instant(start), instant(end)
    micros, columns = channel.seconds_per_interval * 1_000_000, channel.columns
    count, low = (end - start) // step, (start - EPOCH) // MICROSECOND
    ends = columns.ends
    if columns.spacing == micros and count:  # one value every step: complete if it spans
        first, last = low + micros, low + count * micros
        if not (first - int(ends[0])) % micros and ends[0] <= first and last <= ends[-1]:
            return channel
    grid = np.arange(1, count + 1, dtype=np.int64) * micros + low
    at = np.searchsorted(ends, grid)
    known = ends[np.minimum(at, len(ends) - 1)] == grid if len(ends) else np.zeros(len(grid), bool)
    missing = np.flatnonzero(~known)
    if not len(missing):
        return channel  # the usual case, found without a value made one by one
    added: list[IntervalValue] = []
    # each run of missing instants, with where its neighbours lie among the values
    breaks = np.flatnonzero(np.diff(missing) != 1) + 1
    for run in np.split(missing, breaks):
        first, last = int(run[0]), int(run[-1])
        before, after = int(at[first]), int(at[last])
        previous = channel.values[before - 1] if before else None
        following = channel.values[after] if after < len(ends) else None
        moments = [start + step * (k + 1) for k in range(first, last + 1)]
        added.extend(_estimate_run(moments, previous, following, step, maximum_gap))
    return channel.with_values(added) if added else channel


def _estimate_run(
    run: list[datetime],
    previous: IntervalValue | None,
    following: IntervalValue | None,
    step: timedelta,
    maximum_gap: int,
) -> list[IntervalValue]:
    if previous is not None and following is not None:
        gap = (following.end - previous.end) // step - 1
        if gap > maximum_gap:
            return []
        places = Decimal(1).scaleb(-max(_scale(previous.value), _scale(following.value)))
        with localcontext(ARITHMETIC):
            rise = following.value - previous.value
            return [
                IntervalValue(
                    end,
                    (previous.value + rise * ((end - previous.end) // step) / (gap + 1)).quantize(
                        places, rounding=ROUND_HALF_UP
                    ),
                    _ESTIMATED,
                )
                for end in run
            ]
    edge = previous or following
    if edge is None:
        return []
    gap = (run[-1] - edge.end) // step if previous is not None else (edge.end - run[0]) // step
    if gap > maximum_gap:
        return []
    return [IntervalValue(end, edge.value, _ESTIMATED) for end in run]


def estimate_reading(
    register: Register, at: datetime, time_zone: ZoneInfo, default_adc: Decimal | None = None
) -> Reading | None:
    """A reading MDM estimates at ``at`` (PD-D04), or None when it has no basis: between two
    readings it prorates; after the last one it extends the average daily consumption."""
    before, after = neighbours(register, at)
    if before is not None and after is not None:
        try:
            return prorated_reading(register, before, after, at)
        except DeterminantsFault:
            return None
    if before is None:
        return None
    if register.how_to_use is HowToUse.PEAK:
        return Reading(at, before.value, _ESTIMATED)
    if register.reading_kind is ReadingKind.CONSUMPTIVE:
        return None
    daily = average_daily_consumption(register, at, time_zone)
    if daily is None and not register.tou:
        daily = default_adc
    if daily is None:
        return None
    with localcontext(ARITHMETIC):
        days = Decimal((at - before.at) // timedelta(microseconds=1)) / Decimal(86_400_000_000)
        value = round_reading(register, before.value + daily * days / register.register_constant)
    return Reading(at, value, _ESTIMATED)


def reestimate_bad_estimate(register: Register, estimated_at: datetime) -> Reading | None:
    """PD-D12: when the first actual read after a billed estimate is below it (a decrease no
    rollover explains), the estimate is replaced by a proration between the actual reads that
    bracket it. None when the estimate stands or has no bracketing actual reads."""
    estimated_at = instant(estimated_at)
    estimate = register.by_instant.get(estimated_at)
    if estimate is None or not estimate.estimated:
        raise ValueError(f"register {register.mc} has no estimated reading at {estimated_at}")
    actual = [reading for reading in register.readings if not reading.estimated]
    previous = next((r for r in reversed(actual) if r.at < estimated_at), None)
    following = next((r for r in actual if r.at > estimated_at), None)
    if previous is None or following is None:
        return None
    try:
        measured_quantity(register, estimate.value, following.value)
        return None
    except ImplausibleRegisterDecrease:
        return prorated_reading(register, previous, following, estimated_at)

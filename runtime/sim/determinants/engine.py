"""The MDM simulator's bill-determinant engine: from a usage request, the SP's install events and
measurements and the usage group, the service quantities of each usage period
(docs/determinants.md; docs/flows.md §11). Pure: no database, no clock, no I/O.

``calculate`` answers a ``Determinants`` or, for a summary-billed SA with no read due, a
``Skip``; a calculation that cannot complete raises a ``DeterminantsFault`` carrying its
framework fault number (1301-1304).

Decisions:

* Registers are read together: a scalar period ends at the latest instant of the window where
  every register in service has an actual reading. When estimation is allowed (PD-D04) and there
  is none, a stored estimate in the window is used before MDM estimates at ``endDateTimeTo``;
  check registers are then left out rather than estimated.
* A period boundary with no reading of a register (a rate break between two reads) gets a reading
  prorated over elapsed time, flagged estimated, so the two parts always add up to the pair. A
  peak register reports the pair's peak in each part.
* With interval MCs, the end found at a scalar read moves to the next interval end (PD-D01) and
  that instant is the reported end, so the next request's start is on the grid.
* When estimation is allowed, VEE's gap fill (PD-D09) runs over the window before the end is
  chosen; otherwise the data is used as stored.
* Every SQ the usage group lists is returned when an interval MC measures in the period, a TOU
  bucket with no interval as 0 with ``valueCount`` 0: no on-peak hours is not missing data.
* Demand comes from delivered energy only (SQI blank or ``DEL``); a register's own SQ and an
  interval SQ with the same key add up (energy) or take the maximum (demand).
* ``NET`` is returned for every (UOM, TOU) with both ``DEL`` and ``REC`` energy; its counts add
  those of both. Register SQ counts count read pairs.
* Ratchet history is the prior measured demand of Sent UTs that ended by the period start,
  without the UT a rebill supersedes (``previousUsageId``); each usage period applies it alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants.estimation import estimate_reading, fill_gaps
from ccbmdm.runtime.sim.determinants.measurements import (
    ARITHMETIC,
    EPOCH,
    MICROSECOND,
    QUALITY_CODES,
    DeterminantsFault,
    HowToUse,
    Installation,
    InsufficientData,
    IntervalChannel,
    IntervalColumns,
    MisalignedPeriod,
    Quality,
    Reading,
    ReadingKind,
    Register,
    TouSumCheckFailed,
    quantize,
    worst,
)
from ccbmdm.runtime.sim.determinants.registers import (
    measured_quantity,
    neighbours,
    prorated_reading,
)
from ccbmdm.runtime.sim.determinants.tou import (
    TouCalendar,
    TouRuns,
    grid_ceiling,
    grid_floor,
    legal_time,
    on_grid,
)
from ccbmdm.runtime.sim.determinants.usage_groups import ON_PEAK, SqKey, UsageGroup
from ccbmdm.runtime.sim.determinants.usage_request import (
    BillCondition,
    CalculationRequest,
    DateBreak,
    DateBreakReason,
    Determinants,
    IntervalData,
    IntervalReading,
    PriorDemand,
    RegisterRead,
    ServiceQuantity,
    Skip,
    UsagePeriod,
    sa_is_skipped,
    summary_billing_skip,
)

__all__ = [  # the engine's entry point with the types a caller needs
    "BillCondition",
    "CalculationRequest",
    "DateBreak",
    "DateBreakReason",
    "Determinants",
    "DeterminantsFault",
    "IntervalData",
    "IntervalReading",
    "PriorDemand",
    "RegisterRead",
    "ServiceQuantity",
    "Skip",
    "UsagePeriod",
    "calculate",
    "sa_is_skipped",
    "summary_billing_skip",
]

ENERGY, DEMAND = "KWH", "KW"
DELIVERED, RECEIVED, NET, BILLED = "DEL", "REC", "NET", "BILLED"


def calculate(
    request: CalculationRequest, installations: Iterable[Installation], usage_group: UsageGroup
) -> Determinants | Skip:
    """The determinants of a usage request over the SP's install events
    (docs/determinants.md §2-§10)."""
    skip = summary_billing_skip(request)
    if skip is not None:
        return skip
    with localcontext(ARITHMETIC):
        return _Calculation(request, tuple(installations), usage_group).run()


# -- the calculation ----------------------------------------------------------------------------


def _micros(moment: datetime) -> int:
    """An instant as microseconds since the epoch, as interval columns hold it."""
    return (moment - EPOCH) // MICROSECOND


def _stamped(
    columns: IntervalColumns, first: int, step: int, count: int
) -> tuple[slice | npt.NDArray[np.intp], int]:
    """Where the values stamped ``first + step``, ``first + 2 step`` ... ``first + count step``
    lie in ``columns``, up to the first of them that is missing, and how many that is. They lie
    side by side (a slice) unless a value is stamped off the grid between them."""
    ends = columns.ends
    if columns.spacing == step:  # one value every step: where they start tells it all
        start, off_grid = divmod(first + step - int(ends[0]), step)
        present = 0 if off_grid or start < 0 else max(0, min(count, len(ends) - start))
        return slice(max(start, 0), max(start, 0) + present), present
    start = int(np.searchsorted(ends, first, side="right"))
    grid = np.arange(1, count + 1, dtype=np.int64) * step + first
    side = ends[start : start + count]
    if len(side) == count and np.array_equal(side, grid):
        return slice(start, start + count), count
    if not len(ends):
        return slice(0, 0), 0
    at = np.searchsorted(ends, grid)
    missing = np.flatnonzero(ends[np.minimum(at, len(ends) - 1)] != grid)
    present = int(missing[0]) if len(missing) else count
    return at[:present], present


@dataclass
class _Sq:
    """A service quantity being built: a sum, or a maximum for demand."""

    peak: bool = False
    quantity: Decimal | None = None
    values: int = 0
    estimated: int = 0
    edited: int = 0

    def take(self, amount: Decimal, quality: Quality) -> None:
        if self.quantity is None:
            self.quantity = amount
        elif self.peak:
            self.quantity = max(self.quantity, amount)
        else:
            self.quantity += amount
        self.count(quality, 1)

    def take_total(self, amount: Decimal, values: int, estimated: int, edited: int) -> None:
        """``take`` of ``values`` amounts that add up to ``amount`` (``estimated`` and
        ``edited`` of them so)."""
        self.quantity = amount if self.quantity is None else self.quantity + amount
        self.values += values
        self.estimated += estimated
        self.edited += edited

    def take_peak(self, amount: Decimal, values: int, estimated: int, edited: int) -> None:
        """``take`` of ``values`` amounts whose highest (the first of equal ones) is ``amount``."""
        if self.quantity is None:
            self.quantity = amount
        else:
            self.quantity = max(self.quantity, amount)
        self.values += values
        self.estimated += estimated
        self.edited += edited

    def count(self, quality: Quality, values: int) -> None:
        self.values += values
        self.estimated += values if quality is Quality.ESTIMATED else 0
        self.edited += values if quality is Quality.EDITED else 0

    def merge(self, other: _Sq) -> None:
        """Add another part of the same SQ (its quantity and its counts)."""
        if other.quantity is not None:
            if self.quantity is None:
                self.quantity = other.quantity
            elif self.peak:
                self.quantity = max(self.quantity, other.quantity)
            else:
                self.quantity += other.quantity
        self.values += other.values
        self.estimated += other.estimated
        self.edited += other.edited

    @property
    def quality(self) -> Quality:
        if self.estimated:
            return Quality.ESTIMATED
        return Quality.EDITED if self.edited else Quality.ACTUAL


def _add(
    sqs: dict[SqKey, _Sq], key: SqKey, part: tuple[Decimal, int, int, int], peak: bool = False
) -> None:
    """Add a channel's part (a quantity with its value counts) to the SQ ``key``: its sum, or
    for a peak its maximum."""
    sq = sqs.get(key)
    if sq is None:
        sqs[key] = _Sq(peak, *part)
    elif peak:
        sq.take_peak(*part)
    else:
        sq.take_total(*part)


def _merge(sqs: dict[SqKey, _Sq], key: SqKey, part: _Sq) -> None:
    """Merge ``part`` into the SQ ``key``, which it becomes when the period has none yet."""
    sq = sqs.get(key)
    if sq is None:
        sqs[key] = part
    else:
        sq.merge(part)


_INT64_MAX = 2**63 - 1


# a value's weight in the count of flagged values: an estimated one counts in the low half, an
# edited one in the high half, so one sum counts both (a period has far fewer than 2**32)
_FLAG_WEIGHTS = {Quality.ACTUAL: 0, Quality.ESTIMATED: 1, Quality.EDITED: 1 << 32}


class _Buckets:
    """A channel's values in a usage period by TOU: their counts, exact sums and highest
    values (PD-D16), taken run by run (``TouRuns``). Units are summed as int64 where no sum
    can overflow it, else as Python integers; either way exactly."""

    def __init__(
        self,
        columns: IntervalColumns,
        units: npt.NDArray[Any],
        code_of: npt.NDArray[np.intp],
        runs: TouRuns,
    ) -> None:
        self.scale, self.runs = columns.scale, runs
        self.highs = np.maximum.reduceat(units, runs.starts)  # each run's highest
        self.high, low = int(self.highs.max()), int(units.min())
        if units.dtype != np.int64 or max(self.high, -low) * len(units) > _INT64_MAX:
            units = units.astype(object)
        sums = self.by_tou(units)
        # how many values of each TOU are estimated and edited, when any of the period are
        weights = [_FLAG_WEIGHTS[quality] for quality in columns.qualities]
        flagged = [0] * len(sums)
        if any(weights):
            per_run = np.add.reduceat(np.array(weights, dtype=np.int64).take(code_of), runs.starts)
            flagged = (runs.choose @ per_run).tolist()
        # each TOU's sum, values, estimated and edited, and the same of all
        self.by_tous = [
            (self.decimal(whole), values, weight & 0xFFFFFFFF, weight >> 32)
            for whole, values, weight in zip(sums, runs.values, flagged, strict=True)
        ]
        weight = sum(flagged)
        self.all = (self.decimal(sum(sums)), len(units), weight & 0xFFFFFFFF, weight >> 32)

    def by_tou(self, amounts: npt.NDArray[Any]) -> list[int]:
        """The sum of ``amounts`` in each TOU: each run's, then each TOU's runs'."""
        found: list[int] = (self.runs.choose @ np.add.reduceat(amounts, self.runs.starts)).tolist()
        return found

    def decimal(self, units: int) -> Decimal:
        return Decimal(units).scaleb(-self.scale)

    def highest(self, k: int | None) -> Decimal:
        """The highest value of bucket ``k`` (None: of all); a bucket ``k`` has values."""
        if k is None or self.runs.values[k] == self.all[1]:
            return self.decimal(self.high)
        return self.decimal(int(self.highs[self.runs.runs_of(k)].max()))


class _Channel:
    """An interval MC over the part of the request its install event covers, on its grid."""

    __slots__ = ("channel", "first", "last", "micros", "step")

    def __init__(self, channel: IntervalChannel, first: datetime, last: datetime | None) -> None:
        self.channel, self.first = channel, first
        self.last = last  # None: still installed
        seconds = channel.seconds_per_interval
        self.step = timedelta(seconds=seconds)
        self.micros = seconds * 1_000_000  # the interval length as interval columns count time

    def with_channel(self, channel: IntervalChannel) -> _Channel:
        """The same span of another form of the channel (VEE's, with its gaps filled)."""
        return _Channel(channel, self.first, self.last)

    def until(self, moment: datetime) -> datetime:
        """The earlier of ``moment`` and the channel's removal."""
        return min(self.last, moment) if self.last else moment


class _Boundary(NamedTuple):
    reported: datetime  # on every interval grid
    scalar: datetime  # where register read pairs end or start


class _Calculation:
    def __init__(
        self,
        request: CalculationRequest,
        installations: tuple[Installation, ...],
        group: UsageGroup,
    ) -> None:
        self.request, self.group = request, group
        self.zone = zone(request.time_zone)
        self.start = request.start_date_time
        self.window = (request.end_date_time_from, request.end_date_time_to)
        self.calendar = TouCalendar(self.zone, group.tou_map, request.tou_overrides)
        self.installed = [
            i
            for i in installations
            if i.installed_at < self.window[1]
            and (i.removed_at is None or i.removed_at > self.start)
        ]
        self.registers = [(i, register) for i in self.installed for register in i.registers]
        self.lengths = sorted({c.seconds_per_interval for i in self.installed for c in i.channels})
        self.grid = math.lcm(*self.lengths) if self.lengths else None
        self.channels: list[_Channel] = []
        for i in self.installed:
            for channel in i.channels:
                step = channel.seconds_per_interval
                # installed by the start: the start, which is on the grid (check_alignment)
                first = (
                    self.start
                    if i.installed_at <= self.start
                    else max(self.start, grid_ceiling(i.installed_at, step, self.zone))
                )
                last = grid_ceiling(i.removed_at, step, self.zone) if i.removed_at else None
                self.channels.append(_Channel(channel, first, last))

    def run(self) -> Determinants:
        self.check_alignment()
        if self.request.estimation_allowed:
            self.channels = [
                c.with_channel(fill_gaps(c.channel, c.first, c.until(self.window[1])))
                for c in self.channels
            ]
        if not self.channels and not self.registers:
            raise InsufficientData("no measuring component is installed in the period")
        scalar_end = self.scalar_end() if self.registers else None
        end = self.interval_end(scalar_end) if self.channels else scalar_end
        assert end is not None
        boundaries = self.boundaries(end, scalar_end or end)
        periods, reads = [], []
        for first, last in pairwise(boundaries):
            period, pairs = self.period(first, last)
            periods.append(period)
            reads.extend(pairs)
        return Determinants(tuple(periods), tuple(reads), self.interval_data(end))

    def local(self, moment: datetime) -> datetime:
        return legal_time(moment, self.zone)

    def check_alignment(self) -> None:
        """PD-D01: the boundaries a request gives sit on every interval MC's grid (1304)."""
        given = [
            ("startDateTime", self.start),
            ("endDateTimeFrom", self.window[0]),
            ("endDateTimeTo", self.window[1]),
        ] + [("dateBreaks.dateTime", b.date_time) for b in self.request.date_breaks]
        checked = set()
        for name, moment in given:
            if moment in checked:
                continue  # the same instant under another name: already on the grid
            checked.add(moment)
            for seconds in self.lengths:
                if not on_grid(moment, seconds, self.zone):
                    text = self.local(moment).isoformat()
                    raise MisalignedPeriod(
                        f"{name} {text} is not on the {seconds // 60}-minute interval grid",
                        name,
                        text,
                    )

    # -- period end (PD-D04) --------------------------------------------------------------------

    def in_service(self, moment: datetime) -> list[int]:
        return [k for k, (i, _) in enumerate(self.registers) if i.in_service_at(moment)]

    def read_at(self, moment: datetime, actual_only: bool) -> bool:
        needed = self.in_service(moment)
        found = [self.registers[k][1].by_instant.get(moment) for k in needed]
        return bool(needed) and all(
            r is not None and not (actual_only and r.estimated) for r in found
        )

    def scalar_end(self) -> datetime:
        low, high = self.window
        candidates = sorted(
            {r.at for _, reg in self.registers for r in reg.readings if low <= r.at <= high},
            reverse=True,
        )
        for moment in candidates:
            if self.read_at(moment, actual_only=True):
                return moment
        mcs = ", ".join(reg.mc for _, reg in self.registers)
        if not self.request.estimation_allowed:
            raise InsufficientData(f"no actual read of {mcs} in the cutoff window", mcs)
        for moment in candidates:
            if self.read_at(moment, actual_only=False):
                return moment
        return self.estimate_end(high, mcs)

    def estimate_end(self, moment: datetime, mcs: str) -> datetime:
        needed = self.in_service(moment)
        if not needed:
            raise InsufficientData(f"no register of {mcs} is in service at the window end", mcs)
        sp_type = self.request.sp_type
        default = self.group.high_low.default_adc_by_sp_type.get(sp_type) if sp_type else None
        for k in needed:
            installation, register = self.registers[k]
            if moment in register.by_instant or register.how_to_use is HowToUse.CHECK:
                continue
            estimate = estimate_reading(register, moment, self.zone, default)
            if estimate is None:
                raise InsufficientData(
                    f"register {register.mc} cannot be estimated at {self.local(moment)}",
                    register.mc,
                )
            self.registers[k] = (
                installation,
                replace(register, readings=(*register.readings, estimate)),
            )
        return moment

    def interval_end(self, scalar_end: datetime | None) -> datetime:
        assert self.grid is not None
        reachable = self.window[1]
        for c in self.channels:
            span_end = c.until(self.window[1])
            # from the channel's first instant, step on while the next value is there
            steps = max(0, -((c.first - span_end) // c.step))  # the steps before span_end
            _, present = _stamped(c.channel.columns, _micros(c.first), c.micros, steps)
            moment = c.first + c.step * present
            if moment < span_end or c.last is None or c.last > self.window[1]:
                reachable = min(reachable, moment)
        if scalar_end is not None:
            end = grid_ceiling(scalar_end, self.grid, self.zone)
            if end > reachable:
                raise InsufficientData(
                    f"interval data is incomplete before the read at {self.local(scalar_end)}"
                )
            return end
        # the window's end, the usual answer, is on the grid (check_alignment)
        end = (
            reachable
            if reachable == self.window[1]
            else grid_floor(reachable, self.grid, self.zone)
        )
        if end < self.window[0]:
            raise InsufficientData(
                f"interval data is complete only up to {self.local(reachable)}, before the window"
            )
        return end

    def boundaries(self, end: datetime, scalar_end: datetime) -> list[_Boundary]:
        """PD-D15: date breaks (and exchanges, where the group says so) split the period."""
        found = {self.start: self.start, end: scalar_end}
        for date_break in self.request.date_breaks:
            if self.start < date_break.date_time < end:
                found.setdefault(date_break.date_time, date_break.date_time)
        if self.group.exchange_is_date_break:
            for i in self.installed:
                for moment in (i.installed_at, i.removed_at):
                    if moment is None or not self.start < moment < scalar_end:
                        continue
                    reported = grid_ceiling(moment, self.grid, self.zone) if self.grid else moment
                    if reported < end:
                        found.setdefault(reported, moment)
        return [_Boundary(moment, found[moment]) for moment in sorted(found)]

    # -- one usage period -----------------------------------------------------------------------

    def reading(self, register: Register, moment: datetime) -> Reading | None:
        stored = register.by_instant.get(moment)
        if stored is not None:
            return stored
        before, after = neighbours(register, moment)
        if after is not None and register.how_to_use is HowToUse.PEAK:
            return Reading(moment, after.value, QUALITY_CODES[Quality.ESTIMATED])  # the pair's peak
        if before is None or after is None:
            return None
        return prorated_reading(register, before, after, moment)

    def period(self, first: _Boundary, last: _Boundary) -> tuple[UsagePeriod, list[RegisterRead]]:
        sqs: dict[SqKey, _Sq] = {}
        reads = self.register_pairs(first.scalar, last.scalar, sqs)
        self.interval_quantities(first.reported, last.reported, sqs)
        self.net(sqs)
        self.ratchet(sqs)
        quantities = tuple(
            ServiceQuantity(
                key.uom,
                key.tou,
                key.sqi,
                quantize(sq.quantity or Decimal(0), self.group.precision_of(key.uom)),
                sq.quality,
                sq.values,
                sq.estimated,
                sq.edited,
            )
            for key, sq in sorted(sqs.items())
        )
        span = UsagePeriod(self.local(first.reported), self.local(last.reported), quantities)
        return span, reads

    def register_pairs(
        self, start: datetime, end: datetime, sqs: dict[SqKey, _Sq]
    ) -> list[RegisterRead]:
        reads: list[RegisterRead] = []
        checks: dict[tuple[str, str, str], Decimal] = {}
        tou_sums: dict[tuple[str, str, str], Decimal] = {}
        for installation, register in self.registers:
            low = max(start, installation.installed_at)
            high = min(end, installation.removed_at or end)
            if low >= high:
                continue
            closing = self.reading(register, high)
            no_start = register.how_to_use is HowToUse.PEAK or (
                register.reading_kind is ReadingKind.CONSUMPTIVE
            )
            opening = register.by_instant.get(low) if no_start else self.reading(register, low)
            if closing is None or (opening is None and not no_start):
                if register.how_to_use is HowToUse.CHECK:
                    continue  # an unread check register checks nothing
                moment = low if closing is not None else high
                raise InsufficientData(
                    f"register {register.mc} has no reading at {self.local(moment)}", register.mc
                )
            measured = measured_quantity(
                register, opening.value if opening else None, closing.value
            )
            final = measured.quantity * register.register_constant
            used = [closing] if no_start or opening is None else [opening, closing]
            quality = worst(r.quality for r in used)
            reads.append(
                RegisterRead(
                    device=installation.device,
                    mc=register.mc,
                    start_reading=opening.value if opening else Decimal(0),
                    start_date_time=self.local(low),
                    start_estimated=bool(opening and opening.estimated),
                    end_reading=closing.value,
                    end_date_time=self.local(high),
                    end_estimated=closing.estimated,
                    register_constant=register.register_constant,
                    how_to_use=register.how_to_use,
                    measured_quantity=measured.quantity,
                    final_quantity=quantize(final, self.group.precision_of(register.uom)),
                    rollover=measured.rollover,
                )
            )
            group = (installation.device, register.uom, register.sqi)
            if register.how_to_use is HowToUse.CHECK:
                checks[group] = final
                continue
            if register.tou and register.how_to_use is HowToUse.ADD:
                tou_sums[group] = tou_sums.get(group, Decimal(0)) + final
            peak = register.how_to_use is HowToUse.PEAK
            sq = sqs.setdefault(register.key, _Sq(peak=peak))
            sq.take(-final if register.how_to_use is HowToUse.SUBTRACT else final, quality)
        for group, total in checks.items():
            if group in tou_sums and abs(tou_sums[group] - total) > self.group.tou_check_tolerance:
                device = group[0]
                raise TouSumCheckFailed(
                    f"device {device}: TOU registers sum to {tou_sums[group]}, "
                    f"the total register shows {total}",
                    device,
                    str(tou_sums[group]),
                    str(total),
                )
        return reads

    def interval_quantities(self, start: datetime, end: datetime, sqs: dict[SqKey, _Sq]) -> None:
        """§5-§7: energy per TOU bucket and demand from interval energy. A channel's intervals
        are taken together, as exact scaled integers (PD-D16): each bucket adds its values,
        and demand is the highest value's: kW = kWh x 3600 / L never ranks two values the
        other way round."""
        energy: dict[SqKey, _Sq] = {}
        demand: dict[SqKey, _Sq] = {}
        sqis: set[str] = set()
        for c in self.channels:
            low, high = max(start, c.first), c.until(end)
            if low >= high:
                continue
            uom, sqi, seconds = c.channel.uom, c.channel.sqi, c.channel.seconds_per_interval
            if uom == ENERGY:
                sqis.add(sqi)
            picked = self.channel_values(c, low, high)
            count = (high - low) // c.step
            if not count:
                continue
            runs = self.calendar.tou_runs(_micros(low) + c.micros, count, seconds)
            if uom != ENERGY:
                continue  # its values are all there and have TOUs: it has no quantity here
            columns, tous, values = c.channel.columns, runs.tous, runs.values
            buckets = _Buckets(columns, columns.units[picked], columns.code_of[picked], runs)
            _add(energy, SqKey(uom, "", sqi), buckets.all)
            for k, tou in enumerate(tous):
                if tou and values[k]:
                    _add(energy, SqKey(uom, tou, sqi), buckets.by_tous[k])
            if sqi in ("", DELIVERED):
                kw = buckets.highest(None) * 3600 / seconds
                _add(demand, SqKey(DEMAND), (kw, *buckets.all[1:]), peak=True)
                on = tous.index(ON_PEAK) if ON_PEAK in tous else None
                if on is not None and values[on]:
                    kw = buckets.highest(on) * 3600 / seconds
                    _add(demand, SqKey(DEMAND, ON_PEAK), (kw, *buckets.by_tous[on][1:]), peak=True)
        if not sqis:
            return
        delivered = bool(sqis & {"", DELIVERED})
        for key in self.group.sqs:
            if key.uom == ENERGY:
                for sqi in sorted(sqis):
                    measured = SqKey(ENERGY, key.tou, sqi)
                    _merge(sqs, measured, energy.get(measured) or _Sq())
            elif key.uom == DEMAND and key.sqi != BILLED and delivered:
                _merge(sqs, key, demand.get(key) or _Sq(peak=True, quantity=Decimal(0)))

    def channel_values(
        self, c: _Channel, low: datetime, high: datetime
    ) -> slice | npt.NDArray[np.intp]:
        """Where the channel's values stamped ``low + L``, ``low + 2L`` ... up to ``high`` lie
        in its columns; a missing one is a fault (1301), once the TOUs of the values before it
        are known to exist."""
        count = (high - low) // c.step
        picked, present = _stamped(c.channel.columns, _micros(low), c.micros, count)
        if present == count:
            return picked
        if present:
            self.calendar.tous_of(low + c.step, present, c.channel.seconds_per_interval)
        missing = low + c.step * (present + 1)
        raise InsufficientData(
            f"channel {c.channel.mc} has no value for {self.local(missing)}", c.channel.mc
        )

    def net(self, sqs: dict[SqKey, _Sq]) -> None:
        """§10: NET = DEL - REC wherever both were measured; only NET may be negative."""
        for key in sorted(sqs):
            if key.sqi != DELIVERED:
                continue
            received = sqs.get(key._replace(sqi=RECEIVED))
            delivered = sqs[key]
            if received is None or delivered.peak or received.peak:
                continue
            net = _Sq(
                quantity=(delivered.quantity or Decimal(0)) - (received.quantity or Decimal(0)),
                values=delivered.values + received.values,
                estimated=delivered.estimated + received.estimated,
                edited=delivered.edited + received.edited,
            )
            sqs[key._replace(sqi=NET)] = net

    def ratchet(self, sqs: dict[SqKey, _Sq]) -> None:
        """PD-D08: billed demand is at least ``p`` times the highest of ``n`` prior demands."""
        ratchet, measured = self.group.ratchet, sqs.get(SqKey(DEMAND))
        if ratchet is None or measured is None or measured.quantity is None:
            return
        history = sorted(
            (
                d
                for d in self.request.prior_demands
                if d.usage_id != self.request.previous_usage_id and d.end_date_time <= self.start
            ),
            key=lambda d: d.end_date_time,
        )[-ratchet.n :]
        floor = ratchet.p * max((d.demand for d in history), default=Decimal(0))
        sqs[SqKey(DEMAND, "", BILLED)] = replace(measured, quantity=max(measured.quantity, floor))

    def interval_data(self, end: datetime) -> tuple[IntervalData, ...]:
        if not self.request.return_interval_data:
            return ()
        data = []
        for c in self.channels:
            high = c.until(end)
            readings = tuple(
                IntervalReading(self.local(v.end), v.value, v.quality_codes)
                for v in c.channel.values
                if c.first <= v.end - c.step and v.end <= high
            )
            if readings:
                data.append(
                    IntervalData(
                        c.channel.mc, c.channel.uom, c.channel.seconds_per_interval, readings
                    )
                )
        return tuple(data)

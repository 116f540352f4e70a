"""The determinant engine as it computed interval quantities before PD-D16: one Decimal value
at a time, from ``IntervalValue`` objects. Kept in the tests, never in the package, as the
reference the engine's exact columns must match value for value (tests/sim/determinants/
test_columns.py); only its interval path differs from ccbmdm's engine."""

from __future__ import annotations

import math
import operator
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from functools import cached_property, reduce
from itertools import accumulate, compress, pairwise, repeat
from typing import cast

from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants.estimation import (
    MAXIMUM_GAP,
    _estimate_run,
    estimate_reading,
)
from ccbmdm.runtime.sim.determinants.measurements import (
    ARITHMETIC,
    QUALITY_CODES,
    HowToUse,
    Installation,
    InsufficientData,
    IntervalChannel,
    IntervalValue,
    MisalignedPeriod,
    Quality,
    Reading,
    ReadingKind,
    Register,
    TouSumCheckFailed,
    instant,
    quality_of,
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
    grid_ceiling,
    grid_floor,
    legal_time,
    on_grid,
)
from ccbmdm.runtime.sim.determinants.usage_groups import ON_PEAK, SqKey, UsageGroup
from ccbmdm.runtime.sim.determinants.usage_request import (
    CalculationRequest,
    Determinants,
    IntervalData,
    IntervalReading,
    RegisterRead,
    ServiceQuantity,
    Skip,
    UsagePeriod,
    summary_billing_skip,
)

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


def _grid(low: datetime, step: timedelta, count: int) -> list[datetime]:
    """``low + step``, ``low + 2 step`` ... ``low + count step``, added up one step at a time."""
    return cast("list[datetime]", list(accumulate(repeat(step, count), initial=low))[1:])


def _by_end(channel: IntervalChannel) -> dict[datetime, IntervalValue]:
    return {value.end: value for value in channel.values}


def fill_gaps(
    channel: IntervalChannel, start: datetime, end: datetime, maximum_gap: int = MAXIMUM_GAP
) -> IntervalChannel:
    """The channel with the missing intervals of ``(start, end]`` estimated (PD-D09): linear
    between the two neighbours of a gap of at most ``maximum_gap`` intervals, each value
    half-up to the larger scale of the neighbours; flat from the single neighbour at a data
    edge within the same limit. Longer gaps stay missing: missing never becomes zero."""
    step = timedelta(seconds=channel.seconds_per_interval)
    start, end = instant(start), instant(end)
    known = _by_end(channel)
    ends = [value.end for value in channel.values]
    grid = [start + step * k for k in range(1, (end - start) // step + 1)]
    added: list[IntervalValue] = []
    k = 0
    while k < len(grid):
        if grid[k] in known:
            k += 1
            continue
        first = k
        while k < len(grid) and grid[k] not in known:
            k += 1
        run = grid[first:k]
        before = bisect_left(ends, run[0])
        after = bisect_right(ends, run[-1])
        previous = channel.values[before - 1] if before else None
        following = channel.values[after] if after < len(ends) else None
        added.extend(_estimate_run(run, previous, following, step, maximum_gap))
    return replace(channel, values=channel.values + tuple(added)) if added else channel


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

    def take_sum(self, amounts: list[Decimal], estimated: int, edited: int) -> None:
        """``take`` of each amount in turn, at once (``estimated`` and ``edited`` of them
        so); the same additions in the same order."""
        if not amounts:
            return
        if self.quantity is None:
            self.quantity = reduce(operator.add, amounts)
        else:
            self.quantity = reduce(operator.add, amounts, self.quantity)
        self.values += len(amounts)
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


@dataclass(frozen=True)
class _Channel:
    """An interval MC over the part of the request its install event covers, on its grid."""

    channel: IntervalChannel
    first: datetime
    last: datetime | None  # None: still installed

    @cached_property
    def step(self) -> timedelta:
        return timedelta(seconds=self.channel.seconds_per_interval)

    def until(self, moment: datetime) -> datetime:
        """The earlier of ``moment`` and the channel's removal."""
        return min(self.last, moment) if self.last else moment


@dataclass(frozen=True)
class _Boundary:
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
                first = max(self.start, grid_ceiling(i.installed_at, step, self.zone))
                last = grid_ceiling(i.removed_at, step, self.zone) if i.removed_at else None
                self.channels.append(_Channel(channel, first, last))

    def run(self) -> Determinants:
        self.check_alignment()
        if self.request.estimation_allowed:
            self.channels = [
                replace(c, channel=fill_gaps(c.channel, c.first, c.until(self.window[1])))
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
        for name, moment in given:
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
            present = list(map(_by_end(c.channel).__contains__, _grid(c.first, c.step, steps)))
            moment = c.first + c.step * (present.index(False) if False in present else steps)
            if moment < span_end or c.last is None or c.last > self.window[1]:
                reachable = min(reachable, moment)
        if scalar_end is not None:
            end = grid_ceiling(scalar_end, self.grid, self.zone)
            if end > reachable:
                raise InsufficientData(
                    f"interval data is incomplete before the read at {self.local(scalar_end)}"
                )
            return end
        end = grid_floor(reachable, self.grid, self.zone)
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
        are taken together: each bucket adds its values in interval order, and demand is the
        highest value's: kW = kWh x 3600 / L never ranks two values the other way round."""
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
            delivered = uom == ENERGY and sqi in ("", DELIVERED)
            values = self.channel_values(c, low, high)
            if not values:
                continue
            tous = self.calendar.tous_of(values[0].end, len(values), seconds)
            amounts = [v.value for v in values]
            codes = [v.quality_codes for v in values]
            quality = {code: quality_of(code) for code in set(codes)}
            odd = [
                (tou, quality[code])
                for tou, code in zip(tous, codes, strict=True)
                if quality[code] is not Quality.ACTUAL
            ]  # the estimated and edited values, with their TOUs

            def counts(tou: str | None, odd: list[tuple[str, Quality]] = odd) -> tuple[int, int]:
                chosen = [q for t, q in odd if tou is None or t == tou]
                return chosen.count(Quality.ESTIMATED), chosen.count(Quality.EDITED)

            energy.setdefault(SqKey(uom, "", sqi), _Sq()).take_sum(amounts, *counts(None))
            for tou in sorted(set(tous) - {""}):
                chosen = list(compress(amounts, map(tou.__eq__, tous)))
                energy.setdefault(SqKey(uom, tou, sqi), _Sq()).take_sum(chosen, *counts(tou))
            if delivered:
                kw = max(amounts) * 3600 / seconds
                total = demand.setdefault(SqKey(DEMAND), _Sq(peak=True))
                total.take_peak(kw, len(amounts), *counts(None))
                on_peak = list(compress(amounts, map(ON_PEAK.__eq__, tous)))
                if on_peak:
                    kw = max(on_peak) * 3600 / seconds
                    peak = demand.setdefault(SqKey(DEMAND, ON_PEAK), _Sq(peak=True))
                    peak.take_peak(kw, len(on_peak), *counts(ON_PEAK))
        if not sqis:
            return
        for key in self.group.sqs:
            if key.uom == ENERGY:
                for sqi in sorted(sqis):
                    found = energy.get(SqKey(ENERGY, key.tou, sqi), _Sq())
                    sqs.setdefault(SqKey(ENERGY, key.tou, sqi), _Sq()).merge(found)
            elif key.uom == DEMAND and key.sqi != BILLED and sqis & {"", DELIVERED}:
                found = demand.get(key, _Sq(peak=True, quantity=Decimal(0)))
                sqs.setdefault(key, _Sq(peak=True)).merge(found)

    def channel_values(self, c: _Channel, low: datetime, high: datetime) -> list[IntervalValue]:
        """The channel's values stamped ``low + L``, ``low + 2L`` ... up to ``high``; a missing
        one is a fault (1301), once the TOUs of the values before it are known to exist."""
        grid = _grid(low, c.step, (high - low) // c.step)
        by_end = _by_end(c.channel)
        try:
            return [by_end[moment] for moment in grid]
        except KeyError:
            pass
        found = list(map(by_end.get, grid))
        missing = found.index(None)
        if missing:
            self.calendar.tous_of(grid[0], missing, c.channel.seconds_per_interval)
        raise InsufficientData(
            f"channel {c.channel.mc} has no value for {self.local(grid[missing])}", c.channel.mc
        )

    def net(self, sqs: dict[SqKey, _Sq]) -> None:
        """§10: NET = DEL - REC wherever both were measured; only NET may be negative."""
        for key in sorted(sqs):
            received = sqs.get(key._replace(sqi=RECEIVED))
            delivered = sqs[key]
            if key.sqi != DELIVERED or received is None or delivered.peak or received.peak:
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

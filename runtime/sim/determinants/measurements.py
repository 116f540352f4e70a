"""What the determinant engine reads: register readings and interval values with their IEC 61968-9
quality codes, the measuring components that carry them and the install events that place them
at the service point (docs/determinants.md §1, §3-§5, §8).

Every instant is normalised to UTC on construction: measurements are instants (PD-D02), and two
legal times of the repeated autumn hour must never compare equal by their wall-clock labels.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, DivisionByZero, InvalidOperation, Overflow
from enum import StrEnum
from functools import cached_property
from itertools import islice, pairwise
from operator import attrgetter
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ccbmdm.runtime.sim.determinants.usage_groups import SqKey

FAULT_CATEGORY = 90000
DAY_SECONDS = 86_400

# Exact arithmetic needs room: 18-digit readings times a constant, and the divisions of
# proration, are carried at 60 digits and rounded only when a final quantity is written.
ARITHMETIC = Context(
    prec=60, rounding=ROUND_HALF_UP, traps=[InvalidOperation, DivisionByZero, Overflow]
)


class DeterminantsFault(Exception):
    """A calculation the usage transaction cannot complete: the UT goes to Error and CCB gets
    the framework fault ``90000/number`` (docs/flows.md PD-C11) with ``parameters``."""

    number: ClassVar[int] = 0
    category: ClassVar[int] = FAULT_CATEGORY

    def __init__(self, text: str, *parameters: str) -> None:
        self.text, self.parameters = text, parameters
        super().__init__(f"{FAULT_CATEGORY}/{self.number} {text}")


class InsufficientData(DeterminantsFault):
    number = 1301


class ImplausibleRegisterDecrease(DeterminantsFault):
    number = 1302


class TouSumCheckFailed(DeterminantsFault):
    number = 1303


class MisalignedPeriod(DeterminantsFault):
    number = 1304


class Quality(StrEnum):
    ACTUAL = "ACTUAL"
    EDITED = "EDITED"
    ESTIMATED = "ESTIMATED"


QUALITY_CODES: dict[Quality, tuple[str, ...]] = {
    Quality.ACTUAL: ("1.0.0",),  # valid, from the meter
    Quality.EDITED: ("3.7.0",),  # edited in MDM
    Quality.ESTIMATED: ("3.8.0",),  # estimated by MDM
}
_CODE = re.compile(r"^\d{1,3}\.(\d{1,3})\.\d{1,5}$")


def quality_of(codes: Iterable[str]) -> Quality:
    """PD-D09: any category 8 code makes a value estimated, else any category 7 edited."""
    return _quality_of(tuple(codes))


@functools.lru_cache(maxsize=1024)
def _quality_of(codes: tuple[str, ...]) -> Quality:
    """A month of 15-minute values carries a handful of distinct code lists: each is read
    once."""
    categories = set()
    for code in codes:
        match = _CODE.match(code)
        if match is None:
            raise ValueError(
                f"{code!r} is not an IEC 61968-9 reading quality system.category.index"
            )
        categories.add(int(match[1]))
    if 8 in categories:
        return Quality.ESTIMATED
    return Quality.EDITED if 7 in categories else Quality.ACTUAL


def worst(qualities: Iterable[Quality]) -> Quality:
    """The quality of a quantity built from values of these qualities (PD-D09)."""
    seen = set(qualities)
    for quality in (Quality.ESTIMATED, Quality.EDITED):
        if quality in seen:
            return quality
    return Quality.ACTUAL


def instant(moment: datetime) -> datetime:
    """A timestamp as a UTC instant; one without an offset is rejected (PD-C05)."""
    if moment.tzinfo is UTC:
        return moment  # already an instant: most timestamps the engine sees are
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no offset: timestamps must carry one")
    return moment.astimezone(UTC)


def quantize(value: Decimal, places: int) -> Decimal:
    """A final quantity: half-up to ``places`` decimals, written with exactly that many, and
    never a negative zero (PD-D03)."""
    rounded = value.quantize(_places(places), rounding=ROUND_HALF_UP, context=ARITHMETIC)
    return abs(rounded) if rounded.is_zero() else rounded


@functools.lru_cache(maxsize=32)
def _places(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def decimal_text(value: Decimal) -> str:
    """A decimal as the contracts write it: plain notation, sign kept (``"-100.000"``)."""
    return format(value, "f")


@dataclass(frozen=True)
class Reading:
    """A scalar reading (an IMD after VEE) taken at an instant."""

    at: datetime
    value: Decimal
    quality_codes: tuple[str, ...] = QUALITY_CODES[Quality.ACTUAL]

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", instant(self.at))
        quality_of(self.quality_codes)

    @classmethod
    def of(cls, at: datetime, value: Decimal | str, quality: Quality = Quality.ACTUAL) -> Reading:
        return cls(at, Decimal(value), QUALITY_CODES[quality])

    @property
    def quality(self) -> Quality:
        return quality_of(self.quality_codes)

    @property
    def estimated(self) -> bool:
        return self.quality is Quality.ESTIMATED


@dataclass(frozen=True, slots=True)
class IntervalValue:
    """An interval-ending value: stamped ``end``, it covers ``[end - L, end)`` (PD-D01)."""

    end: datetime
    value: Decimal
    quality_codes: tuple[str, ...] = QUALITY_CODES[Quality.ACTUAL]

    def __post_init__(self) -> None:
        object.__setattr__(self, "end", instant(self.end))
        quality_of(self.quality_codes)

    @classmethod
    def of(
        cls, end: datetime, value: Decimal | str, quality: Quality = Quality.ACTUAL
    ) -> IntervalValue:
        return cls(end, Decimal(value), QUALITY_CODES[quality])

    @classmethod
    def prechecked(
        cls,
        ends: Iterable[datetime],
        values: Iterable[Decimal],
        quality_codes: Iterable[tuple[str, ...]],
    ) -> tuple[IntervalValue, ...]:
        """Values whose parts are already what ``__post_init__`` makes sure of: each end a UTC
        instant, each code list a tuple that ``quality_of`` accepts. A reader that checks each
        distinct code list once builds a month of values this way without re-checking every
        one."""
        made = []
        new, set_end, set_value, set_codes = (
            object.__new__,
            _SLOTS["end"].__set__,
            _SLOTS["value"].__set__,
            _SLOTS["quality_codes"].__set__,
        )
        for end, value, codes in zip(ends, values, quality_codes, strict=True):
            one = new(cls)
            set_end(one, end)
            set_value(one, value)
            set_codes(one, codes)
            made.append(one)
        return tuple(made)

    @property
    def quality(self) -> Quality:
        return quality_of(self.quality_codes)


_END = attrgetter("end")
_SLOTS = {name: getattr(IntervalValue, name) for name in ("end", "value", "quality_codes")}


class ReadingKind(StrEnum):
    CUMULATIVE = "CUMULATIVE"  # CCB subtractive: consumption is end - start
    CONSUMPTIVE = "CONSUMPTIVE"  # the reading is the consumption since reset


class HowToUse(StrEnum):
    ADD = "ADD"
    SUBTRACT = "SUBTRACT"
    PEAK = "PEAK"
    CHECK = "CHECK"


@dataclass(frozen=True)
class Register:
    """A scalar MC. ``number_of_dials`` counts integer dials only, so the capacity is
    ``10 ** number_of_dials`` (PD-D05); a decrease wraps when it stays within
    ``rollover_threshold`` times that capacity."""

    mc: str
    uom: str
    tou: str = ""
    sqi: str = ""
    number_of_dials: int = 5
    decimal_positions: int = 0
    register_constant: Decimal = Decimal(1)
    reading_kind: ReadingKind = ReadingKind.CUMULATIVE
    how_to_use: HowToUse = HowToUse.ADD
    rollover_threshold: Decimal = Decimal("0.5")
    readings: tuple[Reading, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.number_of_dials <= 12 or not 0 <= self.decimal_positions <= 6:
            raise ValueError(f"register {self.mc}: dials 1-12 and decimal positions 0-6")
        if not 0 < self.rollover_threshold <= 1:
            raise ValueError(f"register {self.mc}: the rollover threshold is a share above 0")
        ordered = tuple(sorted(self.readings, key=lambda r: r.at))
        for before, after in pairwise(ordered):
            if before.at == after.at:
                raise ValueError(f"register {self.mc}: two readings at {after.at.isoformat()}")
        for reading in ordered:
            if not 0 <= reading.value < self.capacity:
                raise ValueError(
                    f"register {self.mc}: reading {reading.value} is outside its "
                    f"{self.number_of_dials} dials"
                )
        object.__setattr__(self, "readings", ordered)

    @property
    def capacity(self) -> Decimal:
        return Decimal(10) ** self.number_of_dials

    @property
    def key(self) -> SqKey:
        return SqKey(self.uom, self.tou, self.sqi)

    @cached_property
    def by_instant(self) -> dict[datetime, Reading]:
        return {reading.at: reading for reading in self.readings}


@dataclass(frozen=True, eq=False)
class IntervalColumns:
    """A channel's values as the engine computes on them: exact scaled integers, one array per
    attribute (docs/determinants.md PD-D16)."""

    ends: npt.NDArray[np.int64]  # microseconds since the epoch, strictly increasing
    units: npt.NDArray[Any]  # value x 10**scale: int64, or Python ints where int64 overflows
    scale: int
    codes: tuple[tuple[str, ...], ...]  # the channel's distinct quality code lists
    code_of: npt.NDArray[np.intp]  # each value's list, an index into codes
    qualities: tuple[Quality, ...]  # each code list's class, by the same index
    # the microseconds between every two consecutive ends, when that is one length (a channel
    # read without gaps); None otherwise: what every use of the columns asks first
    spacing: int | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing", _spacing(self.ends))


def _spacing(ends: npt.NDArray[np.int64]) -> int | None:
    """The one length between consecutive ``ends``, if there is one."""
    if len(ends) < 2:
        return None
    # the gaps add up to the span: all equal the first exactly when none is smaller
    first = int(ends[1] - ends[0])
    if int(ends[-1] - ends[0]) != first * (len(ends) - 1):
        return None
    return first if int((ends[1:] - ends[:-1]).min()) == first else None


_FLOAT_EXACT = float(2**53)
_INT64_MAX = 2**63 - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _scale_of(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def columns_of(values: Sequence[IntervalValue]) -> IntervalColumns:
    """The columns of values given one by one, each value exact at the largest scale among
    them."""
    scale = max(map(_scale_of, {v.value for v in values}), default=0)
    ends = np.fromiter(((v.end - EPOCH) // MICROSECOND for v in values), np.int64, len(values))
    units = _units([int(v.value.scaleb(scale, ARITHMETIC)) for v in values])
    index: dict[tuple[str, ...], int] = {}
    code_of = np.fromiter(
        (index.setdefault(v.quality_codes, len(index)) for v in values), np.intp, len(values)
    )
    codes = tuple(index)
    return IntervalColumns(ends, units, scale, codes, code_of, tuple(map(quality_of, codes)))


_PLAIN_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


def columns_of_texts(
    ends: Sequence[int],
    texts: Sequence[str],
    codes: tuple[tuple[str, ...], ...],
    code_of: Sequence[int],
) -> IntervalColumns:
    """The columns of values as a store keeps them (each end in epoch seconds, each value's
    decimal text, each value's code list as an index into ``codes``), each value exact at the
    largest scale among them, as ``columns_of`` makes them. A month of plain decimals (digits,
    a point, digits) is scaled from the texts' digits, without a ``Decimal`` and an
    ``IntervalValue`` made for each of its thousands of values; any other text is read as a
    ``Decimal``. (A store that has the values' integers already gives them to
    ``columns_of_units``.)"""
    if all(map(_PLAIN_DECIMAL.fullmatch, texts)):
        places = [len(text) - point - 1 if (point := text.find(".")) >= 0 else 0 for text in texts]
        scale = max(places, default=0)
        whole = [
            int(text.replace(".", "")) * 10 ** (scale - own)
            for text, own in zip(texts, places, strict=True)
        ]
    else:
        decimals = [Decimal(text) for text in texts]
        scale = max(map(_scale_of, decimals), default=0)
        whole = [int(value.scaleb(scale, ARITHMETIC)) for value in decimals]
    return columns_of_units(ends, whole, scale, codes, code_of)


def columns_of_units(
    ends: Sequence[int] | npt.NDArray[np.int64],
    whole: list[int] | npt.NDArray[np.int64],
    scale: int,
    codes: tuple[tuple[str, ...], ...],
    code_of: Sequence[int],
) -> IntervalColumns:
    """``columns_of_texts`` of values already scaled: each value's integer at ``scale`` (an
    int64 array as it is)."""
    return IntervalColumns(
        np.array(ends, dtype=np.int64) * 1_000_000,
        whole if isinstance(whole, np.ndarray) else _units(whole),
        scale,
        codes,
        np.array(code_of, dtype=np.intp),
        tuple(map(quality_of, codes)),
    )


def _units(whole: list[int]) -> npt.NDArray[Any]:
    """Scaled integers as int64, or as Python ints where int64 overflows."""
    if whole and max(map(abs, (max(whole), min(whole)))) > _INT64_MAX:
        return np.array(whole, dtype=object)
    return np.array(whole, dtype=np.int64)


@dataclass(frozen=True)
class IntervalChannel:
    """An interval MC. Values arrive in billing units (the head end applies any multiplier);
    ``seconds_per_interval`` divides a day (PD-D01).

    A channel is made from its values one by one (``values``) or, as a store reads a month at
    once, from columns (``from_columns``); each form is built from the other when first asked
    for."""

    mc: str
    uom: str = "KWH"
    sqi: str = ""
    seconds_per_interval: int = 900
    # a factory, not a default: a channel made from columns has no values until asked
    values: tuple[IntervalValue, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        seconds = self.seconds_per_interval
        if seconds <= 0 or DAY_SECONDS % seconds:
            raise ValueError(f"channel {self.mc}: {seconds} s does not divide a day")
        if "columns" in self.__dict__:
            return  # from_columns: checked there
        ends = list(map(_END, self.values))
        if all(map(operator.lt, ends, islice(ends, 1, None))):
            # already in order without a repeated stamp (values read ORDER BY end): kept as is
            object.__setattr__(self, "values", tuple(self.values))
            return
        ordered = tuple(sorted(self.values, key=lambda v: v.end))
        for before, after in pairwise(ordered):
            if before.end == after.end:
                raise ValueError(f"channel {self.mc}: two values stamped {after.end.isoformat()}")
        object.__setattr__(self, "values", ordered)

    @classmethod
    def from_columns(
        cls,
        mc: str,
        columns: IntervalColumns,
        uom: str = "KWH",
        sqi: str = "",
        seconds_per_interval: int = 900,
    ) -> IntervalChannel:
        """A channel whose values are ``columns``; its ``values`` are made only if asked for,
        each at the columns' scale."""
        ends = columns.ends
        if columns.spacing is None and len(ends) > 1 and not bool((ends[1:] > ends[:-1]).all()):
            raise ValueError(f"channel {mc}: values out of order or stamped twice")
        if columns.spacing is not None and columns.spacing <= 0:
            raise ValueError(f"channel {mc}: values out of order or stamped twice")
        for codes in columns.codes:
            quality_of(codes)
        channel = cls.__new__(cls)
        channel.__dict__["columns"] = columns
        object.__setattr__(channel, "mc", mc)
        object.__setattr__(channel, "uom", uom)
        object.__setattr__(channel, "sqi", sqi)
        object.__setattr__(channel, "seconds_per_interval", seconds_per_interval)
        channel.__post_init__()
        return channel

    def __getattr__(self, name: str) -> Any:
        """``values`` of a channel made from columns, made on first use."""
        if name != "values" or "columns" not in self.__dict__:
            raise AttributeError(name)
        made = values_of(self.__dict__["columns"])
        object.__setattr__(self, "values", made)
        return made

    @cached_property
    def columns(self) -> IntervalColumns:
        return columns_of(self.values)

    def with_values(self, added: Iterable[IntervalValue]) -> IntervalChannel:
        """The channel with more values (VEE's estimates): its values and those, in order."""
        return replace(self, values=(*self.values, *added))


def values_of(columns: IntervalColumns) -> tuple[IntervalValue, ...]:
    """The values of columns, one by one, each at the columns' scale."""
    return IntervalValue.prechecked(
        [EPOCH + MICROSECOND * int(end) for end in columns.ends.tolist()],
        [Decimal(units).scaleb(-columns.scale, ARITHMETIC) for units in columns.units.tolist()],
        [columns.codes[k] for k in columns.code_of.tolist()],
    )


@dataclass(frozen=True)
class Installation:
    """An install event: a device configuration at the SP from ``installed_at`` until
    ``removed_at``. Installation and removal reads are readings of its registers at those
    instants; in an exchange the removal instant equals the next installation (PD-F09)."""

    device: str
    installed_at: datetime
    removed_at: datetime | None = None
    registers: tuple[Register, ...] = ()
    channels: tuple[IntervalChannel, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "installed_at", instant(self.installed_at))
        if self.removed_at is not None:
            object.__setattr__(self, "removed_at", instant(self.removed_at))
            if self.removed_at <= self.installed_at:
                raise ValueError(f"device {self.device}: removed before it was installed")

    def in_service_at(self, moment: datetime) -> bool:
        """Whether the device measures up to ``moment`` (its removal read counts, its
        installation read does not)."""
        return self.installed_at < moment and (self.removed_at is None or moment <= self.removed_at)

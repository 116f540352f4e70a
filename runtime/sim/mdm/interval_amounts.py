"""A day's interval values as bytes, the ``amounts`` of ``mdm_interval_day`` (docs/simulators.md,
"How interval values are kept"): every value's text reads back exactly as it was written, and a
day of decimals of one scale takes one or two bytes a value where its texts took six.

The first byte names the form, so that a later form can be added beside this one:

* ``DECIMALS`` (1): the values' count; the day's scale (the fraction digits most of its values
  have); the values listed apart, by index: one written at another scale (its fraction digits),
  or a text that is not a plain decimal (an exponent, a ``+``, a leading zero, ``-0.0``, a
  space...), kept as it is; then each value as an integer at the day's scale (``0.126`` at
  scale 3 is 126), as its difference from the one before, zigzag and varint coded. A plain
  decimal is ``-?(0|[1-9][0-9]*)(.[0-9]+)?`` other than a negative zero: one integer and one
  scale give back its text and no other.
* ``DEFLATED`` (0x80 added to the first byte): what follows, raw-deflated (zlib), when that is
  shorter. Tried only when the bytes repeat enough to gain (fewer distinct bytes than half their
  number: flat or coarse data); a day of noisy 15-minute values gains nothing from deflate,
  which would cost more than the rest of the packing.

Varints of differences, not a general compressor over the texts: the values are near their
neighbours, which a compressor of bytes does not know, and the noise in them leaves it little
else to find.
"""

from __future__ import annotations

import operator
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from functools import cache
from itertools import chain

import numpy as np
import numpy.typing as npt

DECIMALS = 1
DEFLATED = 0x80
_LITERAL = 255  # a listed value's tag: its text follows (else the tag is its scale)
_MAX_SCALE = _LITERAL - 1

_PLAIN = re.compile(r"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?", re.ASCII)


@cache
def _uniform(scale: int) -> re.Pattern[str]:
    """Values joined by spaces, each a plain decimal of ``scale`` fraction digits (a negative
    sign never before a zero)."""
    fraction = rf"\.[0-9]{{{scale}}}" if scale else ""
    zero = rf"0{fraction.replace('[0-9]', '0')}(?: |\Z)"
    one = rf"(?:-(?!{zero}))?(?:0|[1-9][0-9]*){fraction}"
    return re.compile(rf"{one}(?: {one})*", re.ASCII)


def plain(text: str) -> tuple[int, int] | None:
    """The integer and scale of a plain decimal's text (``-0.126`` is (-126, 3)); None for any
    other text, which is kept as it is."""
    match = _PLAIN.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction = match.groups("")
    number = int(whole + fraction)
    if sign and not number:
        return None  # a negative zero: its sign would be lost
    return (-number if sign else number), len(fraction)


def text_of(number: int, scale: int) -> str:
    """The text of a plain decimal from its integer and scale (``plain`` reversed)."""
    if not scale:
        return str(number)
    digits = str(abs(number)).rjust(scale + 1, "0")
    return f"{'-' if number < 0 else ''}{digits[:-scale]}.{digits[-scale:]}"


def _spelled(numbers: Sequence[int], scale: int) -> list[str]:
    if not scale:
        return list(map(str, numbers))
    if min(numbers) < 0:
        return [text_of(number, scale) for number in numbers]
    form, unit = f"%d.%0{scale}d", 10**scale
    return [form % divmod(number, unit) for number in numbers]


# A household's quarter hours take a few thousand distinct values, met again day after day: the
# texts and integers of each scale met so far are remembered both ways, which makes a day's
# parsing and spelling a look-up each; each table is emptied when full.
_REMEMBERED = 1 << 15  # entries a table holds at most (about 3 MB)
_NUMBERS: dict[int, dict[str, int]] = {}  # scale -> plain decimal text -> integer
_TEXTS: dict[int, dict[int, str]] = {}  # scale -> integer -> text


def _numbers_at(values: Sequence[str], scale: int) -> list[int] | None:
    """Each value as an integer at ``scale`` when every one is a plain decimal of that scale."""
    known = _NUMBERS.setdefault(scale, {})
    numbers = list(map(known.get, values))
    if None not in numbers:
        return numbers  # type: ignore[return-value]  # no None in it
    missing = [text for text, number in zip(values, numbers, strict=True) if number is None]
    joined = " ".join(missing)
    if not _uniform(scale).fullmatch(joined):
        return None
    found = dict(zip(missing, map(int, joined.replace(".", "").split(" ")), strict=True))
    if len(known) > _REMEMBERED:
        known.clear()
    known.update(found)
    return [found[t] if n is None else n for t, n in zip(values, numbers, strict=True)]


def texts(numbers: Sequence[int], scale: int) -> list[str]:
    """The texts of integers at ``scale`` (126 at scale 3 is ``0.126``), each made once and
    then looked up: a stored day's values are read back as these."""
    known = _TEXTS.setdefault(scale, {})
    spelled = list(map(known.get, numbers))
    if None not in spelled:
        return spelled  # type: ignore[return-value]  # no None in it
    missing = [number for number, text in zip(numbers, spelled, strict=True) if text is None]
    found = dict(zip(missing, _spelled(missing, scale), strict=True))
    if len(known) > _REMEMBERED:
        known.clear()
    known.update(found)
    return [found[n] if t is None else t for n, t in zip(numbers, spelled, strict=True)]


def _put(out: bytearray, number: int) -> None:
    """An unsigned varint: seven bits a byte, the low ones first, the high bit set on all but
    the last."""
    while number >= 0x80:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)


# -- packing ------------------------------------------------------------------------------------


def pack(values: Sequence[str]) -> bytes:
    """The day's value texts, in order, as bytes that ``unpack`` reads back."""
    numbers, scale, listed = _numbers(values)
    return _packed(numbers, scale, listed)


def pack_units(units: Sequence[int], scale: int) -> bytes:
    """``pack`` of the texts of ``units`` at ``scale`` (126 at scale 3 is ``0.126``), from the
    integers: a generator of values need not spell them to have them packed."""
    if not 0 <= scale <= _MAX_SCALE:
        raise ValueError(f"a scale of {scale}: a day's scale is 0 to {_MAX_SCALE}")
    return _packed(units, scale, [])


def _packed(numbers: Sequence[int], scale: int, listed: list[Listed]) -> bytes:
    out = bytearray((DECIMALS,))
    _put(out, len(numbers))
    out.append(scale)
    _put(out, len(listed))
    last = -1
    for index, tag, literal in listed:
        _put(out, index - last - 1)
        out.append(tag)
        if literal is not None:
            _put(out, len(literal))
            out += literal
        last = index
    out += _steps(numbers)
    if len(set(out)) * 2 < len(out):
        deflated = zlib.compress(out[1:], 9, -15)
        if len(deflated) + 1 < len(out):
            return bytes((DECIMALS | DEFLATED,)) + deflated
    return bytes(out)


def _steps(numbers: Sequence[int]) -> bytes:
    """Each number's difference from the one before (the first's from 0), zigzag coded (-1 is
    1, 1 is 2), as varints. A difference that takes at most two bytes (a meter's values) is
    looked up, all of them in C (``map``), in half the time of a step a value."""
    steps = list(map(operator.sub, numbers, chain((0,), numbers)))
    looked_up = list(map(_BY_STEP.get, steps))
    if None not in looked_up:
        return b"".join(looked_up)  # type: ignore[arg-type]  # no None in it
    return b"".join(
        [part or _varint_bytes(_zigzag(step)) for step, part in zip(steps, looked_up, strict=True)]
    )


def _zigzag(step: int) -> int:
    """A signed number as an unsigned one: 0, -1, 1, -2... as 0, 1, 2, 3..."""
    return step << 1 if step >= 0 else ~(step << 1)


def _varint_bytes(number: int) -> bytes:
    out = bytearray()
    _put(out, number)
    return bytes(out)


# a difference -> its varint's bytes, for those a meter's neighbouring values mostly have (two
# bytes at most: a zigzag below 2**14)
_BY_STEP = {step: _varint_bytes(_zigzag(step)) for step in range(-(1 << 13), 1 << 13)}


Listed = tuple[int, int, bytes | None]  # index, tag (a scale or _LITERAL), the literal's text


def scaled(values: Sequence[str]) -> tuple[list[int], int] | None:
    """Each value as an integer at the first one's scale, and the scale, when every value is a
    plain decimal of that scale (the common case: a meter's values); None otherwise."""
    if not values:
        return None
    first = values[0]
    point = first.find(".")
    scale = 0 if point < 0 else len(first) - point - 1
    if scale > _MAX_SCALE:
        return None
    numbers = _numbers_at(values, scale)
    return None if numbers is None else (numbers, scale)


def _numbers(values: Sequence[str]) -> tuple[list[int], int, list[Listed]]:
    """Each value as an integer at the day's scale, the scale, and the values listed apart."""
    uniform = scaled(values)
    if uniform is not None:
        return *uniform, []
    found = [plain(text) for text in values]
    scales = Counter(scale for scale in (p[1] for p in found if p) if scale <= _MAX_SCALE)
    scale = scales.most_common(1)[0][0] if scales else 0
    numbers: list[int] = []
    listed: list[Listed] = []
    previous = 0
    for index, (text, parsed) in enumerate(zip(values, found, strict=True)):
        if parsed is None or parsed[1] > _MAX_SCALE:
            listed.append((index, _LITERAL, text.encode()))
            numbers.append(previous)  # no step: one byte
            continue
        number, own = parsed
        if own < scale:
            number *= 10 ** (scale - own)  # at the day's scale, exactly
        if own != scale:
            listed.append((index, own, None))  # above the day's scale: at its own
        numbers.append(number)
        previous = number
    return numbers, scale, listed


# -- unpacking ----------------------------------------------------------------------------------


class Damaged(ValueError):
    """Bytes that are not a day's values as ``pack`` writes them."""


def unpack(packed: bytes) -> list[str]:
    """The value texts ``pack`` was given."""
    return _decimals(_inflated(packed))


def _varint(body: bytes, position: int) -> tuple[int, int]:
    """The unsigned varint at ``position``, and the position after it."""
    found = shift = 0
    while True:
        if position >= len(body):
            raise Damaged("the values' bytes end inside a number")
        byte = body[position]
        position += 1
        found |= (byte & 0x7F) << shift
        if byte < 0x80:
            return found, position
        shift += 7


def _inflated(packed: bytes) -> bytes:
    """What follows the form byte, inflated when deflated; ``Damaged`` for another form."""
    if not packed:
        raise Damaged("no bytes where a day's values were expected")
    form = packed[0]
    body = packed[1:]
    if form & DEFLATED:
        try:
            body = zlib.decompress(body, -15)
        except zlib.error as error:
            raise Damaged(f"the deflated values do not inflate ({error})") from None
        form &= ~DEFLATED
    if form != DECIMALS:
        raise Damaged(
            f"the values are in form {form}, which this version does not know: the store was "
            "written by a later version of ccbmdm; read it with that version"
        )
    return body


def _decimals(body: bytes) -> list[str]:
    position = 0

    def number() -> int:
        nonlocal position
        found, position = _varint(body, position)
        return found

    count = number()
    if position >= len(body):
        raise Damaged("the values' bytes end before their scale")
    scale = body[position]
    position += 1
    listed: list[tuple[int, int, str | None]] = []
    index = -1
    for _ in range(number()):
        index += number() + 1
        if position >= len(body):
            raise Damaged("the values' bytes end inside the values listed apart")
        tag = body[position]
        position += 1
        literal = None
        if tag == _LITERAL:
            size = number()
            if position + size > len(body):
                raise Damaged("the values' bytes end inside a value kept as text")
            try:
                literal = body[position : position + size].decode()
            except UnicodeDecodeError:
                raise Damaged(f"value {index}, kept as text, is not UTF-8") from None
            position += size
        listed.append((index, tag, literal))
    numbers: list[int] = []
    append = numbers.append
    total = found = shift = 0
    for byte in body[position:]:
        if byte < 0x80:
            found |= byte << shift
            total += (found >> 1) ^ -(found & 1)
            append(total)
            found = shift = 0
        else:
            found |= (byte & 0x7F) << shift
            shift += 7
    if shift or len(numbers) != count or (listed and listed[-1][0] >= count):
        raise Damaged(f"{len(numbers)} values where {count} were written")
    spelled = texts(numbers, scale)
    for index, tag, literal in listed:
        if literal is not None:
            spelled[index] = literal
        elif tag < scale:
            whole, rest = divmod(numbers[index], 10 ** (scale - tag))
            if rest:
                raise Damaged(f"value {index} does not end in the zeros of its scale {tag}")
            spelled[index] = text_of(whole, tag)
        else:
            spelled[index] = text_of(numbers[index], tag)
    return spelled


# -- days read together as integers -------------------------------------------------------------

_FAST_BYTES = 6  # the longest varint read together: differences within 2**41
_FAST_COUNT = 1 << 16  # values a day may have to be read together (their sums stay in int64)


def scaled_days(days: Sequence[bytes]) -> tuple[npt.NDArray[np.int64], int, list[int]] | None:
    """The values of ``days`` (each as ``pack`` wrote it), in order, as integers at their one
    scale, with each day's count: decoded together in a few array operations, for a reader of a
    month that computes on integers (a day's texts are then never made). None when a day lists
    values apart (another scale, a text kept as it is), the days' scales differ, or a
    difference is longer than read together; ``unpack`` reads those, and names any damage."""
    runs: list[bytes] = []
    counts: list[int] = []
    scale: int | None = None
    try:
        for packed in days:
            body = _inflated(packed)
            count, position = _varint(body, 0)
            if position >= len(body) or count > _FAST_COUNT:
                return None
            own = body[position]
            listed, position = _varint(body, position + 1)
            if listed or (scale is not None and own != scale):
                return None
            scale = own
            runs.append(body[position:])
            counts.append(count)
    except Damaged:
        return None
    data = np.frombuffer(b"".join(runs), dtype=np.uint8)
    last = np.flatnonzero(data < 0x80)  # the last byte of each number
    if len(last) != sum(counts) or (len(data) and data[-1] >= 0x80):
        return None
    if not len(last):
        return np.zeros(0, dtype=np.int64), scale or 0, counts
    starts = np.empty_like(last)
    starts[0], starts[1:] = 0, last[:-1] + 1
    lengths = last - starts + 1
    if int(lengths.max()) > _FAST_BYTES:
        return None
    shifts = (np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)) * 7
    zigzag = np.add.reduceat((data & 0x7F).astype(np.int64) << shifts, starts)
    steps = (zigzag >> 1) ^ -(zigzag & 1)
    # each day's differences start from zero: the sum of the days' before it comes off
    summed = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(steps)))
    firsts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    numbers: npt.NDArray[np.int64] = summed[1:] - np.repeat(summed[firsts], counts)
    return numbers, scale or 0, counts

"""XSD lexical forms: strict parsing of text into Python values and canonical formatting back.

The generated codecs and the generated model validators both call these, so a value is read and
checked by exactly one definition, whichever way it enters.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DATE = re.compile(r"(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})(Z|[+-][0-9]{2}:[0-9]{2})?")
_DATETIME = re.compile(
    r"(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?"
)
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
# Characters XML 1.0 cannot carry: a string holding one could never be serialized.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def collapse(text: str) -> str:
    """XSD whiteSpace="collapse", which every non-string built-in applies before parsing."""
    return " ".join(text.split()) if text else text


def parse_decimal(text: str) -> Decimal:
    text = collapse(text)
    if _DECIMAL.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a decimal number (digits with an optional point and sign)")
    return Decimal(text)


def parse_integer(text: str) -> int:
    text = collapse(text)
    if _INTEGER.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not an integer")
    return int(text)


def parse_boolean(text: str) -> bool:
    value = _BOOLEANS.get(collapse(text))
    if value is None:
        raise ValueError(f"{text!r} is not a boolean (true, false, 1 or 0)")
    return value


def parse_date(text: str) -> date:
    text = collapse(text)
    match = _DATE.fullmatch(text)
    if match is None or match.group(4):
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date: {exc}") from None


def parse_datetime(text: str) -> datetime:
    text = collapse(text)
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a date-time (YYYY-MM-DDThh:mm:ss with an offset)")
    fraction = match.group(7) or ""
    if len(fraction) > 6:
        raise ValueError(f"{text!r} has more than 6 fractional digits of a second")
    offset = match.group(8)
    if offset is None:
        tz = None
    elif offset == "Z":
        tz = timezone.utc
    else:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 14 or minutes > 59 or (hours == 14 and minutes):
            raise ValueError(f"{text!r} has an offset outside -14:00..+14:00")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(
            int(match.group(1)), int(match.group(2)), int(match.group(3)),
            int(match.group(4)), int(match.group(5)), int(match.group(6)),
            int(fraction.ljust(6, "0")) if fraction else 0, tzinfo=tz,
        )
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date-time: {exc}") from None


def format_decimal(value: Decimal) -> str:
    """Plain notation, never an exponent; the scale is kept (1.500 stays 1.500)."""
    return format(value, "f")


def format_boolean(value: bool) -> str:
    return "true" if value else "false"


def format_date(value: date) -> str:
    return value.isoformat()


def format_datetime(value: datetime) -> str:
    """ISO 8601 with the value's own offset, Z for UTC, no fraction unless it has one."""
    text = value.isoformat()
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    return text


def check_xml_text(value: str) -> str:
    """A string a model holds must be serializable as XML 1.0 text."""
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise ValueError(f"character U+{ord(bad.group()):04X} cannot appear in XML text")
    return value


def check_digits(value: Decimal, total: int | None, fraction: int | None) -> None:
    """XSD totalDigits and fractionDigits: trailing fractional zeros do not count."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite decimal")
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    fraction_digits = max(0, -exponent)
    total_digits = len(digits) + exponent if exponent >= 0 else max(len(digits), fraction_digits)
    if value.is_zero():
        total_digits, fraction_digits = 1, 0
    if total is not None and total_digits > total:
        raise ValueError(f"{format_decimal(value)} has {total_digits} digits; at most {total} are allowed")
    if fraction is not None and fraction_digits > fraction:
        raise ValueError(
            f"{format_decimal(value)} has {fraction_digits} digits after the point; "
            f"at most {fraction} are allowed"
        )


def check_decimal_text(text: str) -> Decimal:
    """For tests and tools: parse without the facet checks of a particular type."""
    try:
        return parse_decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        raise ValueError(f"{text!r} is not a decimal number") from None

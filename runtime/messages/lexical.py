"""XSD lexical forms: strict parsing of text into Python values and canonical formatting back.

The generated codecs and the generated model validators both call these, so a value is read and
checked by exactly one definition, whichever way it enters.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from decimal import Decimal

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Four-digit years only: Python's dates end at 9999 and begin at year 1.
PLAIN_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE = re.compile(PLAIN_DATE)
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.([0-9]+))?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
# The usual date-time: no fraction, no white space, an offset within -13:59..+13:59 or none;
# the general pattern and the checks of fraction and offset would only confirm it. A text of
# this form (or of PLAIN_DATE) is read by ``fromisoformat`` alone, here and in the generated
# codecs' fast decoders.
PLAIN_DATETIME = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9])?"
)
_PLAIN_DATETIME = re.compile(PLAIN_DATETIME)
_MAX_OFFSET = timedelta(hours=14)
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
# Characters XML 1.0 cannot carry: a string holding one could never be serialized.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


WITHHELD = "***"  # what a message writes in place of a value of personal data


class InvalidValue(ValueError):
    """A value its type refuses, with the value apart from the reason: a message about a field
    that holds personal data is written without the value (``about``)."""

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(f"{shown} {reason}")  # shown: the value as a message quotes it
        self.reason = reason

    def about(self, personal: bool) -> str:
        """The message, with the value replaced by ``***`` when the field is personal."""
        return f"{WITHHELD} {self.reason}" if personal else str(self)


def about(error: ValueError, personal: bool) -> str:
    """What a refused value's error says, without the value when its field is personal (every
    message of this module and of the generated checks that quotes a value is an InvalidValue)."""
    return error.about(personal) if isinstance(error, InvalidValue) else str(error)


def quoting(error: ValueError) -> str:
    """A refused value's message with the value as ``{value}``, for a mapping failure to fill
    in or withhold (other errors do not quote the value)."""
    return f"{{value}} {error.reason}" if isinstance(error, InvalidValue) else str(error)


def collapse(text: str) -> str:
    """XSD whiteSpace="collapse", which every non-string built-in applies before parsing."""
    return " ".join(text.split()) if text else text


def _lexical(pattern: re.Pattern[str], text: str) -> tuple[re.Match[str] | None, str]:
    """Match the text as it is, and only when that fails, after collapsing white space."""
    match = pattern.fullmatch(text)
    if match is None:
        text = collapse(text)
        match = pattern.fullmatch(text)
    return match, text


def parse_decimal(text: str) -> Decimal:
    match, text = _lexical(_DECIMAL, text)
    if match is None:
        raise InvalidValue(
            repr(text), "is not a decimal number (digits with an optional point and sign)"
        )
    return Decimal(text)


def parse_integer(text: str) -> int:
    match, text = _lexical(_INTEGER, text)
    if match is None:
        raise InvalidValue(repr(text), "is not an integer")
    return int(text)


def parse_boolean(text: str) -> bool:
    value = _BOOLEANS.get(text)
    if value is None:
        value = _BOOLEANS.get(collapse(text))
    if value is None:
        raise InvalidValue(repr(text), "is not a boolean (true, false, 1 or 0)")
    return value


def parse_date(text: str) -> date:
    if _DATE.fullmatch(text) is None:  # as _lexical does, without its call for the usual text
        text = collapse(text)
        if _DATE.fullmatch(text) is None:
            raise InvalidValue(repr(text), "is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidValue(repr(text), f"is not a valid date: {exc}") from None


def configured_datetime(value: object) -> datetime:
    """A date-time written in a YAML file (a context's or a case's clock): YAML reads an
    unquoted one as a timestamp, taken as it is when it carries its offset; anything else is
    read as XSD dateTime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidValue(value.isoformat(), "has no offset (add Z or +hh:mm)")
        return value
    return parse_datetime(str(value))


def parse_datetime(text: str) -> datetime:
    """XSD dateTime; the strict pattern first, then the C parser of the standard library."""
    if _PLAIN_DATETIME.fullmatch(text) is not None:
        try:
            return datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidValue(repr(text), f"is not a valid date-time: {exc}") from None
    match, text = _lexical(_DATETIME, text)
    if match is None:
        raise InvalidValue(repr(text), "is not a date-time (YYYY-MM-DDThh:mm:ss with an offset)")
    fraction = match.group(1)
    if fraction is not None and len(fraction) > 6:
        raise InvalidValue(repr(text), "has more than 6 fractional digits of a second")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidValue(repr(text), f"is not a valid date-time: {exc}") from None
    offset = value.utcoffset()
    if offset is not None and abs(offset) > _MAX_OFFSET:
        raise InvalidValue(repr(text), "has an offset outside -14:00..+14:00")
    return value


def format_decimal(value: Decimal) -> str:
    """Plain notation, never an exponent; the scale is kept (1.500 stays 1.500)."""
    return format(value, "f")


def format_boolean(value: bool) -> str:
    return "true" if value else "false"


def format_date(value: date) -> str:
    return value.isoformat()


def format_datetime(value: datetime) -> str:
    """ISO 8601 with the value's own offset, Z for UTC, no fraction unless it has one.

    A message's timestamps repeat (to the second, one per header; the same day boundaries in
    every period) and ``isoformat`` with an offset is slow: the texts of the values seen lately
    are kept. The key is what the text is made of, read field by field: hashing a date-time
    with an offset computes its instant, which costs as much as writing it. (Equal instants
    with other offsets, or the two readings of a repeated local time, have other keys.)
    """
    key = (
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        value.tzinfo,
        value.fold,
    )
    text = _DATETIME_TEXTS.get(key)
    if text is None:
        text = value.isoformat()
        if text.endswith("+00:00"):
            text = text[:-6] + "Z"
        if len(_DATETIME_TEXTS) >= _DATETIME_TEXTS_KEPT:
            _DATETIME_TEXTS.clear()
        _DATETIME_TEXTS[key] = text
    return text


_DATETIME_TEXTS: dict[tuple[object, ...], str] = {}
_DATETIME_TEXTS_KEPT = 4096


def check_xml_text(value: str) -> str:
    """A string a model holds must be serializable as XML 1.0 text."""
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise ValueError(f"character U+{ord(bad.group()):04X} cannot appear in XML text")
    return value


def check_foreign_xml(value: str) -> str:
    """An xs:any element held as text: one well-formed element in a namespace, no DTD.

    Returns its canonical text (as the codec's decoder writes it), so equal elements compare
    equal however they were spelled.
    """
    from lxml import etree

    try:
        element = etree.fromstring(
            value.encode(), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        )
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"not one well-formed XML element: {exc.msg}") from None
    if element.getroottree().docinfo.doctype:
        raise ValueError("a DOCTYPE is not allowed")
    if not etree.QName(element).namespace:
        raise ValueError("an element of another namespace is required; this one has none")
    etree.cleanup_namespaces(element)
    return etree.tostring(element, encoding="unicode")


def check_digits(value: Decimal, total: int | None, fraction: int | None) -> None:
    """XSD totalDigits and fractionDigits: trailing fractional zeros do not count."""
    if not value.is_finite():
        raise InvalidValue(str(value), "is not a finite decimal")
    _, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    fraction_digits = max(0, -exponent)
    total_digits = len(digits) + exponent if exponent >= 0 else max(len(digits), fraction_digits)
    if value.is_zero():
        total_digits, fraction_digits = 1, 0
    if total is not None and total_digits > total:
        raise InvalidValue(
            format_decimal(value), f"has {total_digits} digits; at most {total} are allowed"
        )
    if fraction is not None and fraction_digits > fraction:
        raise InvalidValue(
            format_decimal(value),
            f"has {fraction_digits} digits after the point; at most {fraction} are allowed",
        )

"""Compile-time checks of literal values (constants, defaults, code-table cells) against the
facets of the simple type they will be written into."""

from __future__ import annotations

import re
from decimal import Decimal

from ccbmdm.codegen.ir import Facets, SimpleType
from ccbmdm.runtime.messages import lexical

_PARSERS = {
    "decimal": lexical.parse_decimal,
    "integer": lexical.parse_integer,
    "boolean": lexical.parse_boolean,
    "date": lexical.parse_date,
    "dateTime": lexical.parse_datetime,
}


def lexical_of(value: object) -> str:
    """A YAML literal as the XML text it stands for (true -> "true", 3 -> "3")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def facet_problem(simple: SimpleType, text: str) -> str | None:
    """Why ``text`` is not a valid value of ``simple``, or None when it is."""
    facets = simple.facets
    try:
        value: object = _PARSERS[simple.primitive](text) if simple.primitive in _PARSERS else text
    except ValueError as exc:
        return str(exc)
    for pattern in facets.patterns:
        if re.fullmatch(pattern, text) is None:
            return f"{text!r} does not match the pattern {pattern}"
    if facets.enumeration and text not in facets.enumeration:
        return f"{text!r} is not one of {', '.join(facets.enumeration)}"
    if simple.primitive == "string":
        return _length_problem(facets, text)
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return _number_problem(facets, text, value)
    return None


def _length_problem(facets: Facets, text: str) -> str | None:
    if facets.length is not None and len(text) != facets.length:
        return f"{text!r} must have exactly {facets.length} characters"
    if facets.min_length and len(text) < facets.min_length:
        return f"{text!r} must have at least {facets.min_length} characters"
    if facets.max_length is not None and len(text) > facets.max_length:
        return f"{text[:40]!r}... has {len(text)} characters; at most {facets.max_length} allowed"
    return None


def _number_problem(facets: Facets, text: str, value: Decimal | int) -> str | None:
    number = Decimal(value)
    if facets.min_inclusive is not None and number < Decimal(facets.min_inclusive):
        return f"{text} is below the minimum {facets.min_inclusive}"
    if facets.max_inclusive is not None and number > Decimal(facets.max_inclusive):
        return f"{text} is above the maximum {facets.max_inclusive}"
    if isinstance(value, Decimal):
        try:
            lexical.check_digits(value, facets.total_digits, facets.fraction_digits)
        except ValueError as exc:
            return str(exc)
    return None


def subsumes(outer: SimpleType, inner: SimpleType) -> bool:
    """True when every value of ``inner`` is a value of ``outer`` (so no run-time check is
    needed), judged conservatively: the same type, or ``outer`` a facet-free type of the same
    primitive, or ``outer``'s facets all present in ``inner``."""
    if outer.name == inner.name and outer.home == inner.home:
        return True
    if outer.primitive != inner.primitive:
        return False
    mine, theirs = outer.facets, inner.facets
    if mine.enumeration and not (
        theirs.enumeration and set(theirs.enumeration) <= set(mine.enumeration)
    ):
        return False
    if mine.patterns and not set(mine.patterns) <= set(theirs.patterns):
        return False
    return _lengths_subsumed(mine, theirs) and _numbers_subsumed(mine, theirs)


def _lengths_subsumed(mine: Facets, theirs: Facets) -> bool:
    longest = max(map(len, theirs.enumeration)) if theirs.enumeration else theirs.max_length
    shortest = min(map(len, theirs.enumeration)) if theirs.enumeration else theirs.min_length or 0
    if mine.max_length is not None and (longest is None or longest > mine.max_length):
        return False
    if mine.min_length and shortest < mine.min_length:
        return False
    return mine.length is None or theirs.length == mine.length


def _numbers_subsumed(mine: Facets, theirs: Facets) -> bool:
    for name in ("total_digits", "fraction_digits"):
        limit, other = getattr(mine, name), getattr(theirs, name)
        if limit is not None and (other is None or other > limit):
            return False
    if mine.min_inclusive is not None and (
        theirs.min_inclusive is None or Decimal(theirs.min_inclusive) < Decimal(mine.min_inclusive)
    ):
        return False
    return mine.max_inclusive is None or (
        theirs.max_inclusive is not None
        and Decimal(theirs.max_inclusive) <= Decimal(mine.max_inclusive)
    )

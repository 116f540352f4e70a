"""The function library of the mapping language: small, pure and typed.

Each function declares the contract types of its parameters and result, so the mapping compiler
can check a call (`{fn: start_of_day, args: [startDate, timeZone]}`) before anything runs.

A project adds functions of its own (docs/mappings.md, "A project's own functions"): the
compiler reads their signatures from their type hints, and the loader registers them here for
the generated package it loads, whose transformers reach them through `call_project`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(frozen=True)
class Signature:
    """Parameter and result types as primitive names: ``?`` optional, ``*`` variadic, ``[]`` a
    list."""

    params: tuple[str, ...]
    result: str
    doc: str
    context: bool = False  # the function reads the transform's context (clock, time zone)


@cache
def zone(name: str) -> ZoneInfo:
    """An IANA time zone; a name the time zone database does not know is a ValueError."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone of the IANA database") from None


def start_of_day(day: date, time_zone: str) -> datetime:
    return datetime.combine(day, time.min, zone(time_zone))


def in_zone(instant: datetime, time_zone: str) -> datetime:
    return instant.astimezone(zone(time_zone))


def to_utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def date_of(instant: datetime, time_zone: str) -> date:
    return instant.astimezone(zone(time_zone)).date()


def status_at(until: datetime | None, at: datetime) -> str:
    return "ACTIVE" if until is None or at < until else "INACTIVE"


class Clocked(Protocol):
    """What the context-reading functions need of a transform context."""

    time_zone: str
    clock: Callable[[], datetime]


def now(context: Clocked) -> datetime:
    return context.clock()


def today(context: Clocked) -> date:
    return context.clock().astimezone(zone(context.time_zone)).date()


def concat(*parts: str) -> str:
    return "".join(parts)


def join(separator: str, parts: tuple[str, ...]) -> str:
    return separator.join(parts)


def minutes_to_seconds(minutes: int) -> int:
    return minutes * 60


def multiply(left: Decimal, right: Decimal) -> Decimal:
    return left * right


def round_(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


_UNIT_FACTORS = {
    "Wh": ("energy", Decimal(1)),
    "kWh": ("energy", Decimal(1000)),
    "MWh": ("energy", Decimal(10**6)),
    "W": ("power", Decimal(1)),
    "kW": ("power", Decimal(1000)),
    "MW": ("power", Decimal(10**6)),
    "varh": ("reactive", Decimal(1)),
    "kvarh": ("reactive", Decimal(1000)),
}


def convert_unit(value: Decimal, source: str, target: str) -> Decimal:
    try:
        (kind, factor), (target_kind, target_factor) = _UNIT_FACTORS[source], _UNIT_FACTORS[target]
    except KeyError as exc:
        raise ValueError(
            f"unknown unit {exc.args[0]!r}; known: {', '.join(_UNIT_FACTORS)}"
        ) from None
    if kind != target_kind:
        raise ValueError(f"cannot convert {source} ({kind}) to {target} ({target_kind})")
    return value * factor / target_factor


def number_text(value: Decimal, places: int) -> str:
    return format(round_(value, places), "f")


FUNCTIONS: dict[str, tuple[Callable[..., Any], Signature]] = {
    "start_of_day": (
        start_of_day,
        Signature(("date", "string"), "dateTime", "00:00 of the date in the IANA zone"),
    ),
    "in_zone": (
        in_zone,
        Signature(("dateTime", "string"), "dateTime", "the instant with the zone's legal offset"),
    ),
    "to_utc": (to_utc, Signature(("dateTime",), "dateTime", "the instant in UTC")),
    "date_of": (
        date_of,
        Signature(("dateTime", "string"), "date", "the calendar date of the instant in the zone"),
    ),
    "status_at": (
        status_at,
        Signature(
            ("dateTime?", "dateTime"), "string", "ACTIVE until the first instant, INACTIVE from it"
        ),
    ),
    "now": (now, Signature((), "dateTime", "the context's clock", context=True)),
    "today": (
        today,
        Signature((), "date", "today in the installation's time zone (PD-F36)", context=True),
    ),
    "concat": (concat, Signature(("string*",), "string", "the strings joined")),
    "join": (join, Signature(("string", "string[]"), "string", "the list joined by the separator")),
    "minutes_to_seconds": (
        minutes_to_seconds,
        Signature(("integer",), "integer", "minutes as seconds"),
    ),
    "multiply": (multiply, Signature(("decimal", "decimal"), "decimal", "the product")),
    "round": (round_, Signature(("decimal", "integer"), "decimal", "rounded half-even")),
    "convert_unit": (
        convert_unit,
        Signature(("decimal", "string", "string"), "decimal", "between units of one kind"),
    ),
    "number_text": (
        number_text,
        Signature(("decimal", "integer"), "string", "the number with that many places"),
    ),
}


T = TypeVar("T")

# The project functions of each loaded generated package, by package name.
_PROJECT: dict[str, dict[str, Callable[..., Any]]] = {}


def register_project(package: str, functions: dict[str, Callable[..., Any]]) -> None:
    """Make a project's functions callable from the transformers of its generated ``package``."""
    _PROJECT[package] = dict(functions)


def call_project(result: type[T], module: str, name: str, *arguments: Any) -> T:
    """Call project function ``name`` for a transformer ``module``; the result must be a
    ``result``. The function's failure is a ValueError, which the transformer reports at the
    calling rule."""
    value = call_project_optional(result, module, name, *arguments)
    if value is None:
        raise ValueError(f"{name} returned None, not a {result.__name__}")
    return value


def call_project_optional(result: type[T], module: str, name: str, *arguments: Any) -> T | None:
    """`call_project` for a function whose result may be None."""
    package = module.rpartition(".")[0]
    function = _PROJECT.get(package, {}).get(name)
    if function is None:
        raise LookupError(
            f"project function {name} is not registered for {package}; "
            "load generated code through ccbmdm.codegen.loader"
        )
    try:
        value = function(*arguments)
    except ValueError:
        raise
    except Exception as error:  # a defect of the project function, reported at the rule
        raise ValueError(f"{name} failed: {type(error).__name__}: {error}") from error
    if value is None:
        return None
    if not isinstance(value, result) or (
        type(value) is not result and result in (date, int)  # not a datetime, not a bool
    ):
        raise ValueError(f"{name} returned a {type(value).__name__}, not a {result.__name__}")
    return value

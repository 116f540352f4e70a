"""Interval measurements a flow case loads into MDM, written as a profile a person can add up by
hand: one value for every interval of a period, with runs that say otherwise.

A profile covers ``[start, end)`` on the channel's grid. Every interval gets ``kwh`` unless a
run covering it (the intervals wholly inside the run's ``[from, to)``) gives another ``kwh``,
a ``quality`` (a class of docs/determinants.md §8, or a list of IEC 61968-9 codes), or
``missing: true``: a missing interval is not written at all (docs/determinants.md §9: missing is
never zero). Later runs win over earlier ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from ccbmdm.runtime.lexical import configured_datetime
from ccbmdm.runtime.sim.measurements import QUALITY_CODES, Quality, instant, quality_of

RUN_KEYS = frozenset({"from", "to", "kwh", "quality", "missing"})


@dataclass(frozen=True)
class Run:
    """Intervals inside ``[low, high)`` that differ from the profile's value."""

    low: datetime
    high: datetime
    kwh: Decimal | None
    codes: tuple[str, ...] | None
    missing: bool


@dataclass(frozen=True)
class IntervalValueRow:
    """One interval value to store: its end (PD-D01), value and quality codes."""

    end: datetime
    kwh: Decimal
    codes: tuple[str, ...]


def profile_values(
    start: datetime,
    end: datetime,
    seconds: int,
    kwh: Decimal | str | None,
    runs: Sequence[Mapping[str, Any]] = (),
) -> list[IntervalValueRow]:
    """The values of a profile over ``[start, end)`` in ``seconds``-long intervals; a
    ``ValueError`` says what in the profile is wrong."""
    low, high = instant(start), instant(end)
    if high <= low:
        raise ValueError(f"the profile's end {end.isoformat()} is not after its start")
    step = timedelta(seconds=seconds)
    if (high - low) % step:
        raise ValueError(f"[{start.isoformat()}, {end.isoformat()}) is not whole intervals")
    base = None if kwh is None else _decimal(kwh, "kwh")
    parsed = [_run(number, run) for number, run in enumerate(runs, 1)]
    rows = []
    moment = low + step
    while moment <= high:
        value, codes, missing = base, QUALITY_CODES[Quality.ACTUAL], False
        for run in parsed:
            if run.low <= moment - step and moment <= run.high:
                value = run.kwh if run.kwh is not None else value
                codes = run.codes if run.codes is not None else codes
                missing = run.missing
        if not missing:
            if value is None:
                raise ValueError(f"the interval ending {moment.isoformat()} has no kwh")
            rows.append(IntervalValueRow(moment, value, codes))
        moment += step
    return rows


def _run(number: int, run: Mapping[str, Any]) -> Run:
    unknown = set(run) - RUN_KEYS
    if unknown or "from" not in run or "to" not in run:
        raise ValueError(
            f"run {number} takes from, to and any of kwh, quality, missing"
            + (f"; not {', '.join(sorted(unknown))}" if unknown else "")
        )
    kwh = run.get("kwh")
    return Run(
        _moment(run["from"], number),
        _moment(run["to"], number),
        None if kwh is None else _decimal(kwh, f"run {number} kwh"),
        None if run.get("quality") is None else _codes(run["quality"], number),
        bool(run.get("missing", False)),
    )


def _moment(value: Any, number: int) -> datetime:
    """A run's bound: a date-time with its offset, as YAML or the case's text gives it."""
    try:
        moment = value if isinstance(value, datetime) else configured_datetime(str(value))
        return instant(moment)
    except ValueError:
        raise ValueError(
            f"run {number}: {value!r} is not a date-time with its offset "
            "(2025-03-09T02:00:00-05:00)"
        ) from None


def _codes(quality: str | Sequence[str], number: int) -> tuple[str, ...]:
    if isinstance(quality, str):
        try:
            return QUALITY_CODES[Quality(quality)]
        except ValueError:
            raise ValueError(
                f"run {number}: quality {quality!r} is none of "
                f"{', '.join(q.value for q in Quality)}; or give a list of codes"
            ) from None
    codes = tuple(str(code) for code in quality)
    quality_of(codes)  # rejects a code that is not system.category.index
    return codes


def _decimal(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name} {value!r} is not a decimal") from None

"""Every calculation the determinant tests make is made twice: by the engine and by the engine
as it was before exact columns (tests/reference_engine.py), and the two must answer alike, to
the last digit of every decimal, or fail with the same fault. So each worked example (G-01 to
G-21) and each rule test also shows the columns identical to the value-by-value engine
(docs/determinants.md PD-D16)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

import reference_engine
from ccbmdm.runtime.sim.determinants import engine
from ccbmdm.runtime.sim.determinants.measurements import DeterminantsFault, Installation
from ccbmdm.runtime.sim.determinants.usage_groups import UsageGroup
from ccbmdm.runtime.sim.determinants.usage_request import CalculationRequest


def answer(
    calculate: Callable[..., Any],
    request: CalculationRequest,
    installations: tuple[Installation, ...],
    group: UsageGroup,
) -> tuple[str, Any]:
    """What a calculation answers, as text that shows every decimal's digits and exponent, or
    the fault it raises (its type and text)."""
    try:
        return "answer", repr(calculate(request, installations, group))
    except (DeterminantsFault, ValueError) as fault:
        return "fault", (type(fault).__name__, str(fault))


def calculate_both(
    request: CalculationRequest, installations: Iterable[Installation], group: UsageGroup
) -> Any:
    """``engine.calculate``, checked against the reference engine first."""
    given = tuple(installations)
    ours = answer(engine.calculate, request, given, group)
    reference = answer(reference_engine.calculate, request, given, group)
    assert ours == reference, "the engine and the reference engine answer differently"
    return engine.calculate(request, given, group)


@pytest.fixture(autouse=True)
def checked_against_the_reference(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    if getattr(request.module, "calculate", None) is engine.calculate:
        monkeypatch.setattr(request.module, "calculate", calculate_both)
    yield

"""How the demo shares a phase with its helper workers: they stay while work moves, and leave
when nothing has moved or ended for the patience given.

The clock, the workers and the count of ended requests are the test's own, so that minutes of
a large run pass in no time; the helpers' processes are replaced by a record of when they
started and stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from uuid import uuid4

import pytest

from ccbmdm.runtime.sim import demo
from ccbmdm.runtime.store import Store


@dataclass
class Clock:
    now: float = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Phase:
    """A phase whose requests take ``moving`` rounds of a second each before the first ends,
    then all end at once (or, without ``ends``, stay waiting for something else)."""

    clock: Clock
    total: int
    moving: int
    ends: bool = True
    rounds: int = 0
    ended: int = 0
    helpers: list[tuple[str, float, int]] = field(default_factory=list)

    def round(self) -> int:
        self.clock.now += 1.0
        self.rounds += 1
        if self.rounds <= self.moving:
            return 200
        if self.ends and self.ended < self.total:
            self.ended = self.total
            return self.total
        return 0


class Progress:
    def __init__(self, phase: Phase) -> None:
        self.phase, self.done = phase, 0

    def counted(self) -> bool:
        moved_on = self.phase.ended > self.done
        self.done = self.phase.ended
        return moved_on


@dataclass
class Runtime:
    phase: Phase
    store: object = None

    def worker(self, batch: int) -> Phase:
        return self.phase


def _share(monkeypatch: pytest.MonkeyPatch, phase: Phase) -> None:
    """Drain ``phase`` with 4 workers and a patience of 30 s, on the test's clock."""

    @contextmanager
    def helpers(runtime: object, count: int) -> Iterator[None]:
        phase.helpers.append(("started", phase.clock.now, phase.ended))
        yield
        phase.helpers.append(("stopped", phase.clock.now, phase.ended))

    monkeypatch.setattr(demo, "clock", phase.clock)
    monkeypatch.setattr(demo, "helpers", helpers)
    monkeypatch.setattr(demo, "_Progress", lambda store, table, advance, keys: Progress(phase))
    monkeypatch.setattr(demo, "_Upkeep", lambda store: nullcontext())
    demo.drain(
        Runtime(phase),  # type: ignore[arg-type]
        "usage_request",
        phase.total,
        lambda n: None,
        workers=4,
        patience_s=30,
    )


def test_helpers_stay_while_requests_move_before_any_has_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A billing run's requests all go out before the first determinants come back: 90 s of
    moving work with nothing ended must not send the helpers away."""
    phase = Phase(Clock(), total=100_000, moving=90)
    _share(monkeypatch, phase)
    assert phase.helpers == [("started", 0.0, 0), ("stopped", 91.0, 100_000)]


def test_helpers_leave_when_nothing_moves_or_ends_for_the_patience(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What is left waits for something else (a deadline, another system): the helpers stop
    after the patience, and this process's rounds end the phase."""
    phase = Phase(Clock(), total=10, moving=5, ends=False)
    _share(monkeypatch, phase)
    ((started, _, _), (stopped, at, ended)) = phase.helpers
    assert (started, stopped, ended) == ("started", "stopped", 0)
    assert 5.0 + 30.0 <= at < 5.0 + 30.0 + 1.1


def test_progress_counts_the_ended_rows_of_its_node_flow_and_part_only(store: Store) -> None:
    """The bills' phase counts MDM's responses processed at CCB, among every inbox row of the
    run; the inbox has no Error state, and none is counted."""
    ended: list[int] = []

    def receive(*rows: tuple[str, str, str, str]) -> None:
        with store.transaction() as tx:
            for node, flow, part, state in rows:
                tx.execute(
                    f"""INSERT INTO inbox (node, partner, flow, part, message_id, state, due_at,
                          received_at)
                        VALUES (:node, 'bridge', :flow, :part, :id, :state, {tx.now}, {tx.now})""",
                    {"node": node, "flow": flow, "part": part, "id": str(uuid4()), "state": state},
                )

    receive(("ccb", "UT_INFO_UPDATE", "response", "PROCESSED"))  # before the phase: not its own
    keys = {"node": "ccb", "flow": "UT_INFO_UPDATE", "part": "response"}
    progress = demo._Progress(store, "inbox", ended.append, keys)
    receive(
        ("ccb", "UT_INFO_UPDATE", "response", "PROCESSED"),
        ("ccb", "UT_INFO_UPDATE", "response", "PROCESSED"),
        ("ccb", "UT_INFO_UPDATE", "response", "RECEIVED"),
        ("mdm", "UT_INFO_UPDATE", "request", "PROCESSED"),
        ("ccb", "BATCH_BD", "response", "PROCESSED"),
        ("bridge", "UT_INFO_UPDATE", "response", "PROCESSED"),
    )
    assert progress.counted() is True
    assert (progress.done, ended) == (2, [2])
    assert progress.counted() is False

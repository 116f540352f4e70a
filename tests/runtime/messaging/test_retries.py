"""Retry policies count time as well as attempts (docs/runtime.md, Delivery): a send refused
before anything was sent uses up no attempt, a message is given up only once its attempts are
used and its retry window has passed, and a partner that takes a message again has the
messages waiting for it retried at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from types import ModuleType

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import (
    Answer,
    InProcessTransport,
    Posting,
    Response,
    TransportUnreachable,
)
from ccbmdm.runtime.store import Store
from runtime_world import FAST, Integration

HOUR = 3600.0
# backoff long enough that nothing is retried by its timer during a test; a retry window of
# an hour, the default
PATIENT = dataclasses.replace(FAST, backoff_base_s=HOUR, backoff_cap_s=HOUR, retry_window_s=HOUR)


class Partners(InProcessTransport):
    """Each partner up, ``down`` (refused: nothing arrives) or ``failing`` (answers 503);
    a message whose bytes hold one of ``refusing`` is always answered 503."""

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()
        self.failing: set[str] = set()
        self.refusing: set[bytes] = set()

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        if partner in self.down:
            return [TransportUnreachable(f"{partner}: connection refused") for _ in postings]
        if partner in self.failing:
            return [Response(503, b"unavailable") for _ in postings]
        answered = [any(key in p.body for key in self.refusing) for p in postings]
        delivered = iter(
            super().post_many(
                sender, partner, [p for p, a in zip(postings, answered, strict=True) if not a]
            )
        )
        return [Response(503, b"unavailable") if a else next(delivered) for a in answered]


def outbox(store: Store, node: str) -> list[tuple[str, int, int, str | None]]:
    """(state, attempt, refused, failure) of a node's rows, oldest first."""
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT state, attempt, refused, failure FROM outbox WHERE node = :node ORDER BY id",
            {"node": node},
        )
    return [(r["state"], int(r["attempt"]), int(r["refused"]), r["failure"]) for r in rows]


def due_now(store: Store) -> None:
    """Every row waiting for a retry falls due (its backoff over)."""
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE outbox SET due_at = {store.now} WHERE state = 'RETRY_WAIT'",
        )


def first_sent_hours_ago(store: Store, hours: float) -> None:
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE outbox SET first_attempt_at = {store.now_plus}",
            {"seconds": -hours * HOUR},
        )


def test_a_refused_send_uses_up_no_attempt(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """The bridge refuses connections for more sends than the attempts allow (no window in
    FAST): the message waits, and reaches MDM once the bridge is back."""
    transport = Partners()
    world = Integration(store, registry, package, transport)
    transport.down.add("bridge")
    world.people.change("0000000070", "Down,Longer")
    world.monitor.step()
    for _ in range(FAST.max_attempts + 2):
        world.ccb.send_due()
    assert outbox(store, "ccb") == [("RETRY_WAIT", 6, 6, "unreachable")]
    assert world.requests() == [("AWAITING_ACK", None)]

    transport.down.clear()
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)]
    assert outbox(store, "ccb")[0][:3] == ("DELIVERED", 7, 6)


def test_a_failing_message_is_given_up_only_after_its_retry_window(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """Answered 503 every time: once its four attempts are used it goes on being retried
    while its hour lasts, and is given up, with its request, at the first failure after."""
    transport = Partners()
    world = Integration(store, registry, package, transport, settings=PATIENT)
    transport.failing.add("bridge")
    world.people.change("0000000071", "Always,Failing")
    world.monitor.step()
    for _ in range(PATIENT.max_attempts + 1):
        world.ccb.send_due()
        due_now(store)
    assert outbox(store, "ccb") == [("RETRY_WAIT", 5, 0, "answer")]
    assert world.requests() == [("AWAITING_ACK", None)]

    first_sent_hours_ago(store, 1.01)
    world.ccb.send_due()
    assert outbox(store, "ccb") == [("ERROR", 6, 0, "answer")]
    assert world.requests() == [("ERROR", "not delivered, attempts used up: HTTP 503: unavailable")]


def test_a_relayed_message_is_answered_with_1401_only_after_its_retry_window(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """The bridge's relayed row follows the same rule: MDM refusing it for a while (a
    restart) is no reason to answer CCB 90000/1401; its attempts and hour used up are."""
    transport = Partners()
    world = Integration(store, registry, package, transport, settings=PATIENT)
    transport.failing.add("mdm")
    world.people.change("0000000072", "Relay,Waits")
    world.monitor.step()
    world.ccb.send_due()
    world.bridge.process_due()
    for _ in range(PATIENT.max_attempts):
        world.bridge.send_due()
        due_now(store)
    assert outbox(store, "bridge") == [("RETRY_WAIT", 4, 0, "answer")]
    world.run()
    assert world.requests() == [("AWAITING_ACK", None)]

    first_sent_hours_ago(store, 1.01)
    due_now(store)
    world.run()
    ((state, reason),) = world.requests()
    assert state == "ERROR"
    assert reason is not None and reason.startswith("90000/1401 not delivered: HTTP 503")


def test_a_partner_that_takes_a_message_has_the_rows_waiting_for_it_retried_at_once(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """Three messages wait an hour after the bridge refused them, and one after the bridge
    answered it 503. A message that gets through makes the refused ones due at once, a
    batch (two) of them at most, in order; the one the bridge answered keeps its backoff,
    and so does nothing of another node."""
    transport = Partners()
    world = Integration(store, registry, package, transport, batch=2, settings=PATIENT)
    transport.refusing.add(b"0000000079")
    for key in ("0000000079", "0000000073", "0000000074", "0000000075"):
        world.people.change(key, "Waiting,Person")
        world.monitor.step()
        if key != "0000000079":
            transport.down.add("bridge")
        world.ccb.send_due()
        transport.down.clear()
    assert [row[0::3] for row in outbox(store, "ccb")] == [
        ("RETRY_WAIT", "answer"),
        *[("RETRY_WAIT", "unreachable")] * 3,
    ]

    world.people.change("0000000076", "Gets,Through")
    world.monitor.step(1)
    assert world.ccb.send_due() == 1  # only the new one is due; the bridge takes it
    with store.transaction() as tx:
        due = tx.fetch(
            f"""SELECT CASE WHEN due_at <= {store.now} THEN 1 ELSE 0 END AS due FROM outbox
                WHERE node = 'ccb' AND state = 'RETRY_WAIT' ORDER BY id"""
        )
    assert [row["due"] for row in due] == [0, 1, 1, 0]
    assert world.ccb.send_due() == 3  # those two, and the last one, after them
    assert [row[0] for row in outbox(store, "ccb")] == ["RETRY_WAIT", *["AWAITING_REPLY"] * 4]

"""Leases that expire: the message is sent or processed again under the same id, and the worker
that lost its lease changes nothing (docs/reliability.md §2.4; R3 without the signals)."""

from __future__ import annotations

from types import ModuleType

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.node import BatchHandler
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.bodies import original
from runtime_world import Integration, expire


def test_an_expired_send_is_rescued_and_the_old_holder_is_fenced_out(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000080", "Lost,Lease")
    world.monitor.step()
    (zombie,) = world.ccb.outbox.claim()  # a worker claims, then dies before sending
    expire(store, "outbox", zombie.id)
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)]
    with store.transaction() as tx:
        (row,) = tx.fetch("SELECT message_id, attempt, state FROM outbox WHERE node = 'ccb'")
    assert (str(row["message_id"]), row["attempt"], row["state"]) == (
        zombie.message_id,
        2,
        "DELIVERED",
    )
    assert world.ccb.outbox.record([(zombie, None, None)]) == [zombie]  # its lease is gone
    assert world.stub.applications == 1


def test_an_expired_processing_is_done_again(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000081", "Slow,Worker")
    world.monitor.step()
    world.ccb.send_due()
    (taken,) = world.bridge.inbox.claim()  # claimed for processing by a worker that dies
    expire(store, "inbox", taken.id)
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)]
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT attempt, state FROM inbox WHERE node = 'bridge' AND partner = 'ccb'"
        )
    assert (row["attempt"], row["state"]) == (2, "PROCESSED")


def test_a_message_past_its_last_attempt_ends_in_error_with_its_request(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000082", "Never,Answered")
    world.monitor.step()
    for _ in range(world.ccb.settings.max_attempts):
        (claim,) = world.ccb.outbox.claim()
        expire(store, "outbox", claim.id)
        world.ccb.rescue_due()
    with store.transaction() as tx:
        (row,) = tx.fetch("SELECT state, attempt, last_error FROM outbox WHERE node = 'ccb'")
    assert (row["state"], row["attempt"], row["last_error"]) == (
        "ERROR",
        4,
        "deadline passed in SENDING",
    )
    ((state, reason),) = world.requests()
    assert (state, reason) == ("ERROR", "no acknowledgement after 4 attempts")


def test_a_message_that_fails_every_attempt_is_answered_with_1402(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000082", "Always,Failing")
    world.monitor.step()
    world.ccb.send_due()

    def broken(tx: object, received: object) -> str | None:
        raise RuntimeError("a defect in the handler")

    world.bridge.handler = broken
    for _ in range(4):  # FAST: four attempts
        world.bridge.process_due()
        with store.transaction() as tx:
            (row,) = tx.fetch("SELECT id FROM inbox WHERE node = 'bridge'")
        expire(store, "inbox", row["id"])
        world.bridge.rescue_due()
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT state, attempt, outcome_message_id FROM inbox WHERE node = 'bridge'"
        )
    assert (row["state"], row["attempt"]) == ("PROCESSED", 4)
    assert row["outcome_message_id"] is not None
    world.run()  # the fault reaches CCB, whose request ends in Error with it
    ((state, reason),) = world.requests()
    assert state == "ERROR"
    assert reason is not None and reason.startswith("90000/1402 not processed: attempts used up")


def test_e4_a_defect_in_one_message_leaves_the_rest_of_its_batch_processed(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """The bridge's batch of three holds one message its handler fails on after mapping it:
    the other two are processed and relayed, the failing one waits for its lease, and what its
    handler queued is gone with it."""
    world = Integration(store, registry, package, InProcessTransport())
    for person_id in ("0000000091", "0000000092", "0000000093"):
        world.people.change(person_id, "Batch,Member")
    world.monitor.step()
    world.ccb.send_due()
    relay = world.bridge.handler
    assert relay is not None and not isinstance(relay, BatchHandler)

    def defective(tx: Transaction, received: Received) -> str | None:
        outcome = relay(tx, received)  # the mapped message is queued, then the defect strikes
        if b"0000000092" in received.payload:
            raise RuntimeError("a defect in the handler")
        return outcome

    world.bridge.handler = defective
    assert world.bridge.process_due() == 3
    with store.transaction() as tx:
        states = [r["state"] for r in tx.fetch("SELECT state FROM inbox WHERE node = 'bridge'")]
        relayed = tx.fetch("SELECT b.payload FROM outbox o JOIN outbox_body b ON b.id = o.id")
    assert sorted(states) == ["PROCESSED", "PROCESSED", "PROCESSING"]
    payloads = [
        p for p in map(original, (row["payload"] for row in relayed)) if b"ContactSyncRequest" in p
    ]
    assert len(payloads) == 2 and not any(b"0000000092" in p for p in payloads)

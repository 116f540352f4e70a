"""Batch handlers: a node's handler given its whole batch at once, answering with one statement a
batch, and a bad message failing alone (docs/runtime.md, Nodes; docs/reliability.md, E4)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from ccbmdm.runtime.lifecycles.sync import BatchSnapshotReader
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.delivery import Arrival, DeliverySettings, Inbox, Received
from ccbmdm.runtime.messaging.node import BatchHandler
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store, Transaction
from runtime_world import Integration, People, StubMdm, expire

PEOPLE = ("0000000191", "0000000192", "0000000193")


class BatchMdm:
    """MDM's stand-in as a batch handler: each batch it is given, and a defect in the batch
    holding ``failing`` (raised after the whole batch was handled, its acks queued)."""

    def __init__(self, stub: StubMdm, failing: bytes | None = None) -> None:
        self.stub = stub
        self.failing = failing
        self.batches: list[list[str]] = []

    def handle_batch(self, tx: Transaction, messages: Sequence[Received]) -> list[str | None]:
        self.batches.append([message.message_id for message in messages])
        outcomes = [self.stub(tx, message) for message in messages]
        if self.failing is not None and any(self.failing in m.payload for m in messages):
            raise RuntimeError("a defect in the handler")
        return outcomes


def world_with_requests(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> Integration:
    """Three people changed, their messages sent through the bridge and waiting at MDM."""
    world = Integration(store, registry, package, InProcessTransport())
    for person_id in PEOPLE:
        world.people.change(person_id, "Batch,Member")
    world.monitor.step()
    world.ccb.send_due()
    world.bridge.process_due()
    world.bridge.send_due()
    return world


def mdm_inbox(store: Store) -> list[Mapping[str, Any]]:
    with store.transaction() as tx:
        return tx.fetch(
            "SELECT message_id, state, outcome_message_id, last_error FROM inbox "
            "WHERE node = 'mdm' ORDER BY id"
        )


def test_a_batch_handler_is_given_the_whole_batch_and_its_outcomes_are_recorded_in_order(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = world_with_requests(store, registry, package)
    handler = BatchMdm(world.stub)
    assert isinstance(handler, BatchHandler)
    world.mdm.handler = handler
    assert world.mdm.process_due() == 3
    rows = mdm_inbox(store)
    assert handler.batches == [[str(row["message_id"]) for row in rows]]
    with store.transaction() as tx:
        acks = {
            str(r["message_id"])
            for r in tx.fetch("SELECT message_id FROM outbox WHERE node = 'mdm'")
        }
    assert [row["state"] for row in rows] == ["PROCESSED"] * 3
    assert {str(row["outcome_message_id"]) for row in rows} == acks and len(acks) == 3
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)] * 3


def test_a_failing_message_fails_alone_and_its_neighbours_are_processed_once(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """The batch raises: it is rolled back, and each message handled again alone; the two good
    ones are processed with one acknowledgement each, the bad one keeps its reason and waits
    for its lease, and what the failed batch queued for it is gone."""
    world = world_with_requests(store, registry, package)
    handler = BatchMdm(world.stub, failing=PEOPLE[1].encode())
    world.mdm.handler = handler
    assert world.mdm.process_due() == 3
    rows = mdm_inbox(store)
    ids = [str(row["message_id"]) for row in rows]
    assert handler.batches == [ids, [ids[0]], [ids[1]], [ids[2]]]
    assert [row["state"] for row in rows] == ["PROCESSED", "PROCESSING", "PROCESSED"]
    assert rows[1]["last_error"] == "RuntimeError: a defect in the handler"
    with store.transaction() as tx:
        acks = tx.fetch("SELECT message_id FROM outbox WHERE node = 'mdm'")
    assert {str(r["message_id"]) for r in acks} == {
        str(rows[0]["outcome_message_id"]),
        str(rows[2]["outcome_message_id"]),
    }
    handler.failing = None  # the defect mended, the message is processed after its lease
    expire(store, "inbox", int(_inbox_id(store, ids[1])))
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)] * 3
    assert len(mdm_inbox(store)) == 3


def _inbox_id(store: Store, message_id: str) -> int:
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT id FROM inbox WHERE node = 'mdm' AND message_id = :m", {"m": message_id}
        )
    assert row is not None
    return int(row["id"])


def test_acknowledgements_are_matched_a_batch_at_a_time(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """CCB's batch of three acknowledgements: one match for the batch, every request moved."""
    world = world_with_requests(store, registry, package)
    world.mdm.process_due()
    world.mdm.send_due()
    world.bridge.process_due()
    world.bridge.send_due()
    matches: list[str] = []
    outbox = world.ccb.outbox
    replies_received = outbox.replies_received

    def counted(tx: Transaction, replies: Sequence[tuple[str, str]]) -> list[Any]:
        matches.append(",".join(correlation for _, correlation in replies))
        return replies_received(tx, replies)

    outbox.replies_received = counted  # type: ignore[method-assign]
    assert world.ccb.process_due() == 3
    assert len(matches) == 1 and matches[0].count(",") == 2
    assert world.requests() == [("SYNCHRONIZED", None)] * 3


def test_of_two_replies_to_one_message_in_a_batch_the_first_matches(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change(PEOPLE[0], "Twice,Answered")
    world.monitor.step()
    world.ccb.send_due()
    with store.transaction() as tx:
        row = tx.fetch_one("SELECT id, message_id FROM outbox WHERE node = 'ccb'")
        assert row is not None
        message_id = str(row["message_id"])
        owners = world.ccb.outbox.replies_received(
            tx,
            [
                ("bridge", "00000000-0000-7000-8000-000000000001"),  # answers nothing here
                ("bridge", message_id),
                ("bridge", message_id.upper()),
                ("mdm", message_id),  # not the partner it went to
            ],
        )
    ((request_id,),) = _request_ids(store)
    assert owners == [None, ("sync_request", request_id), None, None]
    with store.transaction() as tx:
        state = tx.fetch_one("SELECT state FROM outbox WHERE id = :id", {"id": row["id"]})
    assert state is not None and state["state"] == "DELIVERED"


def _request_ids(store: Store) -> list[tuple[int]]:
    with store.transaction() as tx:
        return [(int(r["id"]),) for r in tx.fetch("SELECT id FROM sync_request")]


class FailingBatchReads(People):
    """A source whose batch read fails: each snapshot is then read alone."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.reads = 0

    def read(self, tx: Transaction, mo: str, key: tuple[str, ...]) -> Mapping[str, Any] | None:
        self.reads += 1
        return super().read(tx, mo, key)

    def read_many(
        self, tx: Transaction, mo: str, keys: Sequence[tuple[str, ...]]
    ) -> list[Mapping[str, Any] | None]:
        raise RuntimeError("the source's batch read failed")


def test_the_monitor_reads_a_batch_of_snapshots_at_once_or_each_alone_when_that_fails(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    for person_id in PEOPLE:
        world.people.change(person_id, "Batch,Read")
    batch_reads: list[int] = []
    read_many = world.people.read_many

    def counted(
        tx: Transaction, mo: str, keys: Sequence[tuple[str, ...]]
    ) -> list[Mapping[str, Any] | None]:
        batch_reads.append(len(keys))
        return read_many(tx, mo, keys)

    world.people.read_many = counted  # type: ignore[method-assign]
    assert world.monitor.step().sent == 3
    assert batch_reads == [3]

    failing = FailingBatchReads(store)
    assert isinstance(failing, BatchSnapshotReader)
    world.monitor.reader = failing
    world.run()
    for person_id in PEOPLE:
        world.people.change(person_id, "Batch,Read Again")
    assert world.monitor.step().sent == 3
    assert failing.reads == 3
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)] * 6


def test_a_batch_of_messages_stored_at_once_tells_new_ones_from_repeats_in_order(
    store: Store,
) -> None:
    """One statement for the batch (PostgreSQL: over arrays), the same answer as one at a time:
    a message the inbox has, and a second copy within the batch, are repeats whose stored bytes
    stay as they were; the new ones keep the batch's order in their ids."""
    inbox = Inbox(store, "bridge", DeliverySettings())
    ids = [f"018f0000-0000-7000-8000-00000000000{i}" for i in range(4)]

    def arrival(message_id: str, payload: bytes) -> Arrival:
        return Arrival("PERSON_SYNC", "request", message_id, None, payload)

    assert inbox.store_messages("ccb", [arrival(ids[1], b"first")]) == [(True, None)]
    stored = inbox.store_messages(
        "ccb",
        [
            arrival(ids[3], b"new, first"),
            arrival(ids[1], b"again"),
            arrival(ids[0], b"new, second"),
            arrival(ids[3], b"a copy in the batch"),
            arrival(ids[2], b"new, third"),
        ],
    )
    assert [new for new, _ in stored] == [True, False, True, False, True]
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT i.message_id, b.payload FROM inbox i JOIN inbox_body b ON b.id = i.id "
            "ORDER BY i.id"
        )
    assert [(str(r["message_id"]), bytes(r["payload"])) for r in rows] == [
        (ids[1], b"first"),
        (ids[3], b"new, first"),
        (ids[0], b"new, second"),
        (ids[2], b"new, third"),
    ]

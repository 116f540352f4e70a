"""Nodes hosted on one store deliver to one another in the sender's transaction: the claim, the
receiver's inbox rows and the record of the outcomes commit together or not at all, and a node
whose partners all receive so sends in the transaction that processes its batch
(docs/runtime.md, Delivery)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.base import WriteSpan
from ccbmdm.runtime.store.sqlite import SqliteStore
from runtime_world import Integration

REQUESTS = 10


class OverTheNetwork(InProcessTransport):
    """In process, but standing for a network: every batch gets its three commits."""

    delivers_in_transaction = False


def rows(store: Store, sql: str) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        return [dict(row) for row in tx.fetch(sql)]


def each_message_stored_once(store: Store, requests: int) -> bool:
    """Every message of ``requests`` requests in one inbox row: the bridge takes the requests
    and the acknowledgements, CCB and MDM one each."""
    received = rows(store, "SELECT node, count(*) AS n FROM inbox GROUP BY node ORDER BY node")
    return received == [
        {"node": "bridge", "n": 2 * requests},
        {"node": "ccb", "n": requests},
        {"node": "mdm", "n": requests},
    ]


def committed_writes(world: Integration, name: str) -> int:
    """Change ``REQUESTS`` people's names to ``name`` and run ``world`` until quiet; how many
    transactions committed meanwhile."""
    for index in range(REQUESTS):
        world.people.change(f"{index:010d}", f"{name} {index}")
    spans: list[WriteSpan] = []
    world.store.on_write = spans.append
    world.run()
    world.store.on_write = None
    assert {state for state, _ in world.requests()} == {"SYNCHRONIZED"}
    return len([span for span in spans if span.committed])


def test_a_hop_between_nodes_on_one_store_is_one_commit(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """Each message reaches every receiver once, and the whole run takes fewer commits than
    the same run over a transport that stands for a network (claim, receipt and record each
    their own)."""
    world = Integration(store, registry, package, InProcessTransport())
    together = committed_writes(world, "Person,Together")
    assert rows(store, "SELECT count(*) AS n FROM inbox")[0]["n"] == 4 * REQUESTS
    assert rows(store, "SELECT max(attempt) AS n FROM outbox")[0]["n"] == 1
    delivered = rows(store, "SELECT DISTINCT state FROM outbox")
    assert {row["state"] for row in delivered} == {"DELIVERED"}
    apart = committed_writes(
        Integration(store, registry, package, OverTheNetwork()), "Person,Apart"
    )
    assert rows(store, "SELECT count(*) AS n FROM inbox")[0]["n"] == 8 * REQUESTS
    assert together < apart


def test_a_failure_in_the_senders_transaction_leaves_neither_receipt_nor_claim(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The receiver stored the batch in the sender's transaction, then recording the outcomes
    failed: nothing of it was committed (no inbox row, the outbox rows still due, no attempt
    counted) and no line says the messages were received; the next send delivers each once."""
    world = Integration(store, registry, package, InProcessTransport())
    for index in range(3):
        world.people.change(f"{index:010d}", f"Person,Number {index}")
    world.monitor.step(world.batch)

    def failing(*_: object) -> list[Any]:
        raise RuntimeError("the record failed")

    monkeypatch.setattr(world.ccb.outbox, "_record", failing)
    caplog.set_level(logging.INFO, logger="ccbmdm")
    with pytest.raises(RuntimeError, match="the record failed"):
        world.ccb.send_due()
    assert rows(store, "SELECT count(*) AS n FROM inbox")[0]["n"] == 0
    outbox = rows(store, "SELECT state, attempt FROM outbox WHERE node = 'ccb'")
    assert outbox == [{"state": "PENDING", "attempt": 0}] * 3
    assert not [r for r in caplog.records if getattr(r, "event", "") == "message.received"]
    monkeypatch.undo()
    world.run()
    assert {state for state, _ in world.requests()} == {"SYNCHRONIZED"}
    assert each_message_stored_once(store, 3)


def test_only_a_receiver_on_the_senders_store_takes_the_senders_transaction(
    store: Store, registry: ContractRegistry, package: ModuleType, tmp_path: Path
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    transport = world.ccb.transport
    assert isinstance(transport, InProcessTransport)
    assert transport.in_transaction("bridge", store)
    elsewhere = SqliteStore(str(tmp_path / "elsewhere.db"))
    try:
        assert not transport.in_transaction("bridge", elsewhere)
    finally:
        elsewhere.close()
    assert not transport.in_transaction("nobody", store)
    assert not OverTheNetwork().in_transaction("bridge", store)


def test_a_receiver_that_fails_in_the_senders_transaction_costs_an_attempt_not_the_batch(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A defect in the bridge's receiving fails only the delivery to it: MDM's batch, processed
    in the transaction that sent its acknowledgements, stays processed, the messages cost an
    attempt and are retried, and nothing the receiver began is left behind; once it receives
    again, every request ends SYNCHRONIZED with each message stored once."""
    world = Integration(store, registry, package, InProcessTransport())
    for index in range(3):
        world.people.change(f"{index:010d}", f"Person,Number {index}")
    world.monitor.step(world.batch)
    world.ccb.send_due()
    world.bridge.process_due()  # the mapped requests go on to MDM in the same transaction
    receiving = world.bridge.receiver.receive_many

    def failing(*_: object) -> list[Any]:
        raise RuntimeError("a defect while receiving")

    monkeypatch.setattr(world.bridge.receiver, "receive_many", failing)
    caplog.set_level(logging.INFO, logger="ccbmdm")
    assert world.mdm.process_due() == 3  # its acknowledgements fail to reach the bridge
    mdm_inbox = rows(store, "SELECT DISTINCT state FROM inbox WHERE node = 'mdm'")
    assert mdm_inbox == [{"state": "PROCESSED"}]
    acks = rows(store, "SELECT state, attempt, failure FROM outbox WHERE node = 'mdm'")
    assert acks == [{"state": "RETRY_WAIT", "attempt": 1, "failure": "transport"}] * 3
    failed = [r for r in caplog.records if getattr(r, "event", "") == "delivery.receiver_failed"]
    assert len(failed) == 1 and failed[0].exc_info is not None
    assert (
        rows(store, "SELECT count(*) AS n FROM inbox WHERE node = 'bridge' AND part = 'ack'")[0][
            "n"
        ]
        == 0
    )
    monkeypatch.setattr(world.bridge.receiver, "receive_many", receiving)
    world.run()
    assert {state for state, _ in world.requests()} == {"SYNCHRONIZED"}
    assert each_message_stored_once(store, 3)

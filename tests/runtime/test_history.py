"""One request's life (runtime.history, ``ccbmdm show``): its states with times and reasons,
its messages with their bodies masked, the other nodes' rows, and what to do next; every Error
and retrying row with its reason, the MDM side's included (docs/operating.md)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from case_support import ccbmdm

from ccbmdm.runtime.history import Ambiguous, NotFound, RequestLife, life
from ccbmdm.runtime.lifecycles.lifecycle import MDM_INBOUND_SYNC, USAGE_TRANSACTION
from ccbmdm.runtime.lifecycles.machine import Machine
from ccbmdm.runtime.lifecycles.sync import capture
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.operations import discard, resubmit, status
from ccbmdm.runtime.sim.mdm import usage_schema
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION, migrate
from ccbmdm.runtime.store.sqlite import SqliteStore
from runtime_world import Flaky, Integration
from support import REPO

NAME = "Rejected,Once"  # a personal field's value (the person's name)


@pytest.fixture
def rejected(store: Store, registry: ContractRegistry, package: ModuleType) -> Integration:
    """A person MDM rejects: its sync request goes Pending, Awaiting Acknowledgement, Error."""
    world = Integration(store, registry, package, InProcessTransport(), reject={"0000000050"})
    world.people.change("0000000050", NAME)
    world.run()
    return world


def states(found: RequestLife) -> list[tuple[str, str | None]]:
    return [(step.state, step.reason) for step in found.history]


def test_a_sync_request_reads_pending_awaiting_ack_error_then_its_resubmit(
    rejected: Integration, registry: ContractRegistry
) -> None:
    found = life(rejected.store, "sync_request:1", registry)
    assert (found.kind, found.id, found.key) == ("sync_request", 1, "PERSON 0000000050 to MDM")
    assert (found.state, found.reason, found.final) == ("ERROR", "11001/16021 rejected", False)
    assert states(found) == [
        ("PENDING", None),
        ("AWAITING_ACK", None),
        ("ERROR", "11001/16021 rejected"),
    ]
    times = [step.at for step in found.history]
    assert all(at is not None for at in times) and times == sorted(times)  # type: ignore[type-var]
    # the message sent, and the negative acknowledgement that answered it on CCB's node
    assert [(m.kind, m.node, m.part, m.state) for m in found.messages] == [
        ("outbox", "ccb", "request", "DELIVERED"),
        ("inbox", "ccb", "ack", "PROCESSED"),
    ]
    assert found.messages[1].correlation_id == found.messages[0].message_id
    assert [(a.name, a.command) for a in found.actions] == [
        ("resubmit", ("resubmit", "1")),
        ("discard", ("discard", "1", "--reason", "WHY")),
    ]

    rejected.stub.reject.clear()  # the cause is fixed
    assert resubmit(rejected.monitor, [1]).sent == 1
    rejected.run()
    again = life(rejected.store, "1", registry)  # a bare number: the only request 1
    assert states(again) == [
        ("PENDING", None),
        ("AWAITING_ACK", None),
        ("ERROR", "11001/16021 rejected"),
        ("AWAITING_ACK", None),  # sent again: the reason said why it was in Error
        ("SYNCHRONIZED", None),
    ]
    sent = [m for m in again.messages if m.kind == "outbox"]
    assert len(sent) == 2 and sent[0].message_id != sent[1].message_id  # a new message id
    assert again.final and [a.name for a in again.actions] == ["nothing"]


def test_an_outbox_row_found_by_message_id_with_its_counterpart_on_the_other_node(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000051", "Kept,Apart")
    world.run()
    with store.transaction() as tx:
        ack = tx.fetch_one("SELECT id, message_id FROM outbox WHERE node = 'mdm'")
    assert ack is not None
    found = life(store, str(ack["message_id"]).upper(), registry)  # ids are read in any case
    assert (found.kind, found.id, found.state) == ("outbox", ack["id"], "DELIVERED")
    assert found.key == "mdm -> bridge PERSON_SYNC ack"
    received = [m for m in found.related if m.message_id == str(ack["message_id"])]
    assert ("inbox", "bridge", "PROCESSED") in [(m.kind, m.node, m.state) for m in received]
    # the chain on every node: the request it answers, relayed through the bridge
    assert {m.node for m in found.related} == {"ccb", "bridge", "mdm"}
    assert [m.ref for m in found.messages] == [f"outbox:{ack['id']}"]
    # a message that went through at once: when it was first sent, and where it is now
    assert [(step.state, step.at is None) for step in found.history] == [
        ("SENDING", False),
        ("DELIVERED", True),
    ]
    assert [a.name for a in found.actions] == ["nothing"]
    # the sync request's own message id is the request's, not its outbox row's
    with store.transaction() as tx:
        request = tx.fetch_one("SELECT message_id FROM sync_request WHERE id = 1")
    assert request is not None
    assert life(store, str(request["message_id"])).ref == "sync_request:1"


def test_a_message_retried_after_a_refused_send_tells_its_story(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, Flaky(failures=1))  # MDM refuses once
    world.people.change("0000000054", "Retried,Once")
    world.run()
    with store.transaction() as tx:
        sent = tx.fetch_one("SELECT id FROM outbox WHERE node = 'bridge' AND partner = 'mdm'")
    assert sent is not None
    found = life(store, f"outbox:{sent['id']}")
    assert [(step.state, step.reason) for step in found.history][1:] == [
        ("RETRY_WAIT", "technical: connection refused"),
        ("DELIVERED", None),  # its last error is kept on the row, not as this move's reason
    ]
    assert found.reason == "technical: connection refused" and found.state == "DELIVERED"
    assert [step.state for step in life(store, "sync_request:1").history] == [
        "PENDING",
        "AWAITING_ACK",  # the retry happens under the same message: the request waits
        "SYNCHRONIZED",
    ]


def test_a_personal_field_is_masked_in_a_shown_body_unless_unmasked(
    rejected: Integration, registry: ContractRegistry
) -> None:
    found = life(rejected.store, "outbox:1", registry)
    body = json.loads(found.messages[0].body or "")
    assert found.messages[0].contract == "ccb/PersonSyncRequest"
    assert body["person"]["entity_name"] == "***"
    assert body["person"]["person_id"] == "0000000050"  # not personal: shown
    assert NAME not in json.dumps(found.as_json())
    shown = life(rejected.store, "outbox:1", registry, unmask=True)
    assert json.loads(shown.messages[0].body or "")["person"]["entity_name"] == NAME
    # without the contracts, a body is never shown, only its size
    bare = life(rejected.store, "outbox:1")
    assert bare.messages[0].contract is None and NAME not in (bare.messages[0].body or "")


def test_a_discarded_request_reads_discarded(
    rejected: Integration, registry: ContractRegistry
) -> None:
    discard(rejected.store, 1, "contact merged by hand in MDM")
    found = life(rejected.store, "sync_request:1", registry)
    assert (found.state, found.reads_as) == ("CANCELED", "DISCARDED by an operator")
    assert found.final and found.reason == "contact merged by hand in MDM"
    assert states(found)[-1] == ("CANCELED", "contact merged by hand in MDM")
    assert [a.name for a in found.actions] == ["nothing"]
    assert "DISCARDED by an operator is final" in found.actions[0].explanation


def mdm_request(tx: Transaction, mo: str = "D1-SP", key: str = "1000000001") -> int:
    row = tx.fetch_one(
        f"""INSERT INTO mdm_sync_request (flow, mo, external_key, message_id, state, due_at, created_at)
            VALUES ('SP_SYNC', :mo, :key, :m, 'PENDING', {tx.now}, {tx.now}) RETURNING id""",
        {"mo": mo, "key": key, "m": new_message_id()},
    )
    assert row is not None
    return int(row["id"])


def test_the_mdm_sides_retrying_error_carries_its_reason_in_status_and_show(
    store: Store,
) -> None:
    machine = Machine(store, MDM_INBOUND_SYNC, "mdm_sync_request")
    with store.transaction() as tx:
        told, untold = mdm_request(tx), mdm_request(tx, key="1000000002")
        unresolved = "unresolved: MDM has no D1-SP for CCB key 1000000001"
        assert machine.move(tx, told, "PENDING", "transformed", "unresolved", reason=unresolved)
        # a move to an Error that gives no reason still says which transition led there
        assert machine.move(tx, untold, "PENDING", "transformed", "unresolved")
        # a retry failing the same way keeps the reason it had
        assert machine.move(tx, told, "ERROR_RETRYABLE", "retry", "unresolved")
    entries = [(e.kind, e.id, e.key, e.reason, e.retrying) for e in status(store).errors]
    assert entries == [
        ("mdm_sync_request", told, "D1-SP 1000000001", unresolved, True),
        ("mdm_sync_request", untold, "D1-SP 1000000002", "unresolved (MS4)", True),
    ]
    found = life(store, f"mdm_sync_request:{told}")
    assert states(found) == [("PENDING", None), ("ERROR_RETRYABLE", unresolved)]
    (action,) = found.actions
    assert action.name == "wait" and "retried automatically at" in action.explanation


def test_a_usage_transaction_in_error_reads_with_its_reason(store: Store) -> None:
    usage_schema.migrate(store)
    machine = Machine(store, USAGE_TRANSACTION, "mdm_usage_transaction")
    with store.transaction() as tx:
        row = tx.fetch_one(
            f"""INSERT INTO mdm_usage_transaction (ut_id, external_id, flow, message_id,
                  us_external_id, start_date_time, end_date_time_from, end_date_time_to,
                  bill_condition, date_breaks, return_interval_data, automated_retry, state,
                  due_at, created_at)
                VALUES ('100000000001', '0000000007', 'BATCH_BD', :m, '5000000001',
                        '2027-03-01T00:00:00-05:00', '2027-04-02T00:00:00-04:00',
                        '2027-04-07T00:00:00-04:00', 'D2IM', '[]', FALSE, 'D1YS', 'PENDING',
                        {tx.now}, {tx.now}) RETURNING id""",
            {"m": new_message_id()},
        )
        assert row is not None
        reason = "90000/1201 insufficient data"
        assert machine.move(tx, int(row["id"]), "PENDING", "calculate", "exception", reason=reason)
    found = life(store, f"usage_transaction:{row['id']}")
    assert found.key == "100000000001 for usage request 0000000007"
    assert states(found) == [("PENDING", None), ("ERROR", reason)]
    assert [a.name for a in found.actions] == ["wait"]


def test_a_message_whose_processing_failed_keeps_why(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    stub = world.mdm.handler
    assert stub is not None
    failures = []

    def failing(tx: Transaction, received: Received) -> Any:
        failures.append(received.id)  # in the batch, then on its own (E4)
        raise ValueError("the stand-in MDM fails")

    world.mdm.handler = failing
    world.people.change("0000000052", "Failed,Once")
    world.run()
    found = life(store, f"inbox:{failures[0]}")
    assert found.reason == "ValueError: the stand-in MDM fails"
    assert found.state == "PROCESSING"  # until its lease passes and it is received again


def test_a_request_moved_before_its_moves_were_recorded_shows_where_it_is(
    empty_store: Store,
) -> None:
    migrate(empty_store, MIGRATIONS[:6])  # a store of the version before schema 7
    with empty_store.transaction() as tx:
        capture(tx, "PERSON", ("0000000053",), None)
        tx.execute("UPDATE sync_request SET state = 'SYNCHRONIZED', due_at = NULL")
    assert empty_store.migrate() == SCHEMA_VERSION
    found = life(empty_store, "sync_request:1")
    assert [(step.state, step.at is None) for step in found.history] == [
        ("PENDING", False),  # its creation time is the row's
        ("SYNCHRONIZED", True),  # when it got there was not recorded
    ]


def test_ids_that_name_nothing_or_several_rows(rejected: Integration) -> None:
    with pytest.raises(NotFound, match="no sync_request 99 in this store"):
        life(rejected.store, "sync_request:99")
    with pytest.raises(NotFound, match="no kind 'parcel'"):
        life(rejected.store, "parcel:1")
    with pytest.raises(NotFound, match="is not an id"):
        life(rejected.store, "PERSON-50")
    with pytest.raises(NotFound, match="no request or message with message id"):
        life(rejected.store, new_message_id())
    with rejected.store.transaction() as tx:
        mdm_request(tx)  # an MDM request 1 besides the sync request 1
    with pytest.raises(Ambiguous, match="sync_request:1, mdm_sync_request:1"):
        life(rejected.store, "1")


@pytest.fixture
def on_file(tmp_path: Path, registry: ContractRegistry, package: ModuleType) -> Path:
    """A SQLite store holding a rejected sync request, as a command reads it."""
    path = tmp_path / "runtime.db"
    store = SqliteStore(str(path))
    store.migrate()
    world = Integration(store, registry, package, InProcessTransport(), reject={"0000000050"})
    world.people.change("0000000050", NAME)
    world.run()
    store.close()
    return path


def test_show_prints_states_bodies_related_rows_and_exact_commands(
    on_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ("--store", str(on_file), "--project-dir", str(REPO))
    code, out, err = ccbmdm(capsys, "show", "sync_request:1", *where)
    assert code == 0, err
    assert "sync_request:1  PERSON 0000000050 to MDM  flow PERSON_SYNC" in out
    assert "state: ERROR" in out and "reason: 11001/16021 rejected" in out
    for state in ("PENDING", "AWAITING_ACK", "ERROR"):
        assert f"│ {state} " in out
    assert "outbox:1 ccb -> bridge PERSON_SYNC request: DELIVERED, attempt 1" in out
    assert '"entity_name": "***"' in out and NAME not in out
    assert "on other nodes" in out and "inbox:2" in out
    assert f"ccbmdm resubmit 1 --store {on_file}" in out
    assert f"ccbmdm discard 1 --reason WHY --store {on_file}" in out

    code, out, err = ccbmdm(capsys, "show", "outbox:1", "--unmask", "--format", "json", *where)
    assert code == 0 and "personal data is shown below" in err
    shown = json.loads(out)
    assert shown["ref"] == "outbox:1" and NAME in shown["messages"][0]["body"]


def test_show_of_an_unknown_id_fails_and_changes_nothing(
    on_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = dump(on_file)
    code, out, err = ccbmdm(
        capsys, "show", "usage_request:7", "--store", str(on_file), "--project-dir", str(REPO)
    )
    assert (code, out) == (1, "")
    assert "error: no usage_request 7 in this store" in err
    assert dump(on_file) == before


def dump(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()

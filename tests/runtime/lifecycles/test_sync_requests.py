"""Change capture and the sync request monitor (docs/reliability.md C1-C4, C6, E4; lifecycles §1)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.runtime.lifecycles.lifecycle import SYNC_REQUEST, IllegalTransition
from ccbmdm.runtime.lifecycles.sync import SyncRequestMonitor
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.bodies import original
from ccbmdm.runtime.store.sqlite import SqliteStore
from runtime_world import People, person
from support import OUTBOX, sample

PERSON_REQUEST = "ccb/PersonSyncRequest"


@pytest.fixture
def people(store: Store) -> People:
    return People(store)


@pytest.fixture
def monitor(store: Store, registry: ContractRegistry, people: People) -> SyncRequestMonitor:
    return SyncRequestMonitor(store, registry, people, {"PERSON_SYNC": PERSON_REQUEST})


def requests(store: Store) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        return [
            dict(r)
            for r in tx.fetch(
                "SELECT id, state, reason, initial_snapshot, message_id FROM sync_request ORDER BY id"
            )
        ]


def outbox(store: Store) -> list[dict[str, Any]]:
    with store.transaction() as tx:
        return [
            dict(r)
            for r in tx.fetch(
                f"SELECT message_id, ordering_key, owner_id, payload, state FROM {OUTBOX} ORDER BY o.id"
            )
        ]


def test_c1_many_changes_coalesce_into_one_message_with_the_last_state(
    store: Store, people: People, monitor: SyncRequestMonitor, registry: ContractRegistry
) -> None:
    people.put("0000000001", person("0000000001", "Okafor,Ada"))
    monitor.step()
    with store.transaction() as tx:  # the first request is acknowledged
        tx.execute("UPDATE sync_request SET state = 'SYNCHRONIZED' WHERE id = 1")
    for version in range(100):
        people.put("0000000001", person("0000000001", f"Okafor,Ada {version}"))
    pending = [r for r in requests(store) if r["state"] == "PENDING"]
    assert len(pending) == 1
    assert store.json_value(pending[0]["initial_snapshot"]) in (
        person("0000000001", "Okafor,Ada"),
        json.dumps(person("0000000001", "Okafor,Ada")),
    )
    assert monitor.step().sent == 1
    ((_, message),) = [
        registry.decode(original(row["payload"]), PERSON_REQUEST) for row in outbox(store)[1:]
    ]
    assert message.person.entity_name == "Okafor,Ada 99"  # type: ignore[attr-defined]
    assert message.change_type == "CHANGE"  # type: ignore[attr-defined]
    assert message.entity_version == 101  # type: ignore[attr-defined]


def test_c2_concurrent_changes_leave_one_pending_request(store: Store, people: People) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            People(store).put("0000000002", person("0000000002", f"Name {index}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [r["state"] for r in requests(store)] == ["PENDING"]


def test_c3_a_change_after_the_final_snapshot_starts_a_new_request(
    store: Store, people: People, monitor: SyncRequestMonitor
) -> None:
    people.put("0000000003", person("0000000003", "First"))
    monitor.step()
    people.put("0000000003", person("0000000003", "Second"))
    assert [r["state"] for r in requests(store)] == ["AWAITING_ACK", "PENDING"]
    # The newer request waits while the older is not final (S2): nothing is sent.
    assert monitor.step() == type(monitor.step())()
    assert len(outbox(store)) == 1


def test_c4_a_change_undone_before_the_monitor_runs_is_discarded(
    store: Store, people: People, monitor: SyncRequestMonitor
) -> None:
    people.put("0000000004", person("0000000004", "A"))
    monitor.step()
    with store.transaction() as tx:
        tx.execute("UPDATE sync_request SET state = 'SYNCHRONIZED'")
    people.put("0000000004", person("0000000004", "B"))
    people.put("0000000004", person("0000000004", "A"))
    assert monitor.step().discarded == 1
    assert (
        requests(store)[-1]["state"] == "DISCARDED"
        and requests(store)[-1]["reason"] == "no difference"
    )
    assert len(outbox(store)) == 1


def test_c6_a_rolled_back_change_leaves_no_request(store: Store, people: People) -> None:
    with pytest.raises(RuntimeError):
        people.put("0000000006", person("0000000006", "Rolled"), fail=True)
    assert requests(store) == []


def test_add_and_delete_change_types(
    store: Store, people: People, monitor: SyncRequestMonitor, registry: ContractRegistry
) -> None:
    people.put("0000000007", person("0000000007", "New"))
    monitor.step()
    with store.transaction() as tx:
        tx.execute("UPDATE sync_request SET state = 'SYNCHRONIZED'")
    people.put("0000000007", None)
    monitor.step()
    added, deleted = (
        registry.decode(original(row["payload"]), PERSON_REQUEST)[1] for row in outbox(store)
    )
    assert added.change_type == "ADD" and deleted.change_type == "DELETE"  # type: ignore[attr-defined]
    assert deleted.person is None  # type: ignore[attr-defined]  # a DELETE carries only the keys


def test_e4_a_message_that_cannot_be_built_errs_and_the_batch_goes_on(
    store: Store, people: People, monitor: SyncRequestMonitor
) -> None:
    people.put("0000000008", person("0000000008", "x" * 300))
    people.put("0000000009", person("0000000009", "Fine"))
    result = monitor.step()
    assert (result.sent, result.errors) == (1, 1)
    failed, sent = requests(store)
    assert (
        failed["state"] == "ERROR"
        and "entity_name" in failed["reason"]
        and "254" in failed["reason"]
    )
    assert sent["state"] == "AWAITING_ACK"


def test_the_message_carries_header_and_keys(
    store: Store, people: People, monitor: SyncRequestMonitor, registry: ContractRegistry
) -> None:
    people.put("0000000010", person("0000000010", "Keys"))
    monitor.step()
    (row,) = outbox(store)
    _, message = registry.decode(original(row["payload"]), PERSON_REQUEST)
    header = message.message_header  # type: ignore[attr-defined]
    assert (header.flow, header.source_system, header.target_system) == (
        "PERSON_SYNC",
        "CCB",
        "MDM",
    )
    assert str(row["message_id"]) == header.message_id
    assert message.send_details.pk_value1 == "0000000010"  # type: ignore[attr-defined]
    assert row["ordering_key"] == "PERSON\x1f0000000010\x1fMDM"


def test_the_message_is_sent_at_the_monitors_clock(
    store: Store, people: People, registry: ContractRegistry
) -> None:
    """A frozen clock (a conformance case's) is the sentDateTime: the mappings judge "today"
    by it (PD-F36) and MDM dates a DELETE by it, so a golden cannot depend on the wall clock."""
    frozen = datetime(2027, 3, 20, 10, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=-4)))
    monitor = SyncRequestMonitor(
        store, registry, people, {"PERSON_SYNC": PERSON_REQUEST}, clock=lambda: frozen
    )
    people.put("0000000011", person("0000000011", "Clock"))
    monitor.step()
    (row,) = outbox(store)
    _, message = registry.decode(original(row["payload"]), PERSON_REQUEST)
    sent = message.message_header.sent_date_time  # type: ignore[attr-defined]
    assert sent == datetime(2027, 3, 20, 14, 0, 0, tzinfo=UTC)


def test_illegal_transition_names_machine_state_and_event() -> None:
    with pytest.raises(
        IllegalTransition,
        match="sync request: event 'positive_ack' is not allowed in state SYNCHRONIZED",
    ):
        SYNC_REQUEST.next("SYNCHRONIZED", "positive_ack")


def test_sample_entity_round_trips_through_a_snapshot(registry: ContractRegistry) -> None:
    _, message = registry.decode(sample(PERSON_REQUEST))
    snapshot = message.person.model_dump(mode="json")  # type: ignore[attr-defined]
    assert type(message.person).model_validate(snapshot) == message.person  # type: ignore[attr-defined]


def test_a_step_claims_from_the_due_index_in_order_on_sqlite(
    tmp_path: Path, registry: ContractRegistry
) -> None:
    """The claim takes its batch from the partial index of due Pending requests, in its order:
    SQLite, left to itself, read every Pending request through the index on (state, id) and
    sorted them all for each batch, so an initial load of n entities read n²/batch rows."""
    store = SqliteStore(str(tmp_path / "runtime.db"))
    store.migrate()
    people = People(store)
    for number in range(1, 13):
        people.change(f"{number:010d}", f"Okafor,Ada {number}")
    monitor = SyncRequestMonitor(store, registry, people, {"PERSON_SYNC": PERSON_REQUEST})
    claims: list[str] = []
    store.connection().set_trace_callback(
        lambda sql: claims.append(sql) if "FROM sync_request r" in sql else None
    )
    assert monitor.step(batch=5).sent == 5
    store.connection().set_trace_callback(None)
    (claim,) = claims
    with store.transaction() as tx:
        plan = " | ".join(str(row["detail"]) for row in tx.fetch(f"EXPLAIN QUERY PLAN {claim}"))
    assert "sync_request_due" in plan and "TEMP B-TREE" not in plan, plan
    assert [r["state"] for r in requests(store)] == ["AWAITING_ACK"] * 5 + ["PENDING"] * 7
    store.close()

"""The reference CCB: records saved and captured in one transaction, snapshots derived as the
contracts want them, an initial load, and a synthetic utility whose every entity the bridge maps."""

from __future__ import annotations

from types import ModuleType

import pytest

from ccbmdm.runtime.lifecycles.sync import CCB_SYNC_FLOWS, SyncRequestMonitor
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.mapping import CodeTables, Context
from ccbmdm.runtime.messaging.node import Bridge, Node
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.sim.ccb.records import UnknownEntity
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.synthetic import Plan, generate
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.base import Row
from runtime_world import FAST, FLOWS
from support import REPO

SENDERS = {
    flow.code: flow.part("request").sender for flow in FLOWS if flow.code in CCB_SYNC_FLOWS.values()
}


def monitor(store: Store, registry: ContractRegistry, ccb: CcbSimulator) -> SyncRequestMonitor:
    return SyncRequestMonitor(store, registry, ccb, SENDERS)


def states(store: Store) -> dict[str, int]:
    with store.transaction() as tx:
        rows = tx.fetch("SELECT state, count(*) AS n FROM sync_request GROUP BY state")
    return {r["state"]: int(r["n"]) for r in rows}


def test_a_synthetic_utility_is_captured_sent_and_mapped(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    ccb = CcbSimulator(store)
    customers = generate(ccb, Plan(customers=12, commercial_share=0.25, seed=7))
    assert len(customers) == 12 and any(c.commercial for c in customers)
    with store.transaction() as tx:
        counts = ccb.counts(tx)
    assert counts == {
        "BILL CYCLE": 4,
        "PERSON": 12,
        "SP": 12,
        "SA": 12,
        "METER": 12,
        "MTR CONFIG": 12,
        "SP MTR HIST": 12,
        "ACCOUNT": 12,
    }
    assert states(store) == {"PENDING": 12 * 6 + 4}  # one request per captured entity
    sent = monitor(store, registry, ccb).step(batch=500)
    assert (sent.sent, sent.errors, sent.discarded) == (76, 0, 0)
    # The bridge maps every CCB message into MDM's contract: nothing comes back as a fault.
    transport = InProcessTransport()
    ccb_node = Node("ccb", store, registry, FLOWS, transport, FAST)
    bridge = Node("bridge", store, registry, FLOWS, transport, FAST)
    bridge.handler = Bridge(
        bridge, package.TRANSFORMERS, Context(CodeTables.load(REPO / "mappings" / "tables"))
    )
    transport.register("bridge", bridge.receiver)
    while ccb_node.send_due():
        pass
    while bridge.process_due():
        pass
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT partner, flow, count(*) AS n FROM outbox WHERE node = 'bridge' GROUP BY partner, flow"
        )
    assert {(r["partner"], r["flow"]): int(r["n"]) for r in rows} == {
        ("mdm", "BILL_CYCLE_SYNC"): 4,
        ("mdm", "PERSON_SYNC"): 12,
        ("mdm", "SP_SYNC"): 12,
        ("mdm", "SA_SYNC"): 12,
        ("mdm", "METER_SYNC"): 12,
        ("mdm", "METER_CONFIG_SYNC"): 12,
        ("mdm", "SP_METER_HISTORY_SYNC"): 12,
    }


def test_a_change_is_captured_with_the_record_and_compared_with_the_first_snapshot(
    store: Store, registry: ContractRegistry
) -> None:
    ccb = CcbSimulator(store)
    (customer,) = generate(ccb, Plan(customers=1, seed=1))
    monitor(store, registry, ccb).step(batch=500)
    with store.transaction() as tx:
        person = ccb.record(tx, "PERSON", (customer.person_id,))
        assert person is not None
        ccb.save(tx, "PERSON", {**person, "entity_name": "Renamed,Person"})
        ccb.save(tx, "PERSON", {**person, "entity_name": "Renamed Again,Person"})
        snapshot = ccb.read(tx, "PERSON", (customer.person_id,))
    assert snapshot is not None and snapshot["entity_name"] == "Renamed Again,Person"
    assert states(store) == {"AWAITING_ACK": 6 + 4, "PENDING": 1}  # the two changes coalesced


def test_an_sa_snapshot_takes_its_zone_and_customer_and_is_empty_until_active(
    store: Store,
) -> None:
    ccb = CcbSimulator(store)
    (customer,) = generate(ccb, Plan(customers=1, seed=2))
    with store.transaction() as tx:
        snapshot = ccb.read(tx, "SA", (customer.sa_id,))
        assert snapshot is not None
        assert (snapshot["time_zone"], snapshot["person_id"]) == (
            "America/New_York",
            customer.person_id,
        )
        record = ccb.record(tx, "SA", (customer.sa_id,))
        assert record is not None
        ccb.save(tx, "SA", {**record, "sa_status": "PENDSTART"})
        assert ccb.read(tx, "SA", (customer.sa_id,)) is None  # PD-F24: nothing to send yet
        ccb.save(tx, "SA", {**record, "sa_type": "STREETLIGHT"})
        assert ccb.read(tx, "SA", (customer.sa_id,)) is None  # PD-F03: no bill determinants


def test_sps_in_two_zones_make_the_sa_unbuildable(store: Store, registry: ContractRegistry) -> None:
    ccb = CcbSimulator(store)
    first, second = generate(ccb, Plan(customers=2, seed=3))
    with store.transaction() as tx:
        sp = ccb.record(tx, "SP", (second.sp_id,))
        sa = ccb.record(tx, "SA", (first.sa_id,))
        assert sp is not None and sa is not None
        ccb.save(tx, "SP", {**sp, "time_zone": "America/Chicago"})
        link = {"sp_id": second.sp_id, "start_date_time": sa["sp_links"][0]["start_date_time"]}
        ccb.save(tx, "SA", {**sa, "sp_links": [*sa["sp_links"], link]})
    monitor(store, registry, ccb).step(batch=500)
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT state, reason FROM sync_request WHERE mo = 'SA' AND pk = :pk",
            {"pk": first.sa_id},
        )
    assert row is not None and row["state"] == "ERROR"
    assert "different time zones" in row["reason"]


def test_initial_load_captures_every_entity_with_the_flag(
    store: Store, registry: ContractRegistry
) -> None:
    ccb = CcbSimulator(store)
    generate(ccb, Plan(customers=3, seed=4))
    monitor(store, registry, ccb).step(batch=500)  # the changes went out once already
    seen: list[int] = []
    assert ccb.initial_load(batch=5, progress=seen.append) == 3 * 6 + 4
    assert sum(seen) == 22 and max(seen) == 5
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT initial_load, state FROM sync_request WHERE initial_load = :yes", {"yes": True}
        )
    assert len(rows) == 22 and {r["state"] for r in rows} == {"PENDING"}


def test_an_unknown_maintenance_object_is_named(store: Store) -> None:
    ccb = CcbSimulator(store)
    with (
        store.transaction() as tx,
        pytest.raises(UnknownEntity, match="'PREMISE' is not one CCB synchronizes"),
    ):
        ccb.save(tx, "PREMISE", {"premise_id": "1"})


def test_converted_data_is_sent_by_the_initial_load_alone(store: Store) -> None:
    ccb = CcbSimulator(store)
    generate(ccb, Plan(customers=2, seed=5), converted=True)
    assert states(store) == {}  # a conversion captures nothing
    assert ccb.initial_load() == 2 * 6 + 4
    with store.transaction() as tx:
        rows = tx.fetch("SELECT initial_load FROM sync_request")
    assert len(rows) == 16 and all(r["initial_load"] for r in rows)


def test_a_converted_utility_holds_the_same_records_as_one_entered_change_by_change(
    store: Store,
) -> None:
    """A conversion writes a transaction's records with one statement; CCB then holds what
    saving them one at a time, captured, leaves."""

    def held() -> tuple[list[Row], list[Row]]:
        with store.transaction() as tx:
            return (
                tx.fetch("SELECT mo, pk, ref, data FROM ccb_entity ORDER BY mo, pk"),
                tx.fetch("SELECT * FROM ccb_account ORDER BY account_id"),
            )

    generate(CcbSimulator(store), Plan(customers=3, seed=5), converted=True)
    records, accounts = held()
    assert len(records) == 3 * 6 + 4 and len(accounts) == 3
    with store.transaction() as tx:
        tx.execute("DELETE FROM ccb_entity")
        tx.execute("DELETE FROM ccb_account")
    generate(CcbSimulator(store), Plan(customers=3, seed=5), converted=False)
    assert held() == (records, accounts)
    assert len(states(store)) > 0  # entered change by change: captured

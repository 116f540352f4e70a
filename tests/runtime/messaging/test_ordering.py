"""Per-entity order after a business reject (docs/reliability.md O2): hold, and supersede."""

from __future__ import annotations

from types import ModuleType

from ccbmdm.runtime.lifecycles.sync import SyncRequestMonitor
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.observe import overview
from ccbmdm.runtime.operations import discard, resubmit
from ccbmdm.runtime.store import Store
from runtime_world import Integration


def world_with_rejected_v1(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> Integration:
    world = Integration(store, registry, package, InProcessTransport(), reject={"0000000070"})
    world.people.change("0000000070", "Version,One")
    world.run()
    world.stub.reject.clear()
    world.people.change("0000000070", "Version,Two")
    return world


def test_hold_v2_waits_until_v1_is_resolved_and_is_applied_after_it(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = world_with_rejected_v1(store, registry, package)
    world.run()
    assert [state for state, _ in world.requests()] == ["ERROR", "PENDING"]  # v2 waits
    assert any(entry.kind == "sync_request" for entry in overview(store).errors)  # the alert
    resubmit(world.monitor, [1])
    world.run()
    assert [state for state, _ in world.requests()] == ["SYNCHRONIZED", "SYNCHRONIZED"]
    # The resubmitted v1 re-takes the final snapshot (v2's state, version 2); v2's own message
    # then carries version 2 again and changes nothing: never v1's state after v2's.
    assert world.stub.applied["0000000070"] == (2, "Version,Two")
    assert world.stub.applications == 1


def test_hold_v2_goes_once_v1_is_discarded(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = world_with_rejected_v1(store, registry, package)
    discard(store, 1, "fixed in MDM by hand")
    world.run()
    assert [state for state, _ in world.requests()] == ["CANCELED", "SYNCHRONIZED"]


def test_supersede_replaces_v1_and_v2_carries_its_initial_snapshot(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = world_with_rejected_v1(store, registry, package)
    world.monitor = SyncRequestMonitor(
        store,
        registry,
        world.people,
        {"PERSON_SYNC": "ccb/PersonSyncRequest"},
        error_policies={"PERSON_SYNC": "supersede"},
    )
    world.run()
    assert world.requests() == [
        ("SUPERSEDED", "superseded by a newer request"),
        ("SYNCHRONIZED", None),
    ]
    with store.transaction() as tx:
        (row,) = tx.fetch("SELECT initial_snapshot FROM sync_request WHERE id = 2")
    assert store.json_value(row["initial_snapshot"]) in (
        None,
        "null",
    )  # v1's: the person did not exist
    assert world.stub.applied["0000000070"] == (2, "Version,Two")

"""What the bridge relays keeps the ids and ordering key of what it maps, and a relayed
message it cannot deliver is answered to its originator (docs/reliability.md §2.4)."""

from __future__ import annotations

from types import ModuleType

from ccbmdm.runtime.contracts import ContractRegistry
from ccbmdm.runtime.store import Store
from runtime_world import Flaky, Integration


def test_relayed_sync_requests_keep_the_id_and_the_ordering_key(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, Flaky(0))
    world.people.change("0000000090", "Relay,Kept")
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)]
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT node, partner, message_id, ordering_key, owner_type FROM outbox "
            "WHERE part = 'request' ORDER BY id"
        )
    sent, relayed = (
        (r["node"], r["partner"], str(r["message_id"]), r["ordering_key"]) for r in rows
    )
    assert sent[:2] == ("ccb", "bridge") and relayed[:2] == ("bridge", "mdm")
    assert relayed[2:] == sent[2:]  # the same message id, the same ordering key
    assert sent[3] == "PERSON\x1f0000000090\x1fMDM"
    assert rows[1]["owner_type"] == "relay"


def test_a_relayed_message_that_cannot_be_delivered_is_answered_with_1401(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, Flaky(1000))  # MDM never answers
    world.people.change("0000000091", "Never,Reached")
    world.run()
    ((state, reason),) = world.requests()
    assert state == "ERROR"
    assert reason is not None and reason.startswith("90000/1401 not delivered: technical:")
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT state, attempt FROM outbox WHERE node = 'bridge' AND partner = 'mdm'"
        )
    assert row is not None and (row["state"], row["attempt"]) == ("ERROR", 4)
    assert world.stub.applications == 0

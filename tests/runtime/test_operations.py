"""Operating the runtime: status, resubmit and discard (docs/reliability.md E2, E3; docs/lifecycles.md S10, S11)."""

from __future__ import annotations

from types import ModuleType

import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.operations import NotInError, discard, resubmit, status
from ccbmdm.runtime.store import Store
from runtime_world import Integration


@pytest.fixture
def rejected(store: Store, registry: ContractRegistry, package: ModuleType) -> Integration:
    """A person MDM rejects: its request ends in Error."""
    world = Integration(store, registry, package, InProcessTransport(), reject={"0000000050"})
    world.people.change("0000000050", "Rejected,Once")
    world.run()
    assert [state for state, _ in world.requests()] == ["ERROR"]
    return world


def test_e2_a_business_reject_waits_for_the_operator_then_resubmit_applies_once(
    rejected: Integration,
) -> None:
    rejected.stub.reject.clear()  # the cause is fixed
    rejected.run()
    assert [state for state, _ in rejected.requests()] == ["ERROR"]  # no automatic retry
    assert resubmit(rejected.monitor).sent == 1
    rejected.run()
    # the reason said why it was in Error: synchronized, it has none
    assert rejected.requests() == [("SYNCHRONIZED", None)]
    assert rejected.stub.applications == 1
    with rejected.store.transaction() as tx:
        messages = tx.fetch("SELECT DISTINCT message_id FROM outbox WHERE node = 'ccb'")
    assert len(messages) == 2  # a new message id, the same sync request


def test_e3_resubmit_pressed_twice_sends_once(rejected: Integration) -> None:
    assert resubmit(rejected.monitor, [1]).sent == 1
    assert resubmit(rejected.monitor, [1]).sent == 0


def test_discard_needs_a_request_in_error_and_a_reason(rejected: Integration) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        discard(rejected.store, 1, " ")
    discard(rejected.store, 1, "contact merged by hand in MDM")
    assert rejected.requests() == [("CANCELED", "contact merged by hand in MDM")]
    with pytest.raises(
        NotInError,
        match="sync request 1 is DISCARDED by an operator; only a request in ERROR can be discarded",
    ):
        discard(rejected.store, 1, "again")


def test_status_counts_states_and_lists_errors(rejected: Integration) -> None:
    rejected.people.change("0000000051", "Waiting,Person")
    current = status(rejected.store)
    assert current.counts[("sync_request", "ERROR")] == 1
    assert current.counts[("sync_request", "PENDING")] == 1
    assert current.counts[("outbox", "ccb DELIVERED")] == 1
    assert current.oldest_pending is not None and 0 <= (current.oldest_pending_age_s() or 0) < 600
    (entry,) = current.errors
    assert (entry.kind, entry.id, entry.key) == ("sync_request", 1, "PERSON 0000000050")
    assert entry.reason == "11001/16021 rejected"

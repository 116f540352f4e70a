"""PERSON_SYNC through the runtime: capture, monitor, outbox, bridge mapping, a receiving MDM
stand-in, and the acknowledgement back to Synchronized — on both stores, in process."""

from __future__ import annotations

from types import ModuleType

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messaging.transport import InProcessTransport, Posting
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.bodies import original
from runtime_world import Flaky, Integration
from support import OUTBOX

BRIDGE_TO_MDM = f"SELECT b.payload FROM {OUTBOX} WHERE node = 'bridge' AND partner = 'mdm'"


def test_a_change_reaches_mdm_and_ends_synchronized(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0001234567", "Okafor,Adaeze")
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)]
    assert world.stub.applied == {"0001234567": (1, "Okafor,Adaeze")}
    with store.transaction() as tx:
        states = {(r["node"], r["state"]) for r in tx.fetch("SELECT node, state FROM outbox")}
        inbox = {r["state"] for r in tx.fetch("SELECT state FROM inbox")}
    assert states == {("ccb", "DELIVERED"), ("bridge", "DELIVERED"), ("mdm", "DELIVERED")}
    assert inbox == {"PROCESSED"}


def test_a_negative_acknowledgement_puts_the_request_in_error(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport(), reject={"0000000042"})
    world.people.change("0000000042", "Rejected,Person")
    world.run()
    # MDM 11302/11406 has a row in the error-code table: CCB sees its own message.
    assert world.requests() == [("ERROR", "11001/16021 rejected")]


def test_a_code_table_miss_at_the_bridge_comes_back_as_a_fault(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000043", "Nowhere,Person", country="XXA")
    world.run()
    ((state, reason),) = world.requests()
    assert state == "ERROR"
    assert reason is not None and reason.startswith(
        "90000/1101 code table OUCCB2_OUMDM2_Country has no row for ***"  # an address's
    )
    assert world.stub.applications == 0


def test_technical_failures_are_retried_with_the_same_message(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, Flaky(failures=2))
    world.people.change("0000000044", "Patient,Person")
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)]
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT attempt, state, last_error FROM outbox WHERE node = 'bridge' AND partner = 'mdm'"
        )
    assert (row["attempt"], row["state"]) == (3, "DELIVERED")
    assert "connection refused" in row["last_error"]


def test_attempts_used_up_end_in_error(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, Flaky(failures=100))
    world.people.change("0000000045", "Unreachable,Person")
    world.run()
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT attempt, state FROM outbox WHERE node = 'bridge' AND partner = 'mdm'"
        )
    assert (row["attempt"], row["state"]) == (4, "ERROR")


def test_a_redelivered_message_is_applied_once(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000046", "Twice,Person")
    world.run()
    with store.transaction() as tx:
        (row,) = tx.fetch(BRIDGE_TO_MDM)
    again = world.mdm.receiver.receive("bridge", "person-sync", "request", original(row["payload"]))
    assert again.status == 200  # the recorded outcome, no second processing
    world.run()
    assert world.stub.applications == 1


def test_an_invalid_message_is_refused_with_a_fault(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    response = world.bridge.receiver.receive("ccb", "person-sync", "request", b"<PersonSyncRequest")
    assert response.status == 400
    _, fault = registry.decode(response.body)
    info = fault.result.exception_info[0]  # type: ignore[attr-defined]
    assert (info.message_category, info.message_number) == (90000, 1001)
    with store.transaction() as tx:
        assert tx.fetch("SELECT id FROM inbox") == []  # nothing stored


def test_a_batch_mixing_new_and_repeated_messages_answers_each_rightly(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """Repeats among new messages (a sender retrying part of a batch): each new one is stored
    and answered 202, each repeat answered 200 with its recorded outcome, none stored twice."""
    transport = InProcessTransport()
    # the bridge's processing leaves what it mapped unsent, for this test to post by hand
    transport.delivers_in_transaction = False
    world = Integration(store, registry, package, transport)
    world.people.change("0000000047", "First,Person")
    world.run()
    with store.transaction() as tx:
        (sent,) = tx.fetch(BRIDGE_TO_MDM)
        (stored,) = tx.fetch("SELECT outcome_message_id FROM inbox WHERE node = 'mdm'")
    world.people.change("0000000048", "Second,Person")
    world.monitor.step()
    world.ccb.send_due()
    world.bridge.process_due()
    with store.transaction() as tx:
        (fresh,) = tx.fetch(BRIDGE_TO_MDM + " AND state = 'PENDING'")
    postings = [
        Posting("person-sync", "request", original(fresh["payload"])),
        Posting("person-sync", "request", original(sent["payload"])),
    ]
    new, repeat = world.mdm.receiver.receive_many("bridge", postings)
    assert (new.status, repeat.status) == (202, 200)
    _, receipt = registry.decode(repeat.body)
    assert receipt.message_id == str(stored["outcome_message_id"])  # type: ignore[attr-defined]
    with store.transaction() as tx:
        (row,) = tx.fetch("SELECT count(*) AS n FROM inbox WHERE node = 'mdm'")
    assert row["n"] == 2
    world.run()
    assert world.stub.applications == 2
    assert [state for state, _ in world.requests()] == ["SYNCHRONIZED", "SYNCHRONIZED"]


def test_a_receipt_is_what_the_receipt_contract_encodes(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """Receipts are written from the contract encoder's bytes around the id: the same bytes,
    naming the message, or for a repeat the outcome recorded with it."""
    receiver = Integration(store, registry, package, InProcessTransport()).mdm.receiver
    contract = registry["common/Receipt"]
    message_id, outcome = new_message_id(), new_message_id()
    answers = {
        message_id: receiver.receipt(message_id, None),
        outcome: receiver.receipt(message_id, outcome),
    }
    for named, answered in answers.items():
        assert answered == contract.encode(contract.model.model_validate({"message_id": named}))
        assert registry.decode_afresh(answered)[1].message_id == named  # type: ignore[attr-defined]

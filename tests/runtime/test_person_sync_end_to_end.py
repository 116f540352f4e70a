"""PERSON_SYNC through the runtime: capture, monitor, outbox, bridge mapping, a receiving MDM
stand-in, and the acknowledgement back to Synchronized — on both stores, in process."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest

from ccbmdm.codegen.catalogue import load_catalogue
from ccbmdm.codegen.loader import load_package
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.contracts import ContractRegistry
from ccbmdm.runtime.delivery import DeliverySettings, Received, new_message_id
from ccbmdm.runtime.mapping import CodeTables, Context
from ccbmdm.runtime.node import Bridge, Node, run_until_quiet
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.sync import Acknowledgements, SyncRequestMonitor, capture
from ccbmdm.runtime.transport import InProcessTransport, Response, TransportError
from support import REPO

FLOWS = load_catalogue(REPO / "contracts" / "flows.yaml")
FAST = DeliverySettings(lease_s=2, backoff_base_s=0.0, backoff_factor=2, max_attempts=4)


class People:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS test_person (id text PRIMARY KEY, data text NOT NULL)"
            )

    def read(self, tx: Transaction, mo: str, key: tuple[str, ...]) -> Mapping[str, Any] | None:
        row = tx.fetch_one("SELECT data FROM test_person WHERE id = :id", {"id": key[0]})
        return None if row is None else json.loads(row["data"])

    def change(self, person_id: str, name: str, country: str = "USA") -> None:
        data = {
            "person_id": person_id,
            "person_or_business": "P",
            "entity_name": name,
            "language": "ENG",
            "address": {
                "address1": "1 Main St",
                "city": "Quincy",
                "postal": "02169",
                "country": country,
            },
        }
        with self.store.transaction() as tx:
            before = self.read(tx, "PERSON", (person_id,))
            tx.execute(
                "INSERT INTO test_person (id, data) VALUES (:id, :data) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                {"id": person_id, "data": json.dumps(data)},
            )
            capture(tx, "PERSON", (person_id,), before)


class StubMdm:
    """MDM's stand-in: applies each contact once per entity version and acknowledges it."""

    def __init__(self, node: Node, reject: set[str] | None = None) -> None:
        self.node = node
        self.applied: dict[str, tuple[int, str]] = {}
        self.applications = 0
        self.reject = reject or set()

    def __call__(self, tx: Transaction, received: Received) -> str | None:
        _, request = self.node.contracts.decode(received.payload)
        key = request.external_pk_value1  # type: ignore[attr-defined]
        version = request.entity_version  # type: ignore[attr-defined]
        has_error = key in self.reject
        if not has_error and version > self.applied.get(key, (0, ""))[0]:
            self.applied[key] = (version, request.contact.name)  # type: ignore[attr-defined]
            self.applications += 1
        ack = self.node.contracts["mdm/SyncAcknowledgement"]
        message_id = new_message_id()
        message = ack.model.model_validate(
            {
                "message_header": {
                    "message_id": message_id,
                    "correlation_id": request.message_header.message_id,  # type: ignore[attr-defined]
                    "flow": received.flow,
                    "source_system": "MDM",
                    "target_system": "CCB",
                    "sent_date_time": datetime.now(UTC).replace(microsecond=0),
                    "schema_version": "v1",
                },
                "external_reference_id": request.external_reference_id,  # type: ignore[attr-defined]
                "result": {
                    "has_error": has_error,
                    "exception_info": [
                        {"message_category": 11302, "message_number": 11406, "comments": "rejected"}
                    ]
                    if has_error
                    else [],
                    "external_ids": []
                    if has_error
                    else [{"entity": "D1-CONTACT", "external_pk1": f"C-{key[-6:]}"}],
                },
            }
        )
        self.node.outbox.enqueue(
            tx, "bridge", received.flow, "ack", message_id, ack.encode(message)
        )
        return message_id


class Flaky(InProcessTransport):
    """Refuses the first ``failures`` posts to MDM, as a network would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def post(self, sender: str, partner: str, flow: str, part: str, body: bytes) -> Response:
        if partner == "mdm" and self.failures > 0:
            self.failures -= 1
            raise TransportError("connection refused")
        return super().post(sender, partner, flow, part, body)


class Integration:
    def __init__(
        self,
        store: Store,
        registry: ContractRegistry,
        package: ModuleType,
        transport: InProcessTransport,
        reject: set[str] | None = None,
    ) -> None:
        self.store = store
        self.people = People(store)
        context = Context(CodeTables.load(REPO / "mappings" / "tables"))
        self.ccb = Node("ccb", store, registry, FLOWS, transport, FAST)
        self.bridge = Node("bridge", store, registry, FLOWS, transport, FAST)
        self.mdm = Node("mdm", store, registry, FLOWS, transport, FAST)
        self.ccb.handler = Acknowledgements(registry, self.ccb.outbox)
        self.bridge.handler = Bridge(self.bridge, package.TRANSFORMERS, context)
        self.stub = StubMdm(self.mdm, reject)
        self.mdm.handler = self.stub
        for node in (self.ccb, self.bridge, self.mdm):
            transport.register(node.name, node.receiver)
        self.monitor = SyncRequestMonitor(
            store, registry, self.people, {"PERSON_SYNC": "ccb/PersonSyncRequest"}
        )

    def run(self) -> int:
        steps = [lambda: sum(self.monitor.step().__dict__.values())]
        for node in (self.ccb, self.bridge, self.mdm):
            steps += [node.send_due, node.process_due]
        return run_until_quiet(steps)

    def requests(self) -> list[tuple[str, str | None]]:
        with self.store.transaction() as tx:
            return [
                (r["state"], r["reason"])
                for r in tx.fetch("SELECT state, reason FROM sync_request ORDER BY id")
            ]


@pytest.fixture(scope="module")
def package() -> ModuleType:
    return load_package(Project.load(REPO))


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
        "90000/1101 code table OUCCB2_OUMDM2_Country has no row for 'XXA'"
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
        (row,) = tx.fetch("SELECT payload FROM outbox WHERE node = 'bridge' AND partner = 'mdm'")
    again = world.mdm.receiver.receive("bridge", "person-sync", "request", bytes(row["payload"]))
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

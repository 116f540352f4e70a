"""A small integration for runtime tests: a CCB person table with capture, the three nodes on
one store, the bridge with the reference mappings, and a stand-in MDM that applies and
acknowledges."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ccbmdm.codegen.catalogue import Flow, load_catalogue
from ccbmdm.runtime.lifecycles.sync import Acknowledgements, SyncRequestMonitor, capture
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import message_header, new_message_id
from ccbmdm.runtime.messages.mapping import CodeTables, Context
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import DeliverySettings, Received
from ccbmdm.runtime.messaging.node import Bridge, Node, run_until_quiet
from ccbmdm.runtime.messaging.transport import (
    Answer,
    InProcessTransport,
    Posting,
    Response,
    TransportError,
)
from ccbmdm.runtime.store import Store, StoreUnavailable, Transaction
from support import REPO

if TYPE_CHECKING:
    from ccbmdm.runtime.assembly import Runtime

FLOWS = load_catalogue(REPO / "contracts" / "flows.yaml")
# no retry window: a message is given up as soon as its attempts are used
FAST = DeliverySettings(
    lease_s=2, backoff_base_s=0.0, backoff_factor=2, max_attempts=4, retry_window_s=0
)


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

    def read_many(
        self, tx: Transaction, mo: str, keys: Sequence[tuple[str, ...]]
    ) -> list[Mapping[str, Any] | None]:
        """The people of a batch in one statement (a ``BatchSnapshotReader``)."""
        ids = {f"id{i}": key[0] for i, key in enumerate(keys)}
        listed = ", ".join(f":{name}" for name in ids)
        found = {
            row["id"]: json.loads(row["data"])
            for row in tx.fetch(f"SELECT id, data FROM test_person WHERE id IN ({listed})", ids)
        }
        return [found.get(key[0]) for key in keys]

    def change(self, person_id: str, name: str, country: str = "USA") -> None:
        """A person with an address, saved and captured."""
        address = {"address1": "1 Main St", "city": "Quincy", "postal": "02169", "country": country}
        self.put(person_id, person(person_id, name, address=address))

    def put(self, person_id: str, data: Mapping[str, Any] | None, *, fail: bool = False) -> None:
        """Save (None: delete) a person and capture the change in the same transaction;
        ``fail`` makes the business transaction fail after capturing."""
        with self.store.transaction() as tx:
            before = self.read(tx, "PERSON", (person_id,))
            if data is None:
                tx.execute("DELETE FROM test_person WHERE id = :id", {"id": person_id})
            else:
                tx.execute(
                    "INSERT INTO test_person (id, data) VALUES (:id, :data) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                    {"id": person_id, "data": json.dumps(data)},
                )
            capture(tx, "PERSON", (person_id,), before)
            if fail:
                raise RuntimeError("the business transaction fails after capturing")


def person(person_id: str, name: str, **extra: Any) -> dict[str, Any]:
    """A person snapshot, in the JSON form of the PersonSyncRequest's person element."""
    return {
        "person_id": person_id,
        "person_or_business": "P",
        "entity_name": name,
        "language": "ENG",
        **extra,
    }


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
                "message_header": message_header(
                    received.flow,
                    "MDM",
                    "CCB",
                    message_id=message_id,
                    correlation_id=request.message_header.message_id,  # type: ignore[attr-defined]
                ),
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


class Unreachable:
    """A store whose database cannot be reached (refused, or lost and not back)."""

    dialect, now, now_plus = "postgres", "now()", "now()"
    where = "PostgreSQL at postgresql://ccbmdm:***@db.example/integration"

    def transaction(self) -> Any:
        raise StoreUnavailable(f"cannot connect to {self.where} (connection refused)", self.where)


def expire(store: Store, table: str, row_id: int) -> None:
    """Age a lease as if its holder had died an hour ago."""
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE {table} SET due_at = {store.now_plus} WHERE id = :id",
            {"id": row_id, "seconds": -3600},
        )


class Flaky(InProcessTransport):
    """Refuses the first ``failures`` posts to MDM, as a network would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        if partner != "mdm":
            return super().post_many(sender, partner, postings)
        refused = min(self.failures, len(postings))
        self.failures -= refused
        answers: list[Answer] = [TransportError("connection refused")] * refused
        return answers + super().post_many(sender, partner, postings[refused:])


class Integration:
    def __init__(
        self,
        store: Store,
        registry: ContractRegistry,
        package: ModuleType,
        transport: InProcessTransport,
        reject: set[str] | None = None,
        batch: int = FAST.batch,
        settings: DeliverySettings = FAST,
    ) -> None:
        self.store = store
        self.people = People(store)
        self.batch = batch
        context = Context(CodeTables.load(REPO / "mappings" / "tables"))
        settings = dataclasses.replace(settings, batch=batch)
        self.ccb = Node("ccb", store, registry, FLOWS, transport, settings)
        self.bridge = Node("bridge", store, registry, FLOWS, transport, settings)
        self.mdm = Node("mdm", store, registry, FLOWS, transport, settings)
        self.ccb.handler = Acknowledgements(registry, self.ccb.outbox)
        self.bridge.handler = Bridge(self.bridge, package.TRANSFORMERS, context)
        self.stub = StubMdm(self.mdm, reject)
        self.mdm.handler = self.stub
        for node in (self.ccb, self.bridge, self.mdm):
            transport.register(node.name, node.receiver)
        self.monitor = SyncRequestMonitor(
            store, registry, self.people, {"PERSON_SYNC": "ccb/PersonSyncRequest"}
        )

    def run(self, rounds: int = 100) -> int:
        """Run every step until all is quiet; ``rounds`` bounds it (raise it for big loads)."""
        steps = [lambda: sum(self.monitor.step(self.batch).__dict__.values())]
        for node in (self.ccb, self.bridge, self.mdm):
            steps += [node.rescue_due, node.send_due, node.process_due]
        return run_until_quiet(steps, rounds)

    def requests(self) -> list[tuple[str, str | None]]:
        with self.store.transaction() as tx:
            return [
                (r["state"], r["reason"])
                for r in tx.fetch("SELECT state, reason FROM sync_request ORDER BY id")
            ]


def claim_all(dsn: str) -> list[int]:
    """A worker process: claim outbox batches until nothing is claimable; the ids it claimed.

    It lives in an importable module so that spawned processes can run it."""
    from ccbmdm.runtime.messaging.delivery import DeliverySettings, Outbox
    from ccbmdm.runtime.store import open_store

    store = open_store(dsn)
    outbox = Outbox(store, "ccb", DeliverySettings(lease_s=600, batch=50))
    claimed: list[int] = []
    while batch := outbox.claim():
        claimed += [claim.id for claim in batch]
    store.close()
    return claimed


class PeopleSystem(People):
    """The test CCB behind a hosted ``ccb`` node: its people are the snapshots' source."""

    def __init__(self, store: Store, node: Node) -> None:
        super().__init__(store)
        self.node = node

    def handle(self, tx: Transaction, received: Received) -> str | None:
        return None  # this CCB receives nothing but acknowledgements, which the runtime handles

    def answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        return self.node.receiver.fault(None, flow.code, 1002, "this CCB answers no calls", 400)

    def steps(self) -> Sequence[Callable[[], int]]:
        return ()


class MdmSystem:
    """The test MDM behind a hosted ``mdm`` node: applies and acknowledges (StubMdm)."""

    def __init__(self, node: Node, reject: set[str] | None = None) -> None:
        self.node = node
        self.stub = StubMdm(node, reject)

    def handle(self, tx: Transaction, received: Received) -> str | None:
        return self.stub(tx, received)

    def answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        return self.node.receiver.fault(None, flow.code, 1301, "no usage here", 400)

    def steps(self) -> Sequence[Callable[[], int]]:
        return ()


def ccb_system(runtime: Runtime, node: str) -> PeopleSystem:
    """Entry point for a runtime configuration: ``runtime_world:ccb_system``."""
    return PeopleSystem(runtime.store, runtime.nodes[node])


def mdm_system(runtime: Runtime, node: str) -> MdmSystem:
    """Entry point for a runtime configuration: ``runtime_world:mdm_system``; persons whose
    id ends in 13 are rejected, so that tests can resubmit."""
    people = {f"{index:010d}" for index in range(13, 10_000, 100)}
    return MdmSystem(runtime.nodes[node], people)


class ObservedMdm(MdmSystem):
    """The test MDM with a monitor of its own that shows which processes run workers: each one
    that runs it creates a file named by its pid in the folder CCBMDM_TEST_WORKERS names. A
    process whose pid is written in the file ``stall`` there never returns from it (a system
    stuck in a call), and shows it with a file ``<pid>.stalled``. While a file ``stall-calls``
    is there, a synchronous call never returns either (``calls.stalled`` shows it has begun)."""

    def __init__(self, node: Node) -> None:
        super().__init__(node)
        self.folder = Path(os.environ["CCBMDM_TEST_WORKERS"])
        self.seen = False

    def steps(self) -> Sequence[Callable[[], int]]:
        return (self.observe,)

    def observe(self) -> int:
        pid = os.getpid()
        if not self.seen:
            (self.folder / str(pid)).touch()
            self.seen = True
        stall = self.folder / "stall"
        if stall.exists() and str(pid) in stall.read_text().split():
            (self.folder / f"{pid}.stalled").touch()
            threading.Event().wait()  # signals are handled; the step never returns
        return 0

    def answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        if (self.folder / "stall-calls").exists():
            (self.folder / "calls.stalled").touch()
            threading.Event().wait()
        return super().answer(sender, flow, request)


def observed_mdm_system(runtime: Runtime, node: str) -> ObservedMdm:
    """Entry point for a runtime configuration: ``runtime_world:observed_mdm_system``."""
    return ObservedMdm(runtime.nodes[node])

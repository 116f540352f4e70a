"""The reliability harness (docs/reliability.md §3.1): a CCB source that logs every committed change, a
durable MDM stand-in, a log of what each receiver saw, a history of every outbox and sync request
transition, worker processes that can be killed, and the checker that turns all of it into counts.

Everything a check needs is written to the store in the transaction it describes, so it survives
a SIGKILL of whoever wrote it. Process targets live here so that spawned processes can import them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.context import SpawnContext, SpawnProcess
from pathlib import Path
from types import ModuleType
from typing import Any

from ccbmdm.runtime.lifecycles.sync import Acknowledgements, SyncRequestMonitor, capture
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.mapping import CodeTables, Context
from ccbmdm.runtime.messaging.delivery import DeliverySettings, Received
from ccbmdm.runtime.messaging.node import Bridge, Node
from ccbmdm.runtime.messaging.transport import Endpoint, InProcessTransport, Posting, Response
from ccbmdm.runtime.store import Store, Transaction, open_store
from ccbmdm.runtime.store.sqlite import SqliteStore
from ccbmdm.runtime.worker import Step, Worker
from runtime_world import FLOWS, People, StubMdm, person
from support import REPO, pg_dsn

# docs/reliability.md §3.1: 2 s lease, 200 ms poll interval, backoff base 50 ms and factor 2; a
# retry window of 2 s (a message is given up once its attempts are used and 2 s have passed).
SETTINGS = DeliverySettings(
    lease_s=2.0,
    max_attempts=4,
    backoff_base_s=0.05,
    backoff_factor=2.0,
    backoff_cap_s=0.8,
    batch=20,
    retry_window_s=2.0,
)
POLL_S = 0.2
SWEEP_S = 0.5
FINAL_REQUEST_STATES = ("SYNCHRONIZED", "DISCARDED", "SUPERSEDED", "CANCELED", "ERROR")
_MESSAGE_ID = re.compile(rb"<(?:\w+:)?messageId>([^<]+)</")


def epoch(store: Store, column: str) -> str:
    """SQL for a timestamp column in seconds since 1970, on either store."""
    if store.dialect == "postgres":
        return f"extract(epoch from {column})::float8"
    return f"(({column}) - 2440587.5) * 86400.0"


# --- test tables and the transition history -------------------------------------------------

_TABLES = {
    "postgres": (
        """CREATE TABLE applied (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             message_id text NOT NULL, key text NOT NULL, entity_version bigint NOT NULL,
             payload_hash text NOT NULL, name text NOT NULL, effective boolean NOT NULL)""",
        """CREATE TABLE seen (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             receiver text NOT NULL, sender text NOT NULL, message_id text NOT NULL,
             payload_hash text NOT NULL)""",
        """CREATE TABLE change_log (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             key text NOT NULL, version bigint NOT NULL, request_id bigint)""",
        """CREATE TABLE history (seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             tbl text NOT NULL, row_id bigint NOT NULL, node text, message_id text, key text,
             old_state text, state text NOT NULL, attempt integer, old_due_at timestamptz,
             due_at timestamptz, old_lease_token text, lease_token text, last_error text,
             entity_version bigint, at timestamptz NOT NULL)""",
        """CREATE FUNCTION outbox_history() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO history (tbl, row_id, node, message_id, key, old_state, state, attempt,
                                  old_due_at, due_at, old_lease_token, lease_token, last_error, at)
             VALUES ('outbox', NEW.id, NEW.node, NEW.message_id::text, NEW.ordering_key,
                     CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state, NEW.attempt,
                     CASE WHEN TG_OP = 'UPDATE' THEN OLD.due_at END, NEW.due_at,
                     CASE WHEN TG_OP = 'UPDATE' THEN OLD.lease_token END, NEW.lease_token,
                     NEW.last_error, now());
             RETURN NULL;
           END $$""",
        """CREATE FUNCTION sync_request_history() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO history (tbl, row_id, message_id, key, old_state, state, old_due_at,
                                  due_at, last_error, entity_version, at)
             VALUES ('sync_request', NEW.id, NEW.message_id::text, NEW.pk,
                     CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state,
                     CASE WHEN TG_OP = 'UPDATE' THEN OLD.due_at END, NEW.due_at, NEW.reason,
                     NEW.entity_version, now());
             RETURN NULL;
           END $$""",
        """CREATE TRIGGER outbox_history AFTER INSERT OR UPDATE ON outbox
           FOR EACH ROW EXECUTE FUNCTION outbox_history()""",
        """CREATE TRIGGER sync_request_history AFTER INSERT OR UPDATE ON sync_request
           FOR EACH ROW EXECUTE FUNCTION sync_request_history()""",
    ),
    "sqlite": (
        """CREATE TABLE applied (seq INTEGER PRIMARY KEY, message_id text NOT NULL,
             key text NOT NULL, entity_version integer NOT NULL, payload_hash text NOT NULL,
             name text NOT NULL, effective boolean NOT NULL)""",
        """CREATE TABLE seen (seq INTEGER PRIMARY KEY, receiver text NOT NULL,
             sender text NOT NULL, message_id text NOT NULL, payload_hash text NOT NULL)""",
        """CREATE TABLE change_log (seq INTEGER PRIMARY KEY, key text NOT NULL,
             version integer NOT NULL, request_id integer)""",
        """CREATE TABLE history (seq INTEGER PRIMARY KEY, tbl text NOT NULL,
             row_id integer NOT NULL, node text, message_id text, key text, old_state text,
             state text NOT NULL, attempt integer, old_due_at REAL, due_at REAL,
             old_lease_token text, lease_token text, last_error text, entity_version integer,
             at REAL NOT NULL)""",
        """CREATE TRIGGER outbox_created AFTER INSERT ON outbox BEGIN
             INSERT INTO history (tbl, row_id, node, message_id, key, state, attempt, due_at,
                                  lease_token, last_error, at)
             VALUES ('outbox', NEW.id, NEW.node, NEW.message_id, NEW.ordering_key, NEW.state,
                     NEW.attempt, NEW.due_at, NEW.lease_token, NEW.last_error, julianday('now'));
           END""",
        """CREATE TRIGGER outbox_moved AFTER UPDATE ON outbox BEGIN
             INSERT INTO history (tbl, row_id, node, message_id, key, old_state, state, attempt,
                                  old_due_at, due_at, old_lease_token, lease_token, last_error, at)
             VALUES ('outbox', NEW.id, NEW.node, NEW.message_id, NEW.ordering_key, OLD.state,
                     NEW.state, NEW.attempt, OLD.due_at, NEW.due_at, OLD.lease_token,
                     NEW.lease_token, NEW.last_error, julianday('now'));
           END""",
        """CREATE TRIGGER sync_request_created AFTER INSERT ON sync_request BEGIN
             INSERT INTO history (tbl, row_id, message_id, key, state, due_at, last_error,
                                  entity_version, at)
             VALUES ('sync_request', NEW.id, NEW.message_id, NEW.pk, NEW.state, NEW.due_at,
                     NEW.reason, NEW.entity_version, julianday('now'));
           END""",
        """CREATE TRIGGER sync_request_moved AFTER UPDATE ON sync_request BEGIN
             INSERT INTO history (tbl, row_id, message_id, key, old_state, state, old_due_at,
                                  due_at, last_error, entity_version, at)
             VALUES ('sync_request', NEW.id, NEW.message_id, NEW.pk, OLD.state, NEW.state,
                     OLD.due_at, NEW.due_at, NEW.reason, NEW.entity_version, julianday('now'));
           END""",
    ),
}


def install(store: Store) -> None:
    """Create the test tables and the history triggers in the test's own store."""
    People(store)  # the source's person table
    with store.transaction() as tx:
        tx.execute("CREATE TABLE mdm_contact (key text PRIMARY KEY, version bigint, name text)")
        for statement in _TABLES[store.dialect]:
            tx.execute(statement)


# --- the source: CCB persons, each change logged with the request it went to ----------------


def person_of(key: str, name: str, country: str = "USA") -> dict[str, Any]:
    address = {"address1": "1 Main St", "city": "Quincy", "postal": "02169", "country": country}
    return person(key, name, address=address)


class Source(People):
    """CCB's person table; a change is saved, captured and logged in one business transaction,
    so the log holds exactly the committed changes, each with the request it created or joined."""

    def change(self, person_id: str, name: str, country: str = "USA") -> None:
        with self.store.transaction() as tx:
            before = self.read(tx, "PERSON", (person_id,))
            tx.execute(
                "INSERT INTO test_person (id, data) VALUES (:id, :data) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                {"id": person_id, "data": json.dumps(person_of(person_id, name, country))},
            )
            capture(tx, "PERSON", (person_id,), before)
            log_change(tx, person_id)


def log_change(tx: Transaction, key: str) -> None:
    """Record a captured change: the key's new version and the Pending request it belongs to."""
    tx.execute(
        """INSERT INTO change_log (key, version, request_id)
           SELECT v.pk, v.version, (SELECT r.id FROM sync_request r
                                    WHERE r.mo = v.mo AND r.pk = v.pk AND r.target = v.target
                                      AND r.state = 'PENDING')
           FROM entity_version v WHERE v.mo = 'PERSON' AND v.pk = :key AND v.target = 'MDM'""",
        {"key": key},
    )


# --- the durable receiver and the sightings log ---------------------------------------------


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()[:16]


class DurableMdm(StubMdm):
    """MDM's stand-in with a durable record: each processing is logged in ``applied`` and the
    contact changes only for a newer entityVersion (PD-C03), in the processing transaction,
    before the acknowledgement is handed to delivery."""

    def __call__(self, tx: Transaction, received: Received) -> str | None:
        _, request = self.node.contracts.decode(received.payload)
        key = str(request.external_pk_value1)  # type: ignore[attr-defined]
        version = int(request.entity_version)  # type: ignore[attr-defined]
        name = str(request.contact.name)  # type: ignore[attr-defined]
        effective = tx.fetch(
            """INSERT INTO mdm_contact (key, version, name) VALUES (:key, :version, :name)
               ON CONFLICT (key) DO UPDATE SET version = excluded.version, name = excluded.name
               WHERE mdm_contact.version < excluded.version RETURNING key""",
            {"key": key, "version": version, "name": name},
        )
        tx.execute(
            """INSERT INTO applied (message_id, key, entity_version, payload_hash, name, effective)
               VALUES (:message_id, :key, :version, :hash, :name, :effective)""",
            {
                "message_id": received.message_id,
                "key": key,
                "version": version,
                "hash": digest(received.payload),
                "name": name,
                "effective": bool(effective),
            },
        )
        return super().__call__(tx, received)


class Sightings:
    """A node's endpoint that logs every message reaching it, in a commit of its own before
    the receiver sees it: a crash inside the receiver still leaves the sighting."""

    def __init__(self, node: str, inner: Endpoint, store: Store) -> None:
        self.node = node
        self.inner = inner
        self.store = store

    def receive(self, sender: str, flow: str, part: str, body: bytes) -> Response:
        return self.receive_many(sender, [Posting(flow, part, body)])[0]

    def receive_many(self, sender: str, postings: Sequence[Posting]) -> list[Response]:
        with self.store.transaction() as tx:
            tx.execute_many(
                "INSERT INTO seen (receiver, sender, message_id, payload_hash) "
                "VALUES (:receiver, :sender, :message_id, :hash)",
                [
                    {
                        "receiver": self.node,
                        "sender": sender,
                        "message_id": message_id_of(posting.body),
                        "hash": digest(posting.body),
                    }
                    for posting in postings
                ],
            )
        return self.inner.receive_many(sender, postings)


def message_id_of(body: bytes) -> str:
    """The header's messageId, read from the bytes (cheaper than decoding the message)."""
    match = _MESSAGE_ID.search(body)
    return match.group(1).decode() if match else "?"


# --- the integration: three nodes on one store -----------------------------------------------


@dataclass
class World:
    """CCB, the bridge and MDM on one store, moved on by the steps of one worker."""

    store: Store
    source: Source
    transport: InProcessTransport
    ccb: Node
    bridge: Node
    mdm: Node
    monitor: SyncRequestMonitor
    settings: DeliverySettings

    @property
    def nodes(self) -> tuple[Node, Node, Node]:
        return self.ccb, self.bridge, self.mdm

    def steps(self) -> list[Step]:
        """The monitor's step, then each node's sends and processing."""
        batch = self.settings.batch
        steps: list[Step] = [lambda: sum(self.monitor.step(batch).__dict__.values())]
        for node in self.nodes:
            steps += [node.send_due, node.process_due]
        return steps

    def sweeps(self) -> list[Step]:
        return [node.rescue_due for node in self.nodes]

    def worker(self) -> Worker:
        return Worker(self.steps(), self.sweeps(), poll_interval_s=POLL_S, sweep_interval_s=SWEEP_S)


def build_world(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    transport: InProcessTransport | None = None,
    settings: DeliverySettings = SETTINGS,
) -> World:
    """The three nodes with the reference mappings, the durable MDM and logged endpoints."""
    transport = transport if transport is not None else InProcessTransport()
    source = Source(store)
    ccb, bridge, mdm = (
        Node(name, store, registry, FLOWS, transport, settings) for name in ("ccb", "bridge", "mdm")
    )
    context = Context(CodeTables.load(REPO / "mappings" / "tables"))
    ccb.handler = Acknowledgements(registry, ccb.outbox)
    bridge.handler = Bridge(bridge, package.TRANSFORMERS, context)
    mdm.handler = DurableMdm(mdm)
    for node in (ccb, bridge, mdm):
        transport.register(node.name, Sightings(node.name, node.receiver, store))
    monitor = SyncRequestMonitor(store, registry, source, {"PERSON_SYNC": "ccb/PersonSyncRequest"})
    return World(store, source, transport, ccb, bridge, mdm, monitor, settings)


def load_reference() -> tuple[ContractRegistry, ModuleType]:
    """The reference project's contracts and generated package (in a spawned process)."""
    from ccbmdm.codegen.loader import load_contracts, load_package
    from ccbmdm.codegen.project import Project

    project = Project.load(REPO)
    return load_contracts(project), load_package(project)


def run_until(
    world: World, done: Callable[[], bool], timeout_s: float = 60.0, worker: Worker | None = None
) -> None:
    """Run the world's rounds in this process until ``done`` holds (a deadline, not a guess)."""
    worker = worker or world.worker()
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done after {timeout_s} s: {open_work(world.store)}")
        if worker.round() == 0:
            time.sleep(0.01)


def open_work(store: Store) -> dict[str, int]:
    """What is not yet final: requests, outbox and inbox rows, by state."""
    with store.transaction() as tx:
        rows = tx.fetch(
            """SELECT 'request ' || state AS what, count(*) AS n FROM sync_request
                 WHERE state IN ('PENDING','AWAITING_ACK') GROUP BY state
               UNION ALL SELECT 'outbox ' || state, count(*) FROM outbox
                 WHERE state NOT IN ('DELIVERED','ERROR') GROUP BY state
               UNION ALL SELECT 'inbox ' || state, count(*) FROM inbox
                 WHERE state <> 'PROCESSED' GROUP BY state"""
        )
    return {str(row["what"]): int(row["n"]) for row in rows}


def quiet(store: Store) -> bool:
    return not open_work(store)


def pending_duplicates(store: Store) -> int:
    """Keys with more than one Pending request right now (a coalescing sample)."""
    with store.transaction() as tx:
        rows = tx.fetch(
            """SELECT count(*) AS n FROM sync_request WHERE state = 'PENDING'
               GROUP BY mo, pk, target HAVING count(*) > 1"""
        )
    return len(rows)


# --- the checker -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """Counts per invariant of docs/reliability.md §3.1; all 0 except ``raw_redeliveries``."""

    lost: int = 0
    applied_twice: int = 0
    raw_redeliveries: int = 0
    unexplained_redeliveries: int = 0
    reordered: int = 0
    unexplained_gaps: int = 0
    lease_overlap: int = 0
    stuck: int = 0
    coalescing_violation: int = 0
    accounting: int = 0
    details: dict[str, list[Any]] = field(default_factory=dict, compare=False)

    def violations(self) -> dict[str, int]:
        """Every invariant whose count is not 0 (redeliveries are allowed, only counted)."""
        counts = dataclasses.asdict(self)
        del counts["raw_redeliveries"], counts["details"]
        return {name: count for name, count in counts.items() if count}


def check(store: Store, samples: Sequence[int] = ()) -> Verdict:
    """Read the store after quiescence and count each invariant's violations.

    ``samples`` are the Pending-duplicate counts taken during the run (coalescing)."""
    details: dict[str, list[Any]] = defaultdict(list)
    with store.transaction() as tx:
        requests = tx.fetch(
            "SELECT id, pk, state, entity_version, message_id FROM sync_request ORDER BY id"
        )
        changes = tx.fetch("SELECT key, version, request_id FROM change_log ORDER BY seq")
        applied = tx.fetch(
            "SELECT message_id, key, entity_version, payload_hash FROM applied ORDER BY seq"
        )
        contacts = {
            str(r["key"]): str(r["name"]) for r in tx.fetch("SELECT key, name FROM mdm_contact")
        }
        source = {
            str(r["id"]): json.loads(r["data"])["entity_name"]
            for r in tx.fetch("SELECT id, data FROM test_person")
        }
        seen = tx.fetch(
            """SELECT s.receiver, s.message_id, count(*) AS n,
                      count(DISTINCT s.payload_hash) AS payloads, max(o.attempt) AS attempts
               FROM seen s LEFT JOIN outbox o ON o.node = s.sender AND o.partner = s.receiver
                                             AND CAST(o.message_id AS text) = s.message_id
               GROUP BY s.receiver, s.message_id"""
        )
        stuck = tx.fetch(
            f"""SELECT 'outbox ' || id AS what FROM outbox
                  WHERE state IN ('SENDING','AWAITING_REPLY') AND due_at < {tx.now}
                UNION ALL SELECT 'outbox ' || id FROM outbox
                  WHERE state NOT IN ('DELIVERED','ERROR') AND due_at IS NULL
                UNION ALL SELECT 'inbox ' || id FROM inbox WHERE state <> 'PROCESSED'
                UNION ALL SELECT 'request ' || r.id FROM sync_request r
                  JOIN outbox o ON o.node = 'ccb' AND o.message_id = r.message_id
                  WHERE r.state = 'AWAITING_ACK' AND o.state IN ('DELIVERED','ERROR')
                UNION ALL SELECT 'request ' || id FROM sync_request
                  WHERE state IN ('PENDING','ERROR') AND due_at IS NULL"""
        )
        history = tx.fetch(
            f"""SELECT row_id, old_state, state, old_lease_token, lease_token, last_error,
                       {epoch(store, "at")} AS at, {epoch(store, "old_due_at")} AS old_due_at,
                       {epoch(store, "due_at")} AS due_at
                FROM history WHERE tbl = 'outbox' ORDER BY seq"""
        )

    by_id = {int(r["id"]): r for r in requests}

    # applied twice: one id processed more than once, or two payloads under one id
    per_id: dict[str, set[str]] = defaultdict(set)
    count_per_id: dict[str, int] = defaultdict(int)
    for row in applied:
        per_id[str(row["message_id"])].add(str(row["payload_hash"]))
        count_per_id[str(row["message_id"])] += 1
    twice = [m for m in per_id if count_per_id[m] > 1 or len(per_id[m]) > 1]
    twice += [str(r["message_id"]) for r in seen if int(r["payloads"]) > 1]
    details["applied_twice"] = twice

    # raw redeliveries: arrivals beyond the first; each needs a claim of its own (an attempt)
    redeliveries = sum(int(r["n"]) - 1 for r in seen)
    unexplained = [
        str(r["message_id"])
        for r in seen
        if r["attempts"] is None or int(r["n"]) > int(r["attempts"])
    ]
    details["unexplained_redeliveries"] = unexplained

    # reordered, and gaps not explained by coalescing or discarding (O1)
    versions: dict[str, list[int]] = defaultdict(list)
    for row in applied:
        versions[str(row["key"])].append(int(row["entity_version"]))
    reordered = []
    for key, sequence in versions.items():
        top = 0
        for version in sequence:
            if version < top:
                reordered.append((key, version, top))
            top = max(top, version)
    details["reordered"] = reordered
    request_of = {(str(c["key"]), int(c["version"])): c["request_id"] for c in changes}
    gaps = []
    for key, sequence in versions.items():
        reached = sorted(set(sequence))
        for version in range(1, reached[-1]):
            if version in reached:
                continue
            later = min(v for v in reached if v > version)
            request = by_id.get(int(request_of.get((key, version)) or 0))
            coalesced = request is not None and request["entity_version"] == later
            dropped = request is not None and request["state"] in ("DISCARDED", "CANCELED")
            if not (coalesced or dropped):
                gaps.append((key, version, later))
    details["unexplained_gaps"] = gaps

    # lost: the source's last committed state never reached MDM, unexplained by Error/Canceled
    last_request: dict[str, Mapping[str, Any]] = {}
    for request in requests:
        last_request[str(request["pk"])] = request
    lost = [
        key
        for key, name in source.items()
        if contacts.get(key) != name
        and (key not in last_request or last_request[key]["state"] not in ("ERROR", "CANCELED"))
    ]
    details["lost"] = lost

    # lease overlap: a send lease taken while the previous holder's could still be in use
    overlaps = []
    windows: dict[int, tuple[str, float]] = {}  # outbox id -> (token, end of its send lease)
    for row in history:
        row_id = int(row["row_id"])
        if row["state"] == "SENDING" and row["old_state"] in ("PENDING", "RETRY_WAIT"):
            previous = windows.get(row_id)
            if previous is not None and float(row["at"]) < previous[1] - 0.001:
                overlaps.append((row_id, previous[0], row["lease_token"]))
        if row["old_state"] == "SENDING" and row["state"] != "SENDING":
            rescued = str(row["last_error"] or "").startswith("deadline passed")
            end = float(row["old_due_at"]) if rescued else float(row["at"])
            windows[row_id] = (str(row["old_lease_token"]), end)
    details["lease_overlap"] = overlaps

    # accounting: every change created or joined a request; every request ended
    created = {int(r["id"]) for r in requests}
    joined = {int(c["request_id"]) for c in changes if c["request_id"] is not None}
    wrong: list[Any] = [c for c in changes if c["request_id"] is None]
    wrong += [("no change", i) for i in created - joined] + [
        ("no request", i) for i in joined - created
    ]
    wrong += [(r["id"], r["state"]) for r in requests if r["state"] not in FINAL_REQUEST_STATES]
    details["accounting"] = wrong
    details["stuck"] = [str(r["what"]) for r in stuck]

    return Verdict(
        lost=len(lost),
        applied_twice=len(twice),
        raw_redeliveries=redeliveries,
        unexplained_redeliveries=len(unexplained),
        reordered=len(reordered),
        unexplained_gaps=len(gaps),
        lease_overlap=len(overlaps),
        stuck=len(stuck),
        coalescing_violation=sum(samples),
        accounting=len(wrong),
        details={name: items[:10] for name, items in details.items() if items},
    )


# --- processes: workers that may be killed, and the changer ----------------------------------


class Flag:
    """A flag shared with spawned processes that no SIGKILL or SIGSTOP can leave locked
    (multiprocessing's Event and Value take a lock, which a killed process never releases)."""

    def __init__(self, context: SpawnContext) -> None:
        self._value = context.RawValue("b", 0)

    def set(self, level: int = 1) -> None:
        self._value.value = level

    def level(self) -> int:
        return int(self._value.value)

    def clear(self) -> None:
        self._value.value = 0

    def is_set(self) -> bool:
        return bool(self._value.value)

    def wait(self, timeout: float | None = None) -> bool:
        """Until set or ``timeout`` seconds; whether it is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True


RECEIVED_BATCH, SENT_BATCH = 1, 2  # what a worker's busy flag says it holds


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs; everything in it crosses a spawn."""

    dsn: str
    stop: Flag
    busy: Flag
    settings: DeliverySettings = SETTINGS
    log_path: str | None = None
    write_budget_s: float | None = None  # the store's, when not its default


def run_worker(spec: WorkerSpec) -> None:
    """A worker process: every step of the three nodes and the monitor, in-process transport,
    until ``stop``. ``busy`` is set while it holds claimed rows, so a kill can land mid-batch:
    RECEIVED_BATCH for received messages being processed (their claim is part of the processing
    transaction, which a kill rolls back), SENT_BATCH for messages being sent (their leases are
    committed: a kill strands them until they pass)."""
    if spec.log_path:
        logging.basicConfig(filename=spec.log_path, level=logging.WARNING, force=True)
    from ccbmdm.runtime.messaging import delivery

    for cls, level in ((delivery.Outbox, SENT_BATCH), (delivery.Inbox, RECEIVED_BATCH)):
        original = cls.claim

        def claim(
            self: Any, *args: Any, _original: Any = original, _level: int = level, **kwargs: Any
        ) -> Any:
            claimed = _original(self, *args, **kwargs)
            if claimed:
                spec.busy.set(_level)
            return claimed

        cls.claim = claim  # type: ignore[method-assign]
    registry, package = load_reference()
    store = open_store(spec.dsn)
    if spec.write_budget_s is not None:
        store.write_budget_s = spec.write_budget_s
    world = build_world(store, registry, package, settings=spec.settings)

    def idle_after(step: Step) -> Step:
        def run() -> int:
            try:
                return step()
            finally:
                spec.busy.clear()

        return run

    worker = world.worker()
    worker.steps = [idle_after(step) for step in worker.steps]
    try:
        worker.run(spec.stop)  # type: ignore[arg-type]
    except BaseException:
        logging.getLogger("reliability").exception("the worker failed")
        raise
    world.store.close()


@dataclass(frozen=True)
class ChangePlan:
    """The changes a changer process commits, in order, spread over ``duration_s``."""

    dsn: str
    changes: tuple[tuple[str, str], ...]
    duration_s: float


def run_changer(plan: ChangePlan) -> None:
    """The source system under load: commits each change in its own business transaction."""
    source = Source(open_store(plan.dsn))
    started = time.monotonic()
    for index, (key, name) in enumerate(plan.changes):
        pause = started + plan.duration_s * index / len(plan.changes) - time.monotonic()
        if pause > 0:
            time.sleep(pause)  # the load's pace, not a wait for a result
        source.change(key, name)
    source.store.close()


@dataclass(frozen=True)
class SavePlan:
    """A source saving one change after another, ``pause_s`` apart (its users' pace), for
    ``duration_s``; what came of it goes to ``report``. ``busy_timeout_ms``: how long a save may
    wait for SQLite's write lock."""

    dsn: str
    keys: int
    duration_s: float
    report: str
    busy_timeout_ms: int = 5000
    pause_s: float = 0.002


def run_saver(plan: SavePlan) -> None:
    """The source system saving continuously: each change in its own business transaction, a
    new name each time. A save that fails is counted with its error, and the saves go on."""
    store = open_store(plan.dsn)
    if isinstance(store, SqliteStore):
        store.busy_timeout_ms = plan.busy_timeout_ms
    source = Source(store)
    rng = random.Random(plan.keys)
    saves = 0
    failures: list[str] = []
    deadline = time.monotonic() + plan.duration_s
    while time.monotonic() < deadline:
        key = f"{8_000_000 + rng.randrange(plan.keys):010d}"
        try:
            source.change(key, f"{rng.choice(SURNAMES)},Save{saves + len(failures)}")
            saves += 1
        except Exception as exc:  # counted: what the test is about
            failures.append(f"{type(exc).__name__}: {exc}")
        time.sleep(plan.pause_s)  # the load's pace, not a wait for a result
    Path(plan.report).write_text(json.dumps({"saves": saves, "failures": failures}))
    store.close()


SURNAMES = ("Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Novak")


def random_changes(rng: random.Random, entities: int, count: int) -> tuple[tuple[str, str], ...]:
    """Changes to random entities; names come from a small set, so some changes cancel out
    (A -> B -> A) and their requests are discarded."""
    return tuple(
        (f"{rng.randrange(entities):010d}", f"{rng.choice(SURNAMES)},Ada") for _ in range(count)
    )


def hot_changes(keys: int, rounds: int) -> tuple[tuple[str, str], ...]:
    """Each of ``keys`` entities changed ``rounds`` times in sequence, always to a new name."""
    return tuple(
        (f"{9_000_000 + key:010d}", f"{SURNAMES[r % len(SURNAMES)]},Round{r}")
        for r in range(rounds)
        for key in range(keys)
    )


class Cluster:
    """Worker processes on one store: started, SIGKILLed mid-batch, restarted, stopped."""

    def __init__(
        self,
        context: SpawnContext,
        dsn: str,
        size: int,
        logs: Path,
        write_budget_s: float | None = None,
    ) -> None:
        self.context = context
        self.dsn = dsn
        self.logs = logs
        self.write_budget_s = write_budget_s
        self.stop = Flag(context)
        self.flags = [Flag(context) for _ in range(size)]
        self.processes: list[SpawnProcess | None] = [None] * size
        self.kills = 0
        self.mid_batch = 0  # kills that found the worker holding a claimed batch

    def start(self, slot: int) -> None:
        spec = WorkerSpec(
            self.dsn,
            self.stop,
            self.flags[slot],
            log_path=str(self.log(slot)),
            write_budget_s=self.write_budget_s,
        )
        process = self.context.Process(target=run_worker, args=(spec,), daemon=True)
        process.start()
        self.processes[slot] = process

    def start_all(self) -> None:
        for slot in range(len(self.processes)):
            self.start(slot)

    def log(self, slot: int) -> Path:
        """Where the worker in ``slot`` (and each of its restarts) logs warnings and failures."""
        return self.logs / f"worker-{slot}.log"

    def check_alive(self) -> None:
        """A worker that died on its own is a failure of the run, not a fault we injected."""
        for slot, process in enumerate(self.processes):
            if process is not None and not process.is_alive():
                log = self.log(slot).read_text()[-3000:] if self.log(slot).exists() else ""
                raise AssertionError(f"worker {slot} exited by itself ({process.exitcode}):\n{log}")

    def busy_worker(self, rng: random.Random, holding: int, within_s: float = 2.0) -> int:
        """A running worker holding a claimed batch (``SENT_BATCH``: one it is sending, whose
        leases a kill strands), chosen at random among those that do; any running worker
        when none does within ``within_s``."""
        deadline = time.monotonic() + within_s
        while True:
            running = [slot for slot, p in enumerate(self.processes) if p is not None]
            holders = [slot for slot in running if self.flags[slot].level() >= holding]
            if holders or time.monotonic() >= deadline:
                return rng.choice(holders or running)
            time.sleep(0.001)

    def kill(self, slot: int) -> None:
        """SIGKILL a worker, as it is."""
        process = self.processes[slot]
        assert process is not None and process.pid is not None
        os.kill(process.pid, signal.SIGKILL)
        self.mid_batch += self.flags[slot].is_set()
        process.join(10)
        self.processes[slot] = None
        self.flags[slot].clear()
        self.kills += 1

    def shutdown(self) -> None:
        self.stop.set()
        for process in self.processes:
            if process is not None:
                process.join(15)
                if process.is_alive():
                    process.kill()
                    process.join(5)


@dataclass
class FaultSchedule:
    """R1's faults: every 1-3 s a random worker is killed mid-batch, every other time while it
    sends (so that leases are stranded, not only transactions rolled back); it restarts 0-2 s
    later."""

    kills: int
    seed: int
    samples: list[int] = field(default_factory=list)

    def run(self, cluster: Cluster, store: Store, changer: SpawnProcess) -> None:
        rng = random.Random(self.seed)
        restarts: dict[int, float] = {}
        for kill in range(self.kills):
            self._wait(cluster, store, restarts, time.monotonic() + rng.uniform(1.0, 3.0))
            slot = cluster.busy_worker(rng, SENT_BATCH if kill % 2 == 0 else RECEIVED_BATCH)
            cluster.kill(slot)
            restarts[slot] = time.monotonic() + rng.uniform(0.0, 2.0)
        changer.join(120)
        assert changer.exitcode == 0, f"the changer failed: {changer.exitcode}"
        self._wait(cluster, store, restarts, max(restarts.values(), default=0.0))

    def _wait(
        self, cluster: Cluster, store: Store, restarts: dict[int, float], until: float
    ) -> None:
        """Until ``until``: restart workers when due and sample the Pending rows."""
        while True:
            now = time.monotonic()
            for slot, at in list(restarts.items()):
                if at <= now:
                    cluster.start(slot)
                    del restarts[slot]
            cluster.check_alive()
            self.samples.append(pending_duplicates(store))
            if now >= until:
                return
            time.sleep(min(0.1, max(0.0, until - now)))


def quiesce(store: Store, cluster: Cluster, samples: list[int], timeout_s: float = 90.0) -> None:
    """docs/reliability.md §3.1: faults off, every worker up for at least a lease and two poll
    intervals, then until nothing is left to do (or the deadline, which fails the run)."""
    floor = time.monotonic() + SETTINGS.lease_s + 2 * POLL_S
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < floor or not quiet(store):
        cluster.check_alive()
        samples.append(pending_duplicates(store))
        if time.monotonic() > deadline:
            raise AssertionError(f"no quiescence after {timeout_s} s: {open_work(store)}")
        time.sleep(0.1)


@contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    try:
        yield cluster
    finally:
        cluster.shutdown()


# --- R2: a crash right after a commit boundary ------------------------------------------------

CRASHED = 13  # the exit code of a process that crashed on purpose
# docs/reliability.md R2: where the process dies, right after the commit named
BOUNDARIES = {
    "capture": "the capture's commit (the source's business transaction)",
    "monitor": "the monitor step's commit, its messages in the outbox",
    "claim": "an outbox claim's commit, before anything is sent",
    "send": "a send to MDM, before its receipt is recorded",
    "receive": "MDM's inbox commit, before the receipt is answered",
    "reply": "the acknowledgement's inbox commit at CCB, before it is processed",
}
# A shorter lease than R1's keeps each recovery short; every other setting is the same.
CRASH_SETTINGS = dataclasses.replace(SETTINGS, lease_s=1.0)


@dataclass(frozen=True)
class CrashPlan:
    """One seeded run: what changes are made, and after which passage of ``boundary`` the
    process dies; ``report`` receives the ids it had in hand."""

    dsn: str
    boundary: str
    seed: int
    report: str


def run_crash(plan: CrashPlan) -> None:
    """A worker process that dies (``os._exit``, no cleanup) right after ``plan.boundary``.

    The runtime's own functions are wrapped in this process only: the crash comes after the
    wrapped function's commit, or before the record that would follow the send."""
    from ccbmdm.runtime.lifecycles import sync
    from ccbmdm.runtime.messaging import delivery

    rng = random.Random(plan.seed)
    crash_at = 1 + rng.randrange(2)  # the first or the second passage
    passages = 0

    def passed(boundary: str, ids: Sequence[str]) -> None:
        nonlocal passages
        if boundary != plan.boundary or not ids:
            return
        passages += 1
        if passages == crash_at:
            Path(plan.report).write_text(json.dumps({"passage": passages, "ids": list(ids)}))
            os._exit(CRASHED)

    def wrap(cls: Any, name: str, before: Any = None, after: Any = None) -> None:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before(self, *args)
            result = original(self, *args, **kwargs)
            if after is not None:
                after(self, result, *args)
            return result

        setattr(cls, name, wrapper)

    wrap(Source, "change", after=lambda _, __, key, name: passed("capture", [key]))
    wrap(
        sync.SyncRequestMonitor,
        "step",
        after=lambda _, result, *args: passed("monitor", ["step"] * result.sent),
    )
    wrap(
        delivery.Outbox,
        "claim",
        after=lambda _, claims, *args: passed("claim", [c.message_id for c in claims]),
    )
    wrap(
        delivery.Outbox,
        "record",
        before=lambda _, outcomes: passed(
            "send", [c.message_id for c, _, _ in outcomes if c.partner == "mdm"]
        ),
    )

    def stored(inbox: Any, results: Any, partner: str, arrivals: Sequence[Any]) -> None:
        new = [a.message_id for a, (fresh, _) in zip(arrivals, results, strict=True) if fresh]
        passed({"mdm": "receive", "ccb": "reply"}.get(inbox.node, ""), new)

    wrap(delivery.Inbox, "store_messages", after=stored)

    registry, package = load_reference()
    world = build_world(open_store(plan.dsn), registry, package, settings=CRASH_SETTINGS)
    # Two waves of changes, each run until all is quiet. A wave's names are its own, so every
    # wave sends something and each boundary is passed at least twice.
    for wave in range(2):
        for _ in range(1 + rng.randrange(4)):
            name = f"{rng.choice(SURNAMES)},Wave{wave}"
            world.source.change(f"{rng.randrange(3):010d}", name)
        run_until(world, lambda: quiet(world.store), timeout_s=30)
    os._exit(3)  # the boundary was never passed often enough


@contextmanager
def more_stores(like: Store, count: int, folder: Path) -> Iterator[list[Store]]:
    """``count`` further empty stores of ``like``'s kind, with the test tables (for runs that
    go on side by side); PostgreSQL schemas are dropped afterwards."""
    stores: list[Store] = []
    schemas: list[str] = []
    base = pg_dsn()  # called only for a PostgreSQL store, so a server answers
    try:
        for index in range(count):
            if like.dialect == "sqlite":
                stores.append(SqliteStore(str(folder / f"more-{index}.db")))
            else:
                import uuid

                import psycopg

                from ccbmdm.runtime.store.postgres import PostgresStore

                schemas.append(f"t_{uuid.uuid4().hex[:12]}")
                with psycopg.connect(base, autocommit=True) as admin:
                    admin.execute(f"CREATE SCHEMA {schemas[-1]}")
                separator = "&" if "?" in base else "?"
                stores.append(
                    PostgresStore(f"{base}{separator}options=-csearch_path%3D{schemas[-1]}")
                )
            stores[-1].migrate()
            install(stores[-1])
        yield stores
    finally:
        for store in stores:
            store.close()
        if schemas:
            import psycopg

            with psycopg.connect(base, autocommit=True) as admin:
                for schema in schemas:
                    admin.execute(f"DROP SCHEMA {schema} CASCADE")


# --- R3: a lease holder frozen with SIGSTOP ---------------------------------------------------


class Hesitant(InProcessTransport):
    """Says when it is about to post its first batch, then waits for leave to go on: the test
    freezes the process in between, while it holds the batch's lease. It stands for a partner
    over the network: the claim is committed before the batch is posted, as over HTTP."""

    delivers_in_transaction = False

    def __init__(self, posting: Flag, go: Flag) -> None:
        super().__init__()
        self.posting = posting
        self.go = go

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Any]:
        if not self.posting.is_set():
            self.posting.set()
            self.go.wait()
        return super().post_many(sender, partner, postings)


@dataclass(frozen=True)
class ZombieSpec:
    dsn: str
    posting: Flag
    go: Flag
    stop: Flag
    log_path: str


def run_zombie(spec: ZombieSpec) -> None:
    """A worker whose first send is held up (see ``Hesitant``); it logs to ``log_path``."""
    logging.basicConfig(filename=spec.log_path, level=logging.WARNING, force=True)
    registry, package = load_reference()
    transport = Hesitant(spec.posting, spec.go)
    world = build_world(open_store(spec.dsn), registry, package, transport)
    world.worker().run(spec.stop)  # type: ignore[arg-type]
    world.store.close()

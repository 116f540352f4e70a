"""C8: a claim racing a coalescing insert, through every interleaving of two connections
(docs/reliability.md §3.4), and an expired-lease rescue racing the transition that ends the lease.

Two sessions run the runtime's own code, each on its own connection in its own thread; every
statement they issue, and their commit, waits at a gate, so the test decides the order. On
PostgreSQL a statement may wait for a lock the other session holds: the driver sees the session
wait in ``pg_stat_activity`` and goes on with the other one, as PostgreSQL's isolation tester
does. Every order of the two sessions' steps is run; the executed orders are what is checked.

SQLite has one writer at a time: every write transaction starts with ``BEGIN IMMEDIATE``, so
once one session has begun, the other's BEGIN waits until it commits. An interleaving in which
both sessions are inside a transaction at once cannot happen there; the only executions are the
two serial orders, which are run (and the waiting BEGIN itself is shown below).
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.runtime.lifecycles.sync import SyncRequestMonitor, capture
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.delivery import Claim, DeliverySettings, Outbox
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Flush, Row
from ccbmdm.runtime.store.sqlite import SqliteStore
from reliability_world import Source, install, person_of

KEY = "0000007700"


class Observer:
    """A third connection that watches without taking part: it reads committed rows and, on
    PostgreSQL, whether a session waits for a lock. On SQLite it reads outside any write
    transaction (WAL lets a reader in while a writer is open)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reader = (
            sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
            if isinstance(store, SqliteStore)
            else None
        )

    def pending(self) -> int:
        """How many Pending requests the key has, as committed."""
        sql = "SELECT count(*) FROM sync_request WHERE state = 'PENDING' AND pk = :pk"
        if self.reader is not None:
            return int(self.reader.execute(sql, {"pk": KEY}).fetchone()[0])
        with self.store.transaction() as tx:
            row = tx.fetch_one(sql.replace("count(*)", "count(*) AS n"), {"pk": KEY})
        return int(row["n"]) if row else 0

    def waits_for_lock(self, pid: int | None) -> bool:
        if self.reader is not None or pid is None:
            return False
        with self.store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid", {"pid": pid}
            )
        return row is not None and row["wait_event_type"] == "Lock"

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


class Session:
    """One connection, driven gate by gate from its own thread."""

    def __init__(self, name: str, store: Store, body: Callable[[Store], Any]) -> None:
        self.name = name
        self.store = store
        self.body = body
        self.state = "new"  # ready (waiting at a gate), running, finished, failed
        self.result: Any = None
        self.error: BaseException | None = None
        self.pid: int | None = None
        self.steps: list[str] = []
        self._go = threading.Semaphore(0)
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.wait_until(lambda: self.state != "new")

    def _main(self) -> None:
        try:
            if self.store.dialect == "postgres":
                with self.store.transaction() as tx:
                    self.pid = int(tx.fetch("SELECT pg_backend_pid() AS pid")[0]["pid"])
            self.result = self.body(GatedStore(self.store, self))
            self._set("finished")
        except BaseException as exc:  # re-raised by the driver
            self.error = exc
            self._set("failed")
        finally:
            self.store.close()

    def gate(self, what: str) -> None:
        """Called in the session's thread before each statement, BEGIN and COMMIT."""
        self._set("ready")
        self._go.acquire()
        self.steps.append(what)

    def advance(self, observer: Observer) -> str:
        """Run the session's next step (see ``settle``)."""
        self._set("running")
        self._go.release()
        return self.settle(observer)

    def settle(self, observer: Observer) -> str:
        """Wait until the session waits at its next gate, has finished, or waits for a lock
        the other session holds ("blocked")."""
        deadline = time.monotonic() + 10
        while True:
            with self._changed:
                if self._changed.wait_for(lambda: self.state != "running", timeout=0.002):
                    return self.state
            if observer.waits_for_lock(self.pid):
                return "blocked"
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} neither moved on nor waited for a lock")

    def wait_until(self, condition: Callable[[], bool], timeout_s: float = 10) -> None:
        with self._changed:
            if not self._changed.wait_for(condition, timeout=timeout_s):
                raise AssertionError(f"{self.name} is stuck in {self.state} after {self.steps}")

    def _set(self, state: str) -> None:
        with self._changed:
            self.state = state
            self._changed.notify_all()


class GatedTransaction(Transaction):
    def __init__(self, inner: Transaction, session: Session) -> None:
        super().__init__()
        self.inner = inner
        self.session = session
        self.now = inner.now

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        self.session.gate(_first_words(sql))
        return self.inner.execute(sql, params)

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        self.session.gate(_first_words(sql))
        return self.inner.fetch(sql, params)

    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        self.session.gate(_first_words(sql))
        return self.inner.execute_many(sql, params)

    def _savepoint(self, waited: bool) -> AbstractContextManager[None]:
        return self.inner.savepoint(waited=waited)

    def later(self, flush: Flush, row: Any) -> None:
        # the inner transaction writes them as it commits: within the COMMIT step, ungated
        self.inner.later(flush, row)


class GatedStore(Store):
    """The session's store: the runtime code under test sees an ordinary store whose every
    statement waits for the driver. On SQLite BEGIN IMMEDIATE is a step too: it is the one
    statement that waits for the other session."""

    def __init__(self, inner: Store, session: Session) -> None:
        self.inner = inner
        self.session = session
        self.dialect = inner.dialect
        self.now = inner.now
        self.now_plus = inner.now_plus

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        if self.dialect == "sqlite":
            self.session.gate("BEGIN IMMEDIATE")
        with self.inner.transaction() as tx:
            yield GatedTransaction(tx, self.session)
            self.session.gate("COMMIT")

    def close(self) -> None:
        self.inner.close()

    def migrate(self) -> int:
        return self.inner.migrate()

    def to_datetime(self, value: Any) -> Any:
        return self.inner.to_datetime(value)

    def json_value(self, value: Any) -> Any:
        return self.inner.json_value(value)


def _first_words(sql: str) -> str:
    return " ".join(sql.split()[:3])


@dataclass
class Run:
    """What one schedule did: the steps in the order they ran, and the sessions' results."""

    order: tuple[str, ...]
    results: dict[str, Any]
    pending_samples: list[int]


def interleave(
    store: Store, bodies: dict[str, Callable[[Store], Any]], schedule: tuple[str, ...]
) -> Run:
    """Run the sessions' steps in the order ``schedule`` names them. When the named session is
    finished or waits for a lock, the turn goes to the other one; a waiting session goes on
    by itself once the lock is released. Samples the committed Pending rows after each step."""
    observer = Observer(store)
    sessions = {name: Session(name, store, body) for name, body in bodies.items()}
    for session in sessions.values():
        session.start()
    order: list[str] = []
    samples: list[int] = []
    turns = iter(schedule)
    try:
        while True:
            ready = [s for s in sessions.values() if s.state == "ready"]
            if not ready:
                if all(s.state in ("finished", "failed") for s in sessions.values()):
                    break
                time.sleep(0.001)  # a lock waiter resumes on its own (or the database fails it)
                continue
            wanted = sessions.get(next(turns, ""))
            session = wanted if wanted is not None and wanted.state == "ready" else ready[0]
            session.advance(observer)
            order.append(f"{session.name}: {session.steps[-1]}")
            for other in sessions.values():  # a lock this step released lets the waiter on
                if other is not session and other.state == "running":
                    other.settle(observer)
            samples.append(observer.pending())
    finally:
        for session in sessions.values():
            while session.state == "ready":
                session.advance(observer)
            session.wait_until(lambda s=session: s.state in ("finished", "failed"))  # type: ignore[misc]
        observer.close()
    for session in sessions.values():
        if session.error is not None:
            raise AssertionError(f"{session.name} failed after {order}") from session.error
    return Run(tuple(order), {name: s.result for name, s in sessions.items()}, samples)


def schedules(store: Store, steps: dict[str, int]) -> Iterator[tuple[str, ...]]:
    """Every interleaving of the sessions' steps on PostgreSQL; the two serial orders on SQLite
    (where BEGIN IMMEDIATE is one more step of each session)."""
    (a, count_a), (b, count_b) = steps.items()
    if store.dialect == "sqlite":
        yield (a,) * (count_a + 1) + (b,) * (count_b + 1)
        yield (b,) * (count_b + 1) + (a,) * (count_a + 1)
        return
    for positions in itertools.combinations(range(count_a + count_b), count_a):
        chosen = set(positions)
        yield tuple(a if i in chosen else b for i in range(count_a + count_b))


# --- C8: capture racing the monitor's claim and step -----------------------------------------

STATES = {1: "Moreau,Ada", 2: "Tanaka,Ada"}  # the entity's name at each version


def reset(store: Store) -> None:
    with store.transaction() as tx:
        for table in (
            "outbox",
            "outbox_body",
            "sync_request",
            "entity_version",
            "test_person",
            "change_log",
        ):
            tx.execute(f"DELETE FROM {table}")


def monitor_of(store: Store, registry: ContractRegistry) -> SyncRequestMonitor:
    """The monitor; it reads the entity through the transaction it is given."""
    return SyncRequestMonitor(
        store, registry, PersonReader(), {"PERSON_SYNC": "ccb/PersonSyncRequest"}
    )


class PersonReader:
    """The source's snapshot, read through the transaction it is given (the session's own)."""

    def read(self, tx: Transaction, mo: str, key: tuple[str, ...]) -> Mapping[str, Any] | None:
        row = tx.fetch_one("SELECT data FROM test_person WHERE id = :id", {"id": key[0]})
        return None if row is None else dict(json.loads(row["data"]))


def capture_body(version: int) -> Callable[[Store], None]:
    """The business transaction: save the entity, then the two statements of capture."""
    before = person_of(KEY, STATES[version - 1]) if version > 1 else None

    def body(store: Store) -> None:
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO test_person (id, data) VALUES (:id, :data) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                {"id": KEY, "data": json.dumps(person_of(KEY, STATES[version]))},
            )
            capture(tx, "PERSON", (KEY,), before)

    return body


def settle(store: Store, registry: ContractRegistry) -> None:
    """Acknowledge whatever was sent and run the monitor until nothing is Pending."""
    monitor = monitor_of(store, registry)
    for _ in range(10):
        with store.transaction() as tx:
            tx.execute("UPDATE outbox SET state = 'DELIVERED', due_at = NULL, lease_token = NULL")
            tx.execute(
                "UPDATE sync_request SET state = 'SYNCHRONIZED' WHERE state = 'AWAITING_ACK'"
            )
            if not tx.fetch("SELECT id FROM sync_request WHERE state = 'PENDING'"):
                return
        monitor.step()
    raise AssertionError("requests still Pending")


def check_outcome(store: Store, registry: ContractRegistry, run: Run, last: int) -> None:
    """No lost change, no order inversion, at most one Pending request for the key."""
    assert max(run.pending_samples, default=0) <= 1, run.order
    settle(store, registry)
    with store.transaction() as tx:
        sent = tx.fetch(
            "SELECT entity_version, final_snapshot FROM sync_request "
            "WHERE message_id IS NOT NULL ORDER BY id"
        )
        states = [r["state"] for r in tx.fetch("SELECT state FROM sync_request")]
    versions = [int(r["entity_version"]) for r in sent]
    names = [store.json_value(r["final_snapshot"])["entity_name"] for r in sent]
    assert versions == sorted(set(versions)), f"order inversion {versions} after {run.order}"
    assert names == [STATES[v] for v in versions], f"{names} sent as {versions} after {run.order}"
    assert versions and versions[-1] == last, f"change {last} lost after {run.order}"
    assert set(states) <= {"SYNCHRONIZED", "DISCARDED"}, run.order


@pytest.mark.slow
@pytest.mark.parametrize("joining", [True, False], ids=["joins-pending", "first-change"])
def test_capture_racing_the_monitor_step_loses_nothing_in_any_order(
    store: Store, registry: ContractRegistry, joining: bool
) -> None:
    """A change that joins a Pending request while the monitor claims it, and a first change
    while the monitor runs: every order keeps the change and the version order."""
    install(store)
    last = 2 if joining else 1
    executed: set[tuple[str, ...]] = set()
    for schedule in schedules(store, {"capture": 4, "monitor": 6}):
        reset(store)
        if joining:
            Source(store).change(KEY, STATES[1])  # version 1, Pending
        run = interleave(
            store,
            {"capture": capture_body(last), "monitor": lambda s: monitor_of(s, registry).step()},
            schedule,
        )
        executed.add(run.order)
        check_outcome(store, registry, run, last)
    assert len(executed) >= (2 if store.dialect == "sqlite" else 10)


def test_sqlite_second_writer_waits_for_the_first(tmp_path: Path) -> None:
    """Why SQLite only has serial orders: a second BEGIN IMMEDIATE cannot start while a write
    transaction is open (with no busy timeout it fails at once instead of waiting)."""
    store = SqliteStore(str(tmp_path / "serial.db"))
    store.migrate()
    with store.transaction():
        other = sqlite3.connect(str(tmp_path / "serial.db"), isolation_level=None, timeout=0)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    store.close()


# --- rescue racing the end of the lease it rescues -------------------------------------------


def expired_claim(store: Store) -> Claim:
    """A ccb message claimed by a worker whose lease has just run out."""
    outbox = Outbox(store, "ccb", DeliverySettings(lease_s=60))
    with store.transaction() as tx:
        outbox.enqueue(
            tx,
            "bridge",
            "PERSON_SYNC",
            "request",
            "7a9d3c1e-0000-4000-8000-000000000077",
            b"<m/>",
            reply_timeout_s=86400.0,
        )
    (claim,) = outbox.claim()
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE outbox SET due_at = {store.now_plus} WHERE id = :id",
            {"id": claim.id, "seconds": -5},
        )
    return claim


def outbox_state(store: Store) -> str:
    with store.transaction() as tx:
        (row,) = tx.fetch("SELECT state FROM outbox")
    return str(row["state"])


def rescuing(settings: DeliverySettings) -> Callable[[Store], int]:
    """The sweeper's rescue of ccb's expired leases."""
    return lambda store: Outbox(store, "ccb", settings).rescue()


def ending_lease(ending: str, claim: Claim, settings: DeliverySettings) -> Callable[[Store], bool]:
    """What ends the claim's lease: the reply matched to it, or its holder recording the
    receipt (True when the record found its lease still held)."""

    def reply(store: Store) -> bool:
        with store.transaction() as tx:
            Outbox(store, "ccb", settings).reply_received(tx, "bridge", claim.message_id)
        return True

    def record(store: Store) -> bool:
        return not Outbox(store, "ccb", settings).record([(claim, None, None)])

    return reply if ending == "reply" else record


@pytest.mark.parametrize("ending", ["reply", "record"])
def test_a_rescue_never_undoes_a_transition_that_ended_the_lease(store: Store, ending: str) -> None:
    """The reply to a message whose lease expired (matched while SENDING), or its holder's late
    record of the receipt, races the sweeper's rescue of that lease: whichever commits first,
    a transition that reported success is not overwritten, so a delivered message is never
    sent again."""
    settings = DeliverySettings(lease_s=60)
    executed: set[tuple[str, ...]] = set()
    # a record that finds its lease held also retries the rows waiting for that partner
    for schedule in schedules(store, {"rescue": 3, ending: 3 if ending == "record" else 2}):
        with store.transaction() as tx:
            tx.execute("DELETE FROM outbox")
            tx.execute("DELETE FROM outbox_body")
        claim = expired_claim(store)
        bodies = {"rescue": rescuing(settings), ending: ending_lease(ending, claim, settings)}
        run = interleave(store, bodies, schedule)
        executed.add(run.order)
        state = outbox_state(store)
        if ending == "reply":
            assert state == "DELIVERED", f"the matched message went back to {state}: {run.order}"
        elif run.results["record"]:
            assert state == "AWAITING_REPLY", (
                f"a recorded receipt was undone ({state}): {run.order}"
            )
        else:
            assert state == "RETRY_WAIT", run.order
    assert len(executed) >= 2


# --- replies racing their sender's record -----------------------------------------------------


def sent_batch(store: Store, settings: DeliverySettings) -> list[Claim]:
    """Two messages claimed together and posted; their receipts are not recorded yet."""
    outbox = Outbox(store, "ccb", settings)
    with store.transaction() as tx:
        for message_id in (
            "7a9d3c1e-0000-4000-8000-000000000078",
            "7a9d3c1e-0000-4000-8000-000000000079",
        ):
            outbox.enqueue(
                tx, "bridge", "PERSON_SYNC", "request", message_id, b"<m/>", reply_timeout_s=86400.0
            )
    return outbox.claim()


def test_replies_matched_before_their_batch_is_recorded_never_deadlock(store: Store) -> None:
    """A batch's replies can come back before its sender records the receipts (the sender
    was slow). Processing them matches each in the inbox's order, while the record updates
    the whole batch at once: in no order of the two may one wait for the other in a cycle
    (PostgreSQL would abort one with a deadlock, and the worker would die); every reply is
    matched."""
    settings = DeliverySettings(lease_s=60)
    executed: set[tuple[str, ...]] = set()
    for schedule in schedules(store, {"replies": 3, "record": 3}):
        with store.transaction() as tx:
            tx.execute("DELETE FROM outbox")
            tx.execute("DELETE FROM outbox_body")
        claims = sent_batch(store, settings)

        def replies(s: Store, claims: list[Claim] = claims) -> None:
            with s.transaction() as tx:
                for claim in reversed(claims):  # not the order they were claimed in
                    Outbox(s, "ccb", settings).reply_received(tx, "bridge", claim.message_id)

        def record(s: Store, claims: list[Claim] = claims) -> list[Claim]:
            return Outbox(s, "ccb", settings).record([(c, None, None) for c in claims])

        run = interleave(store, {"replies": replies, "record": record}, schedule)
        executed.add(run.order)
        with store.transaction() as tx:
            states = [r["state"] for r in tx.fetch("SELECT state FROM outbox")]
        assert states == ["DELIVERED", "DELIVERED"], run.order
    assert len(executed) >= 2

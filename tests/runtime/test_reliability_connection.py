"""A lost database connection (docs/reliability.md R4, PostgreSQL only): the worker's backend is
terminated with ``pg_terminate_backend`` in the middle of its batches, from an admin connection.

Each loss is one warning and one line when the store answers again, never a traceback per item
of the batch in hand; the worker reconnects and the work completes with nothing lost or applied
twice. A connection lost while idle is replaced at the next transaction, with one warning.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any, cast

import psycopg
import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.node import Node
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store, StoreUnavailable, Transaction
from ccbmdm.runtime.store.dsn import redacted
from ccbmdm.runtime.store.postgres import lost
from reliability_world import build_world, check, install, open_work, quiet
from runtime_world import FAST, FLOWS, People, Unreachable
from support import pg_dsn, sample


class Terminator:
    """Terminates the backend of the connection it is handed a transaction on, from an admin
    connection, and waits until PostgreSQL has let it go: the next statement on it fails."""

    def __init__(self) -> None:
        self.admin = psycopg.connect(pg_dsn(), autocommit=True)
        self.terminated = 0

    def terminate(self, tx: Transaction) -> None:
        row = tx.fetch_one("SELECT pg_backend_pid() AS pid")
        assert row is not None
        self.terminate_pid(int(row["pid"]))

    def terminate_pid(self, pid: int) -> None:
        self.admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        deadline = time.monotonic() + 10
        while self.admin.execute(
            "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone():
            assert time.monotonic() < deadline, f"backend {pid} still there after 10 s"
            time.sleep(0.01)
        self.terminated += 1


class TerminatingMdm:
    """MDM's handler, which has its connection terminated before the ``at``-th messages."""

    def __init__(self, inner: Any, terminator: Terminator, at: set[int]) -> None:
        self.inner, self.terminator, self.at, self.calls = inner, terminator, at, 0

    def __call__(self, tx: Transaction, received: Received) -> str | None:
        self.calls += 1
        if self.calls in self.at:
            self.terminator.terminate(tx)
        result: str | None = self.inner(tx, received)
        return result


class TerminatingSource:
    """CCB's snapshot reader, which has its connection terminated at its ``at``-th read (the
    sync request monitor's batch)."""

    def __init__(self, inner: People, terminator: Terminator, at: set[int]) -> None:
        self.inner, self.terminator, self.at, self.calls = inner, terminator, at, 0

    def read(self, tx: Transaction, mo: str, key: tuple[str, ...]) -> Mapping[str, Any] | None:
        self.calls += 1
        if self.calls in self.at:
            self.terminator.terminate(tx)
        return self.inner.read(tx, mo, key)


@pytest.fixture
def runtime_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every record of the runtime's loggers, once each, whether or not they propagate to the
    root (``logs.configure`` stops them)."""
    logger = logging.getLogger("ccbmdm")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)
        logger.level, logger.propagate = saved


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_r4_terminated_backends_are_one_warning_each_and_the_work_completes(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    runtime_logs: pytest.LogCaptureFixture,
) -> None:
    """R4: three terminations mid-batch (the sync request monitor's read of a snapshot, then
    MDM's processing of a received batch, twice): three warnings and three reconnections, no
    traceback and no error, every request Synchronized and applied once."""
    install(store)
    world = build_world(store, registry, package)
    terminator = Terminator()
    world.monitor.reader = TerminatingSource(world.source, terminator, at={5})
    world.mdm.handler = TerminatingMdm(world.mdm.handler, terminator, at={3, 45})
    requests = 60
    for key in range(requests):
        world.source.change(f"{key:010d}", "Silva,Ada")

    stop = threading.Event()
    worker = threading.Thread(target=world.worker().run, args=(stop,))
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while not quiet(store):
            assert worker.is_alive(), "the worker stopped"
            assert time.monotonic() < deadline, f"not done after 120 s: {open_work(store)}"
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(timeout=30)
    terminator.admin.close()

    assert terminator.terminated == 3
    verdict = check(store)
    assert verdict.violations() == {}, verdict.details
    with store.transaction() as tx:
        states = Counter(r["state"] for r in tx.fetch("SELECT state FROM sync_request"))
        applied = Counter(str(r["message_id"]) for r in tx.fetch("SELECT message_id FROM applied"))
    assert states == {"SYNCHRONIZED": requests}
    assert len(applied) == requests and set(applied.values()) == {1}

    records = runtime_logs.records
    where = f"PostgreSQL at {redacted(store.dsn)}"
    losses = [r for r in records if r.getMessage().startswith(f"lost the connection to {where} (")]
    backs = [r for r in records if r.getMessage() == f"the connection to {where} is back"]
    assert [r.levelno for r in losses] == [logging.WARNING] * 3
    assert all(r.getMessage().endswith("; reconnecting") for r in losses)
    assert [r.levelno for r in backs] == [logging.WARNING] * 3
    # each loss is followed by its reconnection, within R4's 30 s
    moments = sorted([(r.created, "lost") for r in losses] + [(r.created, "back") for r in backs])
    assert [kind for _, kind in moments] == ["lost", "back"] * 3
    assert all(b - a < 30 for (a, _), (b, _) in zip(moments[::2], moments[1::2], strict=True))
    assert [r for r in records if r.exc_info] == []
    assert [r.getMessage() for r in records if r.levelno >= logging.ERROR] == []


def test_a_message_arriving_while_the_store_is_unreachable_is_to_be_sent_again(
    registry: ContractRegistry, runtime_logs: pytest.LogCaptureFixture
) -> None:
    """The posting gets 503 with fault 90000/1402 (the sender retries), naming neither the
    database nor its address; nothing is logged (the worker reports the outage)."""
    node = Node("bridge", cast(Store, Unreachable()), registry, FLOWS, InProcessTransport(), FAST)
    refused = node.receiver.receive(
        "ccb", "person-sync", "request", sample("ccb/PersonSyncRequest")
    )
    assert refused.status == 503 and refused.technical_failure
    assert b"<messageNumber>1402</messageNumber>" in refused.body
    assert b"store is unavailable" in refused.body and b"db.example" not in refused.body
    assert runtime_logs.records == []


def backend_of(store: Store) -> int:
    """The pid of this thread's connection to the store."""
    with store.transaction() as tx:
        row = tx.fetch_one("SELECT pg_backend_pid() AS pid")
    assert row is not None
    return int(row["pid"])


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_a_connection_lost_while_idle_is_replaced_at_the_next_transaction(
    store: Store, runtime_logs: pytest.LogCaptureFixture
) -> None:
    """Between two transactions (a monitor starting, a worker between polls, an HTTP thread
    between requests) nothing of a transaction was sent: the next one reconnects and goes on,
    with one warning."""
    terminator = Terminator()
    idle = backend_of(store)
    terminator.terminate_pid(idle)
    terminator.admin.close()
    with store.transaction() as tx:
        assert tx.fetch("SELECT 1 AS one") == [{"one": 1}]
    assert backend_of(store) != idle
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in runtime_logs.records] == [
        (
            "WARNING",
            f"lost the connection to PostgreSQL at {redacted(store.dsn)} while it was idle "
            "(terminating connection due to administrator command); reconnected",
            None,
        )
    ]


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_a_transaction_whose_connection_is_gone_never_returns_as_committed(store: Store) -> None:
    """Whatever the code inside made of the failure (an item loop that swallowed it), leaving
    the block raises: nothing was committed. psycopg alone would leave it without a word."""
    terminator = Terminator()
    with pytest.raises(StoreUnavailable, match="before the commit"), store.transaction() as tx:
        tx.execute("CREATE TABLE kept (id integer)")
        terminator.terminate(tx)
        with contextlib.suppress(StoreUnavailable):
            tx.execute("INSERT INTO kept VALUES (1)")
    terminator.admin.close()
    with store.transaction() as tx:
        assert tx.fetch("SELECT to_regclass('kept') AS kept") == [{"kept": None}]


class Connection:
    """What ``lost`` reads of a psycopg connection."""

    def __init__(self, broken: bool) -> None:
        self.broken, self.closed = broken, False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("broken", "error", "is_lost"),
    [
        (
            True,
            psycopg.OperationalError("consuming input failed: server closed the connection"),
            True,
        ),
        # the server's last words, read before libpq sees the socket close
        (False, psycopg.errors.AdminShutdown("terminating connection"), True),
        (False, psycopg.errors.IdleSessionTimeout("terminating connection"), True),
        (False, psycopg.errors.ConnectionFailure("connection failure"), True),
        # the connection is fine: a defect, or the database's own refusal
        (False, psycopg.errors.UniqueViolation("duplicate key"), False),
        (False, psycopg.errors.DeadlockDetected("deadlock detected"), False),
    ],
)
def test_a_connection_is_lost_when_broken_or_when_the_server_ended_the_session(
    broken: bool, error: psycopg.Error, is_lost: bool
) -> None:
    connection = Connection(broken)
    assert lost(cast(Any, connection), error) is is_lost
    assert connection.closed is is_lost  # a lost one is closed: the next transaction reconnects

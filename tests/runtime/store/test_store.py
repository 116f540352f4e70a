"""The store: schema versions, SQLite's durability settings and transactions (S2, S4, S5)."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from ccbmdm.runtime.lifecycles.sync import capture
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messaging.delivery import DeliverySettings, Inbox, Outbox
from ccbmdm.runtime.store import Store, StoreError, Transaction, open_store
from ccbmdm.runtime.store.schema import _TYPES, MIGRATIONS, SCHEMA_VERSION, migrate
from ccbmdm.runtime.store.sqlite import SqliteStore, refuse_network_filesystem, spelled_out


def test_migrating_twice_keeps_one_version_row(store: Store) -> None:
    assert store.migrate() == SCHEMA_VERSION
    with store.transaction() as tx:
        assert [r["version"] for r in tx.fetch("SELECT version FROM schema_version")] == list(
            range(1, SCHEMA_VERSION + 1)
        )


def test_upgrading_to_separate_bodies_keeps_every_message(empty_store: Store) -> None:
    """Schema 4 moves the messages of a store at version 3 into the body tables: a message
    queued or received before the upgrade is sent and read afterwards as it was."""
    migrate(empty_store, MIGRATIONS[:3])
    with empty_store.transaction() as tx:
        tx.execute(
            "INSERT INTO outbox (node, partner, flow, part, message_id, payload, state, due_at) "
            f"VALUES ('ccb', 'bridge', 'PERSON_SYNC', 'request', :id, :body, 'PENDING', {tx.now})",
            {"id": "6a1c2f0e-1111-4a6b-8c1d-2e3f4a5b6c7d", "body": b"<queued/>"},
        )
        tx.execute(
            "INSERT INTO inbox (node, partner, flow, part, message_id, payload, state, due_at, "
            f"received_at) VALUES ('ccb', 'bridge', 'PERSON_SYNC', 'ack', :id, :body, "
            f"'PROCESSED', NULL, {tx.now})",
            {"id": "6a1c2f0e-2222-4a6b-8c1d-2e3f4a5b6c7d", "body": b"<received/>"},
        )
    assert empty_store.migrate() == SCHEMA_VERSION
    (claim,) = Outbox(empty_store, "ccb", DeliverySettings()).claim()
    assert claim.payload == b"<queued/>"
    inbox = Inbox(empty_store, "ccb", DeliverySettings())
    with empty_store.transaction() as tx:
        assert inbox.payload(tx, "bridge", "6a1c2f0e-2222-4a6b-8c1d-2e3f4a5b6c7d") == b"<received/>"
        assert inbox.payload(tx, "bridge", "6a1c2f0e-3333-4a6b-8c1d-2e3f4a5b6c7d") is None


def test_messages_are_written_at_the_commit_as_they_were_queued(store: Store) -> None:
    """Outbox rows wait for the commit (Transaction.later): a savepoint rolled back drops its
    own, and a message queued again, in the same transaction or a later one, keeps the bytes
    it was first stored with."""
    outbox = Outbox(store, "ccb", DeliverySettings())
    one, two, three, four = (f"6a1c2f0e-{n}{n}{n}{n}-4a6b-8c1d-2e3f4a5b6c7d" for n in range(1, 5))

    def queue(tx: Transaction, message_id: str, payload: bytes) -> None:
        outbox.enqueue(tx, "bridge", "PERSON_SYNC", "request", message_id, payload)

    with store.transaction() as tx:
        queue(tx, one, b"<one/>")
        with pytest.raises(RuntimeError), tx.savepoint():
            queue(tx, two, b"<two/>")
            raise RuntimeError("this item fails")
        queue(tx, one, b"<one again/>")
        queue(tx, three, b"<three/>")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        queue(tx, two, b"<two/>")
        raise RuntimeError("this transaction fails")
    with store.transaction() as tx:
        queue(tx, one, b"<changed/>")
        queue(tx, four, b"<four/>")
    claims = outbox.claim()
    assert [(c.message_id, c.payload) for c in claims] == [
        (one, b"<one/>"),
        (three, b"<three/>"),
        (four, b"<four/>"),
    ]


def test_message_ids_are_version_7_uuids_that_sort_by_the_time_they_were_made() -> None:
    made_at = 1_795_000_000_000_000_000  # ns: November 2026
    ids = [new_message_id(made_at + step * 1_000_000) for step in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    first = uuid.UUID(ids[0])
    assert (first.version, first.variant) == (7, uuid.RFC_4122)
    assert first.int >> 80 == made_at // 1_000_000
    same_millisecond = {new_message_id(made_at) for _ in range(100)}
    assert len(same_millisecond) == 100  # the random bits tell them apart


@pytest.mark.parametrize("value", ["'a'", "'c'", "'d'", "NULL"])
@pytest.mark.parametrize("negated", ["", "NOT "])
def test_a_spelled_out_constant_list_means_what_the_list_meant(value: str, negated: str) -> None:
    listed = f"SELECT x {negated}IN ('a', 'b','c') FROM (SELECT {value} AS x)"
    spelled = spelled_out(listed)
    assert " IN " not in spelled, spelled
    database = sqlite3.connect(":memory:")
    assert database.execute(spelled).fetchone() == database.execute(listed).fetchone()


def test_only_lists_of_three_or_more_constants_are_spelled_out() -> None:
    kept = "SELECT 1 WHERE state IN ('A','B') AND id IN (:i0, :i1, :i2) AND id IN (SELECT 1)"
    assert spelled_out(kept) == kept
    assert spelled_out("WHERE r.state NOT IN ('A','B','C')") == (
        "WHERE (r.state <> 'A' AND r.state <> 'B' AND r.state <> 'C')"
    )


def test_upgrading_a_sqlite_store_spells_out_its_stored_lists(tmp_path: Path) -> None:
    """Schema 5 rewrites the definitions a store at version 4 was made with (lists in its
    CHECKs and partial indexes): its rows stay, its constraints still hold, and the claim
    still finds its rows through the partial index."""
    path = tmp_path / "v4.db"
    database = sqlite3.connect(path, isolation_level=None)
    for version, statements in enumerate(MIGRATIONS[:4], 1):
        for statement in statements:
            assert isinstance(statement, str)
            database.execute(statement.format(**_TYPES["sqlite"]))
        database.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY)")
        database.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    database.execute(
        "INSERT INTO outbox (node, partner, flow, part, message_id, ordering_key, state, due_at) "
        "VALUES ('ccb', 'bridge', 'PERSON_SYNC', 'request', 'm-1', 'k', 'PENDING', julianday('now'))"
    )
    database.execute("INSERT INTO outbox_body (id, payload) VALUES (1, x'3c6d2f3e')")
    listed = "SELECT name FROM sqlite_schema WHERE sql LIKE '%IN (''PENDING'',''SENDING''%'"
    assert database.execute(listed).fetchall()  # what the upgrade is for
    database.close()

    store = SqliteStore(str(path))
    assert store.migrate() == SCHEMA_VERSION
    connection = store.connection()
    assert connection.execute(listed).fetchall() == []
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    plan = connection.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE node = 'ccb' AND partner = 'bridge' "
        "AND ordering_key = 'k' AND "
        + spelled_out("state IN ('PENDING','SENDING','AWAITING_REPLY','RETRY_WAIT')")
    ).fetchall()
    assert "outbox_open_key" in str(plan)
    with pytest.raises(Exception, match=r"(?i)check"), store.transaction() as tx:
        tx.execute("UPDATE outbox SET state = 'LOST'")
    (claim,) = Outbox(store, "ccb", DeliverySettings()).claim()
    assert (claim.message_id, claim.payload) == ("m-1", b"<m/>")
    store.close()


def test_a_newer_schema_is_refused(store: Store) -> None:
    with store.transaction() as tx:
        tx.execute("INSERT INTO schema_version (version) VALUES (:v)", {"v": SCHEMA_VERSION + 1})
    with pytest.raises(StoreError, match="newer than this ccbmdm knows"):
        store.migrate()


def test_the_database_enforces_deadlines(store: Store) -> None:
    """E5: a non-final row without due_at is refused by a CHECK."""
    with pytest.raises(Exception, match=r"(?i)check"), store.transaction() as tx:
        tx.execute(
            "INSERT INTO sync_request (mo, pk, target, flow, state, initial_snapshot, created_at) "
            f"VALUES ('PERSON', '1', 'MDM', 'PERSON_SYNC', 'PENDING', 'null', {tx.now})"
        )


def test_s5_every_sqlite_connection_uses_wal_and_full_sync(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s5.db"))
    connection = store.connection()
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_s2_every_write_runs_in_begin_immediate(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s2.db"))
    store.migrate()
    statements: list[str] = []
    store.connection().set_trace_callback(statements.append)
    with store.transaction() as tx:
        capture(tx, "PERSON", ("0000000001",), None)
    in_transaction = False
    for statement in statements:
        word = statement.split()[0].upper()
        if word == "BEGIN":
            assert statement.upper() == "BEGIN IMMEDIATE", statement
            in_transaction = True
        elif word in ("COMMIT", "ROLLBACK"):
            in_transaction = False
        elif word in ("INSERT", "UPDATE", "DELETE"):
            assert in_transaction, f"a write outside BEGIN IMMEDIATE: {statement}"
    assert any(s.startswith("INSERT INTO sync_request") for s in statements)


def test_s4_a_network_filesystem_is_refused(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"server:/export {tmp_path} nfs4 rw 0 0\n/dev/sda1 / ext4 rw 0 0\n")
    with pytest.raises(
        StoreError, match="nfs4 network filesystem; SQLite's WAL needs a local disk"
    ):
        refuse_network_filesystem(tmp_path / "runtime.db", mounts)
    refuse_network_filesystem(Path("/var/tmp/x.db"), mounts)  # a local disk passes


def test_open_store_picks_the_backend(tmp_path: Path) -> None:
    assert open_store(str(tmp_path / "a.db")).dialect == "sqlite"
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")


def test_a_rolled_back_transaction_writes_nothing(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "rb.db"))
    store.migrate()
    with pytest.raises(RuntimeError), store.transaction() as tx:
        capture(tx, "PERSON", ("0000000001",), None)
        raise RuntimeError("abandon")
    assert (
        sqlite3.connect(tmp_path / "rb.db")
        .execute("SELECT count(*) FROM sync_request")
        .fetchone()[0]
        == 0
    )

"""On PostgreSQL, matching an acknowledgement or a reply reads the rows it matches, by their
key, even while the planner's statistics date from before a large run's sends: they then say
that no row is open, and the partial indexes of the open rows look empty. Walking one of
those indexes read every open row for each match (9 ms a match with 16,000 open)."""

from __future__ import annotations

import pytest

from ccbmdm.runtime.messaging.delivery import DeliverySettings, Outbox
from ccbmdm.runtime.store import Transaction
from ccbmdm.runtime.store.postgres import PostgresStore

# rows that turn open after the last analysis: enough that reading them all costs more, by the
# planner's own measure, than finding a batch's rows by their key
OPEN = 20_000
MATCHED = 50


@pytest.fixture
def store(postgres_store: PostgresStore) -> PostgresStore:
    postgres_store.migrate()
    return postgres_store


def _heap_rows_read(tx: Transaction, table: str) -> int:
    """The rows of ``table`` this transaction has read so far, by index or by scan."""
    row = tx.fetch_one(
        """SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) AS n
           FROM pg_stat_xact_user_tables WHERE relid = to_regclass(:table)""",
        {"table": table},
    )
    assert row is not None
    return int(row["n"])


def test_a_reply_is_matched_by_its_message_s_key(store: PostgresStore) -> None:
    """CCB's usage requests to the bridge, delivered when the statistics were taken, all
    awaiting a reply now."""
    with store.transaction() as tx:
        tx.execute(
            f"""INSERT INTO outbox (node, partner, flow, part, message_id, state, due_at)
                SELECT 'ccb', 'bridge', 'BATCH_BD', 'request', gen_random_uuid(), 'DELIVERED', NULL
                FROM generate_series(1, {OPEN})"""
        )
        tx.execute("ANALYZE outbox")
    with store.transaction() as tx:
        tx.execute("UPDATE outbox SET state = 'AWAITING_REPLY', due_at = now()")
        last = tx.fetch("SELECT message_id FROM outbox ORDER BY id DESC LIMIT :n", {"n": MATCHED})
    outbox = Outbox(store, "ccb", DeliverySettings())
    replies = [("bridge", str(row["message_id"])) for row in last]
    with store.transaction() as tx:
        before = _heap_rows_read(tx, "outbox")
        outbox.replies_received(tx, replies)
        read = _heap_rows_read(tx, "outbox") - before
    assert read <= 2 * MATCHED, f"matching {MATCHED} replies read {read} outbox rows"
    with store.transaction() as tx:
        delivered = tx.fetch_one("SELECT count(*) AS n FROM outbox WHERE state = 'DELIVERED'")
    assert delivered is not None and delivered["n"] == MATCHED


def test_acknowledged_requests_are_moved_by_their_ids(store: PostgresStore) -> None:
    """Sync requests synchronized when the statistics were taken, all awaiting an
    acknowledgement now; a batch of acknowledgements moves its own (``update_rows`` with a
    state condition)."""
    with store.transaction() as tx:
        tx.execute(
            f"""INSERT INTO sync_request
                  (mo, pk, target, flow, state, initial_snapshot, final_snapshot, created_at)
                SELECT 'PERSON', n::text, 'MDM', 'PERSON_SYNC', 'SYNCHRONIZED', '{{}}', '{{}}',
                       now()
                FROM generate_series(1, {OPEN}) AS n"""
        )
        tx.execute("ANALYZE sync_request")
    with store.transaction() as tx:
        tx.execute("UPDATE sync_request SET state = 'AWAITING_ACK'")
        last = tx.fetch("SELECT id FROM sync_request ORDER BY id DESC LIMIT :n", {"n": MATCHED})
    with store.transaction() as tx:
        before = _heap_rows_read(tx, "sync_request")
        tx.update_rows(
            "sync_request",
            "state = :state, due_at = NULL",
            [{"id": row["id"], "state": "SYNCHRONIZED"} for row in last],
            {"state": "text"},
            "sync_request.state = 'AWAITING_ACK'",
        )
        read = _heap_rows_read(tx, "sync_request") - before
    assert read <= 2 * MATCHED, f"moving {MATCHED} requests read {read} sync_request rows"
    with store.transaction() as tx:
        awaiting = tx.fetch_one(
            "SELECT count(*) AS n FROM sync_request WHERE state = 'AWAITING_ACK'"
        )
    assert awaiting is not None and awaiting["n"] == OPEN - MATCHED

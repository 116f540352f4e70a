"""The runtime's tables (docs/reliability.md §2.1), versioned: the store creates and upgrades them.

Each migration is written once with a few type words that each dialect spells its own way;
``schema_version`` records what has been applied, in the same transaction as the change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccbmdm.runtime.store.base import Store, Transaction

# A migration's step: a statement (with type words), or what a statement cannot say
Step = str | Callable[["Store", "Transaction"], None]


def spell_out_constant_lists(store: Store, tx: Transaction) -> None:
    """SQLite: the stored definitions with their constant lists spelled out (see
    ``sqlite.spelled_out``); PostgreSQL has nothing to change."""
    store.spell_out_schema(tx)


_TYPES = {
    "sqlite": {
        "id": "INTEGER PRIMARY KEY",
        "key": "INTEGER PRIMARY KEY",
        "ts": "REAL",
        "json": "TEXT",
        "blob": "BLOB",
        "uuid": "TEXT",
    },
    "postgres": {
        "id": "bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "key": "bigint PRIMARY KEY",
        "ts": "timestamptz",
        "json": "jsonb",
        "blob": "bytea",
        "uuid": "uuid",
    },
}


@dataclass(frozen=True)
class Recorded:
    """A table whose rows' moves ``transition`` records, under the name of their ``kind``
    (``runtime.history``), and the column of the reason a move gives.

    A message (``failing`` given: the states a failure leaves it in) is recorded from its
    first failure on, which is when an operator needs its story: a message that went through
    at once costs its node no write more, and its request's moves tell when it went. Its
    ``lease`` state (a claim being worked on) is never recorded, and its reason only where it
    says why it is in that state (its last error is kept after it has gone through)."""

    table: str
    kind: str
    reason: str = "reason"
    lease: str | None = None
    failing: tuple[str, ...] = ()


RECORDED = (
    Recorded("sync_request", "sync_request"),
    Recorded("usage_request", "usage_request"),
    Recorded("mdm_sync_request", "mdm_sync_request"),
    Recorded("outbox", "outbox", "last_error", "SENDING", ("RETRY_WAIT", "ERROR")),
    Recorded("inbox", "inbox", "last_error", "PROCESSING", ("RECEIVED",)),
)


def record_transitions(store: Store, tx: Transaction) -> None:
    """The triggers of the runtime's tables (``RECORDED``, ``record_moves``)."""
    for recorded in RECORDED:
        record_moves(store, tx, recorded)


def record_moves(store: Store, tx: Transaction, recorded: Recorded) -> None:
    """A trigger that appends each state a row of the table enters to ``transition``, with its
    reason and the database clock: one place per table that sees every move, whichever
    statement makes it. A row entering its state again with another reason (an Error whose
    resubmit failed anew) is recorded too. The clock is the database's own, even on a store
    opened with a clock offset (a conformance case's)."""
    table, column = recorded.table, recorded.reason
    changed = f"NEW.{column} IS DISTINCT FROM OLD.{column}"
    when = f"NEW.state IS DISTINCT FROM OLD.state OR {changed}"
    reason = f"NEW.{column}"
    if recorded.failing:
        states = ", ".join(f"'{state}'" for state in recorded.failing)
        when = f"NEW.state <> '{recorded.lease}' AND NEW.{column} IS NOT NULL AND ({when})"
        reason = f"CASE WHEN {changed} OR NEW.state IN ({states}) THEN NEW.{column} END"
    values = f"'{recorded.kind}', NEW.id, NEW.state, {reason}, {type(store).now}"
    insert = f"INSERT INTO transition (kind, row_id, state, reason, at) VALUES ({values})"
    name = f"{table}_moved_transition"
    event = f"UPDATE OF state, {column}"
    if store.dialect == "sqlite":
        condition = when.replace("IS DISTINCT FROM", "IS NOT")
        insert = insert.replace("IS DISTINCT FROM", "IS NOT")
        tx.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW "
            f"WHEN {condition} BEGIN {insert}; END"
        )
    else:
        tx.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {insert}; RETURN NULL; END $$"
        )
        tx.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW "
            f"WHEN ({when}) EXECUTE FUNCTION {name}()"
        )


MIGRATIONS: tuple[tuple[Step, ...], ...] = (
    # 1: change capture, sync requests, the outbox and the inbox
    (
        """CREATE TABLE entity_version (
             mo text NOT NULL, pk text NOT NULL, target text NOT NULL, version bigint NOT NULL,
             PRIMARY KEY (mo, pk, target))""",
        """CREATE TABLE sync_request (
             id {id},
             mo text NOT NULL, pk text NOT NULL, target text NOT NULL, flow text NOT NULL,
             state text NOT NULL, reason text, due_at {ts}, entity_version bigint,
             initial_snapshot {json} NOT NULL, final_snapshot {json},
             initial_load boolean NOT NULL DEFAULT FALSE,
             message_id {uuid} UNIQUE, created_at {ts} NOT NULL,
             CHECK (state IN ('PENDING','AWAITING_ACK','ERROR','SYNCHRONIZED','DISCARDED','CANCELED','SUPERSEDED')),
             CHECK (state NOT IN ('PENDING','ERROR') OR due_at IS NOT NULL),
             CHECK (message_id IS NULL OR final_snapshot IS NOT NULL))""",
        "CREATE UNIQUE INDEX one_pending ON sync_request (mo, pk, target) WHERE state = 'PENDING'",
        "CREATE INDEX sync_request_due ON sync_request (due_at, id) WHERE state = 'PENDING'",
        "CREATE INDEX open_key ON sync_request (mo, pk, target) WHERE state IN ('AWAITING_ACK','ERROR')",
        """CREATE TABLE outbox (
             id {id}, node text NOT NULL, partner text NOT NULL, flow text NOT NULL, part text NOT NULL,
             message_id {uuid} NOT NULL, ordering_key text, owner_type text, owner_id bigint,
             payload {blob} NOT NULL, reply_timeout_s double precision,
             state text NOT NULL, attempt integer NOT NULL DEFAULT 0, lease_token text,
             due_at {ts}, last_error text,
             UNIQUE (node, partner, message_id),
             CHECK (state IN ('PENDING','SENDING','AWAITING_REPLY','RETRY_WAIT','DELIVERED','ERROR')),
             CHECK (state IN ('DELIVERED','ERROR') OR due_at IS NOT NULL))""",
        "CREATE INDEX outbox_claimable ON outbox (due_at, id) WHERE state IN ('PENDING','RETRY_WAIT')",
        "CREATE INDEX outbox_in_flight ON outbox (due_at) WHERE state IN ('SENDING','AWAITING_REPLY')",
        """CREATE INDEX outbox_open_key ON outbox (node, partner, ordering_key, id)
             WHERE state IN ('PENDING','SENDING','AWAITING_REPLY','RETRY_WAIT')""",
        """CREATE TABLE inbox (
             id {id}, node text NOT NULL, partner text NOT NULL, flow text NOT NULL, part text NOT NULL,
             message_id {uuid} NOT NULL, correlation_id {uuid}, payload {blob} NOT NULL,
             state text NOT NULL, attempt integer NOT NULL DEFAULT 0, lease_token text, due_at {ts},
             outcome_message_id {uuid}, received_at {ts} NOT NULL,
             UNIQUE (node, partner, message_id),
             CHECK (state IN ('RECEIVED','PROCESSING','PROCESSED')),
             CHECK (state = 'PROCESSED' OR due_at IS NOT NULL))""",
        "CREATE INDEX inbox_claimable ON inbox (due_at, id) WHERE state = 'RECEIVED'",
    ),
    # 2: claims and rescues find one node's rows by index (several nodes may share a store)
    (
        "DROP INDEX outbox_claimable",
        "CREATE INDEX outbox_claimable ON outbox (node, due_at, id) WHERE state IN ('PENDING','RETRY_WAIT')",
        "DROP INDEX inbox_claimable",
        "CREATE INDEX inbox_claimable ON inbox (node, due_at, id) WHERE state = 'RECEIVED'",
        "DROP INDEX outbox_in_flight",
        "CREATE INDEX outbox_in_flight ON outbox (node, due_at) WHERE state IN ('SENDING','AWAITING_REPLY')",
        "CREATE INDEX inbox_in_flight ON inbox (node, due_at) WHERE state = 'PROCESSING'",
    ),
    # 3: the CCB usage request and the MDM inbound sync request (lifecycle.USAGE_REQUEST and
    # MDM_INBOUND_SYNC; their transitory states are never stored). Dates a deadline counts
    # from (window end, endDateTimeTo, estimate date) are stored as the instants they stand for.
    (
        """CREATE TABLE usage_request (
             id {id}, flow text NOT NULL, sa_id text NOT NULL, bill_segment_id text NOT NULL,
             state text NOT NULL, reason text, due_at {ts},
             message_id {uuid} UNIQUE, response_message_id {uuid}, previous_usage_id text, usage_id text,
             window_end {ts}, end_date_time_to {ts}, estimate_date {ts}, created_at {ts} NOT NULL,
             CHECK (flow IN ('BATCH_BD','ONLINE_BD')),
             CHECK (state IN ('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED',
                              'BILL_DETERMINANTS_PROCESSED','ERROR','CANCELED')),
             CHECK (state NOT IN ('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED')
                    OR due_at IS NOT NULL),
             CHECK (flow <> 'BATCH_BD' OR (window_end IS NOT NULL AND end_date_time_to IS NOT NULL AND estimate_date IS NOT NULL)),
             CHECK (state NOT IN ('AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED','BILL_DETERMINANTS_PROCESSED')
                    OR message_id IS NOT NULL))""",
        """CREATE INDEX usage_request_due ON usage_request (due_at, id)
             WHERE state IN ('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED')""",
        # the duplicate guard (lifecycles §3): one open request per bill segment
        """CREATE UNIQUE INDEX one_open_usage_request ON usage_request (bill_segment_id)
             WHERE state IN ('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED')""",
        """CREATE TABLE mdm_sync_request (
             id {id}, flow text NOT NULL, mo text NOT NULL, external_key text NOT NULL,
             initial_load boolean NOT NULL DEFAULT FALSE, message_id {uuid} NOT NULL UNIQUE,
             state text NOT NULL, reason text, due_at {ts}, first_error_at {ts}, created_at {ts} NOT NULL,
             CHECK (state IN ('PENDING','ERROR_RETRYABLE','SYNCHRONIZED','ERROR','DISCARDED')),
             CHECK (state NOT IN ('PENDING','ERROR_RETRYABLE') OR due_at IS NOT NULL),
             CHECK (state <> 'ERROR_RETRYABLE' OR first_error_at IS NOT NULL))""",
        """CREATE INDEX mdm_sync_request_due ON mdm_sync_request (due_at, id)
             WHERE state IN ('PENDING','ERROR_RETRYABLE')""",
    ),
    # 4: message bodies in tables of their own, keyed by their row's id: a state change rewrites
    # a small row, not the message with it (on SQLite, an update of a batch dirtied a page for
    # about every two messages; on PostgreSQL, every new row version copied the message)
    (
        "CREATE TABLE outbox_body (id {key}, payload {blob} NOT NULL)",
        "INSERT INTO outbox_body (id, payload) SELECT id, payload FROM outbox",
        "ALTER TABLE outbox DROP COLUMN payload",
        "CREATE TABLE inbox_body (id {key}, payload {blob} NOT NULL)",
        "INSERT INTO inbox_body (id, payload) SELECT id, payload FROM inbox",
        "ALTER TABLE inbox DROP COLUMN payload",
    ),
    # 5: on SQLite, the state lists of CHECKs and partial indexes spelled out as ORs, as the
    # store now writes every statement (a list of three or more constants cost a temporary
    # table in each write); covers every table of the file, the simulators' included
    (spell_out_constant_lists,),
    # 6: recovery after a crash. An MDM request in retryable Error records the key it waits
    # for, so storing that key wakes it (the 15-minute retry is only the fallback). An outbox
    # row keeps when it was first sent (a retry window counts from it), how many of its sends
    # were refused before anything was sent (they use up no attempt), and what its last failure
    # was (a successful send retries at once the rows whose partner seemed down)
    (
        "ALTER TABLE mdm_sync_request ADD COLUMN waiting_mo text",
        "ALTER TABLE mdm_sync_request ADD COLUMN waiting_key text",
        """CREATE INDEX mdm_sync_request_waiting ON mdm_sync_request (waiting_mo, waiting_key)
             WHERE state = 'ERROR_RETRYABLE'""",
        "ALTER TABLE outbox ADD COLUMN first_attempt_at {ts}",
        "ALTER TABLE outbox ADD COLUMN refused integer NOT NULL DEFAULT 0",
        """ALTER TABLE outbox ADD COLUMN failure text
             CHECK (failure IN ('unreachable','transport','answer','deadline','business'))""",
    ),
    # 7: a request's life (``runtime.history``). Every state a request enters, and a message's
    # from its first failure on, with its reason and time, appended by triggers
    # (``record_transitions``); the inbox keeps why its last
    # processing failed, as the outbox does; a message is found by its id, the replies to it by
    # their correlation id, and a request's messages by their owner, each through an index.
    (
        """CREATE TABLE transition (
             id {id}, kind text NOT NULL, row_id bigint NOT NULL, state text NOT NULL,
             reason text, at {ts} NOT NULL)""",
        "CREATE INDEX transition_row ON transition (kind, row_id, id)",
        "ALTER TABLE inbox ADD COLUMN last_error text",
        record_transitions,
        "CREATE INDEX outbox_message ON outbox (message_id)",
        "CREATE INDEX outbox_owner ON outbox (owner_type, owner_id) WHERE owner_id IS NOT NULL",
        "CREATE INDEX inbox_message ON inbox (message_id)",
        "CREATE INDEX inbox_correlation ON inbox (correlation_id) WHERE correlation_id IS NOT NULL",
        "CREATE INDEX usage_request_response ON usage_request (response_message_id)",
    ),
    # 8: the operator's console. Its lists filter the requests by state, flow and time and page
    # by id, newest first, over an index each (never a scan of a whole table); its throughput
    # chart counts a node's received messages per minute by their arrival; and every action an
    # operator takes is kept in the audit trail, found by its target
    (
        "CREATE INDEX sync_request_state ON sync_request (state, id)",
        "CREATE INDEX sync_request_flow ON sync_request (flow, id)",
        "CREATE INDEX sync_request_created ON sync_request (created_at)",
        "CREATE INDEX usage_request_state ON usage_request (state, id)",
        "CREATE INDEX usage_request_flow ON usage_request (flow, id)",
        "CREATE INDEX usage_request_created ON usage_request (created_at)",
        "CREATE INDEX mdm_sync_request_state ON mdm_sync_request (state, id)",
        "CREATE INDEX mdm_sync_request_flow ON mdm_sync_request (flow, id)",
        "CREATE INDEX mdm_sync_request_created ON mdm_sync_request (created_at)",
        "CREATE INDEX inbox_received ON inbox (node, received_at)",
        """CREATE TABLE audit (
             id {id}, at {ts} NOT NULL, node text NOT NULL, operator text NOT NULL,
             action text NOT NULL, target_kind text NOT NULL, target_id bigint NOT NULL,
             reason text, outcome text NOT NULL,
             CHECK (action IN ('resubmit','discard')))""",
        "CREATE INDEX audit_target ON audit (target_kind, target_id, id)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)


def has_schema(store: Store, version_table: str = "schema_version") -> bool:
    """Whether the store holds ccbmdm's tables at all: a command that only reads a store must
    not create one in an empty file or database."""
    sql = (
        "SELECT to_regclass(:name) IS NOT NULL AS found"
        if store.dialect == "postgres"
        else "SELECT count(*) > 0 AS found FROM sqlite_master WHERE type = 'table' AND name = :name"
    )
    with store.transaction() as tx:
        row = tx.fetch_one(sql, {"name": version_table})
    return bool(row and row["found"])


def migrate(
    store: Store,
    migrations: Sequence[tuple[Step, ...]] = MIGRATIONS,
    version_table: str = "schema_version",
) -> int:
    """Apply the migrations not yet applied, each in its own transaction; returns the version.

    The runtime's tables use the defaults; a simulator keeps its own tables in the same store
    with its own list and version table. Statements may use the type words ``{id}`` (a key
    the store assigns), ``{key}`` (a key the row is given), ``{ts}``, ``{json}``, ``{blob}`` and
    ``{uuid}``; a step that is a function is called with the store and the transaction."""
    if not version_table.replace("_", "").isalnum():
        raise ValueError(f"not a table name: {version_table!r}")
    latest = len(migrations)
    types = _TYPES[store.dialect]
    with store.transaction() as tx:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {version_table} (version integer PRIMARY KEY)")
        row = tx.fetch_one(f"SELECT max(version) AS version FROM {version_table}")
    current = int(row["version"]) if row and row["version"] is not None else 0
    if current > latest:
        from ccbmdm.runtime.store.base import StoreError

        raise StoreError(
            f"the store's {version_table} is {current}, newer than this ccbmdm knows ({latest}); "
            "upgrade ccbmdm"
        )
    for version in range(current + 1, latest + 1):
        with store.transaction() as tx:
            if store.dialect == "postgres":  # serialise concurrent migrations; released at commit
                tx.execute("SELECT pg_advisory_xact_lock(4242)")
            if tx.fetch_one(
                f"SELECT version FROM {version_table} WHERE version = :v", {"v": version}
            ):
                continue  # another process migrated meanwhile
            for step in migrations[version - 1]:
                if isinstance(step, str):
                    tx.execute(step.format(**types))
                else:
                    step(store, tx)
            tx.execute(f"INSERT INTO {version_table} (version) VALUES (:v)", {"v": version})
    return latest

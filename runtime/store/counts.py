"""Rows per lifecycle and state, counted without scanning a table.

A lifecycle's rows fall in two kinds of state. The open states (Pending, in flight, waiting
for a reply, in Error) hold few rows by nature, and partial indexes on exactly those rows
exist for the workers' claims: they are counted through those indexes, exactly, when asked.
The settled states (SYNCHRONIZED, DELIVERED, PROCESSED, ...) hold nearly every row, so
counting them would read nearly everything: their rows are kept counted instead, as they move
(``Counted.kept``). Triggers on each table add a row's move into or out of a kept state to
``state_count``, in the transaction that makes it: the rows the state holds now
(``present``), and how many ever entered it (``entered``, what the counters of ``/metrics``
read). RETRY_WAIT is kept too, so that each retry is counted as it happens. A row's open moves
(claimed, sent, answered) fire no trigger at all: the runtime's hot path pays for one move per
row, the one that settles it.

SQLite has one writer at a time: each move updates its key's row in place. On PostgreSQL
several workers write at once, and one row per key would make them wait for each other: each
statement appends the net change of its rows instead (a trigger per statement, reading the
statement's old and new rows), and ``fold`` sums the appended rows into one per key now and
then (the workers' sweep). A reader sums whatever is there, folded or not.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ccbmdm.runtime.store.base import Store, Transaction


@dataclass(frozen=True)
class Counted:
    """A table counted per state: ``node`` and ``part`` are the SQL of those keys ('' for a
    table without them); ``kept``: the states whose rows ``state_count`` keeps counted;
    ``open``: the conditions of the partial indexes that hold every other state's rows, each
    written as the index's (SQLite uses a partial index for a query that repeats its terms)."""

    table: str
    kept: tuple[str, ...]
    open: tuple[str, ...]
    node: str = "''"
    part: str = "''"

    def holds_open(self, state: str) -> bool:
        """Whether ``state`` is one of the open states, which a partial index holds."""
        return any(f"'{state}'" in condition for condition in self.open)

    def kept_sql(self) -> str:
        return "(" + ", ".join(f"'{state}'" for state in self.kept) + ")"


COUNTED = (
    Counted(
        "sync_request",
        ("SYNCHRONIZED", "DISCARDED", "CANCELED", "SUPERSEDED"),
        ("state = 'PENDING'", "state IN ('AWAITING_ACK','ERROR')"),  # sync_request_due, open_key
    ),
    Counted(
        "usage_request",
        ("BILL_DETERMINANTS_PROCESSED", "CANCELED"),
        (  # usage_request_due, usage_request_error
            "state IN ('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS',"
            "'BILL_DETERMINANTS_RECEIVED')",
            "state = 'ERROR'",
        ),
    ),
    Counted(
        "mdm_sync_request",
        ("SYNCHRONIZED", "DISCARDED"),
        # mdm_sync_request_due, mdm_sync_request_error
        ("state IN ('PENDING','ERROR_RETRYABLE')", "state = 'ERROR'"),
    ),
    Counted(
        "outbox",
        ("DELIVERED", "ERROR", "RETRY_WAIT"),  # RETRY_WAIT: each retry counted as it happens
        ("state IN ('PENDING','SENDING','AWAITING_REPLY','RETRY_WAIT')",),  # outbox_open_key
        "node",
        "part",
    ),
    Counted(
        "inbox",
        ("PROCESSED",),
        ("state = 'RECEIVED'", "state = 'PROCESSING'"),  # inbox_claimable, inbox_in_flight
        "node",
        "part",
    ),
)
_KEY = "lifecycle, node, flow, part, state"
# a key for PostgreSQL's advisory lock that lets one fold run at a time (the migration's is 4242)
_FOLD_LOCK = 4243


@dataclass(frozen=True)
class StateCount:
    """The rows of one lifecycle in one state, per node, flow and part where the lifecycle has
    them ('' where it has not); ``entered``: how many rows ever entered the state since the
    counts began (a row that leaves and enters again counts twice)."""

    lifecycle: str
    node: str
    flow: str
    part: str
    state: str
    rows: int
    entered: int


def begin_counting(store: Store, tx: Transaction) -> None:
    """A migration's step: the count table, filled from the rows there are (the one scan of
    every table, once), and the triggers that keep it."""
    unique = "UNIQUE (lifecycle, node, flow, part, state)" if store.dialect == "sqlite" else ""
    tx.execute(
        f"""CREATE TABLE state_count (
              lifecycle text NOT NULL, node text NOT NULL, flow text NOT NULL, part text NOT NULL,
              state text NOT NULL, present bigint NOT NULL, entered bigint NOT NULL
              {", " + unique if unique else ""})"""
    )
    for counted in COUNTED:
        tx.execute(
            f"""INSERT INTO state_count ({_KEY}, present, entered)
                SELECT '{counted.table}', {counted.node}, flow, {counted.part}, state, count(*), count(*)
                FROM {counted.table} WHERE state IN {counted.kept_sql()} GROUP BY 2, 3, 4, 5"""
        )
        statements = _sqlite_triggers if store.dialect == "sqlite" else _postgres_triggers
        for statement in statements(counted):
            tx.execute(statement)


def _sqlite_triggers(counted: Counted) -> Iterator[str]:
    """Triggers per row, on the moves into and out of a kept state only: its key's count
    updated in place (one writer at a time)."""

    def add(row: str, rows: int, entered: int) -> str:
        node = counted.node.replace("node", f"{row}.node")
        part = counted.part.replace("part", f"{row}.part")
        return f"""INSERT INTO state_count ({_KEY}, present, entered)
                   VALUES ('{counted.table}', {node}, {row}.flow, {part}, {row}.state, {rows}, {entered})
                   ON CONFLICT ({_KEY}) DO UPDATE
                   SET present = present + excluded.present, entered = entered + excluded.entered;"""

    table, kept = counted.table, counted.kept_sql()
    moved = "OLD.state IS NOT NEW.state"
    yield f"""CREATE TRIGGER {table}_counted_in AFTER INSERT ON {table}
              WHEN NEW.state IN {kept} BEGIN {add("NEW", 1, 1)} END"""
    yield f"""CREATE TRIGGER {table}_counted_left AFTER UPDATE OF state ON {table}
              WHEN {moved} AND OLD.state IN {kept} BEGIN {add("OLD", -1, 0)} END"""
    yield f"""CREATE TRIGGER {table}_counted_entered AFTER UPDATE OF state ON {table}
              WHEN {moved} AND NEW.state IN {kept} BEGIN {add("NEW", 1, 1)} END"""
    yield f"""CREATE TRIGGER {table}_counted_out AFTER DELETE ON {table}
              WHEN OLD.state IN {kept} BEGIN {add("OLD", -1, 0)} END"""


def _postgres_triggers(counted: Counted) -> Iterator[str]:
    """A trigger per statement: the net change of the statement's rows in kept states
    appended, a row per key it changed (appended, not updated, so that concurrent workers never
    wait on a count)."""
    table, kept = counted.table, counted.kept_sql()

    def key(alias: str) -> str:
        node = counted.node.replace("node", f"{alias}.node")
        part = counted.part.replace("part", f"{alias}.part")
        return f"{node} AS node, {alias}.flow, {part} AS part"

    def append(changes: str) -> str:
        return f"""INSERT INTO state_count ({_KEY}, present, entered)
                   SELECT '{table}', node, flow, part, state, sum(present), sum(entered)
                   FROM ({changes}) AS change GROUP BY node, flow, part, state
                   HAVING sum(present) <> 0 OR sum(entered) <> 0;"""

    inserted = append(
        f"SELECT {key('n')}, n.state, 1 AS present, 1 AS entered FROM new_rows n "
        f"WHERE n.state IN {kept}"
    )
    deleted = append(
        f"SELECT {key('o')}, o.state, -1 AS present, 0 AS entered FROM old_rows o "
        f"WHERE o.state IN {kept}"
    )
    moved = append(
        f"""SELECT {key("o")}, o.state, -1 AS present, 0 AS entered
              FROM old_rows o JOIN new_rows n USING (id)
              WHERE o.state <> n.state AND o.state IN {kept}
            UNION ALL
            SELECT {key("n")}, n.state, 1, 1
              FROM old_rows o JOIN new_rows n USING (id)
              WHERE o.state <> n.state AND n.state IN {kept}"""
    )
    for event, body, transition in (
        ("insert", inserted, "NEW TABLE AS new_rows"),
        ("update", moved, "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", deleted, "OLD TABLE AS old_rows"),
    ):
        function = f"{table}_counted_{event}"
        yield f"""CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
                  BEGIN {body} RETURN NULL; END $$"""
        yield f"""CREATE TRIGGER {function} AFTER {event.upper()} ON {table}
                  REFERENCING {transition} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"""


def fold(store: Store) -> int:
    """PostgreSQL: sum the rows appended since the last fold into one per key (in one
    statement, so that the sums stay what they were); one fold at a time, the others skip.
    SQLite keeps one row per key already. Returns 0: a fold moves no work on."""
    if store.dialect != "postgres":
        return 0
    with store.transaction() as tx:
        mine = tx.fetch_one("SELECT pg_try_advisory_xact_lock(:key) AS mine", {"key": _FOLD_LOCK})
        if mine is None or not mine["mine"]:
            return 0
        tx.execute(
            f"""WITH gone AS (DELETE FROM state_count RETURNING {_KEY}, present, entered)
                INSERT INTO state_count ({_KEY}, present, entered)
                SELECT {_KEY}, sum(present), sum(entered) FROM gone GROUP BY {_KEY}
                HAVING sum(present) <> 0 OR sum(entered) <> 0"""
        )
    return 0


def state_counts(tx: Transaction) -> list[StateCount]:
    """Every lifecycle's rows per node, flow, part and state, exact as of the transaction:
    the kept states' from ``state_count``, the open states' through their partial indexes.
    An open state's ``entered`` is not kept: 0."""
    counts = [
        StateCount(
            str(row["lifecycle"]),
            str(row["node"]),
            str(row["flow"]),
            str(row["part"]),
            str(row["state"]),
            int(row["present"]),
            int(row["entered"]),
        )
        for row in tx.fetch(
            f"""SELECT {_KEY}, sum(present) AS present, sum(entered) AS entered FROM state_count
                GROUP BY {_KEY}"""
        )
    ]
    for counted in COUNTED:
        for condition in counted.open:
            for row in tx.fetch(
                f"""SELECT {counted.node} AS node, flow, {counted.part} AS part, state,
                      count(*) AS n FROM {counted.table} WHERE {condition} GROUP BY 1, 2, 3, 4"""
            ):
                if row["state"] not in counted.kept:
                    key = (str(row["node"]), str(row["flow"]), str(row["part"]))
                    counts.append(
                        StateCount(counted.table, *key, str(row["state"]), int(row["n"]), 0)
                    )
    return sorted(counts, key=lambda c: (c.lifecycle, c.node, c.flow, c.part, c.state))

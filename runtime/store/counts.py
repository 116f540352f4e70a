"""Rows per lifecycle and state kept as they change, so that counting them never scans a table.

Every table with a lifecycle (the sync request, the usage request, the MDM sync request, the
outbox and the inbox) has triggers that add each row's move to ``state_count``, in the
transaction that makes the move: the rows each state holds now (``present``), and how many rows
ever entered it (``entered``, what the counters of ``/metrics`` read: a message retried is one
more entry into RETRY_WAIT). The counts are exact, whatever wrote the rows (a worker, an
operator, a bulk load), and a reader sums a table of a few hundred rows.

SQLite has one writer at a time: each row's move updates its key's row in place. On PostgreSQL
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
    """A table counted per state; ``node`` and ``part`` are the SQL of those keys ('' for a
    table without them)."""

    table: str
    node: str = "''"
    part: str = "''"


COUNTED = (
    Counted("sync_request"),
    Counted("usage_request"),
    Counted("mdm_sync_request"),
    Counted("outbox", "node", "part"),
    Counted("inbox", "node", "part"),
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
                FROM {counted.table} GROUP BY 2, 3, 4, 5"""
        )
        statements = _sqlite_triggers if store.dialect == "sqlite" else _postgres_triggers
        for statement in statements(counted):
            tx.execute(statement)


def _sqlite_triggers(counted: Counted) -> Iterator[str]:
    """A trigger per row: its key's count updated in place (one writer at a time)."""

    def add(row: str, rows: int, entered: int) -> str:
        node = counted.node.replace("node", f"{row}.node")
        part = counted.part.replace("part", f"{row}.part")
        return f"""INSERT INTO state_count ({_KEY}, present, entered)
                   VALUES ('{counted.table}', {node}, {row}.flow, {part}, {row}.state, {rows}, {entered})
                   ON CONFLICT ({_KEY}) DO UPDATE
                   SET present = present + excluded.present, entered = entered + excluded.entered;"""

    table = counted.table
    yield f"""CREATE TRIGGER {table}_counted_in AFTER INSERT ON {table}
              BEGIN {add("NEW", 1, 1)} END"""
    yield f"""CREATE TRIGGER {table}_counted_move AFTER UPDATE OF state ON {table}
              WHEN OLD.state IS NOT NEW.state
              BEGIN {add("OLD", -1, 0)} {add("NEW", 1, 1)} END"""
    yield f"""CREATE TRIGGER {table}_counted_out AFTER DELETE ON {table}
              BEGIN {add("OLD", -1, 0)} END"""


def _postgres_triggers(counted: Counted) -> Iterator[str]:
    """A trigger per statement: the net change of the statement's rows appended, a row per
    key it changed (appended, not updated, so that concurrent workers never wait on a count)."""
    table = counted.table

    def key(alias: str) -> str:
        node = counted.node.replace("node", f"{alias}.node")
        part = counted.part.replace("part", f"{alias}.part")
        return f"{node} AS node, {alias}.flow, {part} AS part"

    def append(changes: str) -> str:
        return f"""INSERT INTO state_count ({_KEY}, present, entered)
                   SELECT '{table}', node, flow, part, state, sum(present), sum(entered)
                   FROM ({changes}) AS change GROUP BY node, flow, part, state
                   HAVING sum(present) <> 0 OR sum(entered) <> 0;"""

    inserted = append(f"SELECT {key('n')}, n.state, 1 AS present, 1 AS entered FROM new_rows n")
    deleted = append(f"SELECT {key('o')}, o.state, -1 AS present, 0 AS entered FROM old_rows o")
    moved = append(
        f"""SELECT {key("o")}, o.state, -1 AS present, 0 AS entered
              FROM old_rows o JOIN new_rows n USING (id) WHERE o.state <> n.state
            UNION ALL
            SELECT {key("n")}, n.state, 1, 1
              FROM old_rows o JOIN new_rows n USING (id) WHERE o.state <> n.state"""
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
    """Every lifecycle's rows per node, flow, part and state, exact as of the transaction."""
    return [
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
                GROUP BY {_KEY} ORDER BY {_KEY}"""
        )
    ]

"""Where everything stands, as an operator reads it (``ccbmdm status``, ``GET /metrics``, the
console): rows per lifecycle and state, the oldest work still waiting, and what is in Error.

Nothing here scans a table. The counts are ``store.counts``'s (exact: the settled states kept
as rows move, the open states through their partial indexes); the oldest waiting rows and the
rows in Error are found through partial indexes on the open states, which hold few rows by
nature (docs/runtime.md, Counting without scanning).
Each query repeats its index's condition word for word, so that SQLite, which matches a partial
index's condition by its terms, uses the index as PostgreSQL does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.base import Row
from ccbmdm.runtime.store.counts import StateCount, state_counts

Waiting = Literal["pending", "retrying"]
ERRORS_LISTED = 100  # rows in Error listed per lifecycle; the counts give how many there are

_USAGE_OPEN = (  # usage_request_due's condition
    "('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED')"
)


@dataclass(frozen=True)
class OldestWaiting:
    """The oldest row of a lifecycle (per node, for messages) still waiting: ``pending`` (not
    yet done: a request not sent, a message not sent or not processed) or ``retrying`` (failed
    once and due again), and since when: created, received, due or first tried."""

    lifecycle: str
    node: str
    waiting: Waiting
    since: datetime

    def age_s(self, now: datetime) -> float:
        return max((now - self.since).total_seconds(), 0.0)


@dataclass(frozen=True)
class InError:
    """A row in Error, as an operator recognises it, with its reason."""

    kind: str  # sync_request, usage_request, mdm_sync_request or outbox
    id: int
    key: str
    reason: str
    retrying: bool = False  # in an Error retried by itself (MDM's ERROR_RETRYABLE)


@dataclass(frozen=True)
class Overview:
    """One look at a store; ``counts`` are exact, ``errors`` lists the first
    ``ERRORS_LISTED`` rows in Error of each lifecycle (their number is in ``counts``)."""

    taken_at: datetime
    counts: tuple[StateCount, ...]
    oldest: tuple[OldestWaiting, ...]
    errors: tuple[InError, ...]

    def rows(self) -> dict[tuple[str, str, str], int]:
        """(lifecycle, node, state) -> rows, over every flow and part; states with no row left
        are left out."""
        summed: dict[tuple[str, str, str], int] = {}
        for count in self.counts:
            key = (count.lifecycle, count.node, count.state)
            summed[key] = summed.get(key, 0) + count.rows
        return {key: rows for key, rows in sorted(summed.items()) if rows}

    def in_error(self) -> int:
        """Rows in Error, every lifecycle's (messages in Error with their owner included)."""
        return sum(rows for (_, _, state), rows in self.rows().items() if state == "ERROR")

    def as_json(self) -> dict[str, Any]:
        """The shape of ``ccbmdm status --format json`` (docs/runtime.md, Operating)."""
        return {
            "taken_at": self.taken_at.isoformat(),
            "counts": [
                {"lifecycle": lifecycle, "node": node, "state": state, "rows": rows}
                for (lifecycle, node, state), rows in self.rows().items()
            ],
            "oldest": [
                {
                    "lifecycle": oldest.lifecycle,
                    "node": oldest.node,
                    "waiting": oldest.waiting,
                    "since": oldest.since.isoformat(),
                    "age_s": round(oldest.age_s(self.taken_at), 3),
                }
                for oldest in self.oldest
            ],
            "errors": [vars(entry) for entry in self.errors],
            "errors_listed_per_lifecycle": ERRORS_LISTED,
        }


# The oldest waiting row per lifecycle: (lifecycle, waiting, its node column or None, the time
# it waits since, the condition: its partial index's, then the state's)
_OLDEST: tuple[tuple[str, Waiting, str | None, str, str], ...] = (
    ("sync_request", "pending", None, "created_at", "state = 'PENDING'"),
    (
        "usage_request",
        "pending",
        None,
        "created_at",
        f"state IN {_USAGE_OPEN} AND state = 'PENDING'",
    ),
    (
        "mdm_sync_request",
        "pending",
        None,
        "created_at",
        "state IN ('PENDING','ERROR_RETRYABLE') AND state = 'PENDING'",
    ),
    ("mdm_sync_request", "retrying", None, "first_error_at", "state = 'ERROR_RETRYABLE'"),
    (
        "outbox",
        "pending",
        "node",
        "due_at",
        "state IN ('PENDING','RETRY_WAIT') AND state = 'PENDING'",
    ),
    (
        "outbox",
        "retrying",
        "node",
        "first_attempt_at",
        "state IN ('PENDING','RETRY_WAIT') AND state = 'RETRY_WAIT'",
    ),
    ("inbox", "pending", "node", "received_at", "state = 'RECEIVED'"),
)

# What is in Error, per kind: its query (by the kind's partial index on Error), how an operator
# recognises a row, its reason column.
_IN_ERROR: tuple[tuple[str, str, Callable[[Row], str], str], ...] = (
    (
        "sync_request",
        "SELECT id, mo, pk, reason FROM sync_request WHERE state = 'ERROR' ORDER BY id LIMIT :n",
        lambda r: f"{r['mo']} {r['pk'].replace(chr(31), '/')}",
        "reason",
    ),
    (
        "usage_request",
        "SELECT id, flow, sa_id, bill_segment_id, reason FROM usage_request "
        "WHERE state = 'ERROR' ORDER BY id LIMIT :n",
        lambda r: f"{r['flow']} SA {r['sa_id']} segment {r['bill_segment_id']}",
        "reason",
    ),
    (
        "mdm_sync_request",
        "SELECT id, flow, mo, external_key, reason FROM mdm_sync_request "
        "WHERE state = 'ERROR' ORDER BY id LIMIT :n",
        lambda r: f"{r['flow']} {r['mo']} {r['external_key']}",
        "reason",
    ),
    (
        "mdm_sync_request",  # MDM's side, retrying: why it waits (its final Error answers CCB)
        "SELECT id, flow, mo, external_key, reason FROM mdm_sync_request "
        "WHERE state = 'ERROR_RETRYABLE' ORDER BY id LIMIT :n",
        lambda r: f"{r['flow']} {r['mo']} {r['external_key']}",
        "reason",
    ),
    (
        "outbox",  # messages whose owner, in Error with them, is listed already
        "SELECT id, node, partner, flow, part, last_error FROM outbox WHERE state = 'ERROR' "
        "AND (owner_type IS NULL OR owner_type NOT IN ('sync_request', 'usage_request')) "
        "ORDER BY id LIMIT :n",
        lambda r: f"{r['node']}->{r['partner']} {r['flow']} {r['part']}",
        "last_error",
    ),
)


def overview(store: Store, errors_listed: int = ERRORS_LISTED) -> Overview:
    """The counts, the oldest waiting rows and the rows in Error, in one transaction."""
    with store.transaction() as tx:
        counts = tuple(state_counts(tx))
        oldest = []
        for lifecycle, waiting, node, since, condition in _OLDEST:
            select = f"{node} AS node, " if node else "'' AS node, "
            grouped = f" GROUP BY {node}" if node else ""
            for row in tx.fetch(
                f"SELECT {select}min({since}) AS since FROM {lifecycle} WHERE {condition}{grouped}"
            ):
                at = store.to_datetime(row["since"])
                if at is not None:
                    oldest.append(OldestWaiting(lifecycle, str(row["node"]), waiting, at))
        errors = [
            InError(kind, int(row["id"]), key(row), row[reason] or "", "RETRYABLE" in sql)
            for kind, sql, key, reason in _IN_ERROR
            for row in tx.fetch(sql, {"n": errors_listed})
        ]
    return Overview(datetime.now(UTC), counts, tuple(oldest), tuple(errors))

"""What an operator does with the runtime: see where everything stands, resubmit or discard what
went to Error (docs/lifecycles.md PD-L01; transitions S10 and S11)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.history import reads_as
from ccbmdm.runtime.lifecycles.lifecycle import SYNC_REQUEST
from ccbmdm.runtime.lifecycles.machine import moved
from ccbmdm.runtime.lifecycles.sync import TABLE, StepResult, SyncRequestMonitor
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row


@dataclass(frozen=True)
class ErrorEntry:
    kind: str  # sync_request, usage_request, mdm_sync_request or outbox
    id: int
    key: str
    reason: str
    retrying: bool = False  # in an Error retried by itself (MDM's ERROR_RETRYABLE)


@dataclass(frozen=True)
class Status:
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (machine, state) -> rows
    oldest_pending: datetime | None = None
    errors: tuple[ErrorEntry, ...] = ()

    def oldest_pending_age_s(self, now: datetime | None = None) -> float | None:
        if self.oldest_pending is None:
            return None
        return ((now or datetime.now(UTC)) - self.oldest_pending).total_seconds()


# What is in Error, per kind: its query, how an operator recognises a row, its reason column.
_IN_ERROR: tuple[tuple[str, str, Callable[[Row], str], str], ...] = (
    (
        "sync_request",
        "SELECT id, mo, pk, reason FROM sync_request WHERE state = 'ERROR' ORDER BY id",
        lambda r: f"{r['mo']} {r['pk'].replace(chr(31), '/')}",
        "reason",
    ),
    (
        "usage_request",
        "SELECT id, flow, sa_id, bill_segment_id, reason FROM usage_request "
        "WHERE state = 'ERROR' ORDER BY id",
        lambda r: f"{r['flow']} SA {r['sa_id']} segment {r['bill_segment_id']}",
        "reason",
    ),
    (
        "mdm_sync_request",  # MDM's side, retrying: why it waits (its final Error answers CCB)
        "SELECT id, mo, external_key, reason FROM mdm_sync_request "
        "WHERE state = 'ERROR_RETRYABLE' ORDER BY id",
        lambda r: f"{r['mo']} {r['external_key']}",
        "reason",
    ),
    (
        "outbox",  # messages whose owner, in Error with them, is listed already
        "SELECT id, node, partner, flow, part, last_error FROM outbox WHERE state = 'ERROR' "
        "AND (owner_type IS NULL OR owner_type NOT IN ('sync_request', 'usage_request')) ORDER BY id",
        lambda r: f"{r['node']}->{r['partner']} {r['flow']} {r['part']}",
        "last_error",
    ),
)


def status(store: Store) -> Status:
    """Counts per machine and state, the oldest Pending sync request, and every Error."""
    counts: dict[tuple[str, str], int] = {}
    with store.transaction() as tx:
        for machine, sql in (
            ("sync_request", "SELECT state, count(*) AS n FROM sync_request GROUP BY state"),
            ("usage_request", "SELECT state, count(*) AS n FROM usage_request GROUP BY state"),
            (
                "mdm_sync_request",
                "SELECT state, count(*) AS n FROM mdm_sync_request GROUP BY state",
            ),
            (
                "outbox",
                "SELECT node || ' ' || state AS state, count(*) AS n FROM outbox GROUP BY node, state",
            ),
            (
                "inbox",
                "SELECT node || ' ' || state AS state, count(*) AS n FROM inbox GROUP BY node, state",
            ),
        ):
            for row in tx.fetch(sql):
                counts[(machine, str(row["state"]))] = int(row["n"])
        oldest = tx.fetch_one(
            "SELECT min(created_at) AS oldest FROM sync_request WHERE state = 'PENDING'"
        )
        errors = [
            ErrorEntry(kind, int(row["id"]), key(row), row[reason] or "", "RETRYABLE" in sql)
            for kind, sql, key, reason in _IN_ERROR
            for row in tx.fetch(sql)
        ]
    return Status(counts, store.to_datetime(oldest["oldest"]) if oldest else None, tuple(errors))


def resubmit(monitor: SyncRequestMonitor, request_ids: list[int] | None = None) -> StepResult:
    """S10: re-take the final snapshot of requests in Error and send them again under a new
    message id (same sync request id). ``None``: every request in Error. A second press finds
    nothing to do: only rows still in Error are picked."""
    return monitor.step(request_ids=request_ids if request_ids is not None else [], from_error=True)


class NotInError(CcbmdmError, LookupError):
    """Discard and resubmit apply to requests in Error only."""


def discard(
    store: Store,
    request_id: int,
    reason: str,
    then: Callable[[Transaction], None] | None = None,
) -> None:
    """S11: a user discards a request in Error, with a reason. ``then`` writes what goes with
    the discard in its transaction (the console's audit entry): both, or neither."""
    if not reason.strip():
        raise ValueError("a discard needs a reason")
    transition = SYNC_REQUEST.next("ERROR", "discard")
    with store.transaction() as tx:
        changed = tx.execute(
            "UPDATE sync_request SET state = :state, reason = :reason, due_at = NULL WHERE id = :id AND state = 'ERROR'",
            {"state": transition.target, "reason": reason[:1000], "id": request_id},
        )
        if changed != 1:
            row = tx.fetch_one("SELECT state FROM sync_request WHERE id = :id", {"id": request_id})
            where = f"is {reads_as('sync_request', row['state'])}" if row else "does not exist"
            raise NotInError(
                f"sync request {request_id} {where}; only a request in ERROR can be discarded"
            )
        moved(tx, SYNC_REQUEST, TABLE, request_id, (transition,), reason[:1000])
        if then is not None:
            then(tx)

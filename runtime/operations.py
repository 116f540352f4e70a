"""What an operator does with the runtime: resubmit or discard what went to Error
(docs/lifecycles.md PD-L01; transitions S10 and S11). Where everything stands is
``runtime.observe``'s."""

from __future__ import annotations

from collections.abc import Callable

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.history import reads_as
from ccbmdm.runtime.lifecycles.lifecycle import SYNC_REQUEST
from ccbmdm.runtime.lifecycles.machine import moved
from ccbmdm.runtime.lifecycles.sync import TABLE, StepResult, SyncRequestMonitor
from ccbmdm.runtime.store import Store, Transaction


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

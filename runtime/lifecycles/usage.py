"""CCB usage requests (docs/lifecycles.md §3): billing asks MDM for bill determinants.

Billing creates a request Pending in its own transaction (``request_usage``) and nothing more;
the monitor's step moves it on: it waits in Awaiting Data Sync while any related sync request is
not final, so MDM calculates on current master data (PD-L07); then the request message is built
into the outbox and the request awaits MDM's response, which the response handler matches on
``correlationId``. A batch response is processed by the next step, an online one at once. Error
is final (PD-L13): billing creates a new request, carrying ``previousUsageId``, when it must.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ccbmdm.runtime.lifecycles.lifecycle import USAGE_REQUEST
from ccbmdm.runtime.lifecycles.machine import Machine, move_claim
from ccbmdm.runtime.lifecycles.sync import canonical_key
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import Inbox, Outbox, Received
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row

log = logging.getLogger("ccbmdm.usage")

OWNER = "usage_request"  # the outbox owner type of a usage request's message
USAGE_FLOWS = ("BATCH_BD", "ONLINE_BD")


@dataclass(frozen=True)
class UsageRequest:
    """What billing needs to know about a request it made."""

    id: int
    flow: str
    sa_id: str
    bill_segment_id: str
    previous_usage_id: str | None
    usage_id: str | None

    @property
    def external_id(self) -> str:
        """The request's id as MDM knows it (``usageId``, the UT's external id)."""
        return str(self.id).zfill(10)


@runtime_checkable
class Billing(Protocol):
    """CCB's billing side of usage requests: the CCB simulator, or an adapter to a real CCB."""

    def related_keys(self, tx: Transaction, sa_id: str) -> Iterable[tuple[str, tuple[str, ...]]]:
        """The sync keys (maintenance object, primary-key values) whose requests must be final
        before the SA's usage is requested: the SA, its SPs and their meter history, its SA
        relationships, its contract options and their events (PD-L07)."""
        ...

    def build_request(self, tx: Transaction, request: UsageRequest) -> ContractModel:
        """The ``ccb/BillDeterminantsRequest``; raises ValueError when it cannot be built."""
        ...

    def apply(self, tx: Transaction, request: UsageRequest, response: ContractModel) -> None:
        """Turn the determinants into the bill segment (Bill Determinants Processed)."""
        ...

    def report_error(self, tx: Transaction, request: UsageRequest, reason: str) -> None:
        """The request ended in Error: a To Do (batch) or the user's message (online)."""
        ...


def request_usage(
    tx: Transaction,
    flow: str,
    sa_id: str,
    bill_segment_id: str,
    *,
    window_end: datetime | None = None,
    end_date_time_to: datetime | None = None,
    estimate_date: datetime | None = None,
    previous_usage_id: str | None = None,
) -> int | None:
    """Create a Pending usage request in billing's own transaction; its id, or None when the
    segment already has an open request (the duplicate guard, a unique index)."""
    if flow not in USAGE_FLOWS:
        raise ValueError(f"a usage request is {' or '.join(USAGE_FLOWS)}, not {flow!r}")
    row = tx.fetch_one(
        f"""INSERT INTO usage_request (flow, sa_id, bill_segment_id, state, due_at, previous_usage_id,
                                       window_end, end_date_time_to, estimate_date, created_at)
            VALUES (:flow, :sa_id, :segment, 'PENDING', {tx.now}, :previous, :window_end,
                    :end_to, :estimate, {tx.now})
            ON CONFLICT (bill_segment_id)
              WHERE state IN ('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED')
              DO NOTHING
            RETURNING id""",
        {
            "flow": flow,
            "sa_id": sa_id,
            "segment": bill_segment_id,
            "previous": previous_usage_id,
            "window_end": tx.instant(window_end),
            "end_to": tx.instant(end_date_time_to),
            "estimate": tx.instant(estimate_date),
        },
    )
    return None if row is None else int(row["id"])


def _claim_order(row: Row) -> tuple[bool, Any, int]:
    """A claimed request's place in the step's order: by due time (none last), then by id."""
    return row["due_at"] is None, row["due_at"] or 0, int(row["id"])


class UsageRequestMonitor:
    """Moves usage requests on: data sync barrier, sending, timeouts, processing."""

    def __init__(
        self,
        store: Store,
        contracts: ContractRegistry,
        billing: Billing,
        outbox: Outbox,
        *,
        partner: str = "bridge",
    ) -> None:
        self.store = store
        self.contracts = contracts
        self.billing = billing
        self.outbox = outbox
        self.inbox = Inbox(store, outbox.node, outbox.settings)  # where responses arrive
        self.partner = partner
        self.machine = Machine(store, USAGE_REQUEST, "usage_request", ("flow", "message_id"))
        outbox.on_undelivered[OWNER] = self._undelivered

    def step(self, batch: int = 50) -> int:
        """One claim of due requests (and of every request waiting for its data to sync), under
        one savepoint, or each under its own when one fails; one commit. Returns how many
        moved."""
        lock = " FOR UPDATE SKIP LOCKED" if self.store.dialect == "postgres" else ""
        now = self.store.now
        # SQLite, without statistics, prefers the index on (state, id) and sorts every open
        # request for each batch; the partial index gives the due ones in order
        index = " INDEXED BY usage_request_due" if self.store.dialect == "sqlite" else ""
        with self.store.transaction() as tx:
            # Two claims, each read through its own index up to the batch: the due requests
            # (the open states, as the partial index usage_request_due has them), and those
            # waiting for their data to sync and not yet due (the index on state). One claim
            # with an OR read every open request not yet due whenever fewer than a batch were
            # due: every request of a billing run awaiting its determinants, each step.
            due = tx.fetch(
                f"""SELECT * FROM usage_request{index}
                    WHERE state IN ('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED')
                      AND due_at <= {now}
                    ORDER BY due_at, id LIMIT :batch{lock}""",
                {"batch": batch},
            )
            waiting = tx.fetch(
                f"""SELECT * FROM usage_request
                    WHERE state = 'AWAITING_DATA_SYNC' AND (due_at IS NULL OR due_at > {now})
                    ORDER BY due_at, id LIMIT :batch{lock}""",
                {"batch": batch},
            )
            rows = heapq.nsmallest(batch, [*due, *waiting], key=_claim_order)
            return move_claim(
                tx,
                rows,
                lambda row: self._advance(tx, row),
                lambda r: f"usage request {r['id']}",
                log,
            )

    def _advance(self, tx: Transaction, row: Row) -> int:
        request, state = _request(row), str(row["state"])
        if state == "AWAITING_BILL_DETERMINANTS":  # due: its response never came (PD-L07)
            return self._fail(tx, request, state, "timeout", "no bill determinants in time")
        if state == "BILL_DETERMINANTS_RECEIVED":
            return self._process(tx, request, row)
        if self._blocked(tx, request.sa_id):
            if state == "PENDING":
                return int(self.machine.move(tx, request.id, state, "data_sync_pending"))
            if self.machine.due_event(tx, request.id) == "timeout":
                return self._fail(
                    tx, request, state, "timeout", "related master data still not synchronized"
                )
            return 0
        return self._send(tx, request, state)

    def _blocked(self, tx: Transaction, sa_id: str) -> bool:
        """Whether any related sync request is not final (PD-L07)."""
        keys = sorted(
            {(mo, canonical_key(key)) for mo, key in self.billing.related_keys(tx, sa_id)}
        )
        if not keys:
            return False
        params: dict[str, Any] = {}
        pairs = []
        for i, (mo, pk) in enumerate(keys):
            params[f"mo{i}"], params[f"pk{i}"] = mo, pk
            pairs.append(f"(mo = :mo{i} AND pk = :pk{i})")
        # One part per partial index of open requests (Pending; Awaiting Ack or Error), so the
        # look-up reads open requests only, never the table's final ones.
        keys_match = " OR ".join(pairs)
        open_row = tx.fetch_one(
            f"""SELECT 1 AS open FROM sync_request WHERE state = 'PENDING' AND ({keys_match})
                UNION ALL
                SELECT 1 AS open FROM sync_request
                WHERE state IN ('AWAITING_ACK', 'ERROR') AND ({keys_match})
                LIMIT 1""",
            params,
        )
        return open_row is not None

    def _send(self, tx: Transaction, request: UsageRequest, state: str) -> int:
        """Send Request: build the message into the outbox, await the response."""
        try:
            with tx.savepoint():
                message = self.billing.build_request(tx, request)
                payload = self.contracts.encode(message, "ccb/BillDeterminantsRequest")
        except (ValueError, KeyError) as exc:
            return self._fail(
                tx, request, state, "data_synced", "build_failed", f"request not built: {exc}"
            )
        message_id = str(message.message_header.message_id)  # type: ignore[attr-defined]
        tx.send(
            "UPDATE usage_request SET message_id = :message_id WHERE id = :id",
            {"message_id": message_id, "id": request.id},
        )
        self.outbox.enqueue(
            tx,
            self.partner,
            request.flow,
            "request",
            message_id,
            payload,
            owner=(OWNER, request.id),  # one-way for delivery: the lifecycle awaits the response
        )
        return int(self.machine.move(tx, request.id, state, "data_synced", "sent"))

    def _process(self, tx: Transaction, request: UsageRequest, row: Row) -> int:
        """Bill Determinants Received → Processed: billing applies the determinants."""
        stored = self.inbox.payload(tx, self.partner, str(row["response_message_id"]))
        if stored is None:
            raise LookupError(f"usage request {request.id}: its response is not in the inbox")
        _, response = self.contracts.decode(stored)
        self.billing.apply(tx, request, response)
        return int(self.machine.move(tx, request.id, "BILL_DETERMINANTS_RECEIVED", "process"))

    def _fail(self, tx: Transaction, request: UsageRequest, state: str, *events: str) -> int:
        """Move to Error (the last of ``events`` is the reason) and tell billing."""
        *path, reason = events
        if not self.machine.move(tx, request.id, state, *path, reason=reason):
            return 0
        self.billing.report_error(tx, request, reason)
        return 1

    def _undelivered(self, tx: Transaction, request_id: int, reason: str) -> None:
        row = tx.fetch_one("SELECT * FROM usage_request WHERE id = :id", {"id": request_id})
        if row is not None and row["state"] == "AWAITING_BILL_DETERMINANTS":
            self._fail(
                tx,
                _request(row),
                "AWAITING_BILL_DETERMINANTS",
                "negative_response",
                f"request not delivered: {reason}",
            )

    def responded(self, tx: Transaction, received: Received) -> str | None:
        """The response handler (the ``response`` part of BATCH_BD and ONLINE_BD at CCB):
        matched on ``correlationId``; a response no request awaits is logged and ignored."""
        _, response = self.contracts.decode(received.payload)
        header = response.message_header  # type: ignore[attr-defined]
        row = tx.fetch_one(
            "SELECT * FROM usage_request WHERE message_id = :id AND state = 'AWAITING_BILL_DETERMINANTS'",
            {"id": header.correlation_id},
        )
        if row is None:
            log.info(
                "response for no awaiting usage request; ignored",
                extra={"message_id": received.message_id},
            )
            return None
        request, state = _request(row), "AWAITING_BILL_DETERMINANTS"
        result = getattr(response, "result", None)
        if result is not None and result.has_error:
            reason = "; ".join(
                f"{i.message_category}/{i.message_number} {i.comments or ''}".strip()
                for i in result.exception_info
            )
            self._fail(tx, request, state, "negative_response", reason or "negative response")
            return None
        skip = getattr(response, "skip", None)
        if skip is not None and skip.skip_indicator:
            self.machine.move(tx, request.id, state, "skip", reason=skip.skip_reason)
            self.billing.apply(tx, request, response)  # billing stores the next read date
            return None
        tx.send(
            "UPDATE usage_request SET response_message_id = :response, usage_id = :usage WHERE id = :id",
            {
                "response": received.message_id,
                "usage": getattr(response, "usage_transaction_id", None),
                "id": request.id,
            },
        )
        self.machine.move(tx, request.id, state, "positive_response")
        if request.flow == "ONLINE_BD":  # online: processed at once (lifecycles §3)
            row = tx.fetch_one("SELECT * FROM usage_request WHERE id = :id", {"id": request.id})
            if row is not None:
                self._process(tx, _request(row), row)
        return None


def _request(row: Row) -> UsageRequest:
    return UsageRequest(
        id=int(row["id"]),
        flow=str(row["flow"]),
        sa_id=str(row["sa_id"]),
        bill_segment_id=str(row["bill_segment_id"]),
        previous_usage_id=row["previous_usage_id"],
        usage_id=row["usage_id"],
    )

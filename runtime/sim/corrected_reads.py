"""The reference CCB's answer to a replacement read notification (flow 13, docs/lifecycles.md §5):
an off-cycle bill generator cancels the frozen segment the corrected usage was billed on and
rebills it.

One generator per notification (PD-L10), so per usage transaction and segment; a repeated
``notificationId`` makes none (PD-F14). The generator waits while the usage it names is still
awaited, and while an older generator of the same SA is in progress (rebills one at a time,
oldest first). The segment sits in Pending Cancel while its rebill's online usage request runs;
when the new determinants are processed, the old segment is cancelled with reason "MDM Corrected
Read", the new one completes an off-cycle bill, and the generator is Completed. If the rebill
fails, the old segment stays frozen, the generator is in Error, and the SA's other Pending
generators are discarded (§5 step 5).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ccbmdm.runtime.contracts import ContractRegistry
from ccbmdm.runtime.delivery import Received
from ccbmdm.runtime.lifecycle import OFF_CYCLE_BILL_GENERATOR
from ccbmdm.runtime.machine import Machine, each_apart
from ccbmdm.runtime.sim.billing import Billing
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.schema import migrate

log = logging.getLogger("ccbmdm.sim.ccb")

CORRECTED_READ = "MDM Corrected Read"  # the cancel reason of a corrected segment
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE ccb_ocbg (
             id {id}, notification_id text NOT NULL UNIQUE, sa_id text NOT NULL,
             usage_id text NOT NULL, usage_transaction_id text, period_start text NOT NULL,
             period_end text NOT NULL, state text NOT NULL, reason text, due_at {ts},
             segment_id bigint, rebill_segment_id bigint, created_at {ts} NOT NULL,
             CHECK (state IN ('PENDING','PROCESSING_REQUEST','COMPLETED','ERROR','DISCARDED')),
             CHECK (state <> 'PENDING' OR due_at IS NOT NULL))""",
        "CREATE INDEX ccb_ocbg_due ON ccb_ocbg (due_at, id) WHERE state = 'PENDING'",
    ),
)


class CorrectedReads:
    """Off-cycle bill generators: notifications in, cancel and rebill out."""

    def __init__(self, store: Store, contracts: ContractRegistry, billing: Billing) -> None:
        self.store = store
        self.contracts = contracts
        self.billing = billing
        self.machine = Machine(store, OFF_CYCLE_BILL_GENERATOR, "ccb_ocbg")
        migrate(store, MIGRATIONS, "ccb_ocbg_schema_version")
        billing.rebills = self

    def notified(self, tx: Transaction, received: Received) -> str | None:
        """A replacement read notification: one generator, Pending (none for a repeat)."""
        _, notice = self.contracts.decode(received.payload)
        period = notice.corrected_period  # type: ignore[attr-defined]
        row = tx.fetch_one(
            f"""INSERT INTO ccb_ocbg (notification_id, sa_id, usage_id, usage_transaction_id,
                  period_start, period_end, state, due_at, created_at)
                VALUES (:notification, :sa, :usage, :ut, :start, :end, 'PENDING', {tx.now},
                  {tx.now})
                ON CONFLICT (notification_id) DO NOTHING RETURNING id""",
            {
                "notification": notice.notification_id,  # type: ignore[attr-defined]
                "sa": notice.sa_id,  # type: ignore[attr-defined]
                "usage": notice.usage_id,  # type: ignore[attr-defined]
                "ut": notice.usage_transaction_id,  # type: ignore[attr-defined]
                "start": period.start_date_time.isoformat(),
                "end": period.end_date_time.isoformat(),
            },
        )
        if row is None:
            log.info("repeated notification ignored", extra={"message_id": received.message_id})
        return None

    def step(self, batch: int = 50) -> int:
        """Start the due generators whose usage is processed and whose SA has none in
        progress, oldest first, each under a savepoint (one that raises is logged and left
        for the next step); returns how many started or failed."""
        with self.store.transaction() as tx:
            pending = tx.fetch(
                f"""SELECT * FROM ccb_ocbg g WHERE state = 'PENDING' AND due_at <= {tx.now}
                      AND NOT EXISTS (SELECT 1 FROM ccb_ocbg o WHERE o.sa_id = g.sa_id
                                        AND o.state = 'PROCESSING_REQUEST')
                      AND NOT EXISTS (SELECT 1 FROM ccb_ocbg o WHERE o.sa_id = g.sa_id
                                        AND o.state = 'PENDING' AND o.id < g.id)
                    ORDER BY id LIMIT :batch""",
                {"batch": batch},
            )
            return each_apart(
                tx,
                pending,
                lambda generator: self._start(tx, generator),
                lambda generator: f"off-cycle bill generator {generator['id']}",
                log,
            )

    def _start(self, tx: Transaction, generator: Any) -> int:
        awaited = tx.fetch_one(
            "SELECT id FROM usage_request WHERE id = :id AND state IN "
            "('PENDING','AWAITING_DATA_SYNC','AWAITING_BILL_DETERMINANTS','BILL_DETERMINANTS_RECEIVED')",
            {"id": int(generator["usage_id"])},
        )
        if awaited is not None:
            return 0  # PD-F14: held until that usage has been processed
        row = tx.fetch_one(
            "SELECT id FROM ccb_bill_segment WHERE sa_id = :sa AND usage_id = :usage "
            "AND status = 'FROZEN'",
            {"sa": generator["sa_id"], "usage": generator["usage_id"]},
        )
        segment = None if row is None else self.billing.segment(tx, int(row["id"]))
        if segment is None:
            self._fail(tx, generator["id"], "PENDING", "no frozen segment used this usage")
            return 1
        rebill = self.billing.rebill(tx, segment)
        if rebill is None:
            self._fail(tx, generator["id"], "PENDING", "the segment could not be rebilled")
            return 1
        tx.execute(
            "UPDATE ccb_ocbg SET segment_id = :old, rebill_segment_id = :new WHERE id = :id",
            {"old": segment.id, "new": rebill, "id": generator["id"]},
        )
        return int(self.machine.move(tx, int(generator["id"]), "PENDING", "start"))

    def rebilled(self, tx: Transaction, old_segment: int, new_segment: int) -> None:
        """The rebill's determinants are in: cancel the old segment, bill the new one."""
        generator = self._of(tx, old_segment)
        self.billing.cancel_segment(tx, old_segment, CORRECTED_READ)
        account = self.billing.segment(tx, new_segment)
        self.billing.complete_bills(tx, [account.account_id] if account else [])
        if generator is not None:
            self.machine.move(
                tx, int(generator["id"]), "PROCESSING_REQUEST", "determinants_processed"
            )

    def rebill_failed(self, tx: Transaction, old_segment: int, reason: str) -> None:
        """The old segment stays frozen; the SA's other Pending generators are discarded."""
        tx.execute(
            "UPDATE ccb_bill_segment SET status = 'FROZEN' "
            "WHERE id = :id AND status = 'PENDING_CANCEL'",
            {"id": old_segment},
        )
        generator = self._of(tx, old_segment)
        if generator is None:
            return
        self._fail(tx, int(generator["id"]), "PROCESSING_REQUEST", f"rebill failed: {reason}")

    def _fail(self, tx: Transaction, generator_id: int, state: str, reason: str) -> None:
        row = tx.fetch_one("SELECT sa_id FROM ccb_ocbg WHERE id = :id", {"id": generator_id})
        self.machine.move(tx, generator_id, state, "failed", reason=reason)
        if row is not None:
            for other in tx.fetch(
                "SELECT id FROM ccb_ocbg WHERE sa_id = :sa AND state = 'PENDING'",
                {"sa": row["sa_id"]},
            ):
                self.machine.move(
                    tx, int(other["id"]), "PENDING", "discard", reason="an earlier rebill failed"
                )

    def _of(self, tx: Transaction, old_segment: int) -> Any:
        return tx.fetch_one(
            "SELECT id FROM ccb_ocbg WHERE segment_id = :id AND state = 'PROCESSING_REQUEST'",
            {"id": old_segment},
        )

    def steps(self) -> Sequence[Callable[[], int]]:
        return (self.step,)

"""The reference MDM, usage side: usage transactions answering CCB's bill determinant requests
(flows 11 and 12), the used-on-bill flags (flow 16), corrections of measurements behind Sent
usage (flow 13), and the read-only calls (flows 14, 15, 17, 19, answered by ``answers``)
(docs/flows.md §11-§17, §19; docs/lifecycles.md §4; docs/determinants.md).

Receiving a usage request is the seeder: a Pending usage transaction, nothing calculated. The
step calculates due transactions with the determinant engine over MDM's master data and
measurements, moves each through ``USAGE_TRANSACTION`` and answers through the node's outbox
in the same savepoint, so a transaction's move and its response commit together.

Decisions:

* The engine calculates every usage period of a request at once, so a UT never waits in
  Calculation In Progress for sub-UTs: date breaks become the periods of one calculation, and
  Calculation leads straight to Sent (U5) or Error (U6). Nothing defers or needs approval.
* The usage group is the one of the US in force at the period start; the SPs are those linked
  to the US during the period, their install events clipped to the link; the SP zone is the
  first SP's. MDM adds ``SAREL`` breaks at the start and end of SA relationships whose type
  requires a date break; exchanges are the usage group's business (PD-D07).
* PD-L08: a batch UT (``D1YS``) short of data is retried silently every 15 minutes until the
  later of ``endDateTimeTo`` and 00:00 of its window's estimate date in the SP's zone (that
  instant when MDM has no schedule entry for the window); from then on estimation is allowed
  and a failure is answered. Other faults are answered at once: no retry mends a misaligned
  request, and a correction arrives as a new request. An online UT (``D1NA``) answers its
  fault at once and is discarded.
* A request MDM cannot resolve (an unknown US, a US without a usage group at the period start,
  a usage group MDM does not ship) is answered 90000/1102 [MO, key]; measurements the engine
  cannot use (a reading outside its dials) 90000/1301; a period that is not a period 90000/1003.
* A summary-billing skip is answered from Calculation and the UT is Discarded: it holds no
  usage for a bill or a correction.
* ``previousUsageId`` is applied when the new UT is first calculated: an earlier UT with that
  external id still before Sent is Discarded, a Sent one (or one in Subsequent Correction) is
  marked superseded (PD-L09).
* Ratchet history: the measured maximum demand of each earlier Sent, non-superseded UT of the
  US, over its periods (PD-D08).
* Flow 16 sets or clears the flag on the latest Sent (or Subsequently Corrected) UT with the
  external id; an item with none fails with MDM's 11302/11406 and the usage id as parameter,
  the others are applied (PD-F17). The update is applied and answered in the receiving
  transaction: it calculates nothing.
* A correction recalculates each Sent, non-superseded UT it touches over the UT's own period
  (its end fixed at the end sent) and compares (``corrections.correction_outcome``): a changed
  UT used on a bill goes to Subsequent Correction with one notification; one not used is
  marked stale; an unchanged one is left alone. ``correctedPeriod`` is the span the corrections
  cover: an interval value's interval, or for a scalar reading the UT's period it bounds.
* The UT id and the notification id are production ids from MDM's key sequence (MO ``D2-UT``
  and ``D2-SUBC``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ccbmdm.runtime.lifecycles.lifecycle import USAGE_TRANSACTION
from ccbmdm.runtime.lifecycles.machine import Machine, Overtaken, move_claim
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.messages.header import message_header, new_message_id
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.node import Node
from ccbmdm.runtime.sim.determinants.engine import (
    BillCondition,
    CalculationRequest,
    DateBreak,
    DateBreakReason,
    Determinants,
    DeterminantsFault,
    PriorDemand,
    ServiceQuantity,
    Skip,
    UsagePeriod,
    calculate,
)
from ccbmdm.runtime.sim.determinants.measurements import (
    FAULT_CATEGORY,
    QUALITY_CODES,
    Installation,
    InsufficientData,
    Quality,
    decimal_text,
    instant,
)
from ccbmdm.runtime.sim.determinants.tou import legal_time
from ccbmdm.runtime.sim.determinants.usage_groups import (
    UsageGroup,
    UsageGroupError,
    load_usage_group,
)
from ccbmdm.runtime.sim.mdm.apply import Loader
from ccbmdm.runtime.sim.mdm.corrections import (
    Correction,
    CorrectionOutcome,
    SentUsage,
    correction_outcome,
    touched_usages,
)
from ccbmdm.runtime.sim.mdm.measurements import (
    LinkedServicePoint,
    Measurements,
    codes_text,
    epoch,
    from_epoch,
)
from ccbmdm.runtime.sim.mdm.records import production_id
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row

log = logging.getLogger("ccbmdm.sim.mdm")

TABLE = "mdm_usage_transaction"
USAGE_FLOWS = ("BATCH_BD", "ONLINE_BD")
AUTOMATED_RETRY = {"BATCH_BD": "D1YS", "ONLINE_BD": "D1NA"}
RESPONSE = "mdm/UsageTransactionResponse"
UT_MO, NOTIFICATION_MO, USAGE_GROUP_MO = "D2-UT", "D2-SUBC", "D2-USG-GRP"
RETRY_AFTER_S = 15 * 60.0
SCHEMA_VIOLATION, UNRESOLVED_KEY, INSUFFICIENT_DATA = 1003, 1102, 1301
UT_NOT_SENT = (11302, 11406)  # MDM's own message: no Sent UT has the external id (flow 16)
_SENT = ("SENT", "SUBSEQUENT_CORRECTION")


class Unanswerable(Exception):
    """A request the engine is never reached for: answered ``90000/number`` with parameters."""

    def __init__(self, number: int, text: str, *parameters: str) -> None:
        super().__init__(f"{FAULT_CATEGORY}/{number} {text}")
        self.number, self.text, self.parameters = number, text, parameters


Fault = DeterminantsFault | Unanswerable


@dataclass(frozen=True)
class UsageTransaction:
    """A usage transaction as MDM holds it."""

    id: int
    ut_id: str
    external_id: str
    flow: str
    us_external_id: str
    state: str
    reason: str | None
    used_on_bill: bool
    superseded: bool
    stale: bool
    usage_group: str | None
    determinants: Determinants | None
    notification_id: str | None


@dataclass(frozen=True)
class CorrectionResult:
    """What a correction changed: the measurement, and the UTs by what happened to them."""

    mc_id: str
    measurement_date_time: datetime
    old_value: Decimal
    new_value: Decimal
    corrected: tuple[str, ...]  # UT ids now in Subsequent Correction, one notification each
    stale: tuple[str, ...]
    unchanged: tuple[str, ...]


@dataclass(frozen=True)
class Calculation:
    """What a calculation was asked and what it needs to answer: the engine's request, the
    usage group, the install events, the SPs."""

    request: CalculationRequest
    group: UsageGroup
    installations: tuple[Installation, ...]
    points: tuple[LinkedServicePoint, ...]
    us_id: str  # MDM's production id of the US

    @property
    def mcs(self) -> frozenset[str]:
        return frozenset(
            [r.mc for i in self.installations for r in i.registers]
            + [c.mc for i in self.installations for c in i.channels]
        )


class MdmUsage:
    """MDM's usage side behind the ``mdm`` node: ``handle`` for flows 11, 12 and 16, ``answer``
    for the read-only flows, ``steps`` for the usage transactions' monitor."""

    def __init__(
        self,
        store: Store,
        node: Node,
        registry: ContractRegistry,
        *,
        partner: str = "bridge",
        batch: int | None = None,
        clock: Callable[[], datetime] | None = None,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self.store, self.node, self.contracts = store, node, registry
        self.partner = partner
        self.batch = batch or node.settings.batch
        self.clock = clock or (lambda: datetime.now(UTC))
        self.retry_after_s = retry_after_s
        self.measurements = Measurements(store)
        self.records = self.measurements.records
        self.machine = Machine(store, USAGE_TRANSACTION, TABLE, ("flow", "message_id"))
        self.loader = Loader()
        self._groups: dict[str, UsageGroup] = {}

    # -- the hosted system ---------------------------------------------------------------

    def handle(self, tx: Transaction, received: Received) -> str | None:
        """Seed a usage transaction (flows 11, 12), or apply used-on-bill flags (flow 16)."""
        if received.part == "request" and received.flow in USAGE_FLOWS:
            return self._seed(tx, received)
        if received.part == "request" and received.flow == "UT_INFO_UPDATE":
            return self._used_on_bill(tx, received)
        log.info(
            "the usage side does not handle %s %s",
            received.flow,
            received.part,
            extra={"message_id": received.message_id},
        )
        return None

    def steps(self) -> Sequence[Callable[[], int]]:
        return (self.step,)

    # -- the seeder ----------------------------------------------------------------------

    def _seed(self, tx: Transaction, received: Received) -> str | None:
        codec, message = self.contracts.decode(received.payload)
        if codec.name != "mdm/UsageTransactionRequest":
            log.warning("%s request in contract %s; not seeded", received.flow, codec.name)
            return None
        request: Any = message
        breaks = [
            {"date_time": b.date_time.isoformat(), "reason": str(b.reason)}
            for b in request.date_breaks
        ]
        allocated, ut_id, allocating = self.loader.allocation(tx, UT_MO)
        tx.send(
            f"""{allocated}INSERT INTO {TABLE} (ut_id, external_id, flow, message_id,
                  us_external_id, previous_usage_id, start_date_time, end_date_time_from,
                  end_date_time_to, bill_condition, date_breaks, bill_cycle, window_start_date,
                  return_interval_data, automated_retry, state, due_at, created_at)
                VALUES ({ut_id}, :external_id, :flow, :message_id, :us, :previous, :start,
                  :end_from, :end_to, :condition, :breaks, :cycle, :window, :interval,
                  :retry, 'PENDING', {tx.now}, {tx.now})
                ON CONFLICT (message_id) DO NOTHING""",
            {
                **allocating,
                "external_id": request.external_id,
                "flow": received.flow,
                "message_id": received.message_id,
                "us": request.us_external_id,
                "previous": request.previous_usage_id,
                "start": request.start_date_time.isoformat(),
                "end_from": request.end_date_time_from.isoformat(),
                "end_to": request.end_date_time_to.isoformat(),
                "condition": str(request.bill_condition),
                "breaks": json.dumps(breaks),
                "cycle": request.bill_cycle,
                "window": None
                if request.window_start_date is None
                else request.window_start_date.isoformat(),
                "interval": bool(request.return_interval_data),
                "retry": AUTOMATED_RETRY[received.flow],
            },
        )
        return None

    # -- the monitor ---------------------------------------------------------------------

    def step(self, batch: int | None = None) -> int:
        """Calculate the due Pending UTs and the batch UTs whose retry is due, under one
        savepoint, or each under its own when one fails; one commit. Returns how many moved."""
        lock = " FOR UPDATE SKIP LOCKED" if self.store.dialect == "postgres" else ""
        with self.store.transaction() as tx:
            rows = tx.fetch(
                f"""SELECT * FROM {TABLE} WHERE state IN ('PENDING','ERROR')
                      AND due_at <= {tx.now} ORDER BY due_at, id LIMIT :batch{lock}""",
                {"batch": batch or self.batch},
            )
            return move_claim(
                tx,
                rows,
                lambda row: self._calculate(tx, row),
                lambda r: f"usage transaction {r['ut_id']}",
                log,
            )

    def _calculate(self, tx: Transaction, row: Row) -> int:
        state = str(row["state"])
        first = "calculate" if state == "PENDING" else "retry"
        if state == "PENDING":
            self._replace_previous(tx, row)
        now = self.clock()
        outcome: Determinants | Skip | Fault
        calculation: Calculation | None = None
        retry_until: datetime | None = None
        try:
            calculation, retry_until = self._calculation(tx, row, now)
            outcome = calculate(calculation.request, calculation.installations, calculation.group)
        except (DeterminantsFault, Unanswerable) as fault:
            outcome = fault
        except ValueError as problem:  # measurements the engine cannot take
            outcome = Unanswerable(INSUFFICIENT_DATA, f"measurements cannot be used: {problem}")
        tx.send(
            f"UPDATE {TABLE} SET retry_until = :until WHERE id = :id",
            {"until": tx.instant(retry_until), "id": row["id"]},
        )
        if isinstance(outcome, Skip):
            if not self._move(tx, row, (first, "discard"), "summary billed: skipped"):
                return 0
            self._respond(tx, row, _positive(), skip=outcome)
            return 1
        if isinstance(outcome, Determinants):
            assert calculation is not None
            self._keep(tx, row, calculation, outcome)  # before Sent, which requires them
            if not self._move(tx, row, (first, "calculated")):
                raise Overtaken(row["ut_id"])  # the savepoint drops what was kept
            self._respond(tx, row, _positive(), determinants=outcome)
            return 1
        return self._failed(tx, row, first, outcome, now, retry_until)

    def _failed(
        self,
        tx: Transaction,
        row: Row,
        first: str,
        fault: Fault,
        now: datetime,
        retry_until: datetime | None,
    ) -> int:
        text = f"{FAULT_CATEGORY}/{fault.number} {fault.text}"
        silent = (
            fault.number == INSUFFICIENT_DATA
            and row["automated_retry"] == "D1YS"
            and retry_until is not None
            and now < retry_until
        )
        if not self._move(tx, row, (first, "exception"), text):
            return 0
        if silent:  # PD-L08: data may still arrive
            tx.send(
                f"UPDATE {TABLE} SET due_at = {self.store.now_plus} WHERE id = :id",
                {"seconds": self.retry_after_s, "id": row["id"]},
            )
            return 1
        self._respond(tx, row, _negative(fault))
        if row["automated_retry"] == "D1NA":
            self.machine.move(tx, int(row["id"]), "ERROR", "discard", reason=text)
        return 1

    def _move(
        self, tx: Transaction, row: Row, events: tuple[str, ...], reason: str | None = None
    ) -> bool:
        return self.machine.move(tx, int(row["id"]), str(row["state"]), *events, reason=reason)

    def _replace_previous(self, tx: Transaction, row: Row) -> None:
        """PD-L09: the UT a rebill or a retry replaces is discarded before Sent, else
        superseded."""
        if row["previous_usage_id"] is None:
            return
        for earlier in tx.fetch(
            f"SELECT id, state FROM {TABLE} WHERE external_id = :previous AND id <> :id",
            {"previous": row["previous_usage_id"], "id": row["id"]},
        ):
            state = str(earlier["state"])
            if state in _SENT:
                tx.send(
                    f"UPDATE {TABLE} SET superseded = TRUE WHERE id = :id", {"id": earlier["id"]}
                )
            elif state != "DISCARDED":
                reason = f"replaced by usage request {row['external_id']}"
                self.machine.move(tx, int(earlier["id"]), state, "discard", reason=reason)

    # -- what the engine is asked --------------------------------------------------------

    def usage_group(self, name: str) -> UsageGroup:
        if name not in self._groups:
            try:
                self._groups[name] = load_usage_group(name)
            except UsageGroupError as error:
                log.warning("usage group %s: %s", name, error)
                raise Unanswerable(
                    UNRESOLVED_KEY, f"MDM has no usage group {name}", USAGE_GROUP_MO, name
                ) from None
        return self._groups[name]

    def _calculation(
        self, tx: Transaction, row: Row, now: datetime
    ) -> tuple[Calculation, datetime | None]:
        start = datetime.fromisoformat(row["start_date_time"])
        end_from = datetime.fromisoformat(row["end_date_time_from"])
        end_to = datetime.fromisoformat(row["end_date_time_to"])
        online = row["flow"] == "ONLINE_BD"
        breaks = tuple(
            DateBreak(datetime.fromisoformat(b["date_time"]), DateBreakReason(b["reason"]))
            for b in json.loads(row["date_breaks"])
        )
        estimate_at: datetime | None = None
        retry_until: datetime | None = None
        build = self.calculation_for(
            tx,
            str(row["us_external_id"]),
            start,
            end_from,
            end_to,
            bill_condition=BillCondition(row["bill_condition"]),
            online=online,
            date_breaks=breaks,
            previous_usage_id=row["previous_usage_id"],
            return_interval_data=bool(row["return_interval_data"]),
            exclude=int(row["id"]),
        )
        if not online:
            sp_zone = build.request.time_zone
            estimate_at = self._estimate_instant(tx, row, sp_zone) or instant(end_to)
            retry_until = max(instant(end_to), estimate_at)
            reached = now >= estimate_at
            if reached != build.request.estimate_date_reached:
                build = replace(
                    build, request=replace(build.request, estimate_date_reached=reached)
                )
        tx.send(
            f"""UPDATE {TABLE} SET us_id = :us, usage_group = :group,
                  estimate_date_reached = :reached WHERE id = :id""",
            {
                "us": build.us_id,
                "group": build.group.name,
                "reached": build.request.estimate_date_reached,
                "id": row["id"],
            },
        )
        return build, retry_until

    def calculation_for(
        self,
        tx: Transaction,
        sa_id: str,
        start: datetime,
        end_from: datetime,
        end_to: datetime,
        *,
        bill_condition: BillCondition = BillCondition.INTERIM,
        online: bool = True,
        date_breaks: tuple[DateBreak, ...] = (),
        previous_usage_id: str | None = None,
        return_interval_data: bool = False,
        usage_group: str | None = None,
        estimate_date_reached: bool = False,
        summary_billing: bool = True,
        exclude: int | None = None,
    ) -> Calculation:
        """Everything the engine needs for a US (by its CCB SA id) over a period, from MDM's
        master data and measurements; ``usage_group`` overrides the US's own (get usage)."""
        us_id = production_id(tx, "CCB", "D1-US", (sa_id,))
        us = None if us_id is None else self.records.usage_subscription(tx, us_id)
        if us is None:
            raise Unanswerable(UNRESOLVED_KEY, f"MDM has no US for SA {sa_id}", "D1-US", sa_id)
        low = instant(start)
        if usage_group is None:
            current = [
                g
                for g in us.usage_groups
                if g.period.start <= low and (g.period.end is None or low < g.period.end)
            ]
            if not current:
                raise Unanswerable(
                    UNRESOLVED_KEY,
                    f"US of SA {sa_id} has no usage group at {start.isoformat()}",
                    USAGE_GROUP_MO,
                    sa_id,
                )
            usage_group = current[0].usage_group
        group = self.usage_group(usage_group)
        points, installations = self.measurements.us_installations(tx, us, start, end_to)
        if not points:
            raise InsufficientData(f"SA {sa_id} has no SP in the period", sa_id)
        sp_zone = points[0].service_point.time_zone
        high = instant(end_to)
        breaks = list(date_breaks)
        for participant in us.market_participants:
            if not participant.requires_date_break or participant.status != "ACTIVE":
                continue
            for moment in (participant.period.start, participant.period.end):
                if moment is not None and low < moment < high:
                    breaks.append(DateBreak(moment, DateBreakReason.SAREL))
        prior = self._prior_demands(tx, sa_id, exclude) if group.ratchet else ()
        cycles = sorted({p.service_point.measurement_cycle for p in points})
        try:
            request = CalculationRequest(
                start_date_time=start,
                end_date_time_from=end_from,
                end_date_time_to=end_to,
                time_zone=sp_zone,
                bill_condition=bill_condition,
                online=online,
                estimate_date_reached=estimate_date_reached,
                date_breaks=tuple(sorted(set(breaks), key=lambda b: b.date_time)),
                sp_type=points[0].service_point.sp_type,
                previous_usage_id=previous_usage_id,
                prior_demands=prior,
                return_interval_data=return_interval_data,
                summary_billed=us.summary_billed and summary_billing,
                scheduled_read_dates=self._scheduled_reads(tx, cycles),
            )
        except ValueError as problem:
            raise Unanswerable(SCHEMA_VIOLATION, str(problem), "startDateTime") from None
        return Calculation(request, group, installations, points, us.production_id)

    def _estimate_instant(self, tx: Transaction, row: Row, sp_zone: str) -> datetime | None:
        if row["bill_cycle"] is None or row["window_start_date"] is None:
            return None
        entry = tx.fetch_one(
            """SELECT estimate_date FROM mdm_bill_cycle_schedule
               WHERE bill_cycle_id = :cycle AND window_start_date = :window""",
            {"cycle": row["bill_cycle"], "window": row["window_start_date"]},
        )
        if entry is None:
            return None
        day = date.fromisoformat(str(entry["estimate_date"]))
        return datetime.combine(day, time(), zone(sp_zone)).astimezone(UTC)

    def _scheduled_reads(self, tx: Transaction, cycles: Sequence[str]) -> tuple[date, ...]:
        if not cycles:
            return ()
        params = {f"c{i}": cycle for i, cycle in enumerate(cycles)}
        rows = tx.fetch(
            f"""SELECT DISTINCT read_date FROM mdm_measurement_cycle_read
                WHERE measurement_cycle IN ({", ".join(":" + k for k in params)})
                ORDER BY read_date""",
            params,
        )
        return tuple(date.fromisoformat(str(r["read_date"])) for r in rows)

    def _prior_demands(
        self, tx: Transaction, sa_id: str, exclude: int | None
    ) -> tuple[PriorDemand, ...]:
        rows = tx.fetch(
            f"""SELECT id, external_id, determinants FROM {TABLE}
                WHERE us_external_id = :sa AND state IN ('SENT','SUBSEQUENT_CORRECTION')
                  AND superseded = FALSE ORDER BY id""",
            {"sa": sa_id},
        )
        demands = []
        for row in rows:
            if row["id"] == exclude:
                continue
            sent = decode_determinants(str(row["determinants"]))
            peaks = [
                sq.quantity
                for period in sent.periods
                for sq in period.service_quantities
                if (sq.uom, sq.tou, sq.sqi) == ("KW", "", "")
            ]
            if peaks and sent.periods:
                end = sent.periods[-1].end_date_time
                demands.append(PriorDemand(str(row["external_id"]), end, max(peaks)))
        return tuple(demands)

    # -- answering -----------------------------------------------------------------------

    def _keep(
        self, tx: Transaction, row: Row, calculation: Calculation, determinants: Determinants
    ) -> None:
        periods = determinants.periods
        tx.send(
            f"""UPDATE {TABLE} SET determinants = :determinants, period_start = :start,
                  period_end = :end, sent_at = {tx.now} WHERE id = :id""",
            {
                "determinants": encode_determinants(
                    determinants, calculation.mcs, calculation.request.time_zone
                ),
                "start": epoch(periods[0].start_date_time) if periods else None,
                "end": epoch(periods[-1].end_date_time) if periods else None,
                "id": row["id"],
            },
        )

    def _respond(
        self,
        tx: Transaction,
        row: Row,
        result: dict[str, Any],
        *,
        determinants: Determinants | None = None,
        skip: Skip | None = None,
    ) -> str:
        """The usage transaction response to the bridge, correlated with the request and
        recorded as its inbox outcome (a redelivery gets it back)."""
        message_id = new_message_id()
        body: dict[str, Any] = {
            "message_header": message_header(
                str(row["flow"]),
                "MDM",
                "CCB",
                message_id=message_id,
                correlation_id=str(row["message_id"]),
            ),
            "external_id": row["external_id"],
            "ut_id": row["ut_id"],
            "result": result,
        }
        if determinants is not None:
            body |= determinants_body(determinants)
        if skip is not None:
            body["skip"] = {
                "skip_indicator": True,
                "skip_reason": skip.skip_reason[:254],
                "next_scheduled_read_date": skip.next_scheduled_read_date,
            }
        codec = self.contracts[RESPONSE]
        payload = codec.encode(codec.model.model_validate(body))
        self.node.outbox.enqueue(
            tx, self.partner, str(row["flow"]), "response", message_id, payload
        )
        tx.send(
            f"UPDATE {TABLE} SET response_message_id = :response WHERE id = :id",
            {"response": message_id, "id": row["id"]},
        )
        tx.send(
            """UPDATE inbox SET outcome_message_id = :response
               WHERE node = :node AND partner = :partner AND message_id = :request""",
            {
                "response": message_id,
                "node": self.node.name,
                "partner": self.partner,
                "request": row["message_id"],
            },
        )
        return message_id

    # -- flow 16: used on bill -----------------------------------------------------------

    def _used_on_bill(self, tx: Transaction, received: Received) -> str | None:
        codec, message = self.contracts.decode(received.payload)
        if codec.name != "mdm/UsageTransactionUpdate":
            log.warning("UT_INFO_UPDATE request in contract %s; not applied", codec.name)
            return None
        update: Any = message
        failures, updated = [], []
        for item in update.items:
            row = tx.fetch_one(
                f"""SELECT id, ut_id FROM {TABLE} WHERE external_id = :external
                      AND state IN ('SENT','SUBSEQUENT_CORRECTION') ORDER BY id DESC LIMIT 1""",
                {"external": item.external_id},
            )
            if row is None:
                failures.append(
                    {
                        "message_category": UT_NOT_SENT[0],
                        "message_number": UT_NOT_SENT[1],
                        "message_parameters": [item.external_id],
                        "comments": f"No usage transaction in Sent has external id "
                        f"{item.external_id}; its used-on-bill flag was not changed",
                    }
                )
                continue
            tx.send(
                f"UPDATE {TABLE} SET used_on_bill = :used, used_on_bill_at = :at WHERE id = :id",
                {
                    "used": bool(item.used_on_bill),
                    "at": tx.instant(item.used_on_bill_date_time),
                    "id": row["id"],
                },
            )
            updated.append({"entity": UT_MO, "external_pk1": str(row["ut_id"])})
        message_id = new_message_id()
        codec = self.contracts["mdm/UsageTransactionUpdateResponse"]
        reply = codec.model.model_validate(
            {
                "message_header": message_header(
                    "UT_INFO_UPDATE",
                    "MDM",
                    "CCB",
                    message_id=message_id,
                    correlation_id=received.message_id,
                ),
                "result": {
                    "has_error": bool(failures),
                    "exception_info": failures,
                    "external_ids": updated,
                },
            }
        )
        self.node.outbox.enqueue(
            tx, self.partner, "UT_INFO_UPDATE", "response", message_id, codec.encode(reply)
        )
        return message_id

    # -- flow 13: corrections ------------------------------------------------------------

    def correct_read(
        self,
        *,
        at: datetime,
        value: Decimal | str,
        sp_id: str | None = None,
        mc: str | None = None,
        quality_codes: tuple[str, ...] = QUALITY_CODES[Quality.EDITED],
    ) -> CorrectionResult:
        """Correct the measurement of an MC (its CCB register id or MDM id) or of the SP's
        one MC measured there (CCB SP id) at ``at``: an interval value by its end, a scalar
        reading by its instant. The UTs it touches are corrected, marked stale or left alone
        (PD-L09) in the same transaction."""
        new_value = Decimal(value)
        with self.store.transaction() as tx:
            mc_id, seconds = self._corrected_mc(tx, at, sp_id, mc)
            old = self._edit(tx, mc_id, seconds, at, new_value, quality_codes)
            correction = Correction(mc_id, at, old, new_value, quality_codes, seconds)
            corrected, stale, unchanged = [], [], []
            for usage in self._touched(tx, correction):
                row = tx.fetch_one(
                    f"SELECT * FROM {TABLE} WHERE ut_id = :ut", {"ut": usage.usage_id}
                )
                assert row is not None
                sent = decode_determinants(str(row["determinants"]))
                recalculated = self.recalculate(tx, row)
                outcome = correction_outcome(usage, [correction], sent, recalculated)
                if outcome is CorrectionOutcome.SUBSEQUENT_CORRECTION:
                    if self._move(tx, row, ("correct",), "a measurement behind it was corrected"):
                        self._notify(tx, row, correction)
                        corrected.append(usage.usage_id)
                elif outcome is CorrectionOutcome.STALE:
                    tx.send(f"UPDATE {TABLE} SET stale = TRUE WHERE id = :id", {"id": row["id"]})
                    stale.append(usage.usage_id)
                else:
                    unchanged.append(usage.usage_id)
        return CorrectionResult(
            mc_id, instant(at), old, new_value, tuple(corrected), tuple(stale), tuple(unchanged)
        )

    def _corrected_mc(
        self, tx: Transaction, at: datetime, sp_id: str | None, mc: str | None
    ) -> tuple[str, int | None]:
        """The MC a correction is for, and its interval length (None: scalar)."""
        if mc is not None:
            found = tx.fetch_one(
                "SELECT id, seconds_per_interval FROM mdm_measuring_component WHERE id = :id",
                {"id": mc},
            )
            if found is None:
                mc_id = production_id(tx, "CCB", "D1-MC", (mc,))
                found = (
                    None
                    if mc_id is None
                    else tx.fetch_one(
                        """SELECT id, seconds_per_interval FROM mdm_measuring_component
                           WHERE id = :id""",
                        {"id": mc_id},
                    )
                )
            if found is None:
                raise LookupError(f"MDM has no MC {mc}")
            seconds = found["seconds_per_interval"]
            return str(found["id"]), None if seconds is None else int(seconds)
        if sp_id is None:
            raise ValueError("a correction names an SP or an MC")
        sp = production_id(tx, "CCB", "D1-SP", (sp_id,))
        if sp is None:
            raise LookupError(f"MDM has no SP {sp_id}")
        measured: list[tuple[str, int | None]] = []
        moment = instant(at)
        for installation in self.measurements.installations(
            tx, sp, moment, moment + timedelta(seconds=1)
        ):
            for channel in installation.channels:
                if self.measurements.interval_value(tx, channel.mc, moment) is not None:
                    measured.append((channel.mc, channel.seconds_per_interval))
            for register in installation.registers:
                if moment in register.by_instant:
                    measured.append((register.mc, None))
        if len(measured) != 1:
            raise LookupError(
                f"SP {sp_id} has {len(measured)} measurements at {moment.isoformat()}; name the MC"
            )
        mc_id, length = measured[0]
        return mc_id, length

    def _edit(
        self,
        tx: Transaction,
        mc_id: str,
        seconds: int | None,
        at: datetime,
        value: Decimal,
        codes: tuple[str, ...],
    ) -> Decimal:
        """Replace the stored measurement, keeping the old version; its old value."""
        if seconds is not None:
            stored = self.measurements.interval_value(tx, mc_id, at)
            if stored is None:
                raise LookupError(f"MC {mc_id} has no value ending {instant(at).isoformat()}")
            self.measurements.write_values(
                tx, [(mc_id, epoch(at), str(value), codes_text(codes))], replace=True
            )
            self.measurements.record_edit(
                tx, mc_id, "INTERVAL", at, (stored.value, stored.quality_codes), (value, codes)
            )
            return stored.value
        reading = next(
            (r for r in self.measurements.readings(tx, mc_id) if r.at == instant(at)), None
        )
        if reading is None:
            raise LookupError(f"MC {mc_id} has no reading at {instant(at).isoformat()}")
        tx.send(
            """UPDATE mdm_scalar_measurement SET reading = :value, quality_code = :code
               WHERE mc_id = :mc AND status = 'ACTIVE'
                 AND measurement_date_time > :low AND measurement_date_time < :high""",
            {
                "value": str(value),
                "code": codes[0],
                "mc": mc_id,
                "low": tx.instant(instant(at) - timedelta(milliseconds=500)),
                "high": tx.instant(instant(at) + timedelta(milliseconds=500)),
            },
        )
        self.measurements.record_edit(
            tx, mc_id, "SCALAR", at, (reading.value, reading.quality_codes), (value, codes)
        )
        return reading.value

    def _touched(self, tx: Transaction, correction: Correction) -> tuple[SentUsage, ...]:
        moment = epoch(correction.measurement_date_time)
        reach = correction.seconds_per_interval or 0
        rows = tx.fetch(
            f"""SELECT ut_id, period_start, period_end, determinants, used_on_bill FROM {TABLE}
                WHERE state = 'SENT' AND superseded = FALSE
                  AND period_start <= :moment AND period_end >= :earliest""",
            {"moment": moment, "earliest": moment - reach},
        )
        usages = [
            SentUsage(
                usage_id=str(r["ut_id"]),
                start_date_time=from_epoch(r["period_start"]),
                end_date_time=from_epoch(r["period_end"]),
                mcs=frozenset(json.loads(str(r["determinants"]))["mcs"]),
                used_on_bill=bool(r["used_on_bill"]),
            )
            for r in rows
        ]
        return touched_usages(usages, [correction])

    def recalculate(self, tx: Transaction, row: Row) -> Determinants | DeterminantsFault:
        """A Sent UT calculated again from the data MDM holds now, over the period it sent."""
        sent = decode_determinants(str(row["determinants"]))
        end = sent.periods[-1].end_date_time
        breaks = tuple(
            DateBreak(datetime.fromisoformat(b["date_time"]), DateBreakReason(b["reason"]))
            for b in json.loads(row["date_breaks"])
        )
        try:
            build = self.calculation_for(
                tx,
                str(row["us_external_id"]),
                datetime.fromisoformat(row["start_date_time"]),
                end,
                end,
                bill_condition=BillCondition(row["bill_condition"]),
                online=row["flow"] == "ONLINE_BD",
                date_breaks=breaks,
                previous_usage_id=row["previous_usage_id"],
                usage_group=row["usage_group"],
                estimate_date_reached=bool(row["estimate_date_reached"]),
                summary_billing=False,
                exclude=int(row["id"]),
            )
            result = calculate(build.request, build.installations, build.group)
        except DeterminantsFault as fault:
            return fault
        except Unanswerable as problem:
            return InsufficientData(problem.text, *problem.parameters)
        assert isinstance(result, Determinants)
        return result

    def _notify(self, tx: Transaction, row: Row, correction: Correction) -> None:
        """One replacement read notification for the UT (flow 13, PD-F14, PD-F32)."""
        sent = decode_determinants(str(row["determinants"]))
        sp_zone = zone(json.loads(str(row["determinants"]))["time_zone"])
        moment = correction.measurement_date_time
        if correction.seconds_per_interval is not None:
            low = moment - timedelta(seconds=correction.seconds_per_interval)
            high = moment
        else:
            low, high = sent.periods[0].start_date_time, sent.periods[-1].end_date_time
        notification_id = self.loader.allocate(tx, NOTIFICATION_MO)
        message_id = new_message_id()
        codec = self.contracts["mdm/SubsequentCorrectionNotification"]
        notice = codec.model.model_validate(
            {
                "message_header": message_header(
                    "REPLACEMENT_READS", "MDM", "CCB", message_id=message_id
                ),
                "notification_id": notification_id,
                "ut_id": row["ut_id"],
                "external_id": row["external_id"],
                "us_external_id": row["us_external_id"],
                "corrected_period": {
                    "start_date_time": legal_time(low, sp_zone),
                    "end_date_time": legal_time(high, sp_zone),
                },
                "corrections": [
                    {
                        "mc": correction.mc,
                        "measurement_date_time": legal_time(moment, sp_zone),
                        "old_value": correction.old_value,
                        "new_value": correction.new_value,
                        "quality_codes": list(correction.quality_codes),
                    }
                ],
            }
        )
        self.node.outbox.enqueue(
            tx, self.partner, "REPLACEMENT_READS", "notification", message_id, codec.encode(notice)
        )
        tx.send(
            f"UPDATE {TABLE} SET notification_id = :notification WHERE id = :id",
            {"notification": notification_id, "id": row["id"]},
        )

    # -- what MDM holds ------------------------------------------------------------------

    def usage_transactions(self, tx: Transaction, external_id: str) -> list[UsageTransaction]:
        """The UTs of a CCB usage request, oldest first."""
        rows = tx.fetch(
            f"SELECT * FROM {TABLE} WHERE external_id = :external ORDER BY id",
            {"external": external_id},
        )
        return [_usage_transaction(row) for row in rows]

    def usage_transaction(self, tx: Transaction, ut_id: str) -> UsageTransaction | None:
        row = tx.fetch_one(f"SELECT * FROM {TABLE} WHERE ut_id = :ut", {"ut": ut_id})
        return None if row is None else _usage_transaction(row)

    def states(self, tx: Transaction) -> dict[str, int]:
        """How many UTs are in each state."""
        return {
            str(r["state"]): int(r["n"])
            for r in tx.fetch(f"SELECT state, count(*) AS n FROM {TABLE} GROUP BY state")
        }


def correct_read(store: Store, node: Node, **correction: Any) -> CorrectionResult:
    """Correct a measurement behind MDM's ``node`` (``MdmUsage.correct_read``)."""
    return MdmUsage(store, node, node.contracts).correct_read(**correction)


# -- messages -----------------------------------------------------------------------------------


def _positive() -> dict[str, Any]:
    return {"has_error": False}


def _negative(fault: Fault) -> dict[str, Any]:
    return {
        "has_error": True,
        "exception_info": [
            {
                "message_category": FAULT_CATEGORY,
                "message_number": fault.number,
                "message_parameters": [p[:254] for p in fault.parameters],
                "comments": fault.text[:254],
            }
        ],
    }


def fault_result(fault: Fault) -> dict[str, Any]:
    """A result carrying a fault (PD-C04)."""
    return _negative(fault)


def period_body(period: UsagePeriod) -> dict[str, Any]:
    return {
        "start_date_time": period.start_date_time,
        "end_date_time": period.end_date_time,
        "service_quantities": [
            {
                "uom": sq.uom,
                "tou": sq.tou or None,
                "sqi": sq.sqi or None,
                "quantity": sq.quantity,
                "quality": str(sq.quality),
                "value_count": sq.value_count,
                "estimated_count": sq.estimated_count,
                "edited_count": sq.edited_count,
            }
            for sq in period.service_quantities
        ],
    }


def determinants_body(determinants: Determinants) -> dict[str, Any]:
    """The periods, read pairs and interval data of a response (PD-F12, PD-F31)."""
    return {
        "periods": [period_body(p) for p in determinants.periods if p.service_quantities],
        "register_reads": [
            {
                "device": r.device,
                "mc": r.mc,
                "start_reading": r.start_reading,
                "start_date_time": r.start_date_time,
                "start_estimated": r.start_estimated,
                "end_reading": r.end_reading,
                "end_date_time": r.end_date_time,
                "end_estimated": r.end_estimated,
                "register_constant": r.register_constant,
                "how_to_use": str(r.how_to_use),
                "measured_quantity": r.measured_quantity,
                "final_quantity": r.final_quantity,
                "rollover": r.rollover,
            }
            for r in determinants.register_reads
        ],
        "interval_data": [
            {
                "mc": block.mc,
                "uom": block.uom,
                "seconds_per_interval": block.seconds_per_interval,
                "readings": [
                    {
                        "end_date_time": reading.end_date_time,
                        "value": reading.value,
                        "quality_codes": list(reading.quality_codes),
                    }
                    for reading in block.readings
                ],
            }
            for block in determinants.interval_data
        ],
    }


# -- the Sent determinants, kept as JSON -----------------------------------------------------


def encode_determinants(determinants: Determinants, mcs: frozenset[str], time_zone: str) -> str:
    return json.dumps(
        {
            "time_zone": time_zone,
            "mcs": sorted(mcs),
            "periods": [
                {
                    "start": p.start_date_time.isoformat(),
                    "end": p.end_date_time.isoformat(),
                    "sqs": [
                        [
                            sq.uom,
                            sq.tou,
                            sq.sqi,
                            decimal_text(sq.quantity),
                            str(sq.quality),
                            sq.value_count,
                            sq.estimated_count,
                            sq.edited_count,
                        ]
                        for sq in p.service_quantities
                    ],
                }
                for p in determinants.periods
            ],
        }
    )


def decode_determinants(text: str) -> Determinants:
    data = json.loads(text)
    return Determinants(
        tuple(
            UsagePeriod(
                datetime.fromisoformat(p["start"]),
                datetime.fromisoformat(p["end"]),
                tuple(
                    ServiceQuantity(
                        uom, tou, sqi, Decimal(quantity), Quality(quality), values, est, edited
                    )
                    for uom, tou, sqi, quantity, quality, values, est, edited in p["sqs"]
                ),
            )
            for p in data["periods"]
        )
    )


def _usage_transaction(row: Row) -> UsageTransaction:
    return UsageTransaction(
        id=int(row["id"]),
        ut_id=str(row["ut_id"]),
        external_id=str(row["external_id"]),
        flow=str(row["flow"]),
        us_external_id=str(row["us_external_id"]),
        state=str(row["state"]),
        reason=row["reason"],
        used_on_bill=bool(row["used_on_bill"]),
        superseded=bool(row["superseded"]),
        stale=bool(row["stale"]),
        usage_group=row["usage_group"],
        determinants=None
        if row["determinants"] is None
        else decode_determinants(str(row["determinants"])),
        notification_id=row["notification_id"],
    )

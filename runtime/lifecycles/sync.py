"""Master-data sync requests: change capture in the source's transaction, and the monitor's step
that takes the final snapshot, compares it and hands the message to delivery.

Nothing is processed in the transaction that creates it (docs/lifecycles.md §1.4): ``capture`` only
records that an entity changed; the monitor, later and in its own transaction, decides whether
anything is sent (docs/reliability.md §2.2).
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from deepdiff import DeepDiff
from pydantic import ValidationError

from ccbmdm.runtime.lifecycles.lifecycle import SYNC_REQUEST, Transition
from ccbmdm.runtime.lifecycles.machine import moved, together_or_apart
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import message_header, new_message_id
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import DeliverySettings, Outbox, Received
from ccbmdm.runtime.store import Store, StoreUnavailable, Transaction
from ccbmdm.runtime.store.base import Row

KEY_SEPARATOR = "\x1f"  # PD-L12: primary-key values joined by U+001F
TABLE = "sync_request"
_HEADER_FIELDS = ("message_header", "send_details", "change_type", "entity_version")

# The reference configuration: CCB maintenance object -> its master-data flow. The MO codes are
# the keys of the OUCCB2_OUMDM2_MO code table.
CCB_SYNC_FLOWS: Mapping[str, str] = {
    "PERSON": "PERSON_SYNC",
    "SP": "SP_SYNC",
    "SA": "SA_SYNC",
    "SA REL": "SA_REL_SYNC",
    "CONTRACT OPT": "DOP_SYNC",
    "CONTR OPT EVT": "DOP_EVENT_SYNC",
    "METER": "METER_SYNC",
    "MTR CONFIG": "METER_CONFIG_SYNC",
    "SP MTR HIST": "SP_METER_HISTORY_SYNC",
    "METER READ": "SCALAR_READ_SYNC",
    "BILL CYCLE": "BILL_CYCLE_SYNC",
}


def canonical_key(values: tuple[str, ...]) -> str:
    """The canonical primary key: values joined by U+001F, trailing empty values dropped."""
    trimmed = list(values)
    while trimmed and not trimmed[-1]:
        trimmed.pop()
    if not trimmed:
        raise ValueError("a sync request needs at least one primary-key value")
    return KEY_SEPARATOR.join(trimmed)


def ordering_key(mo: str, pk: str, target: str) -> str:
    """The delivery ordering key of a master-data message: its sync key (PD-L12), so that one
    entity's messages go out in order at every hop."""
    return KEY_SEPARATOR.join((mo, pk, target))


def capture(
    tx: Transaction,
    mo: str,
    key: tuple[str, ...],
    before: Mapping[str, Any] | None,
    *,
    target: str = "MDM",
    initial_load: bool = False,
    flows: Mapping[str, str] = CCB_SYNC_FLOWS,
) -> None:
    """Record a change of an entity, inside the caller's own transaction.

    One Pending request per key: a later change joins it (the first initial snapshot is kept);
    ``before`` is the entity as it was before this change (None: it did not exist), in the
    JSON form of the entity element of the flow's contract.
    """
    flow = flows.get(mo)
    if flow is None:
        raise ValueError(
            f"maintenance object {mo!r} has no sync flow; known: {', '.join(sorted(flows))}"
        )
    params = {
        "mo": mo,
        "pk": canonical_key(key),
        "target": target,
        "flow": flow,
        "before": json.dumps(before, sort_keys=True, default=str),
        "initial_load": initial_load,
    }
    tx.send(
        """INSERT INTO entity_version (mo, pk, target, version) VALUES (:mo, :pk, :target, 1)
           ON CONFLICT (mo, pk, target) DO UPDATE SET version = entity_version.version + 1""",
        params,
    )
    tx.send(
        f"""INSERT INTO sync_request (mo, pk, target, flow, state, initial_snapshot, due_at, created_at, initial_load)
            VALUES (:mo, :pk, :target, :flow, 'PENDING', :before, {tx.now}, {tx.now}, :initial_load)
            ON CONFLICT (mo, pk, target) WHERE state = 'PENDING' DO NOTHING""",
        params,
    )


class SnapshotReader(Protocol):
    """The source system's view of an entity now: its final snapshot, None when it is gone."""

    def read(self, tx: Transaction, mo: str, key: tuple[str, ...]) -> Mapping[str, Any] | None: ...


@runtime_checkable
class BatchSnapshotReader(SnapshotReader, Protocol):
    """A source that also reads a batch's snapshots at once: one statement a batch where
    ``read`` makes one a request. The monitor uses it when the source offers it; when it
    raises, each request's snapshot is read alone, so the failure stays that request's."""

    def read_many(
        self, tx: Transaction, mo: str, keys: Sequence[tuple[str, ...]]
    ) -> list[Mapping[str, Any] | None]:
        """The final snapshot of each key, in order (None: nothing to send)."""
        ...


@dataclass(frozen=True)
class StepResult:
    """What one monitor step did, by outcome."""

    sent: int = 0
    discarded: int = 0
    errors: int = 0
    skipped: int = 0  # due, but held behind an older request of the same key


class SyncRequestMonitor:
    """Moves Pending sync requests on: Discarded, Awaiting Acknowledgement or Error."""

    def __init__(
        self,
        store: Store,
        contracts: ContractRegistry,
        reader: SnapshotReader,
        sender_contracts: Mapping[str, str],
        *,
        source_system: str = "CCB",
        node: str = "ccb",
        partner: str = "bridge",
        reply_timeout_s: float = 86400.0,
        audit_fields: Mapping[str, frozenset[str]] | None = None,
        error_policies: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.contracts = contracts
        self.reader = reader
        self.sender_contracts = sender_contracts  # flow code -> the CCB request contract
        self.source_system = source_system
        self.node = node
        self.partner = partner
        self.outbox = Outbox(store, node, DeliverySettings())  # the monitor only enqueues
        self.reply_timeout_s = reply_timeout_s
        # the header's sentDateTime, which the mappings judge "today" by (PD-F36)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.audit_fields = audit_fields or {}
        # flow code -> hold (the default, PD-L02) or supersede, as contracts/flows.yaml declares
        self.superseding = sorted(
            f for f, policy in (error_policies or {}).items() if policy == "supersede"
        )

    def step(
        self, batch: int = 50, *, request_ids: list[int] | None = None, from_error: bool = False
    ) -> StepResult:
        """One claim of due Pending requests (or, resubmitting, of requests in Error), handled
        together, or each under a savepoint when one cannot be built; one commit. Those the
        transaction's write budget leaves stay as they are, for the next step."""
        counts = {"sent": 0, "discarded": 0, "errors": 0}
        # The key's entity_version row is locked with the request: a capture holds it from its
        # first statement to its commit, so a request whose key has a capture in flight is left
        # for the next step, and no capture can join a request while it is being sent (C8).
        lock = " FOR UPDATE OF r, v SKIP LOCKED" if self.store.dialect == "postgres" else ""
        index = ""
        if from_error:
            # S10: only rows still in Error, so pressing twice resubmits once (E3)
            chosen = (
                " AND r.id IN (" + ",".join(str(int(i)) for i in request_ids) + ")"
                if request_ids
                else ""
            )
            where = f"r.state = 'ERROR'{chosen}"
        else:
            # SQLite, without statistics, would read every Pending request through the index
            # on (state, id) and sort them all for each batch (an initial load of n entities:
            # n²/batch rows read); the partial index on (due_at, id) gives the due ones in
            # order, the batch's first. PostgreSQL's OFFSET 0 keeps the key's open request a
            # lookup per candidate: made a join by a planner whose statistics predate the load's
            # sends (none Awaiting then), every open request was read again for each candidate
            # (1 s a claim at 15,000 open requests; 3 ms as a lookup).
            fence = " OFFSET 0"
            if self.store.dialect == "sqlite":
                index, fence = " INDEXED BY sync_request_due", ""
            where = f"""r.state = 'PENDING' AND r.due_at <= {self.store.now}
                      AND NOT EXISTS (SELECT 1 FROM sync_request o
                                      WHERE o.mo = r.mo AND o.pk = r.pk AND o.target = r.target
                                        AND o.state IN ('AWAITING_ACK', 'ERROR'){fence})"""
        with self.store.transaction() as tx:
            if not from_error and self.superseding:
                self._supersede(tx)
            picked = tx.fetch(
                f"""SELECT r.id, r.mo, r.pk, r.target, r.flow, r.initial_snapshot, r.initial_load, v.version
                    FROM sync_request r{index} JOIN entity_version v
                      ON v.mo = r.mo AND v.pk = r.pk AND v.target = r.target
                    WHERE {where}
                    ORDER BY r.due_at, r.id LIMIT :batch{lock}""",
                {"batch": batch},
            )
            finals = self._read_all(tx, picked)
            outcomes, _ = together_or_apart(
                tx,
                picked,
                lambda row: self._determine(tx, row, from_error, finals),
                lambda rows: self._determine_apart(tx, rows, from_error, finals),
            )
        for outcome in outcomes:
            counts[outcome] += 1
        return StepResult(**counts)

    def _supersede(self, tx: Transaction) -> None:
        """S12, for flows that declare it: a request in Error whose key has a Pending one is
        superseded, and its initial snapshot becomes the Pending one's (so the next message
        still compares against what MDM last had)."""
        flows = ",".join(
            f"'{flow}'" for flow in self.superseding if flow.replace("_", "").isalnum()
        )
        stale = tx.fetch(
            f"""SELECT e.id AS old, p.id AS new, e.initial_snapshot FROM sync_request e
                JOIN sync_request p ON p.mo = e.mo AND p.pk = e.pk AND p.target = e.target AND p.state = 'PENDING'
                WHERE e.state = 'ERROR' AND e.flow IN ({flows}) ORDER BY e.id"""
        )
        transition = SYNC_REQUEST.next("ERROR", "supersede")
        reason = "superseded by a newer request"
        for row in stale:
            if tx.execute(
                "UPDATE sync_request SET state = :state, reason = :reason, due_at = NULL "
                "WHERE id = :old AND state = 'ERROR'",
                {"state": transition.target, "reason": reason, "old": row["old"]},
            ):
                moved(tx, SYNC_REQUEST, TABLE, int(row["old"]), (transition,), reason)
                tx.send(
                    "UPDATE sync_request SET initial_snapshot = :snapshot WHERE id = :new",
                    {
                        "snapshot": json.dumps(self.store.json_value(row["initial_snapshot"])),
                        "new": row["new"],
                    },
                )

    def _read_all(self, tx: Transaction, picked: Sequence[Row]) -> dict[int, Any]:
        """The final snapshots of the picked requests, by request id, read a batch at a time
        when the source can (``BatchSnapshotReader``); empty when it cannot, or when its batch
        read failed (each is then read alone, by ``_determine``)."""
        read_many = getattr(self.reader, "read_many", None)  # a BatchSnapshotReader's (the
        # protocol's isinstance costs some 100 µs on Python 3.11)
        if not picked or read_many is None:
            return {}
        finals: dict[int, Any] = {}
        try:
            with tx.savepoint():
                for mo in dict.fromkeys(row["mo"] for row in picked):
                    rows = [row for row in picked if row["mo"] == mo]
                    keys = [tuple(row["pk"].split(KEY_SEPARATOR)) for row in rows]
                    snapshots = read_many(tx, mo, keys)
                    finals |= {
                        int(row["id"]): final for row, final in zip(rows, snapshots, strict=True)
                    }
        except StoreUnavailable:
            raise
        except Exception:
            return {}
        return finals

    def _determine_apart(
        self, tx: Transaction, picked: list[Row], from_error: bool, finals: Mapping[int, Any]
    ) -> list[str]:
        """Each request under a savepoint: one whose message cannot be built goes to Error."""
        outcomes = []
        for row in picked:
            try:
                with tx.savepoint():
                    outcomes.append(self._determine(tx, row, from_error, finals))
            except NotBuilt as exc:
                self._error(tx, row, _entry(from_error), exc.cause, exc.final)
                outcomes.append("errors")
            except (ValidationError, ValueError, KeyError) as exc:
                self._error(tx, row, _entry(from_error), exc, None)
                outcomes.append("errors")
        return outcomes

    def _determine(
        self, tx: Transaction, row: Mapping[str, Any], from_error: bool, finals: Mapping[int, Any]
    ) -> str:
        entry = _entry(from_error)
        key = tuple(row["pk"].split(KEY_SEPARATOR))
        initial = self.store.json_value(row["initial_snapshot"])
        if isinstance(initial, str):
            initial = json.loads(initial)
        request_id = int(row["id"])
        final = finals[request_id] if request_id in finals else self.reader.read(tx, row["mo"], key)
        try:
            return self._build(tx, row, entry, key, initial, final)
        except (ValidationError, ValueError, KeyError) as exc:
            raise NotBuilt(exc, final) from exc

    def _build(
        self,
        tx: Transaction,
        row: Mapping[str, Any],
        entry: Transition,
        key: tuple[str, ...],
        initial: Any,
        final: Any,
    ) -> str:
        """The message from the final snapshot into the outbox, or the request discarded when
        nothing changed. ``entry``: how the request came to Determine (a claim, a resubmit)."""
        version = int(row["version"])  # locked with the request (see step)
        contract = self.contracts[self.sender_contracts[row["flow"]]]
        entity_field, entity_model = _entity_of(contract.model)
        if self._same(row["flow"], entity_model, initial, final):
            transition = SYNC_REQUEST.next("DETERMINE", "no_difference")
            tx.send(
                "UPDATE sync_request SET state = :state, reason = 'no difference', due_at = NULL, "
                "final_snapshot = :final WHERE id = :id",
                {
                    "state": transition.target,
                    "final": json.dumps(final, sort_keys=True, default=str),
                    "id": row["id"],
                },
            )
            path = (entry, transition)
            moved(tx, SYNC_REQUEST, TABLE, int(row["id"]), path, "no difference", flow=row["flow"])
            return "discarded"
        message_id = new_message_id()
        change = "ADD" if initial is None else "DELETE" if final is None else "CHANGE"
        message = contract.model.model_validate(
            {
                "message_header": message_header(
                    row["flow"],
                    self.source_system,
                    row["target"],
                    message_id=message_id,
                    sent_at=self.clock(),
                ),
                "send_details": {
                    "sync_request_id": str(row["id"]).zfill(10),
                    "source_system": self.source_system,
                    "initial_load": bool(row["initial_load"]),
                    "mo": row["mo"],
                    **{f"pk_value{i}": value for i, value in enumerate(key, 1)},
                },
                "change_type": change,
                "entity_version": version,
                entity_field: final,
            }
        )
        transition = SYNC_REQUEST.next("DETERMINE", "sent")
        self.outbox.enqueue(
            tx,
            self.partner,
            row["flow"],
            "request",
            message_id,
            contract.encode(message),
            ordering_key=ordering_key(row["mo"], row["pk"], row["target"]),
            owner=("sync_request", int(row["id"])),
            reply_timeout_s=self.reply_timeout_s,
        )
        tx.later(
            _write_sent,
            {
                "state": transition.target,
                "final": json.dumps(final, sort_keys=True, default=str),
                "version": version,
                "message_id": message_id,
                "id": row["id"],
            },
        )
        path = (entry, transition)
        moved(
            tx, SYNC_REQUEST, TABLE, int(row["id"]), path, flow=row["flow"], message_id=message_id
        )
        return "sent"

    def _same(self, flow: str, model: type[ContractModel], initial: Any, final: Any) -> bool:
        """PD-L04: equal in canonical form (values read through the entity's contract, so 1.50
        equals 1.5 and offsets do not matter), audit-only fields removed, list order counting."""
        if initial is None or final is None:
            return initial is None and final is None
        drop = self.audit_fields.get(flow, frozenset())
        canonical = [
            {k: v for k, v in model.model_validate(snapshot).model_dump().items() if k not in drop}
            for snapshot in (initial, final)
        ]
        return not DeepDiff(canonical[0], canonical[1])

    def _error(
        self,
        tx: Transaction,
        row: Mapping[str, Any],
        entry: Transition,
        exc: Exception,
        final: Any,
    ) -> None:
        """Error with the reason, never quoting personal data; the final snapshot the message
        could not be built from is kept, from which ``ccbmdm status --unmask`` re-derives the
        values (``unmasked_reasons``)."""
        transition = SYNC_REQUEST.next("DETERMINE", "build_failed")
        reason = f"message not built: {_reason(exc)}"
        tx.send(
            f"""UPDATE sync_request SET state = :state, reason = :reason, due_at = {self.store.now},
                   final_snapshot = :final WHERE id = :id""",
            {
                "state": transition.target,
                "reason": reason[:1000],
                "final": None if final is None else json.dumps(final, sort_keys=True, default=str),
                "id": row["id"],
            },
        )
        path = (entry, transition)
        moved(tx, SYNC_REQUEST, TABLE, int(row["id"]), path, reason[:1000], flow=row["flow"])


def _entry(from_error: bool) -> Transition:
    """How a request comes to Determine: claimed while Pending (S1), or resubmitted (S10)."""
    return SYNC_REQUEST.next(*(("ERROR", "resubmit") if from_error else ("PENDING", "claim")))


@functools.cache
def _entity_of(model: type[ContractModel]) -> tuple[str, type[ContractModel]]:
    """The entity element of a master-data message: the field after the sync header and body."""
    hints = typing.get_type_hints(model)
    for name in model.model_fields:
        if name not in _HEADER_FIELDS:
            annotation = hints[name]
            candidates = [
                a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)
            ]
            entity = next((a for a in candidates if issubclass(a, ContractModel)), None)
            if entity is not None:
                return name, entity
    raise KeyError(f"{model.__name__} has no entity element")


def unmasked_reasons(
    store: Store, contracts: ContractRegistry, sender_contract: Mapping[str, str], request_id: int
) -> str | None:
    """For an operator's command run locally only (``ccbmdm status --unmask``): why the message
    of a request in Error could not be built, with the values of personal fields, re-derived from
    the final snapshot kept with it. None when there is nothing to re-derive (no snapshot kept:
    the failure came later, from the bridge or MDM; or the snapshot now passes)."""
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT flow, final_snapshot FROM sync_request WHERE id = :id AND state = 'ERROR'",
            {"id": request_id},
        )
    if row is None or row["final_snapshot"] is None or row["flow"] not in sender_contract:
        return None
    final = store.json_value(row["final_snapshot"])
    if isinstance(final, str):
        final = json.loads(final)
    entity_field, entity_model = _entity_of(contracts[sender_contract[row["flow"]]].model)
    try:
        entity_model.model_validate(final)
    except ValidationError as exc:
        return "; ".join(
            f"{'.'.join(str(p) for p in (entity_field, *error['loc']))} = {error['input']!r}: "
            f"{error['msg']}"
            for error in exc.errors()[:5]
        )
    return None


class NotBuilt(Exception):
    """The message of a request cannot be built from its final snapshot (kept for the operator)."""

    def __init__(self, cause: Exception, final: Any) -> None:
        super().__init__("message not built")  # the cause may quote personal data
        self.cause = cause
        self.final = final


def _reason(exc: Exception) -> str:
    """Why a message was not built; a personal field's error never quotes its value (the
    models withhold it, runtime.messages.personal)."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:5]
        )
    return str(exc)


class Acknowledgements:
    """CCB's side of an acknowledgement: matched on correlationId to the message it answers,
    then Synchronized (positive) or Error with MDM's messages (negative, or a fault)."""

    def __init__(self, contracts: ContractRegistry, outbox: Any) -> None:
        self.contracts = contracts
        self.outbox = outbox

    def __call__(self, tx: Transaction, received: Received) -> str | None:
        return self.handle_batch(tx, [received])[0]

    def handle_batch(self, tx: Transaction, messages: Sequence[Received]) -> list[str | None]:
        """A batch of acknowledgements (a ``BatchHandler``): every match in one statement
        (``Outbox.replies_received``), every positive one's move in one more at the commit; a
        negative one's move is its own statement. An acknowledgement leads to no message."""
        decoded = [(received, self.contracts.decode(received.payload)[1]) for received in messages]
        correlated = [
            (received, message)
            for received, message in decoded
            if message.message_header.correlation_id is not None  # type: ignore[attr-defined]
        ]
        owners = self.outbox.replies_received(
            tx,
            [
                (received.partner, message.message_header.correlation_id)  # type: ignore[attr-defined]
                for received, message in correlated
            ],
        )
        for (received, message), owner in zip(correlated, owners, strict=True):
            if owner is not None and owner[0] == "sync_request":
                self._acknowledged(tx, received, message, owner[1])
            # else an earlier message's, or too late: recorded in the inbox and ignored
        return [None] * len(messages)

    def _acknowledged(
        self, tx: Transaction, received: Received, message: Any, request_id: int
    ) -> None:
        """The request the acknowledgement answers: Synchronized, or Error with MDM's reasons."""
        result = message.result
        if result.has_error:
            transition = SYNC_REQUEST.next("AWAITING_ACK", "negative_ack")
            reason = (
                "; ".join(
                    f"{info.message_category}/{info.message_number} {info.comments or ''}".strip()
                    for info in result.exception_info
                )
                or "negative acknowledgement"
            )
            if tx.execute(
                f"UPDATE sync_request SET state = :state, reason = :reason, due_at = {tx.now} WHERE id = :id AND state = 'AWAITING_ACK'",
                {"state": transition.target, "reason": reason[:1000], "id": request_id},
            ):
                self._moved(tx, transition, request_id, received, reason[:1000])
        else:
            transition = SYNC_REQUEST.next("AWAITING_ACK", "positive_ack")
            tx.later(_write_acknowledged, {"state": transition.target, "id": request_id})
            self._moved(tx, transition, request_id, received)

    @staticmethod
    def _moved(
        tx: Transaction,
        transition: Transition,
        request_id: int,
        ack: Any,
        reason: str | None = None,
    ) -> None:
        """The move an acknowledgement makes: the flow and the request's message id with it."""
        fields = {"flow": ack.flow, "message_id": ack.correlation_id}
        moved(tx, SYNC_REQUEST, TABLE, request_id, (transition,), reason, **fields)


# A batch's requests move on in one statement each at the commit (``Transaction.later``): what
# else the transaction does never reads them back (the message's outbox row carries its owner).


def _write_sent(tx: Transaction, rows: list[dict[str, Any]]) -> None:
    tx.update_rows(
        TABLE,
        # a resubmitted request's reason said why it was in Error: it is sent again now
        """state = :state, final_snapshot = :final, entity_version = :version,
           message_id = :message_id, reason = NULL, due_at = NULL""",
        rows,
        {"state": "text", "final": "jsonb", "version": "bigint", "message_id": "uuid"},
    )


def _write_acknowledged(tx: Transaction, rows: list[dict[str, Any]]) -> None:
    tx.update_rows(
        TABLE,
        # a resubmitted request's reason said why it was in Error: no longer so
        "state = :state, reason = NULL, due_at = NULL",
        rows,
        {"state": "text"},
        f"{TABLE}.state = 'AWAITING_ACK'",
    )

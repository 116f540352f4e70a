"""The reference MDM, master-data side: the inbound sync of flows 1-10 and 18 as MDM runs it
(docs/flows.md §0.2-§0.5, §1-§10, §18; docs/lifecycles.md §2).

Receiving is the seeder: it records a Pending ``mdm_sync_request`` for the message, keyed by MO
and external key, and applies nothing (the payload stays in the node's inbox, where the step
reads it back by message id). The step is the pending monitor and the retry batch in one: it
claims due Pending and retryable requests in dependency order (PD-L06), validates, resolves the
foreign keys through the cross-reference, loads the full state, and acknowledges to the bridge
through the node's outbox, a request's load, its move and its acknowledgement committing together
or not at all: the claim runs under one savepoint of the step's transaction, and when a request
fails, again with each request under a savepoint of its own, so the others still move. The
claim's messages, applied versions and keys' production ids are read ahead, a few statements for
all.

Decisions:
- Dependency order is one ranking of all flows: bill cycle, contact, SP, US, SA relationship,
  dynamic option, option event, device, configuration, install event, scalar read; requests of
  one rank in arrival order. What is still unresolved waits in the retryable Error, recording
  the MO and key it waits for; loading an entity of that key (or a configuration's MC) makes
  the waiting requests due at once, in the same transaction, so a request that came before what
  it depends on (after a crash, say) moves on as soon as that arrives. The 15-minute retry (the
  lifecycle's deadline) remains the fallback, and the 12 h limit counts from the first error.
- Staleness is checked first: a message whose entityVersion is not above the last applied for
  its key is acknowledged positively with no effect and without validation (PD-C03), naming the
  keys MDM holds for it. A DELETE of an entity MDM never had records its version too, so an
  older message arriving later has no effect.
- MDM's admin codes are the MDM side of the code tables (the runtime's, unless given): a code
  MDM lacks is 90000/1101 [table, value] at once, the MS2 path. A business-object rule (an
  unknown IANA zone, a period ending before it starts, a wrong targetMo, a register that is not
  an MC of the configuration sent, an IMD key that is not meterReadId-registerId) is 90000/1003
  [element], since PD-C11 gives simulators no other number for it.
- An unresolved key is 90000/1102 [MO, key] once 12 h have passed since the first error; at
  that deadline the request is tried once more, so a key that arrived meanwhile still loads.
  An install event overlapping one still active at its SP is unresolved on that event's key
  (PD-L15), which makes an exchange apply removal first whatever the arrival order.
- Production ids are 12-digit numbers from one sequence (``mdm_key``) for every MO; a bill
  cycle keeps its code, which both systems share (PD-F19). MCs are keyed by register id
  (MO ``D1-MC``), IMDs of a meter read by ``meterReadId-registerId`` (MO ``D1-IMD``);
  installation and removal reads are IMDs of their install event, with no external key.
- ``externalIds`` name what a request loaded: the entity, plus every MC of a configuration
  (PD-F08) or every IMD of a meter read (PD-F30).
- DELETE inactivates from the message's sentDateTime (the change date MDM knows); a meter
  read's DELETE discards its IMDs, and a configuration's also inactivates its MCs.
- A bill cycle message replaces MDM's schedule entries from the earliest window end it carries
  onwards: CCB sends every entry not yet past, so an entry MDM holds from that date and the
  message lacks was removed in CCB (PD-F19).
- A redelivered message id is the inbox's to deduplicate; once acknowledged, the inbox row
  records the acknowledgement as its outcome, so a redelivery gets it back (PD-C06). A
  resubmission (new message id) is a new request, and its entityVersion decides (PD-C03).
- A request whose message is no longer in the inbox (kept 7 days, far beyond the 12 h of
  retries) ends in Error without an acknowledgement, which it could not address.
- Initial-load and ongoing requests run the same way; the flag is kept on the request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.lifecycles.lifecycle import MDM_INBOUND_SYNC
from ccbmdm.runtime.lifecycles.machine import Machine, Overtaken, move_claim
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messages.mapping import CodeTables
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.transport import Response
from ccbmdm.runtime.sim.mdm.answers import MdmAnswers
from ccbmdm.runtime.sim.mdm.apply import (
    FAULT_CATEGORY,
    FLOWS,
    UNRESOLVED_KEY,
    CodeMiss,
    Codes,
    ExternalId,
    Loader,
    Rejected,
    RuleBroken,
    SyncMessage,
    Unresolved,
    check_rules,
    wake_waiting,
)
from ccbmdm.runtime.sim.mdm.bill_cycle_change import acknowledged
from ccbmdm.runtime.sim.mdm.read_ahead import ReadAhead
from ccbmdm.runtime.sim.mdm.records import (
    BillCycle,
    Contact,
    Device,
    DeviceConfiguration,
    DynamicOption,
    DynamicOptionEvent,
    InstallEvent,
    MarketParticipant,
    Records,
    ScalarMeasurement,
    ServicePoint,
    UsageSubscription,
    production_id,
)
from ccbmdm.runtime.sim.mdm.schema import ENTITY_TABLES, migrate
from ccbmdm.runtime.sim.mdm.usage import MdmUsage
from ccbmdm.runtime.sim.pages import page
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row

if TYPE_CHECKING:
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.messaging.node import Node

log = logging.getLogger("ccbmdm.sim.mdm")

TABLE = "mdm_sync_request"
ACKNOWLEDGEMENT = "mdm/SyncAcknowledgement"
# The flows in dependency order (PD-L06): only their requests are recorded
_RANKED = tuple(kind.code for kind in sorted(FLOWS.values(), key=lambda kind: kind.rank))


class MdmSimulator:
    """MDM behind a hosted ``mdm`` node: its master data, and the inbound sync that keeps it."""

    def __init__(
        self,
        store: Store,
        node: Node,
        tables: CodeTables,
        *,
        partner: str = "bridge",
        batch: int | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.node = node
        self.contracts = node.contracts
        self.partner = partner
        self.batch = batch or node.settings.batch
        self.clock = clock or (lambda: datetime.now(UTC))
        migrate(store)
        self.codes = Codes(tables)
        self.loader = Loader()
        self.records = Records(store)
        self.machine = Machine(store, MDM_INBOUND_SYNC, TABLE, ("flow", "message_id"))
        self._by_contract = {kind.contract: kind for kind in FLOWS.values()}
        # the usage side: measurements, usage transactions, corrections, read-only answers
        self.usage = MdmUsage(store, node, node.contracts, partner=partner, clock=clock)
        self.answers = MdmAnswers(self.usage)

    # -- the hosted system ---------------------------------------------------------------

    def handle(self, tx: Transaction, received: Received) -> str | None:
        """The seeder: a Pending sync request for each master-data request; nothing applied.
        CCB's acknowledgement of a bill cycle change ends that notification's wait."""
        if received.flow == "BILL_CYCLE_CHANGE" and received.part == "ack":
            acknowledged(self.node.outbox, self.contracts, tx, received)
            return None
        kind = FLOWS.get(received.flow)
        if kind is None:
            return self.usage.handle(tx, received)
        if received.part != "request":
            log.info(
                "the master-data simulator does not handle %s %s",
                received.flow,
                received.part,
                extra={"message_id": received.message_id},
            )
            return None
        codec, message = self.contracts.decode(received.payload)
        if self._by_contract.get(codec.name) is not kind:
            log.warning(
                "%s request in contract %s; not seeded",
                received.flow,
                codec.name,
                extra={"message_id": received.message_id},
            )
            return None
        request = SyncMessage(kind, message)
        due, params = self.machine.due_at("PENDING")
        tx.send(
            f"""INSERT INTO {TABLE} (flow, mo, external_key, initial_load, message_id, state,
                                     due_at, created_at)
                VALUES (:flow, :mo, :key, :initial_load, :message_id, 'PENDING',
                        {due}, {tx.now})
                ON CONFLICT (message_id) DO NOTHING""",
            {
                **params,
                "flow": kind.code,
                "mo": str(request.message.target_mo),
                "key": request.canonical_key,
                "initial_load": bool(request.message.initial_load),
                "message_id": received.message_id,
            },
        )
        return None

    def answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        """The read-only flows 14, 15, 17 and 19 (``answers``), from the usage side's data."""
        return self.answers.answer(sender, flow, request)

    def page(self, path: str) -> str | None:
        """The HTML page of an entity, at the address navigation links use."""
        return page(self.store, "mdm", path, page_fields)

    def steps(self) -> Sequence[Callable[[], int]]:
        return (self.step, *self.usage.steps())

    # -- the monitor ---------------------------------------------------------------------

    def step(self, batch: int | None = None) -> int:
        """One claim of due Pending and retryable requests in dependency order, under one
        savepoint, or each under its own when one fails; one commit. Returns how many moved."""
        wanted = batch or self.batch
        with self.store.transaction() as tx:
            rows: list[Row] = []
            claim = claim_statement(self.store.dialect, tx.now)
            for flow in _RANKED:
                if len(rows) >= wanted:
                    break
                rows += tx.fetch(claim, {"flow": flow, "batch": wanted - len(rows)})
            ahead = self._read_ahead(tx, rows)

            def process(row: Row) -> int:
                self._process(tx, row, ahead)
                return 1

            return move_claim(tx, rows, process, _named, log)

    def _read_ahead(self, tx: Transaction, rows: Sequence[Row]) -> ReadAhead:
        """What each claimed request reads first, its message, the version last applied for
        its key and its key's production id, read for the whole claim in a few statements
        rather than three round trips a request. A message that cannot be decoded is left for
        its own request, whose savepoint then fails alone."""
        payloads = self.node.inbox.payloads(
            tx, self.partner, [str(row["message_id"]) for row in rows]
        )
        requests: dict[str, SyncMessage] = {}
        for row in rows:
            stored = payloads.get(str(row["message_id"]))
            if stored is None:
                continue
            try:
                _, message = self.contracts.decode(stored)
            except Exception:  # decoded again, and failing, in its own savepoint
                continue
            requests[str(row["message_id"])] = SyncMessage(FLOWS[str(row["flow"])], message)
        return ReadAhead.of(tx, payloads, requests)

    def _process(self, tx: Transaction, row: Row, ahead: ReadAhead) -> None:
        source = str(row["state"])
        retrying = source == "ERROR_RETRYABLE"
        first = "retry" if retrying else "transformed"
        decoded = self._message(row, ahead)
        if decoded is None:
            self._move(tx, row, (first, "invalid") if retrying else ("invalid",), None, None)
            return
        request, last = ahead.taken(tx, decoded)
        if last is not None and request.version <= last:
            reason = f"entityVersion {request.version} not above {last}: no effect"
            ids = self._held_ids(tx, request)
            self._move(tx, row, (first, "resolved", "applied", "acknowledge"), request, ids, reason)
            return
        try:
            self.codes.check_message(request)
        except CodeMiss as miss:
            path = (first, "invalid") if retrying else ("invalid",)
            self._move(tx, row, path, request, miss)
            return
        try:
            check_rules(request)
            # a broken rule or an unresolved key takes back what the load wrote; what it sent is
            # not waited for here (a failure of it is a defect, which the claim's savepoint takes)
            with tx.savepoint(waited=False):
                loaded = self.loader.load(tx, request)
        except RuleBroken as broken:
            self._move(tx, row, (first, "invalid"), request, broken)
            return
        except Unresolved as missing:
            exhausted = retrying and self.machine.due_event(tx, row["id"]) == "retries_exhausted"
            if exhausted:
                self._move(tx, row, ("retries_exhausted",), request, missing)
            else:
                self._move(tx, row, (first, "unresolved"), request, missing)
            return
        recorded: list[int] = []
        self._record_version(tx, request, recorded.append)
        wake_waiting(tx, request.kind.mo, request.canonical_key)
        self._move(tx, row, (first, "resolved", "applied", "acknowledge"), request, loaded)
        if recorded != [1]:  # heard with the move's round trip
            raise Overtaken(row["id"])  # a newer version was applied meanwhile

    def _move(
        self,
        tx: Transaction,
        row: Row,
        events: tuple[str, ...],
        request: SyncMessage | None,
        outcome: list[ExternalId] | Rejected | Unresolved | None,
        reason: str | None = None,
    ) -> None:
        """Move the request and run the enter action of the state it lands in."""
        source = str(row["state"])
        target = MDM_INBOUND_SYNC.walk(source, events)[-1].target
        if isinstance(outcome, Rejected):
            reason = f"{FAULT_CATEGORY}/{outcome.number} {outcome.text}"
        elif isinstance(outcome, Unresolved):
            final = MDM_INBOUND_SYNC.kind(target) == "final"
            reason = (
                f"{FAULT_CATEGORY}/{UNRESOLVED_KEY} unresolved {outcome.mo} {outcome.key}"
                if final
                else f"unresolved: {outcome.text}"
            )
        elif request is None:
            reason = "the message is no longer in the inbox"
        if not self.machine.move(tx, int(row["id"]), source, *events, reason=reason):
            raise Overtaken(row["id"])
        if isinstance(outcome, Unresolved) and target == "ERROR_RETRYABLE":
            tx.send(  # what it waits for: storing that entity wakes it (wake_waiting)
                f"UPDATE {TABLE} SET waiting_mo = :mo, waiting_key = :key WHERE id = :id",
                {"mo": outcome.mo, "key": outcome.key, "id": row["id"]},
            )
        action = MDM_INBOUND_SYNC.state(target).enter
        if request is None or action is None:
            return
        if action == "send_acknowledgement":
            ids = outcome if isinstance(outcome, list) else []
            self._acknowledge(tx, request, str(row["message_id"]), _positive(ids))
        elif action == "send_negative_acknowledgement":
            self._acknowledge(tx, request, str(row["message_id"]), _negative(outcome))
        else:
            raise ValueError(f"{TABLE}: no enter action {action!r}")

    def _message(self, row: Row, ahead: ReadAhead) -> SyncMessage | None:
        """The request's message, read back from the node's inbox."""
        message_id = str(row["message_id"])
        stored = ahead.payloads.get(message_id)
        if stored is None:
            log.error("MDM sync request %s: its message is not in the inbox", row["id"])
            return None
        request = ahead.requests.get(message_id)
        if request is None:  # it failed to decode ahead: decoding it again raises here
            _, message = self.contracts.decode(stored)
            request = SyncMessage(FLOWS[str(row["flow"])], message)
        return request

    def _record_version(
        self, tx: Transaction, request: SyncMessage, counted: Callable[[int], None]
    ) -> None:
        """Record the version applied, sent: ``counted`` hears 0 when a newer one was applied
        meanwhile by another worker (whose load then stands, and this request's is rolled
        back), 1 otherwise, with the next statement waited for."""
        tx.send(
            f"""INSERT INTO mdm_applied_version AS v
                  (external_system, mo, external_key, entity_version, applied_at)
                VALUES (:system, :mo, :key, :version, {tx.now})
                ON CONFLICT (external_system, mo, external_key) DO UPDATE SET
                  entity_version = excluded.entity_version, applied_at = excluded.applied_at
                WHERE v.entity_version < excluded.entity_version""",
            {
                "system": request.system,
                "mo": request.kind.mo,
                "key": request.canonical_key,
                "version": request.version,
            },
            counted,
        )

    def _held_ids(self, tx: Transaction, request: SyncMessage) -> list[ExternalId]:
        """The keys MDM holds for a request's entity (a stale request names them)."""
        if request.kind.entity == "scalar_reading":
            rows = tx.fetch(
                """SELECT id FROM mdm_scalar_measurement
                   WHERE meter_read_id = :read AND status = 'ACTIVE' ORDER BY id""",
                {"read": request.canonical_key},
            )
            return [(request.kind.mo, str(r["id"])) for r in rows]
        held = self.loader.held(tx, request)
        return [] if held is None else [(request.kind.mo, held)]

    def _acknowledge(
        self, tx: Transaction, request: SyncMessage, answered: str, result: dict[str, Any]
    ) -> str:
        """The acknowledgement to the bridge, recorded as the request message's outcome, so a
        redelivery of that message gets it back (PD-C06)."""
        ack = self.contracts[ACKNOWLEDGEMENT]
        message_id = new_message_id()
        header = request.message.message_header
        message = ack.model.model_validate(
            {
                "message_header": {
                    "message_id": message_id,
                    "correlation_id": answered,
                    "flow": request.kind.code,
                    "source_system": header.target_system,
                    "target_system": header.source_system,
                    "sent_date_time": self.clock().astimezone(UTC).replace(microsecond=0),
                    "schema_version": header.schema_version,
                },
                "external_reference_id": request.message.external_reference_id,
                "result": result,
            }
        )
        self.node.outbox.enqueue(
            tx, self.partner, request.kind.code, "ack", message_id, ack.encode(message)
        )
        tx.send(
            """UPDATE inbox SET outcome_message_id = :ack
               WHERE node = :node AND partner = :partner AND message_id = :answered""",
            {
                "ack": message_id,
                "node": self.node.name,
                "partner": self.partner,
                "answered": answered,
            },
        )
        return message_id

    # -- what MDM holds, by the external system's keys -------------------------------------

    def production_id(self, tx: Transaction, mo: str, *key: str, system: str = "CCB") -> str | None:
        """MDM's production id for an external key (the cross-reference), or None."""
        return production_id(tx, system, mo, key)

    def contact(self, tx: Transaction, person_id: str, system: str = "CCB") -> Contact | None:
        found = production_id(tx, system, "D1-CONTACT", (person_id,))
        return None if found is None else self.records.contact(tx, found)

    def service_point(
        self, tx: Transaction, sp_id: str, system: str = "CCB"
    ) -> ServicePoint | None:
        found = production_id(tx, system, "D1-SP", (sp_id,))
        return None if found is None else self.records.service_point(tx, found)

    def usage_subscription(
        self, tx: Transaction, sa_id: str, system: str = "CCB"
    ) -> UsageSubscription | None:
        found = production_id(tx, system, "D1-US", (sa_id,))
        return None if found is None else self.records.usage_subscription(tx, found)

    def market_participant(
        self, tx: Transaction, sa_relationship_id: str, system: str = "CCB"
    ) -> MarketParticipant | None:
        found = production_id(tx, system, "D1-USMKTPART", (sa_relationship_id,))
        return None if found is None else self.records.market_participant(tx, found)

    def dynamic_option(
        self, tx: Transaction, contract_option_id: str, system: str = "CCB"
    ) -> DynamicOption | None:
        found = production_id(tx, system, "D1-DOP", (contract_option_id,))
        return None if found is None else self.records.dynamic_option(tx, found)

    def dynamic_option_event(
        self, tx: Transaction, event_id: str, system: str = "CCB"
    ) -> DynamicOptionEvent | None:
        found = production_id(tx, system, "D1-DOPEVT", (event_id,))
        return None if found is None else self.records.dynamic_option_event(tx, found)

    def device(self, tx: Transaction, meter_id: str, system: str = "CCB") -> Device | None:
        found = production_id(tx, system, "D1-DEVICE", (meter_id,))
        return None if found is None else self.records.device(tx, found)

    def device_configuration(
        self, tx: Transaction, meter_config_id: str, system: str = "CCB"
    ) -> DeviceConfiguration | None:
        found = production_id(tx, system, "D1-DVCCFG", (meter_config_id,))
        return None if found is None else self.records.device_configuration(tx, found)

    def install_event(
        self, tx: Transaction, sp_meter_history_id: str, system: str = "CCB"
    ) -> InstallEvent | None:
        found = production_id(tx, system, "D1-INSTLEVT", (sp_meter_history_id,))
        return None if found is None else self.records.install_event(tx, found)

    def meter_read(self, tx: Transaction, meter_read_id: str) -> tuple[ScalarMeasurement, ...]:
        """The IMDs of a CCB meter read, discarded ones included (empty: none)."""
        return self.records.meter_read(tx, meter_read_id)

    def bill_cycle(self, tx: Transaction, code: str) -> BillCycle | None:
        return self.records.bill_cycle(tx, code)

    def counts(self, tx: Transaction) -> dict[str, int]:
        """Rows per table of MDM's master data, and cross-reference entries."""
        counts = {}
        for table in (*ENTITY_TABLES, "mdm_cross_reference"):
            row = tx.fetch_one(f"SELECT count(*) AS n FROM {table}")
            counts[table] = int(row["n"]) if row else 0
        return counts

    def requests(self, tx: Transaction) -> list[tuple[str, str, str, str | None]]:
        """Every inbound sync request as (flow, external key, state, reason), oldest first."""
        return [
            (str(r["flow"]), str(r["external_key"]), str(r["state"]), r["reason"])
            for r in tx.fetch(f"SELECT flow, external_key, state, reason FROM {TABLE} ORDER BY id")
        ]


def _named(row: Row) -> str:
    return f"MDM sync request {row['id']}"


def claim_statement(dialect: str, now: str) -> str:
    """The open requests of flow ``:flow`` due by ``now``, at most ``:batch``, in arrival order
    from the flow's index, so that a claim reads what it takes rather than every open request.
    SQLite is told the index; PostgreSQL is asked for the index's own order (flow, id), the
    flow given as a range it cannot take for a constant: for ``flow = :flow ORDER BY id`` it
    walked the primary key past every request of the flows before (0.1 s a claim at 100,000
    customers)."""
    if dialect == "postgres":
        index, lock = "", " FOR UPDATE SKIP LOCKED"
        flow_is, order = "flow >= :flow AND flow <= :flow", "flow, id"
    else:
        index, lock = " INDEXED BY mdm_sync_request_open_flow", ""
        flow_is, order = "flow = :flow", "id"
    return f"""SELECT id, flow, mo, external_key, message_id, state FROM {TABLE}{index}
               WHERE {flow_is} AND state IN ('PENDING','ERROR_RETRYABLE') AND due_at <= {now}
               ORDER BY {order} LIMIT :batch{lock}"""


def _positive(ids: list[ExternalId]) -> dict[str, Any]:
    return {
        "has_error": False,
        "external_ids": [{"entity": mo, "external_pk1": key} for mo, key in ids],
    }


def _negative(outcome: object) -> dict[str, Any]:
    if isinstance(outcome, Rejected):
        number, parameters, text = outcome.number, outcome.parameters, outcome.text
    elif isinstance(outcome, Unresolved):
        number, parameters = UNRESOLVED_KEY, (outcome.mo, outcome.key)
        text = f"unresolved key after 12 h of retries: {outcome.text}"
    else:
        raise TypeError(f"no negative acknowledgement for {outcome!r}")
    return {
        "has_error": True,
        "exception_info": [
            {
                "message_category": FAULT_CATEGORY,
                "message_number": number,
                "message_parameters": [p[:254] for p in parameters],
                "comments": text[:254],
            }
        ],
    }


def connect(runtime: Runtime, node: str) -> MdmSimulator:
    """The reference MDM behind a hosted ``mdm`` node
    (``system: ccbmdm.runtime.sim.mdm.simulator:connect``)."""
    return MdmSimulator(
        runtime.store, runtime.nodes[node], runtime.context.tables, clock=runtime.clock
    )


def page_fields(tx: Transaction, kind: str, entity_id: str) -> dict[str, object] | None:
    """An MDM entity's fields for its page (``sim.pages``); None when there is none."""
    tables = {
        "contact": ("mdm_contact", "id"),
        "usage-subscription": ("mdm_usage_subscription", "id"),
        "360": ("mdm_usage_subscription", "id"),
        "service-point": ("mdm_service_point", "id"),
        "device": ("mdm_device", "id"),
        "usage-transaction": ("mdm_usage_transaction", "ut_id"),
    }
    if kind not in tables:
        return None
    table, key = tables[kind]
    row = tx.fetch_one(f"SELECT * FROM {table} WHERE {key} = :id", {"id": entity_id})
    return None if row is None else {k: v for k, v in dict(row).items() if k != "determinants"}

"""A node of the integration (``ccb``, ``bridge``, ``mdm``): its outbox, inbox, endpoint and the
handler that processes what it receives; the worker moves all of them on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.lifecycles.machine import together_or_apart
from ccbmdm.runtime.lifecycles.sync import canonical_key, ordering_key
from ccbmdm.runtime.logs import mask
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import system_code
from ccbmdm.runtime.messages.mapping import Context, TransformError
from ccbmdm.runtime.messaging.authorization import partners
from ccbmdm.runtime.messaging.delivery import (
    RELAY,
    Claim,
    DeliverySettings,
    Failure,
    Inbox,
    Outbox,
    Received,
    owned_by,
)
from ccbmdm.runtime.messaging.inline import NOT_DELIVERED, mapping_failed, other_side
from ccbmdm.runtime.messaging.receiver import NOT_PROCESSED, Receiver
from ccbmdm.runtime.messaging.transport import (
    Answer,
    Posting,
    Transport,
    TransportError,
    TransportUnreachable,
)
from ccbmdm.runtime.metrics import instruments
from ccbmdm.runtime.store import Store, StoreUnavailable, Transaction
from ccbmdm.runtime.store.base import Row

log = logging.getLogger("ccbmdm.runtime")

BATCHES_PER_STEP = 4  # how many full batches one send or process step may take in a row

# A handler processes one received message in the node's transaction; returns the message id of
# the outcome it produced (a reply, a mapped message, a fault), recorded with the inbox row.
Handler = Callable[[Transaction, Received], str | None]
Outcome = tuple[Received, str | None]  # a processed message and the message id it led to


@runtime_checkable
class BatchHandler(Protocol):
    """A handler given a batch of received messages at once, in the node's transaction, so that
    what a per-message handler does once a message (a match, a move) is one statement a batch.
    Returns each message's outcome, in order. A batch that raises is rolled back and each of its
    messages handled again alone (a batch of one) under a savepoint of its own: one bad message
    fails alone, and its neighbours are processed (docs/reliability.md, E4)."""

    def handle_batch(self, tx: Transaction, messages: Sequence[Received]) -> list[str | None]: ...


@dataclass
class Node:
    name: str
    store: Store
    contracts: ContractRegistry
    flows: tuple[Flow, ...]
    transport: Transport
    settings: DeliverySettings = field(default_factory=DeliverySettings)
    handler: Handler | BatchHandler | None = None

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.store, self.name, self.settings)
        self.inbox = Inbox(self.store, self.name, self.settings)
        self.receiver = Receiver(self.name, self.inbox, self.contracts, self.flows)
        self._kebab = {flow.code: flow.kebab for flow in self.flows}

    def load_ahead(self) -> None:
        """Import the models and codecs of every contract of the node's flows, and what its
        handler uses (``load_ahead`` of its own), with the models' validators and the metrics'
        instruments, before the worker's first round: each is otherwise made when its first
        message comes, and that message waits for it (a contract's modules, a validator built
        the first time a model is made from data); loaded before, they are also frozen out of
        the collector's passes with the rest of what the process keeps (``settle_collector``)."""
        names = {
            name
            for flow in self.flows
            for part in flow.parts
            for name in (part.sender, part.receiver)
        }
        for name in sorted(names & self.contracts.by_name.keys()):
            self.contracts[name].model.model_rebuild()  # imported, its validator built
        instruments()
        ahead = getattr(self.handler, "load_ahead", None)
        if callable(ahead):
            ahead()

    def send_due(self) -> int:
        """Send claimable messages, batch after batch while batches come back full (at most
        ``BATCHES_PER_STEP``); returns how many were attempted."""
        return self._while_full(self._send_batch)

    def process_due(self) -> int:
        """Process received messages, batch after batch while batches come back full (at most
        ``BATCHES_PER_STEP``); returns how many were taken."""
        return self._while_full(self._process_batch)

    def _while_full(self, batch_step: Callable[[], int]) -> int:
        """A node that takes the messages of two others (the bridge) would fall behind them,
        and pile work up, at one batch a round: it goes on while its batches are full."""
        total = 0
        for _ in range(BATCHES_PER_STEP):
            moved = batch_step()
            total += moved
            if moved < self.settings.batch:
                break
        return total

    def _send_batch(self) -> int:
        """Send one batch of claimable messages once; returns how many were attempted.

        A batch costs a claim, one delivery per partner and one record of the outcomes: three
        commits, not three per message. Leases are renewed together before a delivery when less
        of them is left than the transport may take. When every partner of the batch receives
        in process on this node's store, the three are one commit (``_send_in_transaction``).
        """
        claimed_at = time.monotonic()
        with self.store.transaction() as tx:
            claims, lost = self._claim_and_send(tx)
        return self._sent(claims, lost, claimed_at)

    def _in_transaction(self, partners: Iterable[str]) -> bool:
        """Whether each of ``partners`` receives in process on this node's store (the
        transport's ``in_transaction``): what is sent to them is delivered in the sender's own
        transaction."""
        local = getattr(self.transport, "in_transaction", None)
        return callable(local) and all(local(partner, self.store) for partner in partners)

    def _claim_and_send(self, tx: Transaction) -> tuple[list[Claim], list[Claim] | None]:
        """Claim a batch in ``tx`` and, when each of its partners receives in process on this
        store, deliver it and record the outcomes there too: the claims, and those whose lease
        was gone (None: the batch is to be delivered once ``tx`` has committed)."""
        claims = self.outbox.claim(tx=tx)
        if claims and self._in_transaction({claim.partner for claim in claims}):
            return claims, self._send_in_transaction(tx, claims)
        return claims, None

    def _sent(self, claims: list[Claim], lost: list[Claim] | None, claimed_at: float) -> int:
        """Once the claim has committed: a batch sent in its transaction logs the leases it
        found gone; any other is delivered now (``_deliver``). Returns how many were claimed."""
        if not claims:
            return 0
        if lost is None:
            self._deliver(claims, claimed_at)
            return len(claims)
        for claim in lost:
            self._lease_lost(claim, "the message was sent after it had passed")
        instruments().sent(self.name, len(claims), time.monotonic() - claimed_at)
        return len(claims)

    def _send_in_transaction(self, tx: Transaction, claims: list[Claim]) -> list[Claim]:
        """Deliver a batch to receivers on this node's store, and record the outcomes, in the
        claim's transaction: each receiver stores what it takes in that transaction
        (``Store.sharing``), so the receipt and the record of the delivery commit together,
        or, when the transaction fails, neither, nor the claim. Returns the claims whose lease
        was gone."""
        outcomes: list[tuple[Claim, str | None, Failure | None]] = []
        with self.store.sharing(tx):
            for partner, group in _by_partner(claims):
                postings = [
                    Posting(self._kebab[claim.flow], claim.part, claim.payload) for claim in group
                ]
                answers = self._post_within(tx, partner, postings)
                outcomes += [
                    _outcome(claim, answer) for claim, answer in zip(group, answers, strict=True)
                ]
        return self.outbox.record(outcomes, tx, claimed_here=True)

    def _post_within(
        self, tx: Transaction, partner: str, postings: list[Posting]
    ) -> Sequence[Answer]:
        """Deliver to a receiver on this store under a savepoint: a receiver that fails (a
        defect) leaves nothing of its own behind and costs the messages an attempt, as a
        receiver over the network answering 500 would; the claim, the sender's other partners
        and the batch the sender processed in the same transaction are kept."""
        try:
            with tx.savepoint():
                return self.transport.post_many(self.name, partner, postings)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception(
                "the receiver failed on a batch sent in process; each message is retried",
                extra={"event": "delivery.receiver_failed", "node": self.name, "partner": partner},
            )
            failed = TransportError(f"{partner} failed receiving it: {type(exc).__name__}: {exc}")
            return [failed] * len(postings)

    def _deliver(self, claims: list[Claim], claimed_at: float) -> None:
        """Deliver claimed messages, each partner's in one call, then record the outcomes."""
        leased_at = claimed_at
        outcomes: list[tuple[Claim, str | None, Failure | None]] = []
        for partner, group in _by_partner(claims):
            if self.settings.lease_s - (time.monotonic() - leased_at) < self.transport.timeout_s:
                held = {claim.id for claim in self.outbox.renew(group)}
                leased_at = time.monotonic()
                for claim in group:
                    if claim.id not in held:
                        self._lease_lost(claim, "it passed before the message was sent; not sent")
                group = [claim for claim in group if claim.id in held]
            postings = [
                Posting(self._kebab[claim.flow], claim.part, claim.payload) for claim in group
            ]
            answers = self.transport.post_many(self.name, partner, postings)
            outcomes += [
                _outcome(claim, answer) for claim, answer in zip(group, answers, strict=True)
            ]
        for claim in self.outbox.record(outcomes):
            self._lease_lost(claim, "the message was sent after it had passed")
        instruments().sent(self.name, len(claims), time.monotonic() - claimed_at)

    def _lease_lost(self, claim: Claim, what: str) -> None:
        """The claim's lease passed (the worker was held up) and the row was rescued: what
        this worker did with it no longer counts; the rescue decides."""
        instruments().lease_lost(self.name)
        log.warning(
            f"lease lost: {what}",
            extra={
                "event": "lease.lost",
                "node": self.name,
                "partner": claim.partner,
                "flow": claim.flow,
                "part": claim.part,
                "message_id": claim.message_id,
                "attempt": claim.attempt,
                **owned_by(claim.owner_type, claim.owner_id),
            },
        )

    def rescue_due(self) -> int:
        """Messages whose lease or reply deadline passed go back to be sent or processed again
        (the same id and bytes), or to ERROR when their attempts are used up."""
        return self.outbox.rescue() + self.inbox.rescue(self._not_processed)

    def _not_processed(self, tx: Transaction, row: Row) -> str | None:
        """A received message that failed every attempt: its sender gets fault 90000/1402 on
        the flow's reply part (a message that is itself a reply is only logged, by the inbox)."""
        if row["part"] not in ("request", "notification"):
            return None
        flow = next((f for f in self.flows if f.code == row["flow"]), None)
        reply = None if flow is None else next((p for p in flow.parts if p.reply), None)
        if flow is None or reply is None or flow.mode == "sync":
            return None
        fault_id, fault = self.receiver.fault_message(
            str(row["message_id"]),
            flow.code,
            NOT_PROCESSED,
            "not processed: attempts used up",
            target=system_code(reply.received_by),
        )
        self.outbox.enqueue(tx, str(row["partner"]), flow.code, reply.name, fault_id, fault)
        return fault_id

    def _process_batch(self) -> int:
        """Claim and process one batch of received messages in one transaction, together; when
        one fails, again each under a savepoint, so that a defect in one does not stop the
        others (E4). The messages the transaction's write budget leaves are given back
        unprocessed (a ``BatchHandler`` takes the whole claim at once). When every partner of
        the node receives in process on its store, a batch of its messages due to be sent, those
        this batch led to among them, is claimed, delivered and recorded in the same transaction
        (``_claim_and_send``): one commit for the hop. Returns how many were taken."""
        handler = self.handler
        if handler is None:
            return 0
        began = time.monotonic()
        sending: tuple[list[Claim], list[Claim] | None] = ([], None)
        with self.store.transaction() as tx:
            received = self.inbox.claim(tx=tx)
            batched = _batched(handler)
            if batched is not None and received:
                outcomes, taken = self._process_together(tx, batched, received)
            else:
                single = _one_by_one(handler)
                outcomes, taken = together_or_apart(
                    tx,
                    received,
                    lambda message: (message, single(tx, message)),
                    lambda messages: self._process_apart(tx, single, messages),
                )
            self.inbox.processed(tx, outcomes)
            self.inbox.give_back(tx, received[len(taken) :])
            if taken and self._in_transaction(partners(self.name)):
                sending_at = time.monotonic()
                tx.flush_later()  # the messages the batch led to, claimed with any others due
                sending = self._claim_and_send(tx)
        if received:
            instruments().processed(self.name, len(taken), time.monotonic() - began)
        if sending[0]:
            self._sent(*sending, sending_at)
        return len(taken)

    def _process_together(
        self, tx: Transaction, handler: BatchHandler, received: list[Received]
    ) -> tuple[list[Outcome], list[Received]]:
        """The whole claim in one call under one savepoint; when it raises, each message alone
        (``_process_apart``), as many as the write budget lets the transaction take."""
        try:
            with tx.savepoint():
                outcomes = list(zip(received, handler.handle_batch(tx, received), strict=True))
            return outcomes, received
        except StoreUnavailable:
            raise
        except Exception:
            taken = list(tx.budgeted(received))
            return self._process_apart(tx, _one_by_one(handler), taken), taken

    def _process_apart(
        self, tx: Transaction, handler: Handler, received: list[Received]
    ) -> list[Outcome]:
        """Each message under a savepoint: one that fails is logged and left to be retried; a
        lost connection ends the batch at the first."""
        outcomes = []
        for message in received:
            try:
                with tx.savepoint():
                    outcomes.append((message, handler(tx, message)))
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.exception(
                    "processing failed; the message is processed again after its lease",
                    extra={
                        "event": "message.processing_failed",
                        "node": self.name,
                        "partner": message.partner,
                        "flow": message.flow,
                        "part": message.part,
                        "message_id": message.message_id,
                    },
                )
                self.inbox.failed(tx, message, mask(f"{type(exc).__name__}: {exc}"))
        return outcomes


def _batched(handler: Handler | BatchHandler) -> BatchHandler | None:
    """The handler as a ``BatchHandler``, if it is one (asked of its attributes: a protocol's
    ``isinstance`` costs some 100 µs on Python 3.11, a tenth of a message's processing)."""
    return handler if callable(getattr(handler, "handle_batch", None)) else None  # type: ignore[return-value]


def _one_by_one(handler: Handler | BatchHandler) -> Handler:
    """A handler of one message at a time: a batch handler given a batch of one."""
    batched = _batched(handler)
    if batched is not None:
        return lambda tx, message: batched.handle_batch(tx, [message])[0]
    return handler  # type: ignore[return-value]


def _by_partner(claims: list[Claim]) -> list[tuple[str, list[Claim]]]:
    """The claims grouped by partner, each group in claim order."""
    groups: dict[str, list[Claim]] = {}
    for claim in claims:
        groups.setdefault(claim.partner, []).append(claim)
    return list(groups.items())


def _outcome(claim: Claim, answer: Answer) -> tuple[Claim, str | None, Failure | None]:
    """(claim, error or None when accepted, the kind of failure)."""
    if isinstance(answer, TransportUnreachable):
        return claim, f"unreachable: {answer}", "unreachable"
    if isinstance(answer, TransportError):
        return claim, f"technical: {answer}", "transport"
    if answer.status in (200, 202):
        return claim, None, None
    detail = answer.body.decode("utf-8", "replace")[:500]
    failure: Failure = "answer" if answer.technical_failure else "business"
    return claim, f"HTTP {answer.status}: {detail}", failure


class Bridge:
    """Maps each system's message into the other's and hands it to delivery (SOA Suite's role)."""

    def __init__(
        self, node: Node, transformers: dict[tuple[str, str], Any], context: Context
    ) -> None:
        self.node = node
        self.transformers = transformers
        self.context = context
        self.flows = {flow.code: flow for flow in node.flows}
        node.outbox.on_undelivered[RELAY] = self._undelivered

    def load_ahead(self) -> None:
        """Import the mapping of every part of the node's flows (``Node.load_ahead``)."""
        for key, transformer in self.transformers.items():
            if key[0] in self.flows:
                transformer.function  # noqa: B018 -- the import is the point

    def __call__(self, tx: Transaction, received: Received) -> str | None:
        flow = self.flows[received.flow]
        part = flow.part(received.part)
        codec, source = self.node.contracts.decode(received.payload)
        target_node = other_side(received.partner)
        if codec.name == "common/Fault":  # a fault passes through unchanged
            self.node.outbox.enqueue(
                tx, target_node, flow.code, part.name, received.message_id, received.payload
            )
            return received.message_id
        transformer = self.transformers[(flow.code, part.name)]
        try:
            target = transformer.function(source, self.context)
        except TransformError as exc:
            mapping_failed(
                log,
                self.node.name,
                flow.code,
                part.name,
                received.message_id,
                exc,
                received.partner,
            )
            originator = (received.partner, flow.code, received.message_id)
            return self._fault(tx, originator, exc.code, exc.reason, exc.parameters)
        payload = self.node.contracts[transformer.target].encode(target)
        message_id = str(target.message_header.message_id)
        originating = part.name in ("request", "notification")
        self.node.outbox.enqueue(
            tx,
            target_node,
            flow.code,
            part.name,
            message_id,
            payload,
            ordering_key=_sync_key(source) if flow.ordering_key == "sync_key" else None,
            owner=(RELAY, received.id) if originating else None,
        )
        return message_id

    def _fault(
        self,
        tx: Transaction,
        originator: tuple[str, str, str],
        number: int,
        reason: str,
        parameters: tuple[str, ...] = (),
    ) -> str:
        """Answer the originator (partner, flow code, message id) of a message with a framework
        fault (PD-C11), on the flow's reply part, correlated with the message not relayed."""
        partner, code, message_id = originator
        flow = self.flows[code]
        reply = next((p for p in flow.parts if p.reply), flow.parts[0])
        fault_id, fault = self.node.receiver.fault_message(
            message_id, code, number, reason, parameters, system_code(reply.received_by)
        )
        self.node.outbox.enqueue(tx, partner, code, reply.name, fault_id, fault)
        return fault_id

    def _undelivered(self, tx: Transaction, inbox_id: int, reason: str) -> None:
        """A relayed message ended in ERROR undelivered: its originator gets 90000/1401
        (docs/reliability.md §2.4), so its own request ends in Error instead of waiting a day."""
        row = tx.fetch_one(
            "SELECT partner, flow, message_id FROM inbox WHERE id = :id", {"id": inbox_id}
        )
        if row is not None:
            originator = (str(row["partner"]), str(row["flow"]), str(row["message_id"]))
            self._fault(tx, originator, NOT_DELIVERED, f"not delivered: {reason}"[:254])


def _sync_key(source: Any) -> str | None:
    """The sync key of a CCB master-data message, from its send details (PD-L12)."""
    details = getattr(source, "send_details", None)
    if details is None:
        return None
    values = [getattr(details, f"pk_value{i}", None) or "" for i in range(1, 6)]
    target = source.message_header.target_system
    return ordering_key(details.mo, canonical_key(tuple(values)), str(target))


def run_until_quiet(steps: list[Callable[[], int]], rounds: int = 100) -> int:
    """Run the steps until a whole round does nothing; returns the rounds it took."""
    for count in range(1, rounds + 1):
        if not any([step() for step in steps]):
            return count
    raise RuntimeError(f"still busy after {rounds} rounds")

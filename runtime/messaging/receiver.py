"""A node's receiving side: validate, store in the inbox, answer with a receipt or a fault.

Nothing is processed here: the message is committed to the inbox before the 202 goes out, and
the node's worker processes it later (docs/reliability.md §2.4, "Receiving").
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Protocol

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.messages.codec import ContractViolation, build
from ccbmdm.runtime.messages.contracts import ContractRegistry, UnknownContract
from ccbmdm.runtime.messages.header import message_header, new_message_id, system_code
from ccbmdm.runtime.messages.xmlsafe import XmlRejected
from ccbmdm.runtime.messaging.authorization import BRIDGE, header_mismatch, poster
from ccbmdm.runtime.messaging.delivery import Arrival
from ccbmdm.runtime.messaging.transport import Answerer, Posting, Response
from ccbmdm.runtime.store import StoreUnavailable

log = logging.getLogger("ccbmdm.receiver")

FRAMEWORK_CATEGORY = 90000
AUTHENTICATION_FAILED = 1201  # PD-C11
# The credential, the endpoint and the message's header disagree (runtime.md, "Faults").
NOT_AUTHORIZED = 1202
NOT_PROCESSED = 1402  # PD-C11: not processed (attempts used up, or the store unavailable)
# A fault must name a flow; one about a path that names none is filed under this one.
UNKNOWN_FLOW = "UNKNOWN"
_SAMPLE_ID = "00000000-0000-7000-8000-000000000000"  # stands for a receipt's message id


class Arrivals(Protocol):
    """Where a receiver puts the messages it takes: a node's Inbox; the conformance kit, as
    the systems behind a bridge under test, keeps them for the cases that wait for them."""

    def store_messages(
        self, partner: str, arrivals: Sequence[Arrival]
    ) -> list[tuple[bool, str | None]]: ...


class Receiver:
    """The endpoint of one node (``ccb``, ``bridge`` or ``mdm``)."""

    def __init__(
        self, node: str, inbox: Arrivals, contracts: ContractRegistry, flows: tuple[Flow, ...]
    ) -> None:
        self.node = node
        self.inbox = inbox
        self.contracts = contracts
        self.flows = {flow.kebab: flow for flow in flows}
        self.parts = {(flow.kebab, part.name): part for flow in flows for part in flow.parts}
        # answers the synchronous flows at once, unstored; None: this node answers none
        self.answerer: Answerer | None = None

    def stores_in(self, store: object) -> bool:
        """Whether what this endpoint receives is stored in ``store`` (a node's inbox there; the
        conformance kit's arrivals are kept in no store)."""
        return getattr(self.inbox, "store", None) is store

    def receive(self, sender: str, flow_name: str, part: str, body: bytes) -> Response:
        return self.receive_many(sender, [Posting(flow_name, part, body)])[0]

    def receive_many(self, sender: str, postings: Sequence[Posting]) -> list[Response]:
        """Check every posting, commit the good ones to the inbox together, then answer each:
        a fault for a bad one, 202 for a new one, 200 with the recorded outcome for a repeat."""
        checked = [self._check(sender, posting) for posting in postings]
        arrivals = [item for item in checked if isinstance(item, Arrival)]
        try:
            stored = iter(self.inbox.store_messages(sender, arrivals))
        except StoreUnavailable:
            # Nothing was stored and the sender sends again; the worker polling the same store
            # reports the outage, once, rather than a traceback per posting.
            return [
                item if isinstance(item, Response) else self.unavailable(item) for item in checked
            ]
        answers = []
        for item in checked:
            if isinstance(item, Response):
                answers.append(item)
                continue
            new, outcome = next(stored)
            if not new and outcome is not None:
                answers.append(Response(200, self.receipt(item.message_id, outcome)))
            else:
                answers.append(Response(202, self.receipt(item.message_id, None)))
        return answers

    def refusal(self, partner: str, flow_name: str, part_name: str) -> Response | None:
        """Whether this node takes the part from ``partner``, known before the message is read:
        None when it does; otherwise 400 with fault 90000/1002 for an endpoint this node does
        not have, 403 with fault 90000/1202 for a partner that does not send the part here (a
        business failure: sent again, it would be refused again)."""
        flow = self.flows.get(flow_name)
        part = self.parts.get((flow_name, part_name))
        if flow is None or part is None:
            return self.fault(
                None, self._code(flow_name), 1002, f"no flow {flow_name} part {part_name}", 400
            )
        allowed = poster(self.node, part)
        answered = part.name == "request" and self.answerer is not None
        if allowed is None or (flow.mode == "sync" and not answered):
            return self.fault(
                None, flow.code, 1002, f"{self.node} does not receive {flow.code} {part.name}", 400
            )
        if partner != allowed:
            return self.fault(
                None,
                flow.code,
                NOT_AUTHORIZED,
                f"not authorized: {flow.code} {part.name} comes to {self.node} from {allowed}, "
                f"not from {partner}",
                403,
            )
        return None

    def _check(self, sender: str, posting: Posting) -> Arrival | Response:
        """Authorize, parse and validate a posting against its flow's contract: what to store,
        or the answer: a fault (nothing is stored for a refused message), or a synchronous
        flow's reply."""
        refused = self.refusal(sender, posting.flow, posting.part)
        if refused is not None:
            return refused
        flow, part = self.flows[posting.flow], self.parts[posting.flow, posting.part]
        contract = part.sender if self.node == BRIDGE else part.receiver
        if len(posting.body) > self.contracts.limits.max_bytes:
            return self.too_large(flow.kebab)
        try:
            codec, message = self.contracts.decode(posting.body)
            # A reply part may carry the common Fault instead of its contract (PD-C04).
            is_fault = codec.name == "common/Fault" and part.reply
            if codec.name != contract and not is_fault:
                return self.fault(
                    None, flow.code, 1002, f"expected {contract}, got {codec.name}", 400
                )
        except XmlRejected as exc:
            return self.fault(None, flow.code, 1001, exc.reason, 400)
        except UnknownContract as exc:
            return self.fault(None, flow.code, 1002, str(exc), 400)
        except ContractViolation as exc:
            first = exc.problems[0]
            return self.fault(
                None, flow.code, 1003, f"{first.xpath}: {first.message}", 400, (first.xpath,)
            )
        header = message.message_header  # type: ignore[attr-defined]
        mismatch = header_mismatch(header, flow, part, sender, fault=is_fault)
        if mismatch is not None:
            root = codec.name.partition("/")[2]
            return self.fault(
                header.message_id,
                flow.code,
                NOT_AUTHORIZED,
                f"not authorized: {mismatch.reason}",
                400,
                (f"/{root}/messageHeader/{mismatch.element}",),
            )
        if flow.mode == "sync" and self.answerer is not None:  # refusal() saw to it
            return self.answerer(sender, flow, message)
        return Arrival(
            flow.code, posting.part, header.message_id, header.correlation_id, posting.body
        )

    def too_large(self, flow_name: str) -> Response:
        """413 with a fault: the message is over the size cap (a business failure, not retried)."""
        cap = self.contracts.limits.max_bytes
        return self.fault(
            None, self._code(flow_name), 1001, f"message over the {cap}-byte cap", 413
        )

    def unavailable(self, arrival: Arrival) -> Response:
        """503 with fault 90000/1402: the node's store cannot be reached, so nothing was stored
        (a technical failure: the sender retries). Not logged: the worker polling the same store
        reports the outage once, rather than a line per posting."""
        _, fault = self.fault_message(
            arrival.message_id,
            arrival.flow,
            NOT_PROCESSED,
            "not processed: the node's store is unavailable; send again",
        )
        return Response(503, fault)

    def unauthenticated(self, flow_name: str) -> Response:
        """401 with fault 90000/1201: no credential, or not one of a partner (retried by the
        sender, whose credential may be about to be rotated)."""
        return self.fault(
            None,
            self._code(flow_name),
            AUTHENTICATION_FAILED,
            "authentication failed: present the credential configured for this node",
            401,
        )

    def _code(self, flow_name: str) -> str:
        flow = self.flows.get(flow_name)
        return flow.code if flow else UNKNOWN_FLOW

    def receipt(self, message_id: str, outcome: str | None) -> bytes:
        """The Receipt of a stored message; both ids were checked as UUIDs when they arrived."""
        before, after = self._receipt_around_id
        return before + (outcome or message_id).encode("ascii") + after

    @functools.cached_property
    def _receipt_around_id(self) -> tuple[bytes, bytes]:
        """The Receipt's bytes before and after its message id, as the contract's encoder
        writes them: every message gets a receipt, and only the id differs (a UUID, which
        needs no escaping)."""
        receipt = self.contracts["common/Receipt"]
        before, after = receipt.encode(build(receipt.model, {"message_id": _SAMPLE_ID})).split(
            _SAMPLE_ID.encode("ascii")
        )
        return before, after

    def fault(
        self,
        correlation: str | None,
        flow: str,
        number: int,
        text: str,
        status: int,
        parameters: tuple[str, ...] = (),
    ) -> Response:
        """A fault answered over the transport, with its HTTP status (logged: nothing was
        stored, so the log line is all that is left of it on this side)."""
        log.warning(
            "answered HTTP %d with fault %d/%d: %s",
            status,
            FRAMEWORK_CATEGORY,
            number,
            text,
            extra={
                "event": "fault.answered",
                "node": self.node,
                "flow": flow,
                "correlation_id": correlation,
                "status": status,
                "fault": f"{FRAMEWORK_CATEGORY}/{number}",
                "reason": text,
            },
        )
        return Response(status, self.fault_message(correlation, flow, number, text, parameters)[1])

    def fault_message(
        self,
        correlation: str | None,
        flow: str,
        number: int,
        text: str,
        parameters: tuple[str, ...] = (),
        target: str = "PARTNER",
    ) -> tuple[str, bytes]:
        """A framework fault (PD-C11) as a message of its own: its message id and bytes. A
        fault sent on a reply part names the system it is for (``target``, as the header
        names it), since its receivers check that; one answered in the exchange need not."""
        fault = self.contracts["common/Fault"]
        message_id = new_message_id()
        message = fault.model.model_validate(
            {
                "message_header": message_header(
                    flow,
                    system_code(self.node),
                    target,
                    message_id=message_id,
                    correlation_id=correlation,
                ),
                "result": {
                    "has_error": True,
                    "exception_info": [
                        {
                            "message_category": FRAMEWORK_CATEGORY,
                            "message_number": number,
                            "message_parameters": [p[:254] for p in parameters],
                            "comments": text[:254],
                        }
                    ],
                },
            }
        )
        return message_id, fault.encode(message)

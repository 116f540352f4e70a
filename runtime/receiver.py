"""A node's receiving side: validate, store in the inbox, answer with a receipt or a fault.

Nothing is processed here: the message is committed to the inbox before the 202 goes out, and
the node's worker processes it later (reliability.md §2.4, "Receiving").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.codec import ContractViolation, build
from ccbmdm.runtime.contracts import ContractRegistry, UnknownContract
from ccbmdm.runtime.delivery import Arrival, Inbox, new_message_id
from ccbmdm.runtime.header import message_header
from ccbmdm.runtime.inline import Answerer
from ccbmdm.runtime.store import StoreUnavailable
from ccbmdm.runtime.transport import Posting, Response
from ccbmdm.runtime.xmlsafe import XmlRejected

FRAMEWORK_CATEGORY = 90000
AUTHENTICATION_FAILED = 1201  # PD-C11
NOT_PROCESSED = 1402  # PD-C11: not processed (attempts used up, or the store unavailable)
# A fault must name a flow; one about a path that names none is filed under this one.
UNKNOWN_FLOW = "UNKNOWN"
_SAMPLE_ID = "00000000-0000-7000-8000-000000000000"  # stands for a receipt's message id


class Receiver:
    """The endpoint of one node (``ccb``, ``bridge`` or ``mdm``)."""

    def __init__(
        self, node: str, inbox: Inbox, contracts: ContractRegistry, flows: tuple[Flow, ...]
    ) -> None:
        self.node = node
        self.inbox = inbox
        self.contracts = contracts
        self.flows = {flow.kebab: flow for flow in flows}
        # answers the synchronous flows at once, unstored; None: this node answers none
        self.answerer: Answerer | None = None

    def expected_contract(self, flow: Flow, part: str) -> str | None:
        """The bridge takes each system's own messages; the systems take the mapped ones."""
        for candidate in flow.parts:
            if candidate.name == part:
                return candidate.sender if self.node == "bridge" else candidate.receiver
        return None

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

    def _check(self, sender: str, posting: Posting) -> Arrival | Response:
        """Parse and validate a posting against its flow's contract: what to store, or the
        answer: a fault (nothing is stored for a bad message), or a synchronous flow's reply."""
        flow = self.flows.get(posting.flow)
        contract = self.expected_contract(flow, posting.part) if flow else None
        if flow is None or contract is None:
            return self.fault(
                None,
                flow.code if flow else UNKNOWN_FLOW,
                1002,
                f"no flow {posting.flow} part {posting.part}",
                400,
            )
        if len(posting.body) > self.contracts.limits.max_bytes:
            return self.too_large(flow.kebab)
        try:
            codec, message = self.contracts.decode(posting.body)
            # A reply part may carry the common Fault instead of its contract (PD-C04).
            if codec.name != contract and not (
                codec.name == "common/Fault" and posting.part in ("ack", "response")
            ):
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
                None, flow.code, 1003, f"{first.xpath}: {first.message}", 400, first.xpath
            )
        header = message.message_header  # type: ignore[attr-defined]
        if flow.mode == "sync":
            if self.answerer is None or posting.part != "request":
                return self.fault(
                    header.message_id,
                    flow.code,
                    1002,
                    f"{self.node} does not answer {flow.kebab} {posting.part}",
                    400,
                )
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
        (a technical failure: the sender retries)."""
        return self.fault(
            arrival.message_id,
            arrival.flow,
            NOT_PROCESSED,
            "not processed: the node's store is unavailable; send again",
            503,
        )

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
        parameter: str | None = None,
    ) -> Response:
        """A fault answered over the transport, with its HTTP status."""
        return Response(status, self.fault_message(correlation, flow, number, text, parameter)[1])

    def fault_message(
        self,
        correlation: str | None,
        flow: str,
        number: int,
        text: str,
        parameter: str | None = None,
    ) -> tuple[str, bytes]:
        """A framework fault (PD-C11) as a message of its own: its message id and bytes."""
        fault = self.contracts["common/Fault"]
        message_id = new_message_id()
        message = fault.model.model_validate(
            {
                "message_header": message_header(
                    flow,
                    self.node.upper(),
                    "PARTNER",
                    message_id=message_id,
                    correlation_id=correlation,
                ),
                "result": {
                    "has_error": True,
                    "exception_info": [
                        {
                            "message_category": FRAMEWORK_CATEGORY,
                            "message_number": number,
                            "message_parameters": [parameter[:254]] if parameter else [],
                            "comments": text[:254],
                        }
                    ],
                },
            }
        )
        return message_id, fault.encode(message)

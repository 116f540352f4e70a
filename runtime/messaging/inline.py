"""The synchronous, read-only flows (14, 15, 17 and 19) answered inline through the bridge.

Nothing is stored (docs/flows.md PD-C07): the bridge maps the request, calls the other system, maps
its reply back and answers the caller in the same HTTP exchange, logging the call. A caller that
gets a fault may simply ask again: the flows change nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.messages.codec import ContractViolation
from ccbmdm.runtime.messages.contracts import ContractRegistry, UnknownContract
from ccbmdm.runtime.messages.mapping import Context, TransformError
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messages.xmlsafe import XmlRejected
from ccbmdm.runtime.messaging.authorization import Mismatch, header_mismatch
from ccbmdm.runtime.messaging.receiver import Receiver
from ccbmdm.runtime.messaging.transport import (
    Posting,
    Response,
    Transport,
    TransportError,
    TransportTimeout,
)

log = logging.getLogger("ccbmdm.inline")

NOT_DELIVERED = 1401  # PD-C11: the other system could not be reached or did not answer


def other_side(partner: str) -> str:
    """The system on the far side of the bridge from ``partner``."""
    return "mdm" if partner == "ccb" else "ccb"


class BridgeNode(Protocol):
    """What the inline bridge uses of the bridge's node (``node.Node``)."""

    @property
    def name(self) -> str: ...
    @property
    def contracts(self) -> ContractRegistry: ...
    @property
    def transport(self) -> Transport: ...
    @property
    def receiver(self) -> Receiver: ...


class InlineBridge:
    """The bridge's answerer: request mapping, a synchronous call, reply mapping."""

    def __init__(
        self, node: BridgeNode, transformers: dict[tuple[str, str], Any], context: Context
    ):
        self.node = node
        self.transformers = transformers
        self.context = context

    def __call__(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        started = time.monotonic()
        request_id = str(request.message_header.message_id)  # type: ignore[attr-defined]
        response = self._answer(sender, flow, request, request_id)
        log.info(
            "answered %s inline with HTTP %s in %.0f ms",
            flow.code,
            response.status,
            (time.monotonic() - started) * 1000,
            extra={
                "event": "inline.answered",
                "node": self.node.name,
                "partner": sender,
                "flow": flow.code,
                "part": "request",
                "message_id": request_id,
                "status": response.status,
            },
        )
        return response

    def _answer(self, sender: str, flow: Flow, request: ContractModel, request_id: str) -> Response:
        fault = self.node.receiver.fault
        outbound = self.transformers[(flow.code, "request")]
        try:
            mapped = outbound.function(request, self.context)
        except TransformError as exc:
            mapping_failed(log, self.node.name, flow.code, "request", request_id, exc)
            return fault(request_id, flow.code, exc.code, exc.reason, 400, exc.parameters)
        payload = self.node.contracts[outbound.target].encode(mapped)
        partner = other_side(sender)
        (answer,) = self.node.transport.post_many(
            self.node.name, partner, [Posting(flow.kebab, "request", payload)]
        )
        if isinstance(answer, TransportError):
            status = 504 if isinstance(answer, TransportTimeout) else 502
            return fault(request_id, flow.code, NOT_DELIVERED, str(answer), status)
        inbound = self.transformers[(flow.code, "response")]
        try:
            codec, reply = self.node.contracts.decode(answer.body)
        except (XmlRejected, UnknownContract, ContractViolation) as exc:
            text = f"{partner} answered HTTP {answer.status} with an unreadable reply: {exc}"
            return fault(request_id, flow.code, NOT_DELIVERED, text, 502)
        if codec.name == "common/Fault":  # the other system's own fault goes back unchanged
            return Response(answer.status if answer.status >= 400 else 200, answer.body)
        if codec.name != inbound.source or answer.status != 200:
            text = (
                f"{partner} answered HTTP {answer.status} with {codec.name}, not {inbound.source}"
            )
            return fault(request_id, flow.code, NOT_DELIVERED, text, 502)
        # The reply must answer this request, as a posted reply must match its endpoint.
        header = reply.message_header  # type: ignore[attr-defined]
        asked = str(mapped.message_header.message_id)
        mismatch = header_mismatch(header, flow, flow.part("response"), partner)
        if mismatch is None and header.correlation_id != asked:
            mismatch = Mismatch("correlationId", f"its correlationId is not {asked}")
        if mismatch is not None:
            text = f"{partner} answered with a reply to another message: {mismatch.reason}"
            return fault(request_id, flow.code, NOT_DELIVERED, text, 502)
        try:
            result = inbound.function(reply, self.context)
        except TransformError as exc:
            mapping_failed(log, self.node.name, flow.code, "response", request_id, exc)
            return fault(request_id, flow.code, exc.code, exc.reason, 502, exc.parameters)
        return Response(200, self.node.contracts[inbound.target].encode(result))


def mapping_failed(
    logger: logging.Logger,
    node: str,
    flow: str,
    part: str,
    message_id: str,
    exc: TransformError,
    partner: str | None = None,
) -> None:
    """The line of a message its mapping refused, on the bridge's asynchronous path and inline:
    the reason says which rule and value (personal values already ``***``)."""
    fields = {"event": "mapping.failed", "node": node, "flow": flow, "part": part}
    fields |= {"message_id": message_id, "reason": str(exc)}
    if partner is not None:  # the bridge knows who sent it; inline, the answerer's caller
        fields["partner"] = partner
    logger.warning("mapping failed: %s", exc, extra=fields)

"""Transports carry stored messages to another node and bring back their receipts.

The binding is the HTTP one of docs/flows.md PD-C12 (``POST /ccbmdm/v1/{flow}/{part}``, 202 with a
Receipt, 200 with the recorded outcome for a duplicate, 400/403/413 with a Fault); the in-process
transport keeps those semantics without sockets, for tests and the demo. A sender hands a
transport a batch of postings for one partner; each gets its own answer, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.messages.model import ContractModel

if TYPE_CHECKING:
    from ccbmdm.runtime.store import Store


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""

    @property
    def technical_failure(self) -> bool:
        """401, 429 and 5xx are retried; 400, 403 and 413 are business failures (PD-L01)."""
        return self.status in (401, 429) or self.status >= 500


# Answers a synchronous request at once: (sender, flow, the decoded request) -> the reply.
Answerer = Callable[[str, Flow, ContractModel], Response]


class TransportError(Exception):
    """The message did not reach the receiver (refused, reset, timed out): retried."""


class TransportTimeout(TransportError):
    """No answer within the transport's timeout (the message may have arrived)."""


class TransportUnreachable(TransportError):
    """The receiver could not be reached at all (connection refused, no route, no connection
    within the timeout): nothing was sent, so the attempt is not counted against the
    message (a partner that is down is not a fault of the message)."""


@dataclass(frozen=True)
class Posting:
    """One message to deliver: the flow's path name, the part and the stored bytes."""

    flow: str
    part: str
    body: bytes


# What became of one posting: the receiver's answer, or why it never got one.
Answer = Response | TransportError


class Endpoint(Protocol):
    """What a transport delivers to: a node's receiving side."""

    def receive(self, sender: str, flow: str, part: str, body: bytes) -> Response: ...

    def receive_many(self, sender: str, postings: Sequence[Posting]) -> list[Response]:
        """Receive several messages at once: each is stored before its receipt, all of them
        in one commit."""
        ...


class Transport(Protocol):
    #: how long one posting may take; a sender renews its lease when less than this is left
    timeout_s: float

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        """Deliver the postings to one partner, in order; an answer per posting."""
        ...


class InProcessTransport:
    """Calls the partner's endpoint directly, with the semantics of the HTTP binding; a batch
    reaches the receiver as one call, so its messages are committed to the inbox together."""

    timeout_s = 1.0  # a call cannot time out; this is what a receiver's commit may take
    #: whether a sender may deliver to a receiver on its own store in its own transaction
    #: (``in_transaction``): no for a transport standing for a network that holds a batch up
    delivers_in_transaction = True

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    def register(self, node: str, endpoint: Endpoint) -> None:
        self.endpoints[node] = endpoint

    def in_transaction(self, partner: str, store: Store) -> bool:
        """Whether the partner's endpoint stores what it receives into ``store``, the
        sender's: the sender may then claim, deliver and record a batch in one transaction
        (``Node``), the receipt committed with the record of the delivery or not at all."""
        stores_in = getattr(self.endpoints.get(partner), "stores_in", None)
        return self.delivers_in_transaction and callable(stores_in) and bool(stores_in(store))

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        endpoint = self.endpoints.get(partner)
        if endpoint is None:
            refused = TransportUnreachable(f"no endpoint for {partner}: connection refused")
            return [refused for _ in postings]
        return list(endpoint.receive_many(sender, postings))

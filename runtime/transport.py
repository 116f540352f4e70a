"""Transports carry a stored message to another node and bring back its receipt.

The binding is the HTTP one of flows.md PD-C12 (``POST /ccbmdm/v1/{flow}/{part}``, 202 with a
Receipt, 200 with the recorded outcome for a duplicate, 400/413 with a Fault); the in-process
transport keeps those semantics without sockets, for tests and the demo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""

    @property
    def technical_failure(self) -> bool:
        """401, 429 and 5xx are retried; 400 and 413 are business failures (PD-L01)."""
        return self.status in (401, 429) or self.status >= 500


class TransportError(Exception):
    """The message did not reach the receiver (refused, reset, timed out): retried."""


class Endpoint(Protocol):
    """What a transport delivers to: a node's receiving side."""

    def receive(self, sender: str, flow: str, part: str, body: bytes) -> Response: ...


class Transport(Protocol):
    def post(self, sender: str, partner: str, flow: str, part: str, body: bytes) -> Response: ...


class InProcessTransport:
    """Calls the partner's endpoint directly, with the semantics of the HTTP binding."""

    def __init__(self) -> None:
        self.endpoints: dict[str, Endpoint] = {}

    def register(self, node: str, endpoint: Endpoint) -> None:
        self.endpoints[node] = endpoint

    def post(self, sender: str, partner: str, flow: str, part: str, body: bytes) -> Response:
        endpoint = self.endpoints.get(partner)
        if endpoint is None:
            raise TransportError(f"no endpoint for {partner}: connection refused")
        return endpoint.receive(sender, flow, part, body)

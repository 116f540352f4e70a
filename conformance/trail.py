"""The message trail of a flow case: every message the nodes exchange, in order, hop by hop.

A trail is recorded where messages change hands, at the in-process transport: each posting a
node sends (a request, an acknowledgement, a notification) and each business answer it gets
back at once (the reply of a synchronous flow, a fault). Transport receipts are not part of a
trail: they say a message was stored, not what the flow did.

Golden trails are files in the case's ``trail/`` folder, one message per file, named so that
their order and hop read from the name: ``03-bridge-to-mdm-person-sync-request.xml``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from ccbmdm.runtime.messaging.transport import Endpoint, InProcessTransport, Posting, Response

TRAIL_FOLDER = "trail"
_NAME = re.compile(r"^(?P<n>\d{2,})-(?P<sender>[a-z]+)-to-(?P<receiver>[a-z]+)-(?P<rest>.+)\.xml$")
_PARTS = ("request", "response", "ack", "notification", "fault")
# Roots of answers that carry no business content of their own.
_RECEIPT_ROOTS = {"Receipt"}


@dataclass(frozen=True)
class Hop:
    """One message from one node to another: the flow's path name, the part, the bytes."""

    sender: str
    receiver: str
    flow: str  # kebab case, as in the binding's path
    part: str
    body: bytes = b""

    @property
    def label(self) -> str:
        return f"{self.sender} -> {self.receiver} {self.flow} {self.part}"

    def file_name(self, number: int) -> str:
        return f"{number:02d}-{self.sender}-to-{self.receiver}-{self.flow}-{self.part}.xml"


def read_hop(path: Path) -> Hop | None:
    """The hop a golden's file name describes (None: not a trail file name)."""
    found = _NAME.match(path.name)
    if found is None:
        return None
    flow, _, part = found["rest"].rpartition("-")
    if not flow or part not in _PARTS:
        return None
    return Hop(found["sender"], found["receiver"], flow, part)


def golden_files(folder: Path) -> list[Path]:
    """The case's golden trail, in order (its files sorted by name)."""
    trail = folder / TRAIL_FOLDER
    return sorted(trail.glob("*.xml")) if trail.is_dir() else []


class Recorder:
    """Wraps every endpoint of an in-process transport and keeps what passes, in order."""

    def __init__(self, transport: InProcessTransport) -> None:
        self.hops: list[Hop] = []
        self.recording = False
        for name, endpoint in list(transport.endpoints.items()):
            transport.endpoints[name] = _Tapped(self, name, endpoint)

    def keep(self, hop: Hop) -> None:
        if self.recording:
            self.hops.append(hop)


class _Tapped:
    """An endpoint whose traffic the recorder sees."""

    def __init__(self, recorder: Recorder, name: str, inner: Endpoint) -> None:
        self.recorder, self.name, self.inner = recorder, name, inner

    def receive(self, sender: str, flow: str, part: str, body: bytes) -> Response:
        (response,) = self.receive_many(sender, [Posting(flow, part, body)])
        return response

    def receive_many(self, sender: str, postings: Sequence[Posting]) -> list[Response]:
        for posting in postings:
            self.recorder.keep(Hop(sender, self.name, posting.flow, posting.part, posting.body))
        responses = list(self.inner.receive_many(sender, postings))
        for posting, response in zip(postings, responses, strict=True):
            answer = _answer_part(posting.part, response)
            if answer is not None:
                self.recorder.keep(Hop(self.name, sender, posting.flow, answer, response.body))
        return responses


def _answer_part(asked: str, response: Response) -> str | None:
    """The part an answer stands for in a trail: a synchronous reply, a fault, or nothing."""
    if not response.body:
        return None
    try:
        root = etree.QName(etree.fromstring(response.body)).localname
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root in _RECEIPT_ROOTS:
        return None
    if root == "Fault":
        return "fault"
    return "response" if asked == "request" else None

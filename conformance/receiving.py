"""The kit as the systems behind a bridge under test (``ccbmdm conformance --against``).

A deployment whose ``nodes.ccb.url`` and ``nodes.mdm.url`` point at the kit delivers the
messages it maps to the kit, which takes them as the real systems would: each system's endpoint
is the runtime's own Receiver (binding, authorization, contract and header checks, 202 with a
Receipt), whose arrivals are kept for the case that waits for them instead of being stored. The
kit listens at one address and tells the systems apart by the first step of the path: CCB at
``<address>/ccb``, MDM at ``<address>/mdm``.

A synchronous (inline) request is answered at once, with what the case being run says: the
input of the flow's response case, its header made the answer to this request, or a fault.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from pydantic import BaseModel

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.codec import ContractViolation
from ccbmdm.runtime.contracts import ContractRegistry, UnknownContract
from ccbmdm.runtime.delivery import Arrival, new_message_id
from ccbmdm.runtime.http import Credential, Receive, ReceiverApp, Scope, Send, Server
from ccbmdm.runtime.model import ContractModel
from ccbmdm.runtime.receiver import NOT_PROCESSED, Receiver
from ccbmdm.runtime.transport import Posting, Response
from ccbmdm.runtime.xmlsafe import XmlRejected

SYSTEMS = ("ccb", "mdm")
FAULT = "common/Fault"


@dataclass(frozen=True)
class Delivery:
    """A message the bridge delivered to one of the kit's systems."""

    system: str  # ccb or mdm: the endpoint it came to
    flow: str  # the flow code
    part: str
    message_id: str
    correlation_id: str | None
    payload: bytes


@dataclass
class Deliveries:
    """What the bridge delivered, in arrival order, and what the kit refused; a case takes its
    own delivery from here, waiting for it until its deadline."""

    items: list[Delivery] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, delivery: Delivery) -> None:
        with self.changed:
            self.items.append(delivery)
            self.changed.notify_all()

    def refuse(self, text: str) -> None:
        with self.changed:
            self.refusals.append(text)

    def take(self, wanted: Callable[[Delivery], bool], deadline: float) -> Delivery | None:
        """The first delivery ``wanted`` accepts, removed; None when none came by ``deadline``
        (a ``time.monotonic()`` instant)."""
        with self.changed:
            while True:
                for index, delivery in enumerate(self.items):
                    if wanted(delivery):
                        return self.items.pop(index)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.changed.wait(left)


class _Kept:
    """A receiver's arrivals, kept for the cases (the Arrivals a node's Inbox would store)."""

    def __init__(self, system: str, deliveries: Deliveries) -> None:
        self.system = system
        self.deliveries = deliveries

    def store_messages(
        self, partner: str, arrivals: Sequence[Arrival]
    ) -> list[tuple[bool, str | None]]:
        for arrival in arrivals:
            self.deliveries.add(
                Delivery(
                    self.system,
                    arrival.flow,
                    arrival.part,
                    arrival.message_id,
                    arrival.correlation_id,
                    arrival.payload,
                )
            )
        return [(True, None) for _ in arrivals]


class _SystemReceiver(Receiver):
    """One system's endpoint: the runtime's receiver, noting what it refuses. A framework
    fault the bridge sends on a part this system does not take is refused as the binding
    says, and still kept: it is the bridge's answer to a case."""

    def __init__(
        self,
        system: str,
        contracts: ContractRegistry,
        flows: tuple[Flow, ...],
        deliveries: Deliveries,
    ) -> None:
        super().__init__(system, _Kept(system, deliveries), contracts, flows)
        self.deliveries = deliveries

    def refusal(self, partner: str, flow_name: str, part_name: str) -> Response | None:
        """Nothing is refused before its body is read: a fault on a part this system does not
        take is still the bridge's answer to a case (receive_many refuses it after)."""
        return None

    def receive_many(self, sender: str, postings: Sequence[Posting]) -> list[Response]:
        answers = []
        for posting in postings:  # the HTTP binding delivers one at a time
            refused = super().refusal(sender, posting.flow, posting.part)
            answer = refused or super().receive_many(sender, [posting])[0]
            answers.append(answer)
            flow = self.flows.get(posting.flow)
            inline = flow is not None and flow.mode == "sync" and refused is None
            if answer.status < 400 or inline:  # an inline reply is an answer, not a refusal
                continue
            fault = self._fault(posting)
            if fault is not None:
                self.deliveries.add(fault)
            text = answer.body.decode("utf-8", "replace")
            self.deliveries.refuse(
                f"the kit's {self.node.upper()} refused {posting.flow} {posting.part}: HTTP "
                f"{answer.status}: {_fault_text(self.contracts, answer.body) or text[:200]}"
            )
        return answers

    def unauthenticated(self, flow_name: str) -> Response:
        self.deliveries.refuse(
            f"the kit's {self.node.upper()} refused a delivery of {flow_name}: the bridge did "
            f"not present the credential given with --bridge-to-{self.node}"
        )
        return super().unauthenticated(flow_name)

    def _fault(self, posting: Posting) -> Delivery | None:
        try:
            codec, message = self.contracts.decode(posting.body)
        except (XmlRejected, UnknownContract, ContractViolation):
            return None
        if codec.name != FAULT:
            return None
        header = message.message_header  # type: ignore[attr-defined]
        flow = self.flows.get(posting.flow)
        return Delivery(
            self.node,
            flow.code if flow else posting.flow,
            posting.part,
            str(header.message_id),
            header.correlation_id,
            posting.body,
        )


def _fault_text(contracts: ContractRegistry, body: bytes) -> str | None:
    """``fault 90000/1101: <comments>`` of a framework fault's bytes; None for anything else."""
    fault = read_fault(contracts, body)
    return None if fault is None else f"fault {fault[0]}/{fault[1]}: {fault[2]}"


def read_fault(contracts: ContractRegistry, body: bytes) -> tuple[int, int, str] | None:
    """The category, number and comments of the first exception of a Fault message; None
    when ``body`` is not one."""
    try:
        codec, message = contracts.decode(body)
    except (XmlRejected, UnknownContract, ContractViolation):
        return None
    if codec.name != FAULT:
        return None
    info = message.result.exception_info[0]  # type: ignore[attr-defined]
    return int(info.message_category), int(info.message_number), str(info.comments or "")


class _AnyCredential(ReceiverApp):
    """An endpoint told no credential to expect: it takes any caller as the bridge."""

    def partner_of(self, authorization: str | None) -> str | None:
        return "bridge"


class _BySystem:
    """One address for both systems: ``/ccb/...`` to CCB's endpoint, ``/mdm/...`` to MDM's."""

    def __init__(self, apps: dict[str, ReceiverApp]) -> None:
        self.apps = apps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        system, _, rest = path.lstrip("/").partition("/")
        app = self.apps.get(system)
        if app is None:  # answered as an endpoint answers a path it does not have (404)
            await self.apps[SYSTEMS[0]]({**scope, "path": "/"}, receive, send)
            return
        await app({**scope, "path": f"/{rest}"}, receive, send)


Answer = Callable[[Flow, ContractModel], Response]


class KitSystems:
    """The kit's CCB and MDM endpoints at one address, and what they received."""

    def __init__(
        self,
        contracts: ContractRegistry,
        flows: tuple[Flow, ...],
        bridge_credentials: dict[str, Credential],
    ) -> None:
        self.contracts = contracts
        self.deliveries = Deliveries()
        self.receivers = {
            system: _SystemReceiver(system, contracts, flows, self.deliveries) for system in SYSTEMS
        }
        for receiver in self.receivers.values():
            receiver.answerer = self._answer
        self.apps: dict[str, ReceiverApp] = {
            system: (
                ReceiverApp(receiver, {"bridge": bridge_credentials[system]})
                if system in bridge_credentials
                else _AnyCredential(receiver, {})
            )
            for system, receiver in self.receivers.items()
        }
        self.checked = {system: system in bridge_credentials for system in SYSTEMS}
        self._reply: BaseModel | None = None
        self._lock = threading.Lock()
        self.url = ""

    def serve(self, stack: ExitStack, host: str, port: int) -> str:
        """Listen at ``host:port`` (port 0: any free port) until ``stack`` closes; the base
        URL, to which ``/ccb`` and ``/mdm`` are added."""
        server = stack.enter_context(Server(_BySystem(self.apps), host, port))
        self.url = server.url
        return self.url

    def replying_with(self, reply: BaseModel | None) -> None:
        """What a synchronous request is answered with until this is called again: a reply
        message (its header is made the answer to the request), or None for a fault."""
        with self._lock:
            self._reply = reply

    def _answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        """A synchronous request: kept as a delivery, answered at once."""
        part = flow.part("request")
        header = request.message_header  # type: ignore[attr-defined]
        system = part.received_by
        payload = self.contracts[part.receiver].encode(request)
        self.deliveries.add(
            Delivery(system, flow.code, part.name, str(header.message_id), None, payload)
        )
        with self._lock:
            reply = self._reply
        if reply is None:
            return self.receivers[system].fault(
                str(header.message_id),
                flow.code,
                NOT_PROCESSED,
                f"the conformance kit has no response case of {flow.code} to answer with",
                503,
            )
        answer = rewritten(reply, message_id=new_message_id(), correlation_id=header.message_id)
        return Response(200, self.contracts[flow.part("response").sender].encode(answer))


def rewritten(message: BaseModel, **elements: str | None) -> BaseModel:
    """A message with elements of its header replaced (``message_id``, ``correlation_id``)."""
    header = message.message_header  # type: ignore[attr-defined]
    return message.model_copy(update={"message_header": header.model_copy(update=elements)})

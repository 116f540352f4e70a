"""Who may post what to which node: authorization, on top of the credential that says who posts.

The flow catalogue says, per flow and part, which system sends it and which receives it, and the
bridge stands between the two systems. So each part has one poster at each node that receives
it: the bridge takes a part from the system that sends it, a system takes it from the bridge,
and a node that does not receive a part takes it from no one. A message's header must then say
what its endpoint and poster say: its flow, its part (a reply carries the id of the message it
answers as correlationId, an originating message none), the system that sends the part and the
one that receives it. The bridge keeps the header of what it maps, so a message from the bridge
names the system behind it; a framework fault names the node that raised it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ccbmdm.codegen.catalogue import Flow, Part
from ccbmdm.runtime.messages.header import Header, system_code

BRIDGE = "bridge"


def partners(node: str) -> tuple[str, ...]:
    """The partners that post anything to ``node``: both systems to the bridge, the bridge to
    each system."""
    return ("ccb", "mdm") if node == BRIDGE else (BRIDGE,)


def poster(node: str, part: Part) -> str | None:
    """The partner that may post ``part`` to ``node``; None when the node does not receive it."""
    if node == BRIDGE:
        return part.sent_by
    return BRIDGE if node == part.received_by else None


@dataclass(frozen=True)
class Mismatch:
    """A header element that disagrees with the message's endpoint or poster."""

    element: str  # under messageHeader: flow, correlationId, sourceSystem or targetSystem
    reason: str


def header_mismatch(
    header: Header, flow: Flow, part: Part, partner: str, *, fault: bool = False
) -> Mismatch | None:
    """The first element of ``header`` that disagrees with the endpoint (``flow``, ``part``)
    and the ``partner`` that posted it, or None. A framework ``fault`` may also name its poster
    as its source (the bridge answering for the system behind it)."""
    sources = (
        (system_code(part.sent_by), system_code(partner)) if fault else (system_code(part.sent_by),)
    )
    target = system_code(part.received_by)
    if (
        header.flow == flow.code
        and (header.correlation_id is not None) == part.reply
        and header.source_system in sources
        and header.target_system == target
    ):
        return None  # every message that is taken passes here: one test, nothing built
    where = f"{flow.code} {part.name}"
    if header.flow != flow.code:
        return Mismatch("flow", f"the header's flow is {header.flow}, posted as {where}")
    if part.reply and header.correlation_id is None:
        return Mismatch("correlationId", f"{where} answers a message, yet has no correlationId")
    if not part.reply and header.correlation_id is not None:
        return Mismatch("correlationId", f"{where} answers no message, yet has a correlationId")
    if header.source_system not in sources:
        return Mismatch(
            "sourceSystem",
            f"the header's sourceSystem is {header.source_system}; "
            f"{where} is sent by {' or '.join(sources)}",
        )
    return Mismatch(
        "targetSystem",
        f"the header's targetSystem is {header.target_system}; {where} is for {target}",
    )

"""Authorization, not only authentication: a node takes each part of a flow only from the partner
that posts it there (the sending system to the bridge, the bridge to the receiving system), and
only with a header that says what its endpoint says. Anything else gets a fault and leaves no
row in any inbox or outbox. Over HTTP (real servers on loopback) and in process, on both stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from types import ModuleType

import httpx
import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.http import Credential, HttpTransport, ReceiverApp, Server
from ccbmdm.runtime.messaging.transport import InProcessTransport, Posting, Response
from ccbmdm.runtime.store import Store
from runtime_world import Integration
from support import sample, with_header

CREDENTIALS = {
    "ccb": Credential(user="ccb", password="ccb-secret"),
    "bridge": Credential(token="bridge-token"),
    "mdm": Credential(token="mdm-token"),
}
NODES = ("ccb", "bridge", "mdm")
NOT_AUTHORIZED = (90000, 1202)

# (partner posting, node, flow path, part, message) -> the node's answer
Post = Callable[[str, str, str, str, bytes], Response]


@dataclass
class World:
    integration: Integration
    post: Post  # as a partner: with its credential over HTTP, under its name in process

    def stored(self) -> dict[str, int]:
        """How many rows every inbox and outbox holds, with their bodies."""
        tables = ("inbox", "inbox_body", "outbox", "outbox_body")
        with self.integration.store.transaction() as tx:
            return {t: int(tx.fetch(f"SELECT count(*) AS n FROM {t}")[0]["n"]) for t in tables}


@pytest.fixture(params=["http", "in-process"])
def world(
    request: pytest.FixtureRequest, store: Store, registry: ContractRegistry, package: ModuleType
) -> Iterator[World]:
    transport = InProcessTransport()
    integration = Integration(store, registry, package, transport)
    nodes = {"ccb": integration.ccb, "bridge": integration.bridge, "mdm": integration.mdm}
    if request.param == "in-process":

        def post_in_process(partner: str, node: str, flow: str, part: str, body: bytes) -> Response:
            (answer,) = transport.post_many(partner, node, [Posting(flow, part, body)])
            assert isinstance(answer, Response)
            return answer

        yield World(integration, post_in_process)
        return
    with ExitStack() as stack:
        # Each node accepts the credentials of both others, genuine, so that what decides is
        # whether that partner may post the part there (a runtime configuration would not even
        # accept MDM's at CCB nor CCB's at MDM; the receivers refuse them anyway).
        urls = {
            name: stack.enter_context(
                Server(ReceiverApp(node.receiver, {p: CREDENTIALS[p] for p in NODES if p != name}))
            ).url
            for name, node in nodes.items()
        }
        for name, node in nodes.items():
            node.transport = HttpTransport(urls, {p: CREDENTIALS[name] for p in urls})
        client = stack.enter_context(httpx.Client())

        def post_over_http(partner: str, node: str, flow: str, part: str, body: bytes) -> Response:
            answer = client.post(
                f"{urls[node]}/ccbmdm/v1/{flow}/{part}",
                content=body,
                headers={"authorization": CREDENTIALS[partner].header()},
            )
            return Response(answer.status_code, answer.content)

        yield World(integration, post_over_http)
        for node in nodes.values():
            node.transport.close()  # type: ignore[attr-defined]


def fault_of(registry: ContractRegistry, answer: Response) -> tuple[int, int, tuple[str, ...]]:
    codec, fault = registry.decode(answer.body)
    assert codec.name == "common/Fault", answer.body.decode()
    (info,) = fault.result.exception_info  # type: ignore[attr-defined]
    return int(info.message_category), int(info.message_number), tuple(info.message_parameters)


PERSON = sample("ccb/PersonSyncRequest")
ACK = sample("mdm/SyncAcknowledgement")  # MDM's acknowledgement of PERSON_SYNC, for the bridge
CONTACT = sample("mdm/ContactSyncRequest")  # the bridge's mapping of PERSON, for MDM
UPDATE = sample("ccb/SyncRequestUpdate")  # the bridge's mapping of ACK, for CCB
FAULT = sample("common/Fault")  # the bridge's fault on PERSON_SYNC's ack, for CCB
UUID = "0190a5c2-7b1e-7c3d-8e4f-5a6b7c8d9e0f"


@pytest.mark.parametrize(
    ("partner", "node", "part", "message"),
    [
        ("mdm", "bridge", "request", PERSON),  # MDM's credential for CCB's direction
        ("ccb", "bridge", "ack", ACK),  # CCB's credential for MDM's acknowledgement
        ("ccb", "mdm", "request", CONTACT),  # CCB around the bridge, straight to MDM
        ("mdm", "ccb", "ack", UPDATE),  # MDM around the bridge, straight to CCB
    ],
    ids=["mdm-request-to-bridge", "ccb-ack-to-bridge", "ccb-request-to-mdm", "mdm-ack-to-ccb"],
)
def test_a_partner_may_not_post_a_part_it_does_not_send_there(
    world: World, registry: ContractRegistry, partner: str, node: str, part: str, message: bytes
) -> None:
    answer = world.post(partner, node, "person-sync", part, message)
    assert answer.status == 403, answer.body.decode()
    assert fault_of(registry, answer)[:2] == NOT_AUTHORIZED
    assert not answer.technical_failure  # the sender does not retry it
    world.integration.run()
    assert set(world.stored().values()) == {0}
    assert world.integration.stub.applications == 0


@pytest.mark.parametrize(
    ("partner", "node", "part", "message", "element"),
    [
        ("ccb", "bridge", "request", with_header(PERSON, flow="SA_SYNC"), "flow"),
        ("ccb", "bridge", "request", with_header(PERSON, source_system="MDM"), "sourceSystem"),
        ("ccb", "bridge", "request", with_header(PERSON, target_system="CCB"), "targetSystem"),
        # a request answers no message; an acknowledgement answers one
        ("ccb", "bridge", "request", with_header(PERSON, correlation_id=UUID), "correlationId"),
        ("mdm", "bridge", "ack", with_header(ACK, correlation_id=None), "correlationId"),
        ("mdm", "bridge", "ack", with_header(ACK, flow="SA_SYNC"), "flow"),
        ("mdm", "bridge", "ack", with_header(ACK, source_system="CCB"), "sourceSystem"),
        # what the bridge relays keeps the header of what it maps: CCB's request, for MDM
        ("bridge", "mdm", "request", with_header(CONTACT, flow="SA_SYNC"), "flow"),
        ("bridge", "mdm", "request", with_header(CONTACT, source_system="BRIDGE"), "sourceSystem"),
        ("bridge", "ccb", "ack", with_header(UPDATE, target_system="MDM"), "targetSystem"),
        # a fault may name the node that raised it, but MDM cannot pose as the bridge
        ("mdm", "bridge", "ack", FAULT, "sourceSystem"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 16 else None,
)
def test_a_header_that_disagrees_with_its_endpoint_is_refused(
    world: World,
    registry: ContractRegistry,
    partner: str,
    node: str,
    part: str,
    message: bytes,
    element: str,
) -> None:
    answer = world.post(partner, node, "person-sync", part, message)
    assert answer.status == 400, answer.body.decode()
    root = registry.decode(message)[0].name.partition("/")[2]
    assert fault_of(registry, answer) == (*NOT_AUTHORIZED, (f"/{root}/messageHeader/{element}",))
    world.integration.run()
    assert set(world.stored().values()) == {0}
    assert world.integration.stub.applications == 0


def test_the_right_partner_with_a_matching_header_is_taken_and_flows_end_to_end(
    world: World, registry: ContractRegistry
) -> None:
    answer = world.post("ccb", "bridge", "person-sync", "request", PERSON)
    assert answer.status == 202, answer.body.decode()
    assert registry.decode(answer.body)[0].name == "common/Receipt"
    world.integration.people.change("0007654321", "Mensah,Kwame")
    world.integration.run()
    # the posted sample's person and the captured one both reached MDM, applied once each, and
    # the captured one's acknowledgement came back to CCB
    assert world.integration.stub.applied == {
        "0001234567": (4, "Okafor,Adaeze"),
        "0007654321": (1, "Mensah,Kwame"),
    }
    assert world.integration.stub.applications == 2
    assert world.integration.requests() == [("SYNCHRONIZED", None)]


def test_a_fault_from_the_bridge_names_the_bridge_and_is_taken(
    world: World, registry: ContractRegistry
) -> None:
    """The bridge answers for MDM with faults of its own (a mapping failure, a message it could
    not deliver): CCB takes one on the reply part, from the bridge, naming the bridge."""
    assert registry.decode(FAULT)[1].message_header.source_system == "BRIDGE"  # type: ignore[attr-defined]
    answer = world.post("bridge", "ccb", "person-sync", "ack", FAULT)
    assert answer.status == 202, answer.body.decode()
    assert world.stored()["inbox"] == 1


def test_a_partner_that_may_not_post_a_part_is_refused_before_its_message_is_read(
    world: World, registry: ContractRegistry
) -> None:
    """Neither its size nor its bytes matter: the answer is 403, not 413 or 400."""
    huge = b" " * (registry.limits.max_bytes + 1)
    for body in (huge, b"<Unclosed"):
        answer = world.post("mdm", "bridge", "person-sync", "request", body)
        assert answer.status == 403, answer.body.decode()[:300]
        assert fault_of(registry, answer)[:2] == NOT_AUTHORIZED
    assert set(world.stored().values()) == {0}

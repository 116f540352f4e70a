"""The synchronous, read-only flows (14, 15, 17, 19) are answered inline through the bridge:
mapped both ways, logged, never stored (docs/flows.md PD-C07), in process and over HTTP."""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.mapping import CodeTables, Context
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.http import Credential, HttpTransport, ReceiverApp, Server
from ccbmdm.runtime.messaging.inline import InlineBridge
from ccbmdm.runtime.messaging.node import Node
from ccbmdm.runtime.messaging.transport import InProcessTransport, Posting, Response
from ccbmdm.runtime.store import Store
from runtime_world import FAST, FLOWS
from support import REPO, with_header

SAMPLES = REPO / "contracts" / "samples"
SYNCHRONOUS = [flow for flow in FLOWS if flow.mode == "sync"]


def sample(contract: str) -> bytes:
    system, root = contract.split("/")
    return (SAMPLES / system / f"{root}.xml").read_bytes()


class SampleMdm:
    """MDM's stand-in for read-only calls: checks it got the expected request, answers with the
    sample reply of the flow (or with what a test scripts)."""

    def __init__(self, registry: ContractRegistry) -> None:
        self.registry = registry
        self.received: list[tuple[str, ContractModel]] = []
        self.scripted: Response | None = None

    def __call__(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        self.received.append((flow.code, request))
        if self.scripted is not None:
            return self.scripted
        return Response(200, sample(flow.part("response").sender))


class World:
    def __init__(self, store: Store, registry: ContractRegistry, package: ModuleType) -> None:
        self.registry = registry
        self.transport = InProcessTransport()
        context = Context(CodeTables.load(REPO / "mappings" / "tables"))
        self.bridge = Node("bridge", store, registry, FLOWS, self.transport, FAST)
        self.mdm = Node("mdm", store, registry, FLOWS, self.transport, FAST)
        self.bridge.receiver.answerer = InlineBridge(self.bridge, package.TRANSFORMERS, context)
        self.answers = SampleMdm(registry)
        self.mdm.receiver.answerer = self.answers
        self.transport.register("bridge", self.bridge.receiver)
        self.transport.register("mdm", self.mdm.receiver)

    def ask(self, flow: Flow, body: bytes | None = None) -> Response:
        request = body if body is not None else sample(flow.part("request").sender)
        return self.bridge.receiver.receive("ccb", flow.kebab, "request", request)

    def stored(self, store: Store) -> int:
        with store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT (SELECT count(*) FROM inbox) + (SELECT count(*) FROM outbox) AS n"
            )
        return int(row["n"]) if row else -1

    def fault_of(self, response: Response) -> tuple[int, int, str | None]:
        codec, fault = self.registry.decode(response.body)
        assert codec.name == "common/Fault"
        (info,) = fault.result.exception_info  # type: ignore[attr-defined]
        correlation = fault.message_header.correlation_id  # type: ignore[attr-defined]
        return info.message_category, info.message_number, correlation


@pytest.mark.parametrize("flow", SYNCHRONOUS, ids=[flow.code for flow in SYNCHRONOUS])
def test_each_synchronous_flow_is_mapped_both_ways_and_nothing_is_stored(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    flow: Flow,
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World(store, registry, package)
    with caplog.at_level(logging.INFO, logger="ccbmdm.inline"):
        response = world.ask(flow)
    assert response.status == 200, response.body.decode()
    request, reply = flow.part("request"), flow.part("response")
    # MDM got the CCB request mapped into its own contract, exactly as the samples tell it ...
    (received,) = world.answers.received
    assert received == (flow.code, registry.decode(sample(request.receiver))[1])
    # ... and CCB got MDM's reply mapped back into CCB's contract.
    codec, answer = registry.decode(response.body)
    assert codec.name == reply.receiver
    assert answer == registry.decode(sample(reply.receiver))[1]
    assert world.stored(store) == 0  # read-only: never queued
    assert any(f"answered {flow.code} inline with HTTP 200" in r.message for r in caplog.records)


def test_an_unreachable_system_gets_the_caller_a_fault_at_once(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    del world.transport.endpoints["mdm"]
    flow = SYNCHRONOUS[0]
    response = world.ask(flow)
    request_id = registry.decode(sample(flow.part("request").sender))[1].message_header.message_id  # type: ignore[attr-defined]
    assert response.status == 502
    assert world.fault_of(response) == (90000, 1401, request_id)
    assert world.stored(store) == 0


def test_the_other_systems_fault_goes_back_unchanged(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    fault = world.mdm.receiver.fault(None, "HIGH_LOW", 1301, "insufficient data", 400)
    world.answers.scripted = fault
    response = world.ask(next(f for f in SYNCHRONOUS if f.code == "HIGH_LOW"))
    assert response == fault


def test_a_mapping_failure_is_a_fault_naming_the_value(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    flow = next(f for f in SYNCHRONOUS if f.code == "GET_USAGE")
    body = sample(flow.part("request").sender)
    with_unknown_code = body.replace(b">RATECOMP<", b">NO-SUCH-TYPE<", 1)
    assert with_unknown_code != body, "the sample has no calculation type to spoil"
    response = world.ask(flow, with_unknown_code)
    assert response.status == 400
    category, number, _ = world.fault_of(response)
    assert (category, number) == (90000, 1101)
    (info,) = world.registry.decode(response.body)[1].result.exception_info  # type: ignore[attr-defined]
    # docs/flows.md PD-C11: a code-table miss names the table and the value
    assert tuple(info.message_parameters) == ("OUCCB2_OUMDM2_UsageRequestMode", "NO-SUCH-TYPE")
    assert world.answers.received == []  # MDM was never asked


def test_an_asynchronous_node_does_not_answer_a_synchronous_flow(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    world.bridge.receiver.answerer = None
    response = world.ask(SYNCHRONOUS[0])
    assert response.status == 400
    assert world.fault_of(response)[:2] == (90000, 1002)


def test_synchronous_flow_over_http_on_loopback(
    store: Store, registry: ContractRegistry, package: ModuleType, tmp_path: Path
) -> None:
    world = World(store, registry, package)
    ccb, bridge = Credential(user="ccb", password="ccb-secret"), Credential(token="bridge-token")
    with (
        Server(ReceiverApp(world.bridge.receiver, {"ccb": ccb})) as bridge_server,
        Server(ReceiverApp(world.mdm.receiver, {"bridge": bridge})) as mdm_server,
    ):
        world.bridge.transport = HttpTransport({"mdm": mdm_server.url}, {"mdm": bridge})
        caller = HttpTransport({"bridge": bridge_server.url}, {"bridge": ccb})
        flow = next(f for f in SYNCHRONOUS if f.code == "GET_USAGE")
        (response,) = caller.post_many(
            "ccb", "bridge", [Posting(flow.kebab, "request", sample(flow.part("request").sender))]
        )
    assert isinstance(response, Response) and response.status == 200
    assert (
        registry.decode(response.body)[1]
        == registry.decode(sample(flow.part("response").receiver))[1]
    )
    assert world.stored(store) == 0


def test_a_call_from_a_partner_that_does_not_make_it_or_of_another_flow_is_refused(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    flow = next(f for f in SYNCHRONOUS if f.code == "HIGH_LOW")
    request = sample(flow.part("request").sender)
    request_id = registry.decode(request)[1].message_header.message_id  # type: ignore[attr-defined]
    # MDM's credential for CCB's call: 403, before the request is read
    refused = world.bridge.receiver.receive("mdm", flow.kebab, "request", request)
    assert refused.status == 403
    assert world.fault_of(refused) == (90000, 1202, None)
    # CCB's call whose header names another flow than its endpoint: 400
    another = world.ask(flow, with_header(request, flow="GET_USAGE"))
    assert another.status == 400
    assert world.fault_of(another) == (90000, 1202, request_id)
    assert world.answers.received == []  # MDM was never asked
    assert world.stored(store) == 0


@pytest.mark.parametrize(
    "header",
    [{"correlation_id": "0190a5c2-7b1e-7c3d-8e4f-5a6b7c8d9e0f"}, {"flow": "GET_USAGE"}],
    ids=["another-correlation", "another-flow"],
)
def test_a_reply_that_answers_another_call_gets_the_caller_a_fault(
    store: Store, registry: ContractRegistry, package: ModuleType, header: dict[str, str]
) -> None:
    world = World(store, registry, package)
    flow = next(f for f in SYNCHRONOUS if f.code == "HIGH_LOW")
    world.answers.scripted = Response(
        200, with_header(sample(flow.part("response").sender), **header)
    )
    response = world.ask(flow)
    assert response.status == 502
    assert world.fault_of(response)[:2] == (90000, 1401)


def test_a_call_over_http_is_authorized_as_in_process(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    ccb, mdm = Credential(user="ccb", password="ccb-secret"), Credential(token="mdm-token")
    flow = next(f for f in SYNCHRONOUS if f.code == "GET_USAGE")
    request = sample(flow.part("request").sender)
    with Server(ReceiverApp(world.bridge.receiver, {"ccb": ccb, "mdm": mdm})) as bridge_server:
        url = f"{bridge_server.url}/ccbmdm/v1/{flow.kebab}/request"
        as_mdm = httpx.post(url, content=request, headers={"authorization": mdm.header()})
        mismatch = httpx.post(
            url,
            content=with_header(request, source_system="MDM"),
            headers={"authorization": ccb.header()},
        )
        taken = httpx.post(url, content=request, headers={"authorization": ccb.header()})
    assert (as_mdm.status_code, mismatch.status_code, taken.status_code) == (403, 400, 200)
    assert [world.fault_of(Response(a.status_code, a.content))[1] for a in (as_mdm, mismatch)] == [
        1202,
        1202,
    ]
    assert len(world.answers.received) == 1  # only the call that was taken reached MDM
    assert world.stored(store) == 0

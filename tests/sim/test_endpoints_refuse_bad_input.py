"""Bad input at every HTTP endpoint of the three nodes (each flow and part, on the bridge and on
both simulators, served on loopback): malformed XML, a message of the wrong contract, no
credential or a wrong one, the credential of a partner who does not post there, a header of
another flow. Each gets a fault with its code, and nothing is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from ccbmdm.codegen.catalogue import Flow, Part
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import (
    REFERENCE_SYSTEMS,
    CredentialSetting,
    NodeName,
    NodeSetting,
    RuntimeConfig,
)
from ccbmdm.runtime.messages.contracts import ContractRegistry
from loopback import free_port
from support import sample, with_header

TOKENS = {
    "bridge": "bridge-endpoint-token",
    "ccb": "ccb-endpoint-token",
    "mdm": "mdm-endpoint-token",
}
# What any record of a message or of its processing would be in: all must stay empty.
RECORDS = (
    "inbox",
    "inbox_body",
    "outbox",
    "outbox_body",
    "sync_request",
    "usage_request",
    "mdm_sync_request",
    "mdm_usage_transaction",
    "ccb_ocbg",
    "ccb_bill_segment",
)


@dataclass(frozen=True)
class Served:
    runtime: Runtime
    url: dict[str, str]  # node -> base URL


@pytest.fixture(scope="module")
def served(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as env:
        for name, token in TOKENS.items():
            env.setenv(f"T_{name.upper()}", token)

        def accepting(*partners: NodeName) -> dict[NodeName, CredentialSetting]:
            return {p: CredentialSetting(token_env=f"T_{p.upper()}") for p in partners}

        ports = {name: free_port() for name in TOKENS}
        config = RuntimeConfig(
            store=str(tmp_path_factory.mktemp("endpoints") / "runtime.db"),
            nodes={
                "ccb": NodeSetting(
                    system=REFERENCE_SYSTEMS["ccb"],
                    listen=f"127.0.0.1:{ports['ccb']}",
                    accept=accepting("bridge"),
                ),
                "bridge": NodeSetting(
                    listen=f"127.0.0.1:{ports['bridge']}",
                    accept=accepting("ccb", "mdm"),
                ),
                "mdm": NodeSetting(
                    system=REFERENCE_SYSTEMS["mdm"],
                    listen=f"127.0.0.1:{ports['mdm']}",
                    accept=accepting("bridge"),
                ),
            },
        )
        runtime = Runtime(config, project)
        try:
            with ExitStack() as stack:
                runtime.serve(stack)
                yield Served(runtime, {n: f"http://127.0.0.1:{p}" for n, p in ports.items()})
        finally:
            runtime.close()


# The partners each node accepts a credential of: the bridge both systems', a system the bridge's.
ACCEPTED = {"bridge": ("ccb", "mdm"), "ccb": ("bridge",), "mdm": ("bridge",)}


def posters(flow: Flow, part: Part) -> dict[str, str]:
    """node -> the partner that posts ``part`` to it: the system that sends the part to the
    bridge, the bridge to the system that receives it; a synchronous reply is never posted (it
    is the answer to the call)."""
    if flow.mode == "sync" and part.name != "request":
        return {}
    return {"bridge": part.sent_by, part.received_by: "bridge"}


def every_part(flows: tuple[Flow, ...]) -> list[tuple[Flow, Part]]:
    return [(flow, part) for flow in flows for part in flow.parts]


def fault_of(registry: ContractRegistry, answer: httpx.Response) -> tuple[int, int]:
    _, fault = registry.decode(answer.content)
    (info,) = fault.result.exception_info  # type: ignore[attr-defined]
    return int(info.message_category), int(info.message_number)


def test_every_endpoint_refuses_bad_input_with_a_fault_and_records_nothing(
    served: Served, registry: ContractRegistry
) -> None:
    flows = served.runtime.flows
    client = httpx.Client()
    tried = 0
    for flow, part in every_part(flows):
        for node, sender in posters(flow, part).items():
            url = f"{served.url[node]}/ccbmdm/v1/{flow.kebab}/{part.name}"
            token = {"authorization": f"Bearer {TOKENS[sender]}"}
            # another partner's genuine credential: not the poster's at the bridge (403), not
            # accepted at all by a system, which takes everything from the bridge (401)
            (stranger,) = set(TOKENS) - {node, sender}
            refused = (403, 1202) if node == "bridge" else (401, 1201)
            expected = part.sender if node == "bridge" else part.receiver
            other = (
                "ccb/PersonSyncRequest"
                if expected != "ccb/PersonSyncRequest"
                else "ccb/MeterSyncRequest"
            )
            another_flow = "SA_SYNC" if flow.code != "SA_SYNC" else "PERSON_SYNC"
            cases = {
                "malformed": (client.post(url, content=b"<Unclosed><a>", headers=token), 400, 1001),
                "wrong contract": (
                    client.post(url, content=sample(other), headers=token),
                    400,
                    1002,
                ),
                "no credential": (client.post(url, content=sample(other)), 401, 1201),
                "wrong credential": (
                    client.post(
                        url, content=sample(other), headers={"authorization": "Bearer guess"}
                    ),
                    401,
                    1201,
                ),
                "another partner's credential": (
                    client.post(
                        url,
                        content=with_header(sample(expected), flow=flow.code),
                        headers={"authorization": f"Bearer {TOKENS[stranger]}"},
                    ),
                    *refused,
                ),
                "a header of another flow": (
                    client.post(
                        url, content=with_header(sample(expected), flow=another_flow), headers=token
                    ),
                    400,
                    1202,
                ),
            }
            for case, (answer, status, number) in cases.items():
                where = f"{case} at {node} {flow.kebab}/{part.name} from {sender}"
                assert answer.status_code == status, (where, answer.text)
                assert fault_of(registry, answer) == (90000, number), where
                tried += 1
            assert cases["no credential"][0].headers["www-authenticate"].startswith("Bearer")
    client.close()
    # Every part reaches the bridge and then the system that receives it; the four synchronous
    # flows' replies are never posted.
    endpoints = 2 * sum(len(f.parts) for f in flows) - 2 * 4
    assert (len(flows), tried) == (20, 6 * endpoints)
    with served.runtime.store.transaction() as tx:
        counts = {
            table: int(tx.fetch(f"SELECT count(*) AS n FROM {table}")[0]["n"]) for table in RECORDS
        }
    assert counts == dict.fromkeys(RECORDS, 0)


def test_a_node_has_no_endpoint_for_a_part_it_does_not_receive(
    served: Served, registry: ContractRegistry
) -> None:
    """CCB receives no request of its own flows, MDM no acknowledgement of them, the bridge no
    synchronous reply: whoever posts one gets 400 with fault 90000/1002, before it is read."""
    refused = []
    for flow, part in every_part(served.runtime.flows):
        for node in set(ACCEPTED) - set(posters(flow, part)):
            for partner in ACCEPTED[node]:
                answer = httpx.post(
                    f"{served.url[node]}/ccbmdm/v1/{flow.kebab}/{part.name}",
                    content=sample(part.sender),
                    headers={"authorization": f"Bearer {TOKENS[partner]}"},
                )
                where = f"{node} {flow.kebab}/{part.name} from {partner}"
                assert (answer.status_code, fault_of(registry, answer)) == (400, (90000, 1002)), (
                    where
                )
                refused.append((node, flow.code, part.name))
    assert ("ccb", "PERSON_SYNC", "request") in refused
    assert ("mdm", "PERSON_SYNC", "ack") in refused
    assert ("bridge", "HIGH_LOW", "response") in refused
    assert ("mdm", "BILL_CYCLE_CHANGE", "notification") in refused
    with served.runtime.store.transaction() as tx:
        assert all(
            int(tx.fetch(f"SELECT count(*) AS n FROM {table}")[0]["n"]) == 0 for table in RECORDS
        )


@pytest.mark.parametrize(
    ("node", "path"),
    [
        ("ccb", "/ccb/sa/0000000000"),
        ("ccb", "/ccb/sa/0000000000'%20OR%20'1'='1"),
        ("ccb", "/ccb/invoice/0000000001"),
        ("ccb", "/ccb/sa"),
        ("mdm", "/mdm/contact/%3Cscript%3E"),
        ("mdm", "/ccb/account/0000000001"),  # a CCB page asked of MDM
        ("bridge", "/ccb/sa/0000000001"),  # the bridge serves no pages
    ],
)
def test_a_page_of_no_entity_is_not_found(served: Served, node: str, path: str) -> None:
    token = {"authorization": f"Bearer {TOKENS['bridge']}"}
    answer = httpx.get(f"{served.url[node]}{path}", headers=token)
    assert answer.status_code == 404
    assert "POST /ccbmdm/v1/{flow}/{part}" in answer.text

"""Bad input at every HTTP endpoint of the three nodes (each flow and part, on the bridge and on
both simulators, served on loopback): malformed XML, a message of the wrong contract, no
credential or a wrong one. Each gets a fault with its code, and nothing is recorded."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import (
    REFERENCE_SYSTEMS,
    CredentialSetting,
    NodeName,
    NodeSetting,
    RuntimeConfig,
)
from ccbmdm.runtime.contracts import ContractRegistry
from loopback import free_port
from support import sample

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


def endpoints(flows: tuple[Flow, ...]) -> list[tuple[str, str, str, str]]:
    """(node, sender, flow path, part) for every part of every flow at every node."""
    found = []
    for node, senders in (("bridge", ("ccb", "mdm")), ("ccb", ("bridge",)), ("mdm", ("bridge",))):
        for flow in flows:
            for part in flow.parts:
                found += [(node, sender, flow.kebab, part.name) for sender in senders]
    return found


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
    for node, sender, flow, part in endpoints(flows):
        url = f"{served.url[node]}/ccbmdm/v1/{flow}/{part}"
        token = {"authorization": f"Bearer {TOKENS[sender]}"}
        expected = next(
            c
            for f in flows
            if f.kebab == flow
            for p in f.parts
            if p.name == part
            for c in [p.sender if node == "bridge" else p.receiver]
        )
        other = (
            "ccb/PersonSyncRequest"
            if expected != "ccb/PersonSyncRequest"
            else "ccb/MeterSyncRequest"
        )
        cases = {
            "malformed": (client.post(url, content=b"<Unclosed><a>", headers=token), 400, 1001),
            "wrong contract": (client.post(url, content=sample(other), headers=token), 400, 1002),
            "no credential": (client.post(url, content=sample(other)), 401, 1201),
            "wrong credential": (
                client.post(url, content=sample(other), headers={"authorization": "Bearer guess"}),
                401,
                1201,
            ),
        }
        for case, (answer, status, number) in cases.items():
            where = f"{case} at {node} {flow}/{part} from {sender}"
            assert answer.status_code == status, (where, answer.text)
            assert fault_of(registry, answer) == (90000, number), where
            tried += 1
        assert cases["no credential"][0].headers["www-authenticate"].startswith("Bearer")
    client.close()
    parts = sum(len(f.parts) for f in flows)
    assert (len(flows), tried) == (20, 4 * 4 * parts)  # four cases, four (node, sender) pairs
    with served.runtime.store.transaction() as tx:
        counts = {
            table: int(tx.fetch(f"SELECT count(*) AS n FROM {table}")[0]["n"]) for table in RECORDS
        }
    assert counts == dict.fromkeys(RECORDS, 0)


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

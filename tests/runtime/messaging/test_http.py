"""The HTTP binding on loopback: PERSON_SYNC across real sockets, authentication, size cap,
duplicates, and failures the sender retries."""

from __future__ import annotations

from types import ModuleType

import httpx

from bad_inputs import BAD_INPUTS
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.http import Credential, HttpTransport, ReceiverApp, Server
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.bodies import original
from runtime_world import Integration
from support import OUTBOX, sample

# Each node presents its own credential to the others (a token, or Basic for CCB).
CREDENTIALS = {
    "ccb": Credential(user="ccb", password="ccb-secret"),
    "bridge": Credential(token="bridge-token"),
    "mdm": Credential(token="mdm-token"),
}


def test_person_sync_over_http_on_loopback(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    nodes = {"ccb": world.ccb, "bridge": world.bridge, "mdm": world.mdm}
    servers = {
        name: Server(
            ReceiverApp(node.receiver, {p: c for p, c in CREDENTIALS.items() if p != name})
        )
        for name, node in nodes.items()
    }
    for server in servers.values():
        server.__enter__()
    try:
        addresses = {name: server.url for name, server in servers.items()}
        for name, node in nodes.items():
            node.transport = HttpTransport(addresses, {p: CREDENTIALS[name] for p in addresses})
        world.people.change("0001234567", "Okafor,Adaeze")
        world.run()
        assert world.requests() == [("SYNCHRONIZED", None)]
        assert world.stub.applied == {"0001234567": (1, "Okafor,Adaeze")}
        url = f"{servers['mdm'].url}/ccbmdm/v1/person-sync/request"
        with store.transaction() as tx:
            (row,) = tx.fetch(
                f"SELECT b.payload FROM {OUTBOX} WHERE node = 'bridge' AND partner = 'mdm'"
            )
        payload = original(row["payload"])
        bridge = {"authorization": CREDENTIALS["bridge"].header()}
        # A redelivery gets the recorded outcome (200) and is not processed again.
        assert httpx.post(url, content=payload, headers=bridge).status_code == 200
        # No credential, or a wrong one: 401, which a sender retries.
        assert httpx.post(url, content=payload).status_code == 401
        assert (
            httpx.post(url, content=payload, headers={"authorization": "Bearer guess"}).status_code
            == 401
        )
        # Invalid XML: 400 with a fault; too large: 413.
        bad = httpx.post(url, content=b"<ContactSyncRequest", headers=bridge)
        assert bad.status_code == 400 and b"<messageNumber>1001</messageNumber>" in bad.content
        huge = httpx.post(url, content=b" " * (17 * 1024 * 1024), headers=bridge)
        assert huge.status_code == 413 and b"byte cap" in huge.content
        assert httpx.get(url, headers=bridge).status_code == 404
        world.run()
        assert world.stub.applications == 1
    finally:
        for server in servers.values():
            server.__exit__()


def test_a_refused_connection_is_a_technical_failure(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    with Server(ReceiverApp(world.bridge.receiver, {"ccb": CREDENTIALS["ccb"]})) as bridge:
        dead = "http://127.0.0.1:9"  # nothing listens on the discard port
        world.ccb.transport = HttpTransport(
            {"bridge": dead}, {"bridge": CREDENTIALS["ccb"]}, timeout_s=2
        )
        world.people.change("0000000060", "Later,Person")
        world.monitor.step()
        world.ccb.send_due()
        with store.transaction() as tx:
            (row,) = tx.fetch(
                "SELECT state, attempt, refused, failure, last_error FROM outbox WHERE node = 'ccb'"
            )
        # nothing was sent: the attempt is counted as refused, not used up
        assert (row["state"], row["attempt"], row["refused"]) == ("RETRY_WAIT", 1, 1)
        assert row["failure"] == "unreachable"
        assert "cannot reach bridge" in row["last_error"]
        world.ccb.transport = HttpTransport({"bridge": bridge.url}, {"bridge": CREDENTIALS["ccb"]})
        world.ccb.send_due()
        with store.transaction() as tx:
            (row,) = tx.fetch("SELECT state, attempt FROM outbox WHERE node = 'ccb'")
        assert (row["state"], row["attempt"]) == ("AWAITING_REPLY", 2)


def test_credentials_never_show_in_their_representation() -> None:
    assert "secret" not in repr(Credential(user="ccb", password="ccb-secret"))
    assert "bridge-token" not in repr(Credential(token="bridge-token"))


def test_two_partners_cannot_share_a_credential(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    import pytest

    world = Integration(store, registry, package, InProcessTransport())
    shared = Credential(token="same")
    with pytest.raises(ValueError, match="ccb and mdm present the same credential"):
        ReceiverApp(world.bridge.receiver, {"ccb": shared, "mdm": shared})


def test_hostile_messages_get_a_bounded_fault_and_nothing_is_stored(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """A hundred thousand unknown elements, and the floods the parser refuses, each get a 400 with
    a fault of one problem; nothing of them is recorded."""
    world = Integration(store, registry, package, InProcessTransport())
    person = sample("ccb/PersonSyncRequest").decode()
    hostile = {
        "unknown elements": (
            person.replace("<person>\n", "<person>\n" + "    <x/>\n" * 100_000),
            1003,
            "/PersonSyncRequest/person/x[1]: unknown element &lt;x&gt;",
        ),
        "attributes": (BAD_INPUTS["many-attributes"][0].decode(), 1001, "60000 attributes"),
        "namespace declarations": (
            BAD_INPUTS["many-namespace-declarations"][0].decode(),
            1001,
            "over 128 namespace declarations",
        ),
        "elements": (BAD_INPUTS["many-elements"][0].decode(), 1001, "over 1,000,000 elements"),
    }
    with Server(ReceiverApp(world.bridge.receiver, {"ccb": CREDENTIALS["ccb"]})) as bridge:
        url = f"{bridge.url}/ccbmdm/v1/person-sync/request"
        ccb = {"authorization": CREDENTIALS["ccb"].header()}
        for case, (text, number, said) in hostile.items():
            for encoding in ("utf-8", "utf-16"):
                data = text.replace('encoding="UTF-8"', f'encoding="{encoding.upper()}"')
                answer = httpx.post(url, content=data.encode(encoding), headers=ccb, timeout=30)
                where = f"{case} in {encoding}"
                assert answer.status_code == 400, (where, answer.text)
                assert f"<messageNumber>{number}</messageNumber>".encode() in answer.content, where
                assert said.encode() in answer.content, (where, answer.text)
                assert len(answer.content) < 2_000, where
    with store.transaction() as tx:
        assert tx.fetch("SELECT count(*) AS n FROM inbox")[0]["n"] == 0

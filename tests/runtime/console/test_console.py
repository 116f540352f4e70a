"""The operator's console, in process, on both stores: who may sign in and for how long, what a
page or an action without a session or without the session's token does (nothing), discard and
resubmit with their audit entries and their refusals, the lists a page at a time by id with
their filters over indexes, and the overview's counts and throughput."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import load_config
from ccbmdm.runtime.console.app import Console
from ccbmdm.runtime.console.reading import KINDS, Filters, listing, received_per_minute
from ccbmdm.runtime.console.sessions import Sessions
from ccbmdm.runtime.lifecycles.lifecycle import SYNC_REQUEST
from ccbmdm.runtime.messaging.http import Credential
from ccbmdm.runtime.store import Store
from command_world import write_config
from runtime_world import People

OPERATOR = Credential(user="night-shift", password="ops-secret")
PARTNER = Credential(user="ccb", password="ccb-secret")
SYSTEM = Credential(token="a-bearer-token")
# runtime_world's MDM rejects the persons whose id ends in 13
ACCEPTED = ("0000000011", "0000000012", "0000000014", "0000000015", "0000000016")
REJECTED = ("0000000013", "0000000113")


@pytest.fixture
def runtime(store: Store, tmp_path: Path, project: Project) -> Iterator[Runtime]:
    """A runtime on the store where MDM synchronized five persons and rejected two."""
    built = Runtime(load_config(write_config(tmp_path, store.dsn)), project)
    people = People(built.store)
    for person in (*ACCEPTED, *REJECTED):
        people.change(person, f"Person,{person[-3:]}")
    built.worker().drain()
    yield built
    built.close()


@pytest.fixture
def console(runtime: Runtime) -> Console:
    return Console(
        "bridge",
        runtime.store,
        [PARTNER, OPERATOR, SYSTEM],
        nodes=list(runtime.nodes),
        monitor=runtime.monitor,
    )


@pytest.fixture
def client(console: Console) -> Iterator[TestClient]:
    with TestClient(console, follow_redirects=False) as anonymous:
        yield anonymous


def sign_in(client: TestClient, credential: Credential = OPERATOR) -> str:
    """Sign in; the session's CSRF token, as its forms carry it."""
    answer = client.post(
        "/console/login",
        data={"user": credential.user, "password": credential.password, "next": "/console/"},
    )
    assert answer.status_code == 303, answer.text
    page: str = client.get("/console/").text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def request_of(store: Store, person: str) -> dict[str, object]:
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT id, state, reason, message_id FROM sync_request WHERE pk = :pk",
            {"pk": person},
        )
    assert row is not None
    return dict(row)


def audit_rows(store: Store) -> list[dict[str, object]]:
    with store.transaction() as tx:
        return [
            dict(row)
            for row in tx.fetch(
                "SELECT node, operator, action, target_kind, target_id, reason, outcome "
                "FROM audit ORDER BY id"
            )
        ]


def test_without_a_session_pages_lead_to_the_login_and_actions_do_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    target = request_of(runtime.store, REJECTED[0])
    page = f"/console/requests/sync_request/{target['id']}"
    for path in ("/console/", "/console/requests?state=ERROR", page):
        answer = client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login?next=")
    login = client.get(client.get(page).headers["location"])
    assert login.status_code == 200 and 'value="/console/requests/sync_request/' in login.text
    for action in ("discard", "resubmit"):
        answer = client.post(f"{page}/{action}", data={"reason": "no session", "csrf": "x"})
        assert answer.status_code == 401 and "Sign in" in answer.text
    assert request_of(runtime.store, REJECTED[0]) == target
    assert audit_rows(runtime.store) == []


def test_an_operator_signs_in_with_a_user_and_password_of_the_node(client: TestClient) -> None:
    for user, password in (("night-shift", "wrong"), ("nobody", "ops-secret"), ("", "")):
        answer = client.post("/console/login", data={"user": user, "password": password})
        assert answer.status_code == 401
        assert "that user and password do not sign in to this node" in answer.text
    answer = client.post(
        "/console/login",
        data={"user": "night-shift", "password": "ops-secret", "next": "/console/requests"},
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/console/requests"
    cookie = answer.headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/console", "Max-Age=28800"):
        assert attribute in cookie
    page = client.get("/console/")
    assert page.status_code == 200
    assert '<span class="operator">night-shift</span>' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # a partner's user signs in too, under its own name; a page elsewhere is never the target
    client.cookies.clear()
    answer = client.post(
        "/console/login", data={"user": "ccb", "password": "ccb-secret", "next": "https://x.y/"}
    )
    assert answer.headers["location"] == "/console/"
    assert '<span class="operator">ccb</span>' in client.get("/console/").text


def test_repeated_failed_sign_ins_are_refused_before_the_password_is_checked(
    console: Console,
) -> None:
    with TestClient(console, follow_redirects=False, client=("10.0.0.7", 5000)) as guesser:
        for n in range(5):
            wrong = {"user": "night-shift", "password": f"guess-{n}"}
            assert guesser.post("/console/login", data=wrong).status_code == 401
        right = {"user": "night-shift", "password": "ops-secret"}
        answer = guesser.post("/console/login", data=right)
        assert answer.status_code == 429
        assert (
            "too many failed sign-ins" in answer.text and "try again in 15 minutes" in answer.text
        )
        assert 0 < int(answer.headers["retry-after"]) <= 900
        assert console.sessions.cookie not in answer.headers.get("set-cookie", "")
    # the operator is held wherever they come from; another user from elsewhere is not
    with TestClient(console, follow_redirects=False, client=("10.0.0.8", 5000)) as other:
        right = {"user": "night-shift", "password": "ops-secret"}
        assert other.post("/console/login", data=right).status_code == 429
        partner = {"user": "ccb", "password": "ccb-secret"}
        assert other.post("/console/login", data=partner).status_code == 303


def test_a_session_is_good_on_its_own_node_until_it_expires() -> None:
    key = b"k" * 32
    bridge = Sessions("bridge", [OPERATOR], key)
    cookie = bridge.sign_in("night-shift", "ops-secret")
    assert cookie is not None
    session = bridge.read(cookie)
    assert session is not None and session.operator == "night-shift"
    assert (
        session.carries(session.csrf) and not session.carries("other") and not session.carries(None)
    )
    assert Sessions("ccb", [OPERATOR], key).read(cookie) is None  # another node's console
    assert Sessions("bridge", [OPERATOR]).read(cookie) is None  # signed before a restart
    assert Sessions("bridge", [PARTNER], key).read(cookie) is None  # a user no longer known
    assert Sessions("bridge", [OPERATOR], key, lifetime_s=-1).read(cookie) is None  # expired
    body, _, signature = cookie.rpartition(".")
    assert bridge.read(body[:-2] + "xx." + signature) is None  # altered
    assert bridge.read("not a cookie") is None
    # a bearer token names a system, not an operator: no one signs in with it
    assert not Sessions("mdm", [SYSTEM]).open
    assert Sessions("mdm", [SYSTEM]).sign_in("", "a-bearer-token") is None


def test_a_form_without_the_session_token_changes_nothing(
    client: TestClient, runtime: Runtime
) -> None:
    token = sign_in(client)
    target = request_of(runtime.store, REJECTED[0])
    page = f"/console/requests/sync_request/{target['id']}"
    for action in ("discard", "resubmit"):
        for forged in ({}, {"csrf": "not-the-token"}, {"csrf": token[:-1]}):
            answer = client.post(f"{page}/{action}", data={"reason": "forged", **forged})
            assert answer.status_code == 403
            assert "nothing was changed" in answer.text
        answer = client.post(
            f"{page}/{action}",
            data={"reason": "forged", "csrf": token},
            headers={"origin": "https://elsewhere.example"},
        )
        assert answer.status_code == 403
    answer = client.post("/console/logout", data={})
    assert answer.status_code == 403  # signing out is an action too
    assert request_of(runtime.store, REJECTED[0]) == target
    assert audit_rows(runtime.store) == []


def test_discard_keeps_its_reason_and_who_gave_it(client: TestClient, runtime: Runtime) -> None:
    token = sign_in(client)
    target = request_of(runtime.store, REJECTED[0])
    answer = client.post(
        f"/console/requests/sync_request/{target['id']}/discard",
        data={"reason": "  the person moved away  ", "csrf": token},
    )
    assert answer.status_code == 303
    page = client.get(answer.headers["location"])
    assert "Done: discarded." in page.text and "the person moved away" in page.text
    # the request's life, as `ccbmdm show` reads it: discarded, its states, its messages
    assert "DISCARDED by an operator" in page.text
    assert page.text.count('<tr class="state-') >= 4  # Pending, awaiting, Error, discarded
    assert '<span class="state">DISCARDED by an operator</span></td>' in page.text  # its step
    sent = page.text.split('href="/console/requests/outbox/', 1)[1].split('"', 1)[0]
    message = client.get(f"/console/requests/outbox/{sent}")
    assert message.status_code == 200 and "Outbox message" in message.text
    assert request_of(runtime.store, REJECTED[0]) == {
        **target,
        "state": SYNC_REQUEST.next("ERROR", "discard").target,
        "reason": "the person moved away",
    }
    assert audit_rows(runtime.store) == [
        {
            "node": "bridge",
            "operator": "night-shift",
            "action": "discard",
            "target_kind": "sync_request",
            "target_id": target["id"],
            "reason": "the person moved away",
            "outcome": "discarded",
        }
    ]
    # the overview shows it among the latest actions
    assert "the person moved away" in client.get("/console/").text


def test_discard_needs_a_reason_and_a_request_in_error(
    client: TestClient, runtime: Runtime
) -> None:
    token = sign_in(client)
    rejected = request_of(runtime.store, REJECTED[0])
    synchronized = request_of(runtime.store, ACCEPTED[0])
    answer = client.post(
        f"/console/requests/sync_request/{rejected['id']}/discard",
        data={"reason": "   ", "csrf": token},
    )
    assert answer.status_code == 400
    assert f"a discard needs a reason: say why sync request {rejected['id']}" in answer.text
    answer = client.post(
        f"/console/requests/sync_request/{synchronized['id']}/discard",
        data={"reason": "tidy up", "csrf": token},
    )
    assert answer.status_code == 409
    assert f"sync request {synchronized['id']} is SYNCHRONIZED; only a request in ERROR" in (
        answer.text
    )
    answer = client.post(
        "/console/requests/sync_request/999999/discard", data={"reason": "x", "csrf": token}
    )
    assert answer.status_code == 409 and "sync request 999999 does not exist" in answer.text
    # a request not in Error offers no action at all
    page = client.get(f"/console/requests/sync_request/{synchronized['id']}").text
    assert 'name="reason"' not in page
    assert request_of(runtime.store, REJECTED[0]) == rejected
    assert request_of(runtime.store, ACCEPTED[0]) == synchronized
    assert audit_rows(runtime.store) == []


def test_resubmit_sends_again_once_and_is_audited(client: TestClient, runtime: Runtime) -> None:
    token = sign_in(client)
    target = request_of(runtime.store, REJECTED[1])
    resubmit = f"/console/requests/sync_request/{target['id']}/resubmit"
    answer = client.post(resubmit, data={"csrf": token})
    assert answer.status_code == 303
    after = request_of(runtime.store, REJECTED[1])
    assert after["state"] == "AWAITING_ACK" and after["message_id"] != target["message_id"]
    # pressed again: the request is no longer in Error, nothing is sent
    answer = client.post(resubmit, data={"csrf": token})
    assert answer.status_code == 409
    assert f"sync request {target['id']} is AWAITING_ACK; only a request in ERROR" in answer.text
    assert request_of(runtime.store, REJECTED[1]) == after
    assert audit_rows(runtime.store) == [
        {
            "node": "bridge",
            "operator": "night-shift",
            "action": "resubmit",
            "target_kind": "sync_request",
            "target_id": target["id"],
            "reason": None,
            "outcome": "sent again under a new message id",
        }
    ]


def test_a_console_without_ccb_cannot_resubmit(runtime: Runtime) -> None:
    console = Console("mdm", runtime.store, [OPERATOR], nodes=["mdm"], monitor=None)
    target = request_of(runtime.store, REJECTED[0])
    with TestClient(console, follow_redirects=False) as client:
        token = sign_in(client)
        page = client.get(f"/console/requests/sync_request/{target['id']}").text
        assert 'name="resubmit"' not in page and 'name="reason"' in page
        answer = client.post(
            f"/console/requests/sync_request/{target['id']}/resubmit", data={"csrf": token}
        )
    assert answer.status_code == 409 and "this runtime hosts no ccb node" in answer.text
    assert request_of(runtime.store, REJECTED[0]) == target


def test_a_list_pages_by_id_newest_first(runtime: Runtime) -> None:
    with runtime.store.transaction() as tx:
        every = [row["id"] for row in tx.fetch("SELECT id FROM sync_request ORDER BY id DESC")]
    assert len(every) == len(ACCEPTED) + len(REJECTED)
    seen: list[int] = []
    filters = Filters(KINDS["sync_request"])
    while True:
        page = listing(runtime.store, filters, size=3)
        seen += [row["id"] for row in page.rows]
        if page.next_after is None:
            break
        assert page.next_after == seen[-1]
        filters = Filters(KINDS["sync_request"], after=page.next_after)
    assert seen == every


@pytest.mark.parametrize(
    ("query", "persons"),
    [
        ({"state": "ERROR"}, REJECTED),
        ({"state": "SYNCHRONIZED", "flow": "PERSON_SYNC"}, ACCEPTED),
        ({"flow": "SP_SYNC"}, ()),
        ({"since": "2000-01-01T00:00", "state": "ERROR"}, REJECTED),
        ({"since": "2999-01-01T00:00"}, ()),
        ({"until": "2000-01-01T00:00"}, ()),
    ],
)
def test_a_list_filters_by_flow_state_and_time(
    runtime: Runtime, query: dict[str, str], persons: tuple[str, ...]
) -> None:
    page = listing(runtime.store, Filters.parse(query))
    assert sorted(row["pk"] for row in page.rows) == sorted(persons)


def test_a_list_refuses_filters_it_cannot_take(client: TestClient) -> None:
    sign_in(client)
    for query, message in (
        ("state=LOST", "CCB sync requests have no state &#39;LOST&#39;; one of PENDING"),
        ("kind=bills", "no such kind of request: &#39;bills&#39;"),
        ("since=yesterday", "since must be a date and time such as 2026-12-06T14:30"),
        ("after=abc", "after must be a request id"),
    ):
        answer = client.get(f"/console/requests?{query}")
        assert answer.status_code == 400 and message in answer.text, query
    assert client.get("/console/requests/bills/1").status_code == 404
    assert client.get("/console/requests/sync_request/999999").status_code == 404


def test_the_list_filters_run_over_indexes(runtime: Runtime) -> None:
    """The plans of a list's queries: a state or a flow is looked up in an index of schema 7,
    which gives its rows in the order of their ids, not found by reading the whole table. (A
    span of time has an index too; whether it or the ids' order serves a span best depends on
    how many rows the span holds, which the planner estimates.)"""
    store = runtime.store
    for kind in KINDS.values():
        for column in ("state", "flow"):
            sql = f"SELECT id FROM {kind.table} WHERE {column} = :v AND id < :after ORDER BY id DESC LIMIT 51"
            params = {"v": "x", "after": 10**9}
            with store.transaction() as tx:
                if store.dialect == "sqlite":
                    plan = " ".join(
                        str(row["detail"]) for row in tx.fetch(f"EXPLAIN QUERY PLAN {sql}", params)
                    )
                else:  # an empty table's plan is a scan either way: ask whether the index serves
                    tx.execute("SET LOCAL enable_seqscan = off")
                    plan = " ".join(
                        str(row["QUERY PLAN"]) for row in tx.fetch(f"EXPLAIN {sql}", params)
                    )
            assert f"{kind.table}_{column}" in plan, (kind.table, column, plan)


def test_the_overview_counts_each_node_and_its_messages_per_minute(
    client: TestClient, runtime: Runtime
) -> None:
    sign_in(client)
    page = client.get("/console/").text
    ccb = page.split('id="node-ccb"', 1)[1].split("</section>", 1)[0]
    assert '<div class="bad"><dt>in Error</dt><dd>2</dd></div>' in ccb
    # each request in Error, with its reason, a link away
    errors = page.split('id="in-error"', 1)[1].split("</section>", 1)[0]
    for person in REJECTED:
        rejected = request_of(runtime.store, person)
        assert f'href="/console/requests/sync_request/{rejected["id"]}"' in errors
        assert f"PERSON {person}" in errors
    assert errors.count("11001/16021 rejected") == len(REJECTED)
    assert "oldest Pending" in ccb
    now = datetime.now(UTC)
    with runtime.store.transaction() as tx:
        received = tx.fetch("SELECT node, count(*) AS n FROM inbox GROUP BY node ORDER BY node")
    for row in received:
        per_minute = received_per_minute(runtime.store, row["node"], now)
        assert len(per_minute) == 15 and sum(per_minute) == row["n"]
    # a minute with nothing received is a zero, and what is older than the chart is left out
    assert received_per_minute(runtime.store, "ccb", now + timedelta(minutes=30)) == [0] * 15

"""The operator's console in a real browser: ``ccbmdm run`` serves it on the bridge's endpoint (a
process of its own, on the loopback interface) over a store holding requests in several states,
MDM having rejected some; headless Chromium signs in, finds a request in Error in the list,
opens it and discards it with a reason; the store then holds the discard and its audit entry.
Without a session the console shows its login page and changes nothing, and a form forged
without the session's token changes nothing. Every page is saved as a screenshot in the test's
temporary folder, and any error in the browser's console fails the test."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from browser import (
    chromium,
    console_errors,
    needs_chromium,
    open_page,
    save_whole_page,
    wait_loaded,
)
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import load_config
from ccbmdm.runtime.lifecycles.lifecycle import SYNC_REQUEST
from ccbmdm.runtime.store import open_store
from command_world import CCBMDM, environment, write_config
from runtime_world import People
from support import REPO

pytestmark = [pytest.mark.slow, needs_chromium]

OPERATOR, PASSWORD = "night-shift", "ops-secret"
# runtime_world's MDM rejects the persons whose id ends in 13: their requests end in Error
ACCEPTED = ("0000000011", "0000000012", "0000000014")
REJECTED = ("0000000013", "0000000113", "0000000213")


@dataclass(frozen=True)
class Served:
    url: str  # the console's
    store: str  # the store's DSN


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``ccbmdm run`` with the bridge listening, over a store where MDM synchronized some
    persons and rejected the others."""
    folder = tmp_path_factory.mktemp("console")
    port = free_port()
    store = str(folder / "runtime.db")
    config = write_config(
        folder,
        store,
        f'listen: "127.0.0.1:{port}", '
        "accept: {ccb: {user: ccb, password_env: TEST_CCB_PASSWORD}}, "
        f"viewers: {{ops: {{user: {OPERATOR}, password_env: TEST_OPS_PASSWORD}}}}",
    )
    runtime = Runtime(load_config(config), Project.load(REPO))
    try:
        people = People(runtime.store)
        for person in (*ACCEPTED, *REJECTED):
            people.change(person, f"Person,{person[-3:]}")
        runtime.worker().drain()
    finally:
        runtime.close()
    server = subprocess.Popen(
        [CCBMDM, "run", "--config", str(config), "--project-dir", str(REPO)],
        env=environment(TEST_OPS_PASSWORD=PASSWORD),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first == f"listening: bridge: http://127.0.0.1:{port}\n", first
        console = server.stdout.readline()  # where the command says the console is
        assert console == f"  console: http://127.0.0.1:{port}/console/\n", console
        yield Served(console.split(": ", 1)[1].strip().rstrip("/"), store)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def request_of(served: Served, person: str) -> dict[str, object]:
    store = open_store(served.store)
    try:
        with store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT id, state, reason FROM sync_request WHERE pk = :pk", {"pk": person}
            )
    finally:
        store.close()
    assert row is not None
    return dict(row)


def audit_of(served: Served, request_id: object) -> list[dict[str, object]]:
    store = open_store(served.store)
    try:
        with store.transaction() as tx:
            return [
                dict(row)
                for row in tx.fetch(
                    "SELECT operator, action, target_kind, reason, outcome FROM audit "
                    "WHERE target_id = :id ORDER BY id",
                    {"id": request_id},
                )
            ]
    finally:
        store.close()


@contextmanager
def signed_in_client(served: Served) -> Iterator[httpx.Client]:
    """A client holding a valid session cookie, as a browser signed in would."""
    with httpx.Client(base_url=served.url) as client:
        answer = client.post(
            "/login", data={"user": OPERATOR, "password": PASSWORD, "next": "/console/"}
        )
        assert answer.status_code == 303, answer.text
        yield client


def test_without_a_session_the_console_shows_its_login_page_and_changes_nothing(
    served: Served, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    target = request_of(served, REJECTED[0])
    assert target["state"] == "ERROR"
    browser.delete_all_cookies()
    open_page(browser, f"{served.url}/requests/sync_request/{target['id']}")
    browser.save_screenshot(str(tmp_path / "login.png"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Sign in"
    assert browser.find_elements(By.NAME, "reason") == []  # no discard form
    # a discard posted straight at the console, without signing in
    answer = httpx.post(
        f"{served.url}/requests/sync_request/{target['id']}/discard",
        data={"reason": "no session", "csrf": "anything"},
    )
    assert answer.status_code == 401 and "Sign in" in answer.text
    assert request_of(served, REJECTED[0]) == target
    assert audit_of(served, target["id"]) == []
    assert console_errors(browser) == []


def test_a_form_forged_without_the_session_token_changes_nothing(served: Served) -> None:
    target = request_of(served, REJECTED[1])
    assert target["state"] == "ERROR"
    discard = f"/requests/sync_request/{target['id']}/discard"
    with signed_in_client(served) as client:
        page = client.get(f"/requests/sync_request/{target['id']}")
        assert page.status_code == 200 and 'name="reason"' in page.text
        for forged in ({}, {"csrf": "not-the-token"}):
            answer = client.post(discard, data={"reason": "forged", **forged})
            assert answer.status_code == 403, answer.text
            assert "nothing was changed" in answer.text
        # the session's own token, from another site's page
        token = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        answer = client.post(
            discard,
            data={"reason": "forged", "csrf": token},
            headers={"origin": "https://elsewhere.example"},
        )
        assert answer.status_code == 403
    assert request_of(served, REJECTED[1]) == target
    assert audit_of(served, target["id"]) == []


def test_an_operator_finds_a_request_in_error_and_discards_it(
    served: Served, browser: webdriver.Chrome, tmp_path: Path
) -> None:
    browser.delete_all_cookies()
    open_page(browser, f"{served.url}/")
    browser.find_element(By.NAME, "user").send_keys(OPERATOR)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_loaded(browser)
    browser.save_screenshot(str(tmp_path / "overview.png"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Overview"
    assert browser.find_element(By.CSS_SELECTOR, "header .operator").text == OPERATOR
    ccb = browser.find_element(By.ID, "node-ccb")
    in_error = int(ccb.find_element(By.CSS_SELECTOR, ".figures dd").text)
    assert in_error >= 1
    # the list of sync requests, filtered to those in Error
    browser.find_element(By.LINK_TEXT, "CCB sync requests").click()
    wait_loaded(browser)
    Select(browser.find_element(By.NAME, "state")).select_by_visible_text("ERROR")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    wait_loaded(browser)
    browser.save_screenshot(str(tmp_path / "errors.png"))
    rows = browser.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
    states = [row.find_element(By.CSS_SELECTOR, ".col-state").text for row in rows]
    assert states and set(states) == {"ERROR"}
    first = rows[0].find_element(By.CSS_SELECTOR, "td a")
    request_id = int(first.text)
    person = rows[0].find_element(By.CSS_SELECTOR, ".col-pk").text
    assert person in REJECTED
    first.click()
    wait_loaded(browser)
    save_whole_page(browser, tmp_path / "request.png")
    assert f"sync request {request_id}" in browser.find_element(By.TAG_NAME, "h1").text
    browser.find_element(By.NAME, "reason").send_keys("the person left; MDM keeps the old name")
    browser.find_element(By.CSS_SELECTOR, "button[name=discard]").click()
    wait_loaded(browser)
    save_whole_page(browser, tmp_path / "discarded.png")
    assert "Done: discarded" in browser.find_element(By.CSS_SELECTOR, ".done").text
    trail = browser.find_element(By.CSS_SELECTOR, "table.trail tbody").text
    assert OPERATOR in trail and "the person left" in trail
    assert console_errors(browser) == []
    # the store holds the discard, with its reason, and who did it
    discarded = SYNC_REQUEST.next("ERROR", "discard").target
    assert request_of(served, person) == {
        "id": request_id,
        "state": discarded,
        "reason": "the person left; MDM keeps the old name",
    }
    assert audit_of(served, request_id) == [
        {
            "operator": OPERATOR,
            "action": "discard",
            "target_kind": "sync_request",
            "reason": "the person left; MDM keeps the old name",
            "outcome": "discarded",
        }
    ]

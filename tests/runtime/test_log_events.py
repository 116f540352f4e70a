"""The runtime's logs, read as an operator reads them (docs/runtime.md, Logs): the line of a
retry and of a failed delivery, of a lifecycle move, on a terminal and as JSON lines from the
command line; never a personal value, a password or a token."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import pytest

from ccbmdm.cli import app, run
from ccbmdm.runtime import logs
from ccbmdm.runtime.lifecycles.lifecycle import USAGE_REQUEST
from ccbmdm.runtime.lifecycles.machine import Machine
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import Answer, InProcessTransport, Posting, Response
from ccbmdm.runtime.store import Store
from command_world import CCBMDM, environment, write_config
from runtime_world import FAST, Integration, People
from support import REPO

HOUR = 3600.0
# two attempts and no retry window: the first failure waits an hour, the second is the last
TWICE = dataclasses.replace(
    FAST, max_attempts=2, backoff_base_s=HOUR, backoff_cap_s=HOUR, retry_window_s=0
)
NAME = "Okafor,Adaeze"
E_MAIL = "adaeze.okafor@example.org"


class Failing(InProcessTransport):
    """Every partner answers 503, its body quoting an e-mail address (text from outside)."""

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        return [Response(503, f"unavailable; write to {E_MAIL}".encode()) for _ in postings]


class Terminal(io.StringIO):
    """Standard error as a terminal."""

    def isatty(self) -> bool:
        return True


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Lines]:
    """The runtime's logs as ``ccbmdm run`` writes them to a pipe; each call returns the lines
    written since the last, parsed (every line must be JSON)."""
    logs.configure("info", "auto")
    assert logs.configured() == ("info", "json")  # standard error is captured: no terminal
    yield lambda: [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def outbox_row(store: Store) -> dict[str, Any]:
    with store.transaction() as tx:
        (row,) = tx.fetch("SELECT message_id, state, due_at, owner_id FROM outbox")
    return {**row, "message_id": str(row["message_id"])}


def events(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == event]


def test_a_retry_and_a_failed_delivery_say_what_moved_where_and_why(
    store: Store, registry: ContractRegistry, package: ModuleType, json_lines: Lines
) -> None:
    world = Integration(store, registry, package, Failing(), settings=TWICE)
    world.people.change("0000000081", NAME)
    world.monitor.step()
    sent = outbox_row(store)
    request_id = int(sent["owner_id"])
    (claimed,) = json_lines()
    assert claimed["level"] == "INFO"
    assert {k: v for k, v in claimed.items() if k not in ("time", "logger", "level")} == {
        "message": f"sync request {request_id}: awaiting ack",
        "event": "lifecycle.moved",
        "flow": "PERSON_SYNC",
        "message_id": sent["message_id"],
        "lifecycle": "sync request",
        "request_type": "sync_request",
        "request_id": request_id,
        "from_state": "PENDING",
        "to_state": "AWAITING_ACK",
        "transition": "S1/S4-S5",
        "trigger": "claim/sent",
    }

    world.ccb.send_due()
    (retry,) = json_lines()
    waiting = outbox_row(store)
    assert waiting["state"] == "RETRY_WAIT"
    due = store.to_datetime(waiting["due_at"])
    assert due is not None
    assert (retry["level"], retry["logger"], retry["event"]) == (
        "WARNING",
        "ccbmdm.delivery",
        "delivery.retry",
    )
    assert {k: retry[k] for k in ("node", "partner", "flow", "part", "message_id")} == {
        "node": "ccb",
        "partner": "bridge",
        "flow": "PERSON_SYNC",
        "part": "request",
        "message_id": sent["message_id"],
    }
    assert (retry["from_state"], retry["to_state"], retry["attempt"]) == (
        "SENDING",
        "RETRY_WAIT",
        1,
    )
    assert (retry["request_type"], retry["request_id"]) == ("sync_request", request_id)
    assert (retry["failure"], retry["reason"]) == (
        "answer",
        "HTTP 503: unavailable; write to ***@***",
    )
    next_due = datetime.fromisoformat(retry["next_due"])
    assert abs(next_due - due) < timedelta(seconds=1)
    assert next_due - datetime.fromisoformat(retry["time"]) > timedelta(minutes=29)  # backoff

    with store.transaction() as tx:
        tx.execute(f"UPDATE outbox SET due_at = {store.now}")
    world.ccb.send_due()
    failed, request_moved = json_lines()
    assert outbox_row(store)["state"] == "ERROR"
    assert (failed["level"], failed["event"], failed["message_id"]) == (
        "ERROR",
        "delivery.failed",
        sent["message_id"],
    )
    assert (failed["from_state"], failed["to_state"], failed["attempt"]) == ("SENDING", "ERROR", 2)
    assert failed["reason"] == "HTTP 503: unavailable; write to ***@***"
    assert "next_due" not in failed
    # the request it carried, logged with it (the move commits in the same transaction)
    assert request_moved["level"] == "ERROR"
    assert {k: request_moved[k] for k in ("event", "request_id", "from_state", "to_state")} == {
        "event": "lifecycle.moved",
        "request_id": request_id,
        "from_state": "AWAITING_ACK",
        "to_state": "ERROR",
    }
    assert (request_moved["transition"], request_moved["trigger"]) == ("S6b", "attempts_used_up")
    assert request_moved["reason"] == (
        "not delivered, attempts used up: HTTP 503: unavailable; write to ***@***"
    )
    assert world.requests() == [
        ("ERROR", f"not delivered, attempts used up: HTTP 503: unavailable; write to {E_MAIL}")
    ]


def test_a_message_received_and_processed_is_logged_at_each_hop(
    store: Store, registry: ContractRegistry, package: ModuleType, json_lines: Lines
) -> None:
    world = Integration(store, registry, package, InProcessTransport())
    world.people.change("0000000082", NAME)
    world.run()
    assert world.requests() == [("SYNCHRONIZED", None)]
    lines = json_lines()
    received = [
        (line["node"], line["partner"], line["part"]) for line in events(lines, "message.received")
    ]
    assert received == [
        ("bridge", "ccb", "request"),
        ("mdm", "bridge", "request"),
        ("bridge", "mdm", "ack"),
        ("ccb", "bridge", "ack"),
    ]
    processed = events(lines, "message.processed")
    assert [(p["node"], p["from_state"], p["to_state"]) for p in processed] == [
        (node, "PROCESSING", "PROCESSED") for node in ("bridge", "mdm", "bridge", "ccb")
    ]
    # the bridge's outcome of CCB's request is the message it sent MDM
    to_mdm = next(line for line in events(lines, "delivery.delivered") if line["node"] == "bridge")
    assert processed[0]["outcome_message_id"] == to_mdm["message_id"]
    assert to_mdm["relayed_inbox_id"] > 0 and to_mdm["to_state"] == "DELIVERED"
    moves = [(m["from_state"], m["to_state"]) for m in events(lines, "lifecycle.moved")]
    assert moves == [("PENDING", "AWAITING_ACK"), ("AWAITING_ACK", "SYNCHRONIZED")]
    assert not [line for line in lines if NAME.split(",")[0] in json.dumps(line)]


def test_a_lifecycle_move_is_logged_once_committed_and_never_when_rolled_back(
    store: Store, json_lines: Lines
) -> None:
    """Machine.move logs every lifecycle's moves; a savepoint or a transaction rolled back
    takes its line with it."""
    machine = Machine(store, USAGE_REQUEST, "usage_request", ("flow", "message_id"))
    with store.transaction() as tx:
        (row,) = tx.fetch(
            f"""INSERT INTO usage_request (flow, sa_id, bill_segment_id, state, due_at, created_at)
                VALUES ('ONLINE_BD', '5550000001', '7770000001', 'PENDING', {tx.now}, {tx.now})
                RETURNING id"""
        )
    request_id = int(row["id"])
    with store.transaction() as tx:
        assert machine.move(tx, request_id, "PENDING", "data_sync_pending")
        with pytest.raises(LookupError), tx.savepoint():
            assert machine.move(tx, request_id, "AWAITING_DATA_SYNC", "regenerate")
            raise LookupError("the step failed after the move")
        assert json_lines() == []  # nothing is logged before the commit
    (moved,) = json_lines()
    assert (moved["level"], moved["event"], moved["lifecycle"]) == (
        "INFO",
        "lifecycle.moved",
        "usage request",
    )
    assert (moved["request_type"], moved["request_id"], moved["flow"]) == (
        "usage_request",
        request_id,
        "ONLINE_BD",
    )
    assert (moved["from_state"], moved["to_state"], moved["transition"]) == (
        "PENDING",
        "AWAITING_DATA_SYNC",
        "UR1",
    )
    assert "message_id" not in moved  # the request has none yet

    with pytest.raises(LookupError), store.transaction() as tx:
        machine.move(tx, request_id, "AWAITING_DATA_SYNC", "timeout", reason="too late")
        raise LookupError("rolled back")
    with store.transaction() as tx:
        machine.move(tx, request_id, "AWAITING_DATA_SYNC", "timeout", reason="no sync in time")
    (error,) = json_lines()
    assert (error["level"], error["to_state"], error["reason"]) == (
        "ERROR",
        "ERROR",
        "no sync in time",
    )


def test_on_a_terminal_a_line_is_text_with_its_state_change(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    logs.configure("warning", "auto")
    assert logs.configured() == ("warning", "text")
    world = Integration(store, registry, package, Failing(), settings=TWICE)
    world.people.change("0000000083", NAME)
    world.monitor.step()  # info: not shown at warning
    world.ccb.send_due()
    message_id = outbox_row(store)["message_id"]
    (line,) = terminal.getvalue().splitlines()
    pattern = (
        r"\d\d:\d\d:\d\d\.\d{3} WARNING delivery\.retry: send failed; retrying "
        r"\[SENDING → RETRY_WAIT\]  node=ccb partner=bridge flow=PERSON_SYNC part=request "
        rf"message_id={message_id} request_type=sync_request request_id=\d+ attempt=1 "
        r"next_due=\S+ failure=answer "
        r'reason="HTTP 503: unavailable; write to \*\*\*@\*\*\*"'
    )
    assert re.fullmatch(pattern, line), line


def test_auto_is_json_off_a_terminal_and_a_bad_choice_is_refused() -> None:
    assert logs.resolve("auto", io.StringIO()) == "json"
    assert logs.resolve("auto", Terminal()) == "text"
    assert logs.resolve("text", io.StringIO()) == "text"
    with pytest.raises(
        ValueError, match="log level 'loud'; use one of debug, info, warning, error"
    ):
        logs.configure("loud", "json")  # type: ignore[arg-type]


class Unavailable(BaseHTTPRequestHandler):
    """A bridge that answers every message 503, noting the credential it was shown."""

    shown: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        Unavailable.shown.append(self.headers.get("Authorization", ""))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def bridge() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Unavailable.shown.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_monitor_once_writes_json_lines_without_the_password_or_the_token(
    store: Store, tmp_path: Path, bridge: str
) -> None:
    """``ccbmdm monitor --once --log-format json`` on a store named with a password, sending to
    a bridge that answers 503 to the token it is shown: the lines say what happened, and
    neither secret is in them."""
    password, token = "pg-Secret-4711", "bridge-Token-0815"
    parts = urlsplit(store.dsn)
    if parts.password:  # a server that asks for its own
        password, dsn = parts.password, store.dsn
    else:  # the local server trusts loopback and never asks for the one given
        where = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port or 5432}"
        dsn = urlunsplit(parts._replace(netloc=where))
    People(store).change("0000000084", NAME)
    config = tmp_path / "runtime.yaml"
    credential = "credential: {token_env: TEST_BRIDGE_TOKEN}"
    config.write_text(
        f"""\
store: "{dsn}"
nodes:
  ccb: {{system: "runtime_world:ccb_system"}}
  bridge: {{url: "{bridge}", {credential}}}
  mdm: {{url: "{bridge}", {credential}}}
delivery: {{backoff_base_s: 3600, backoff_cap_s: 3600}}
"""
    )
    result = subprocess.run(
        [CCBMDM, "monitor", "--once", "--log-format", "json", "--config", str(config)],
        env=environment(TEST_BRIDGE_TOKEN=token),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert Unavailable.shown == [f"Bearer {token}"]  # the run used the token
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    moved, retry = events(lines, "lifecycle.moved"), events(lines, "delivery.retry")
    assert [(m["from_state"], m["to_state"]) for m in moved] == [("PENDING", "AWAITING_ACK")]
    assert [(r["node"], r["partner"], r["attempt"], r["reason"]) for r in retry] == [
        ("ccb", "bridge", 1, "HTTP 503: ")
    ]
    assert retry[0]["message_id"] == moved[0]["message_id"]
    for secret in (password, token, NAME):
        assert secret not in result.stderr + result.stdout


def test_the_log_options_choose_the_level_and_the_format(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At error, only the request MDM rejected (runtime_world.mdm_system rejects person 13),
    as text."""
    config = str(write_config(tmp_path, store.dsn))
    people = People(store)
    for person in ("0000000011", "0000000013"):
        people.change(person, f"Person,{person[-2:]}")
    arguments = ["monitor", "--once", "--config", config, "--log-level", "error"]
    code = run(lambda: app([*arguments, "--log-format", "text", "--project-dir", str(REPO)]))
    err = capsys.readouterr().err
    assert code == 0
    (line,) = err.splitlines()
    assert " ERROR   lifecycle.moved: sync request " in line
    assert "[AWAITING_ACK → ERROR]" in line
    assert 'lifecycle="sync request" request_type=sync_request' in line
    assert "transition=S8 trigger=negative_ack reason=" in line

"""Personal data, as the contracts mark it, never reaches a stored reason, a log line or a fault
sent to a partner: a change that fails on a personal field is followed through the runtime on
both stores, and every text the store keeps about failures, every log record and the fault
sent back is searched for its values."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import ModuleType

import pytest
from pydantic import ValidationError

from ccbmdm.cli import app, run
from ccbmdm.runtime.lifecycles.sync import unmasked_reasons
from ccbmdm.runtime.logs import JsonFormatter
from ccbmdm.runtime.messages.codec import ContractViolation
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.bodies import original
from ccbmdm.runtime.store.sqlite import SqliteStore
from runtime_world import Integration
from support import REPO, sample

NAME = "Zelinski,Marguerite"
COUNTRY = "ZZZ-NOWHERE"
SENDERS = {"PERSON_SYNC": "ccb/PersonSyncRequest"}
# Where a message's own data is kept, legitimately: the snapshots, the bodies of the messages
# that carry the person (a fault or an acknowledgement among the bodies is searched), and the
# test's own person table.
HOLDS_DATA = {
    ("sync_request", "initial_snapshot"),
    ("sync_request", "final_snapshot"),
    ("test_person", "data"),
}
BODIES = {("outbox_body", "payload"), ("inbox_body", "payload")}
REPLIES = (b"<Fault", b"<SyncAcknowledgement")


def texts_about_failures(store: Store) -> list[tuple[str, str, str]]:
    """(table, column, text) of every column of every table of the store, but the places that
    hold the data itself; a message body counts only when it is a fault or an acknowledgement."""
    with store.transaction() as tx:
        if store.dialect == "postgres":
            columns = [
                (str(r["table_name"]), str(r["column_name"]))
                for r in tx.fetch(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
                )
            ]
        else:
            tables = [
                str(r["name"])
                for r in tx.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
            ]
            columns = [
                (table, str(c["name"]))
                for table in tables
                for c in tx.fetch(f"PRAGMA table_info({table})")
            ]
        found = []
        for table, column in columns:
            if (table, column) in HOLDS_DATA:
                continue
            for row in tx.fetch(f'SELECT "{column}" AS v FROM "{table}"'):
                value = row["v"]
                if isinstance(value, memoryview | bytes):
                    body = original(value) if (table, column) in BODIES else bytes(value)
                    if (table, column) in BODIES and not any(r in body[:200] for r in REPLIES):
                        continue
                    value = body.decode("utf-8", "replace")
                elif (table, column) in BODIES:
                    continue
                if value is not None:
                    found.append((table, column, value if isinstance(value, str) else str(value)))
    return found


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record as the runtime writes it (a JSON line, the traceback included) and as the
    standard formatter would."""
    formatter = JsonFormatter()
    return [formatter.format(r) for r in caplog.records] + [caplog.text]


def assert_nowhere(
    needles: tuple[str, ...], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    for needle in needles:
        leaked = [(t, c) for t, c, text in texts_about_failures(store) if needle in text]
        assert leaked == [], f"{needle!r} stored in {leaked}"
        assert not [line for line in logged(caplog) if needle in line], f"{needle!r} logged"


@pytest.fixture
def world(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    caplog: pytest.LogCaptureFixture,
) -> Integration:
    """CCB's monitor, the bridge and an MDM stand-in on the store, every log record kept."""
    caplog.set_level(logging.DEBUG, logger="ccbmdm")
    return Integration(store, registry, package, InProcessTransport())


def test_a_name_that_breaks_its_facet_is_withheld_from_the_reason_and_the_logs(
    world: Integration, store: Store, registry: ContractRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    too_long = f"{NAME} " * 15  # 300 characters: TextType allows 254
    world.people.change("0000000044", too_long)
    world.people.change("0000000045", "Okafor,Adaeze")  # its batch neighbour goes through
    world.run()
    assert world.requests() == [
        (
            "ERROR",
            "message not built: person.entity_name: Value error, *** has 300 characters; "
            "at most 254 allowed",
        ),
        ("SYNCHRONIZED", None),
    ]
    assert_nowhere((NAME,), store, caplog)
    # The operator's terminal, on request: re-derived from the snapshot kept with the request.
    with store.transaction() as tx:
        (row,) = tx.fetch("SELECT id FROM sync_request WHERE state = 'ERROR'")
    unmasked = unmasked_reasons(store, registry, SENDERS, int(row["id"]))
    assert unmasked is not None and NAME in unmasked
    assert unmasked.startswith(f"person.entity_name = {too_long!r}: Value error, ***")


def test_a_country_the_code_table_lacks_is_withheld_from_the_fault_reason_and_logs(
    world: Integration, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    world.people.change("0000000046", NAME, country=COUNTRY)
    world.run()
    assert world.requests() == [
        ("ERROR", "90000/1101 code table OUCCB2_OUMDM2_Country has no row for ***")
    ]
    with store.transaction() as tx:
        faults = [
            original(r["payload"])
            for r in tx.fetch(
                "SELECT b.payload FROM outbox o JOIN outbox_body b ON b.id = o.id "
                "WHERE o.node = 'bridge' AND o.partner = 'ccb'"
            )
        ]
    (fault,) = faults  # the fault the bridge sent back to CCB
    assert b"<Fault" in fault[:200] and b"has no row for ***" in fault
    assert any("mapping failed" in r.getMessage() for r in caplog.records)
    searched = {table for table, _, _ in texts_about_failures(store)}
    assert {"sync_request", "outbox", "inbox", "outbox_body", "inbox_body"} <= searched
    assert_nowhere((COUNTRY, NAME), store, caplog)


def test_a_partner_message_with_a_bad_personal_value_gets_a_fault_without_it(
    world: Integration, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The codec's problems quote a refused value, but never one of a personal field: the
    fault answered to the partner names where and why, and nothing is stored."""
    original = sample("ccb/PersonSyncRequest")
    name = original.split(b"<entityName>")[1].split(b"</entityName>")[0]
    body = original.replace(name, f"{NAME} ".encode() * 15)
    answer = world.bridge.receiver.receive("ccb", "person-sync", "request", body)
    assert answer.status == 400
    assert b"/PersonSyncRequest/person/entityName" in answer.body
    assert b"*** has 300 characters" in answer.body
    assert NAME.encode() not in answer.body
    assert_nowhere((NAME,), store, caplog)
    with store.transaction() as tx:
        assert tx.fetch("SELECT id FROM inbox") == []  # a refused message is not stored


def test_errors_of_personal_fields_never_quote_the_value(registry: ContractRegistry) -> None:
    """Where the messages are built: the codec's problems, the models' validation errors (their
    text too, which a traceback prints), and a value of an ordinary field still quoted."""
    original = sample("ccb/PersonSyncRequest")
    bad = original.replace(b"<country>USA</country>", f"<country>{COUNTRY * 4}</country>".encode())
    bad = bad.replace(b"<language>ENG</language>", b"<language>" + b"L" * 40 + b"</language>")
    with pytest.raises(ContractViolation) as caught:
        registry.decode(bad)
    problems = {p.xpath.rsplit("/", 1)[1]: p.message for p in caught.value.problems}
    assert problems["country"].startswith("*** has 44 characters")
    assert problems["language"].startswith("'LLLL")  # not personal: quoted, to be fixed
    assert COUNTRY not in str(caught.value)
    model = registry["ccb/PersonSyncRequest"].model
    _, message = registry.decode(original)
    data = message.model_dump()
    data["person"]["entity_name"] = f"{NAME} " * 15
    with pytest.raises(ValidationError) as refused:
        model.model_validate(data)
    assert NAME not in str(refused.value) and "***" in str(refused.value)


def test_status_withholds_the_value_and_unmask_shows_it_on_the_terminal(
    tmp_path: Path,
    registry: ContractRegistry,
    package: ModuleType,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "runtime.db"
    store = SqliteStore(str(path))
    store.migrate()
    world = Integration(store, registry, package, InProcessTransport())
    too_long = f"{NAME} " * 15
    world.people.change("0000000047", too_long)
    world.run()
    store.close()
    status = ("status", "--store", str(path), "--project-dir", str(REPO))
    assert run(lambda: app(list(status))) == 0
    out, err = capsys.readouterr()
    assert "person.entity_name: Value error, *** has 300" in out
    assert NAME not in out + err
    assert run(lambda: app([*status, "--unmask"])) == 0
    out, err = capsys.readouterr()
    assert f"unmasked: person.entity_name = '{NAME}" in " ".join(out.split())
    assert "personal data is shown" in err
    # the request's own page: withheld, unless unmasked
    show = ("show", "sync_request:1", "--store", str(path), "--project-dir", str(REPO))
    assert run(lambda: app(list(show))) == 0
    out, err = capsys.readouterr()
    assert "reason: message not built: person.entity_name: Value error, *** has 300" in " ".join(
        out.split()
    )
    assert NAME not in out + err and "unmasked:" not in out
    assert run(lambda: app([*show, "--unmask", "--format", "json"])) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["unmasked_reason"].startswith(f"person.entity_name = '{NAME}")
    assert err.count("personal data is shown") == 1

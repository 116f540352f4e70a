"""The runtime's commands: `monitor` (once, or workers until stopped), `resubmit` and `run`,
on a configuration whose CCB and MDM are the test systems of runtime_world."""

from __future__ import annotations

import functools
import json
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import pytest

from ccbmdm.cli import UNAVAILABLE, app, run
from ccbmdm.runtime.store import Store, open_store
from command_world import CCBMDM, environment, wait_for, write_config
from runtime_world import People
from support import REPO, pg_dsn, sample

REJECTED = "0000000013"  # runtime_world.mdm_system rejects this person


def ccbmdm(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(lambda: app([*args, "--project-dir", str(REPO)]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def states(store: Store) -> dict[str, str]:
    with store.transaction() as tx:
        return {r["pk"]: r["state"] for r in tx.fetch("SELECT pk, state FROM sync_request")}


def test_monitor_once_then_resubmit(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, store.dsn))
    people = People(store)
    for person in ("0000000011", "0000000012", REJECTED):
        people.change(person, f"Person,{person[-2:]}")
    code, out, err = ccbmdm(capsys, "monitor", "--once", "--config", config)
    assert code == 0
    assert "nothing more is due" in out
    lines = [json.loads(line) for line in err.splitlines()]  # logs on: JSON lines off a terminal
    assert [(line["event"], line["to_state"]) for line in lines if line["level"] == "ERROR"] == [
        ("lifecycle.moved", "ERROR")  # the request MDM rejected, and nothing else went wrong
    ]
    assert states(store) == {
        "0000000011": "SYNCHRONIZED",
        "0000000012": "SYNCHRONIZED",
        REJECTED: "ERROR",
    }
    with store.transaction() as tx:
        before = tx.fetch_one(
            "SELECT id, message_id FROM sync_request WHERE pk = :pk", {"pk": REJECTED}
        )
    assert before is not None
    code, out, _ = ccbmdm(capsys, "resubmit", str(before["id"]), "--config", config)
    assert (code, out) == (
        0,
        "resubmitted 1: 1 sent, 0 without difference (discarded), 0 in Error again\n",
    )
    with store.transaction() as tx:
        after = tx.fetch_one(
            "SELECT id, state, message_id FROM sync_request WHERE pk = :pk", {"pk": REJECTED}
        )
    assert after is not None
    assert (after["id"], after["state"]) == (before["id"], "AWAITING_ACK")  # same request ...
    assert after["message_id"] != before["message_id"]  # ... under a new message id
    # Pressed again before anything came back: nothing is in Error, nothing is sent.
    code, _, err = ccbmdm(capsys, "resubmit", "--all-errors", "--config", config)
    assert code == 1 and "nothing resubmitted" in err


def test_resubmit_needs_ids_or_all_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, str(tmp_path / "runtime.db")))
    code, _, err = ccbmdm(capsys, "resubmit", "--config", config)
    assert code == 2 and "--all-errors" in err
    code, _, err = ccbmdm(capsys, "resubmit", "1", "--all-errors", "--config", config)
    assert code == 2


def test_a_missing_configuration_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ccbmdm(capsys, "monitor", "--once", "--config", str(tmp_path / "nope.yaml"))
    assert code == 1 and "pass an existing --config FILE" in err and "Traceback" not in err


def test_a_system_that_cannot_be_loaded_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, str(tmp_path / "runtime.db"))
    config.write_text(
        config.read_text().replace("runtime_world:mdm_system", "runtime_world:nobody")
    )
    code, _, err = ccbmdm(capsys, "monitor", "--once", "--config", str(config))
    assert code == 1
    assert "nodes.mdm.system: cannot load runtime_world:nobody" in err


def test_monitor_with_two_workers_until_stopped(store: Store, tmp_path: Path) -> None:
    config = write_config(tmp_path, store.dsn)
    people = People(store)
    for index in range(200):
        people.change(f"{index + 20000:010d}", f"Person,{index}")
    log = tmp_path / "stderr.jsonl"  # a file: a pipe read only at the end would fill and stop it
    with log.open("w") as stderr:
        command = ["monitor", "--workers", "2", "--config", str(config), "--project-dir", str(REPO)]
        worker = subprocess.Popen(
            [CCBMDM, *command],
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        wait_for(lambda: set(states(store).values()) == {"SYNCHRONIZED"})
    finally:
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert worker.returncode == 0, lines
    assert "monitoring with 2 worker(s)" in out
    synchronized = [line for line in lines if line.get("to_state") == "SYNCHRONIZED"]
    assert len(synchronized) == 200  # each request's last move, logged by whichever worker
    assert [line for line in lines if line["level"] == "ERROR"] == []


def test_run_serves_the_bridge_and_stops_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listen = f'listen: "127.0.0.1:{port}", accept: {{ccb: {{user: ccb, password_env: TEST_CCB_PASSWORD}}}}'
    config = write_config(tmp_path, str(tmp_path / "runtime.db"), listen)
    server = subprocess.Popen(
        [CCBMDM, "run", "--config", str(config), "--project-dir", str(REPO)],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first == f"listening: bridge: http://127.0.0.1:{port}\n", first
        url = f"http://127.0.0.1:{port}/ccbmdm/v1/person-sync/request"
        body = sample("ccb/PersonSyncRequest")
        assert httpx.post(url, content=body).status_code == 401
        answer = httpx.post(url, content=body, auth=("ccb", "ccb-secret"))
        assert answer.status_code == 202, answer.text
        store = open_store(str(tmp_path / "runtime.db"))

        def acknowledged() -> bool:  # MDM applied it and the acknowledgement reached CCB
            with store.transaction() as tx:
                rows = tx.fetch("SELECT node, state FROM inbox ORDER BY id")
            return [(r["node"], r["state"]) for r in rows][-1:] == [("ccb", "PROCESSED")]

        wait_for(acknowledged)
        store.close()
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert out.endswith("stopped\n")


@pytest.mark.parametrize("workers", [1, 3])
def test_demo_runs_a_small_utility_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: int
) -> None:
    """With more workers (worker processes beside the demo's own) the outcome is the same."""
    code, out, err = ccbmdm(
        capsys,
        "demo",
        "--customers",
        "15",
        "--store",
        str(tmp_path / "demo.db"),
        "--workers",
        str(workers),
    )
    assert code == 0, err
    assert "ccbmdm demo: 15 customers" + (f", {workers} workers" if workers > 1 else "") in out
    # 15 x 6 entities, 4 bill cycles, and the exchange's meter, configuration and 2 histories
    assert "│ sync_request  │ SYNCHRONIZED                │ 98       │" in out
    # 15 batch requests and the rebill of the corrected segment
    assert "│ usage_request │ BILL_DETERMINANTS_PROCESSED │ 16       │" in out
    assert "│ bills completed   │ 16    │" in out  # 15 cycle bills and 1 off-cycle bill
    assert "│ segments canceled │ 1     │" in out  # the one with the corrected read
    assert "rate check: SA " in out
    assert "no request in Error" in out
    store = open_store(str(tmp_path / "demo.db"))
    with store.transaction() as tx:
        row = tx.fetch_one("SELECT count(*) AS n FROM mdm_contact")
    store.close()
    assert row is not None and row["n"] == 15  # MDM has a contact per customer


def test_the_demo_says_where_its_store_is_and_the_command_it_prints_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a newcomer runs it: in a project of their own, from its folder, no option."""
    project = tmp_path / "project"
    assert run(lambda: app(["init", str(project)])) == 0
    monkeypatch.chdir(project)
    assert run(lambda: app(["demo", "--customers", "2"])) == 0
    printed = capsys.readouterr().out.splitlines()[-1].strip()
    assert printed == f"ccbmdm status --store {project / 'target' / 'demo.db'}"
    code = run(lambda: app(printed.split()[1:]))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "SYNCHRONIZED" in captured.out


def demo_with_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], customers: int
) -> tuple[Path, Path]:
    """A small demo's store, and a configuration naming it with both simulators."""
    store_path = tmp_path / "demo.db"
    assert ccbmdm(capsys, "demo", "--customers", str(customers), "--store", str(store_path))[0] == 0
    config = tmp_path / "runtime.yaml"
    config.write_text(
        f"""\
store: "{store_path}"
nodes:
  ccb: {{system: "ccbmdm.runtime.sim.ccb.simulator:connect"}}
  bridge: {{}}
  mdm: {{system: "ccbmdm.runtime.sim.mdm.simulator:connect"}}
"""
    )
    return store_path, config


def test_sim_mdm_correct_read_and_import_espi(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store_path, config = demo_with_config(tmp_path, capsys, customers=4)
    store = open_store(str(store_path))
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT start_date_time, sa_id FROM ccb_bill_segment WHERE status = 'FROZEN' AND reason IS NULL ORDER BY id"
        )
        assert row is not None
        sa = tx.fetch_one(
            "SELECT data FROM ccb_entity WHERE mo = 'SA' AND pk = :sa", {"sa": row["sa_id"]}
        )
    store.close()
    assert sa is not None
    sp_id = json.loads(sa["data"])["sp_links"][0]["sp_id"]
    month = datetime.fromisoformat(row["start_date_time"])
    at = (month + timedelta(days=3, hours=12)).isoformat()
    code, out, err = ccbmdm(
        capsys,
        "sim",
        "mdm",
        "correct-read",
        "--sp",
        sp_id,
        "--at",
        at,
        "--value",
        "0.777",
        "--config",
        str(config),
    )
    assert code == 0, err
    assert "-> 0.777; 1 usage transaction(s) notified to CCB" in out
    feed = REPO / "tests" / "data" / "greenbutton" / "TestGBDataHourlyNineDaysBinnedDaily.xml"
    code, _, err = ccbmdm(
        capsys, "sim", "mdm", "import-espi", str(feed), "--sp", sp_id, "--config", str(config)
    )
    assert code == 1 and "Traceback" not in err
    # an hourly feed does not fit a 15-minute channel
    assert "the feed has 3600-second intervals" in err and "900-second ones" in err
    code, _, err = ccbmdm(
        capsys,
        "sim",
        "mdm",
        "correct-read",
        "--sp",
        sp_id,
        "--at",
        "yesterday",
        "--value",
        "1",
        "--config",
        str(config),
    )
    assert code == 2 and "ISO date-time" in err


def test_a_simulator_with_bad_delivery_settings_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "delivery.yaml"
    settings.write_text("delivery: {lease_s: 0}\n")
    code, _, err = ccbmdm(
        capsys, "sim", "ccb", "--store", str(tmp_path / "ccb.db"), "--delivery", str(settings)
    )
    assert code == 1 and "Traceback" not in err
    assert "delivery.yaml: delivery.lease_s: Input should be greater than 0" in " ".join(
        err.split()
    )


def test_navigation_links_and_the_pages_behind_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ccbmdm.runtime.sim.ccb.simulator import page_fields as ccb_fields
    from ccbmdm.runtime.sim.mdm.simulator import page_fields as mdm_fields
    from ccbmdm.runtime.sim.pages import page

    store_path, config = demo_with_config(tmp_path, capsys, customers=3)
    store = open_store(str(store_path))
    with store.transaction() as tx:
        sa = tx.fetch_one("SELECT pk, data FROM ccb_entity WHERE mo = 'SA' ORDER BY pk")
        usage = tx.fetch_one("SELECT id FROM usage_request ORDER BY id")
    assert sa is not None and usage is not None
    data = json.loads(sa["data"])
    links = {}
    for kind, entity in (
        ("sa", sa["pk"]),
        ("sa-360", sa["pk"]),
        ("person", None),
        ("sp", data["sp_links"][0]["sp_id"]),
        ("usage-request", str(usage["id"])),
    ):
        if kind == "person":
            with store.transaction() as tx:
                account = tx.fetch_one(
                    "SELECT person_id FROM ccb_account WHERE account_id = :a",
                    {"a": data["account_id"]},
                )
            assert account is not None
            entity = account["person_id"]
        code, out, err = ccbmdm(capsys, "link", "ccb", kind, str(entity), "--config", str(config))
        assert code == 0, err
        links[kind] = out.strip()
    assert links["sa"].startswith("http://127.0.0.1:8402/mdm/usage-subscription/")
    assert links["sa-360"].startswith("http://127.0.0.1:8402/mdm/360/")
    assert links["person"].startswith("http://127.0.0.1:8402/mdm/contact/")
    assert links["usage-request"].startswith("http://127.0.0.1:8402/mdm/usage-transaction/")
    # Every MDM page exists, and names the entity; from MDM's SP back to CCB's account.
    for url in links.values():
        html = page(store, "mdm", url.removeprefix("http://127.0.0.1:8402"), mdm_fields)
        assert html is not None and "<table>" in html
    sp_production = links["sp"].rsplit("/", 1)[1]
    code, out, _ = ccbmdm(
        capsys, "link", "mdm", "service-point", sp_production, "--config", str(config)
    )
    assert (code, out.strip()) == (0, f"http://127.0.0.1:8401/ccb/account/{data['account_id']}")
    account_page = page(
        store, "ccb", f"/ccb/account/{data['account_id']}", functools.partial(ccb_fields, store)
    )
    assert account_page is not None and data["account_id"] in account_page
    store.close()
    code, _, err = ccbmdm(capsys, "link", "ccb", "sa", "0000000000", "--config", str(config))
    assert code == 1 and "MDM does not know CCB sa 0000000000" in err


def test_every_page_of_both_simulators_needs_the_node_credential(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page shows a person's name, address and phone: without the node's credential (the
    bridge's token, or an operator's Basic password a browser sends) it is 401 with a challenge
    and nothing of the entity; with it, 200."""
    from contextlib import ExitStack

    from ccbmdm.codegen.project import Project
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.config import (
        REFERENCE_SYSTEMS,
        CredentialSetting,
        NodeSetting,
        RuntimeConfig,
    )
    from loopback import free_port

    store_path, _ = demo_with_config(tmp_path, capsys, customers=2)
    monkeypatch.setenv("T_BRIDGE", "bridge-page-token")
    monkeypatch.setenv("P_OPERATOR", "operator-password")
    ports = {"ccb": free_port(), "mdm": free_port()}

    def simulator(name: str) -> NodeSetting:
        return NodeSetting(
            system=REFERENCE_SYSTEMS[name],
            listen=f"127.0.0.1:{ports[name]}",
            accept={"bridge": CredentialSetting(token_env="T_BRIDGE")},
            viewers={"operator": CredentialSetting(user="operator", password_env="P_OPERATOR")},
        )

    config = RuntimeConfig(
        store=str(store_path),
        nodes={"ccb": simulator("ccb"), "bridge": NodeSetting(), "mdm": simulator("mdm")},
    )
    store = open_store(str(store_path))
    with store.transaction() as tx:
        person = tx.fetch_one("SELECT pk, data FROM ccb_entity WHERE mo = 'PERSON' ORDER BY pk")
        ids = {
            kind: str(tx.fetch(sql)[0]["id"])
            for kind, sql in {
                "/ccb/account": "SELECT account_id AS id FROM ccb_account ORDER BY account_id",
                "/ccb/person": "SELECT pk AS id FROM ccb_entity WHERE mo = 'PERSON' ORDER BY pk",
                "/ccb/sa": "SELECT pk AS id FROM ccb_entity WHERE mo = 'SA' ORDER BY pk",
                "/ccb/sp": "SELECT pk AS id FROM ccb_entity WHERE mo = 'SP' ORDER BY pk",
                "/ccb/meter": "SELECT pk AS id FROM ccb_entity WHERE mo = 'METER' ORDER BY pk",
                "/mdm/contact": "SELECT id FROM mdm_contact ORDER BY id",
                "/mdm/usage-subscription": "SELECT id FROM mdm_usage_subscription ORDER BY id",
                "/mdm/360": "SELECT id FROM mdm_usage_subscription ORDER BY id",
                "/mdm/service-point": "SELECT id FROM mdm_service_point ORDER BY id",
                "/mdm/device": "SELECT id FROM mdm_device ORDER BY id",
                "/mdm/usage-transaction": "SELECT ut_id AS id FROM mdm_usage_transaction ORDER BY id",
            }.items()
        }
    store.close()
    assert person is not None
    name = json.loads(person["data"])["entity_name"]
    refused = {
        "none": {},
        "wrong token": {"authorization": "Bearer not-the-token"},
        "wrong password": {"authorization": _basic("operator", "guess")},
    }
    accepted = {
        "the bridge's token": {"authorization": "Bearer bridge-page-token"},
        "the operator (Basic)": {"authorization": _basic("operator", "operator-password")},
    }
    runtime = Runtime(config, Project.load(REPO))
    try:
        with ExitStack() as stack, httpx.Client() as client:
            runtime.serve(stack)
            for kind, entity in ids.items():
                url = f"http://127.0.0.1:{ports[kind.split('/')[1]]}{kind}/{entity}"
                for case, headers in refused.items():
                    answer = client.get(url, headers=headers)
                    assert answer.status_code == 401, (url, case)
                    challenges = answer.headers.get_list("www-authenticate")
                    assert any(c.startswith("Basic ") for c in challenges), (url, challenges)
                    assert entity not in answer.text and name not in answer.text
                for case, headers in accepted.items():
                    answer = client.get(url, headers=headers)
                    assert answer.status_code == 200, (url, case, answer.text)
                    assert entity in answer.text
            person_page = f"http://127.0.0.1:{ports['ccb']}/ccb/person/{person['pk']}"
            assert name in client.get(person_page, headers=accepted["the bridge's token"]).text
    finally:
        runtime.close()


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_demo_on_postgresql_in_a_schema_of_its_own(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The demo in a schema of its own, given a DSN with a password: the password is in no
    output, no log line and nothing the demo stored."""
    import psycopg

    dsn, secret = with_password(pg_dsn())
    code, out, err = ccbmdm(capsys, "demo", "--customers", "6", "--store", dsn)
    named = re.search(r"ccbmdm_demo_\d+", err)
    schema = named[0] if named else ""
    try:
        assert code == 0, err
        assert schema.startswith("ccbmdm_demo_")
        assert "no request in Error" in out and "│ bills completed   │ 7     │" in out
        assert secret not in out + err + caplog.text
        separator = "&" if "?" in dsn else "?"
        demo = open_store(f"{dsn}{separator}options=-csearch_path%3D{schema}")
        assert secret not in stored_text(demo)
        demo.close()
    finally:
        if schema:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


# --- a DSN's password is never shown ---------------------------------------------------------

SECRET = "Sw0rdf1sh-not-for-logs"


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound but not listening while the test runs: a connection is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def with_password(dsn: str) -> tuple[str, str]:
    """The DSN with a password, and that password: its own if it has one (the server checks
    it), else ``SECRET`` (a server that trusts the test's user ignores it)."""
    if not dsn.startswith(("postgresql://", "postgres://")):  # the key/value form
        found = re.search(r"\bpassword\s*=\s*(\S+)", dsn)
        return (dsn, found[1]) if found else (f"{dsn} password={SECRET}", SECRET)
    parts = urlsplit(dsn)
    if parts.password:
        return dsn, unquote(parts.password)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{SECRET}@{host}")), SECRET


UNREACHABLE_COMMANDS = {
    "status": ["status", "--store", "{dsn}"],
    "discard": ["discard", "1", "--reason", "obsolete", "--store", "{dsn}"],
    "monitor --once": ["monitor", "--once", "--config", "{config}"],
    "monitor": ["monitor", "--config", "{config}"],
    "resubmit": ["resubmit", "--all-errors", "--config", "{config}"],
    "run": ["run", "--config", "{config}"],
    "demo --store": ["demo", "--customers", "1", "--store", "{dsn}"],
}


@pytest.mark.parametrize("command", UNREACHABLE_COMMANDS)
def test_an_unreachable_database_is_a_clear_error_without_its_password(
    command: str,
    refused_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each command that takes a store, given a DSN with a password where nothing listens (the
    runtime file's store from an environment variable): what failed, where, with the password
    redacted, what to do, and the exit code of an unavailable service, not an internal error."""
    dsn = f"postgresql://ccbmdm:{SECRET}@127.0.0.1:{refused_port}/integration"
    monkeypatch.setenv("TEST_STORE_DSN", dsn)
    config = write_config(tmp_path, "${TEST_STORE_DSN}")
    args = [a.format(dsn=dsn, config=config) for a in UNREACHABLE_COMMANDS[command]]
    code, out, err = ccbmdm(capsys, *args)
    where = f"PostgreSQL at postgresql://ccbmdm:***@127.0.0.1:{refused_port}/integration"
    assert code == UNAVAILABLE, err
    assert f"error: cannot connect to {where} (" in err
    assert "check that the server runs there" in err
    assert SECRET not in out + err + caplog.text
    assert "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("dsn", "code"),
    [
        (
            "host=127.0.0.1 port={port} user=ccbmdm password={secret} dbname=integration",
            UNAVAILABLE,
        ),
        ("host=127.0.0.1 port={port} password='{secret} with spaces' dbname=db", UNAVAILABLE),
        ("postgresql://127.0.0.1:{port}/integration?user=ccbmdm&password={secret}", UNAVAILABLE),
        ("postgresql://ccbmdm:{secret}@[::1/integration", 1),  # libpq quotes what it cannot parse
    ],
)
def test_every_form_of_a_dsn_password_is_redacted(
    dsn: str, code: int, refused_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    given = dsn.format(port=refused_port, secret=SECRET)
    exit_code, out, err = ccbmdm(capsys, "status", "--store", given)
    assert exit_code == code and err.startswith("error: ") and "***" in err
    assert SECRET not in out + err


def test_a_store_variable_that_is_not_set_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_STORE_DSN", raising=False)
    config = write_config(tmp_path, "${TEST_STORE_DSN}")
    code, _, err = ccbmdm(capsys, "monitor", "--once", "--config", str(config))
    assert code == 1
    assert "store: the environment variable TEST_STORE_DSN is not set" in err
    assert not list(tmp_path.glob("$*"))  # no SQLite file named after the variable


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_commands_on_a_dsn_with_a_password_never_show_it(
    store: Store,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same commands on the real server, its DSN carrying a password: the password is in
    no output, no log line and nothing the store keeps (reasons included)."""
    dsn, secret = with_password(store.dsn)
    monkeypatch.setenv("TEST_STORE_DSN", dsn)
    config = str(write_config(tmp_path, "${TEST_STORE_DSN}"))
    people = People(store)
    for person in ("0000000011", REJECTED):
        people.change(person, f"Person,{person[-2:]}")
    shown = ""
    for args, expected in (
        (["monitor", "--once", "--config", config], 0),
        (["status", "--store", dsn], 0),
        (["resubmit", "--all-errors", "--config", config], 0),
        (["discard", "999999", "--reason", "obsolete", "--store", dsn], 1),
    ):
        code, out, err = ccbmdm(capsys, *args)
        assert code == expected, err
        shown += out + err
    assert "in ERROR" in shown  # status listed the rejected request with its reason
    assert secret not in shown + caplog.text
    assert secret not in stored_text(store)


def stored_text(store: Store) -> str:
    """Every row of every table of the store's schema, as text."""
    with store.transaction() as tx:
        tables = [
            r["table_name"]
            for r in tx.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        ]
        return "\n".join(
            str(row["t"])
            for table in tables
            for row in tx.fetch(f"SELECT t::text AS t FROM {table} t")
        )

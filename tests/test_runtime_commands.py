"""The runtime's commands: `monitor` (once, or workers until stopped), `resubmit` and `run`,
on a configuration whose CCB and MDM are the test systems of runtime_world."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ccbmdm.cli import app, run
from ccbmdm.runtime.store import Store, open_store
from command_world import CCBMDM, environment, wait_for, write_config
from runtime_world import People
from support import REPO, sample

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
    assert (code, err) == (0, "")
    assert "nothing more is due" in out
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
    worker = subprocess.Popen(
        [CCBMDM, "monitor", "--workers", "2", "--config", str(config), "--project-dir", str(REPO)],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: set(states(store).values()) == {"SYNCHRONIZED"})
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "monitoring with 2 worker(s)" in out


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


def test_demo_runs_a_small_utility_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ccbmdm(capsys, "demo", "--customers", "15", "--db", str(tmp_path / "demo.db"))
    assert code == 0, err
    assert "ccbmdm demo: 15 customers" in out
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


def test_demo_takes_one_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = ccbmdm(capsys, "demo", "--db", str(tmp_path / "d.db"), "--pg", "postgresql://x")
    assert code == 2 and "--db or --pg" in err


def demo_with_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], customers: int
) -> tuple[Path, Path]:
    """A small demo's store, and a configuration naming it with both simulators."""
    store_path = tmp_path / "demo.db"
    assert ccbmdm(capsys, "demo", "--customers", str(customers), "--db", str(store_path))[0] == 0
    config = tmp_path / "runtime.yaml"
    config.write_text(
        f"""\
store: "{store_path}"
nodes:
  ccb: {{system: "ccbmdm.runtime.sim.ccb:connect"}}
  bridge: {{}}
  mdm: {{system: "ccbmdm.runtime.sim.mdm:connect"}}
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


def test_navigation_links_and_the_pages_behind_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ccbmdm.runtime.sim.links import page

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
        html = page(store, "mdm", url.removeprefix("http://127.0.0.1:8402"))
        assert html is not None and "<table>" in html
    sp_production = links["sp"].rsplit("/", 1)[1]
    code, out, _ = ccbmdm(
        capsys, "link", "mdm", "service-point", sp_production, "--config", str(config)
    )
    assert (code, out.strip()) == (0, f"http://127.0.0.1:8401/ccb/account/{data['account_id']}")
    account_page = page(store, "ccb", f"/ccb/account/{data['account_id']}")
    assert account_page is not None and data["account_id"] in account_page
    store.close()
    code, _, err = ccbmdm(capsys, "link", "ccb", "sa", "0000000000", "--config", str(config))
    assert code == 1 and "MDM does not know CCB sa 0000000000" in err


def test_demo_on_postgresql_in_a_schema_of_its_own(capsys: pytest.CaptureFixture[str]) -> None:
    dsn = os.environ.get("CCBMDM_TEST_PG_DSN")
    if not dsn:
        pytest.skip("PostgreSQL store tests need CCBMDM_TEST_PG_DSN (CI sets it)")
    import psycopg

    code, out, err = ccbmdm(capsys, "demo", "--customers", "6", "--pg", dsn)
    schema = err.split("PostgreSQL schema ", 1)[1].split()[0] if "PostgreSQL schema " in err else ""
    try:
        assert code == 0, err
        assert schema.startswith("ccbmdm_demo_")
        assert "no request in Error" in out and "│ bills completed   │ 7     │" in out
    finally:
        if schema:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")

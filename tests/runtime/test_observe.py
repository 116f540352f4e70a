"""Where everything stands (runtime.observe, store.counts): the counts the store keeps as rows
move are those a scan of the tables gives, after the runtime's own moves and after any other
write; the oldest waiting rows and the rows in Error; `ccbmdm status --format json`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from ccbmdm.cli import app, run
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.observe import overview
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.counts import COUNTED, fold
from runtime_world import Integration
from support import REPO, pg_dsn, run_python


def scanned(store: Store) -> dict[tuple[str, str, str], int]:
    """The rows per lifecycle, node and state, counted the slow way: every table scanned."""
    found: dict[tuple[str, str, str], int] = {}
    with store.transaction() as tx:
        for counted in COUNTED:
            for row in tx.fetch(
                f"SELECT {counted.node} AS node, state, count(*) AS n FROM {counted.table} "
                "GROUP BY 1, 2"
            ):
                found[(counted.table, str(row["node"]), str(row["state"]))] = int(row["n"])
    return dict(sorted(found.items()))


@pytest.fixture
def world(store: Store, registry: ContractRegistry, package: ModuleType) -> Integration:
    """Two people synchronized, one rejected by MDM (in Error), one change still Pending."""
    world = Integration(store, registry, package, InProcessTransport(), reject={"0000000050"})
    for pk, name in (("0000000040", "Okafor,Ada"), ("0000000041", "Lund,Per")):
        world.people.change(pk, name)
    world.people.change("0000000050", "Rejected,Once")
    world.run()
    world.people.change("0000000042", "Waiting,Person")
    return world


def test_the_counts_are_those_of_the_tables_after_the_runtimes_moves(world: Integration) -> None:
    current = overview(world.store)
    assert current.rows() == scanned(world.store)
    rows = current.rows()
    assert rows[("sync_request", "", "SYNCHRONIZED")] == 2
    assert rows[("sync_request", "", "ERROR")] == 1
    assert rows[("sync_request", "", "PENDING")] == 1
    assert rows[("outbox", "ccb", "DELIVERED")] == 3  # each request sent once
    assert rows[("inbox", "mdm", "PROCESSED")] == 3
    assert current.in_error() == 1
    # entered: a retried message enters RETRY_WAIT again; here each delivery entered once
    delivered = [c for c in current.counts if c.lifecycle == "outbox" and c.state == "DELIVERED"]
    assert sum(c.entered for c in delivered) == sum(c.rows for c in delivered)


def test_the_counts_follow_any_write_a_bulk_update_and_a_delete_included(
    world: Integration,
) -> None:
    with world.store.transaction() as tx:
        tx.execute("UPDATE sync_request SET state = 'SUPERSEDED', due_at = NULL WHERE id <= 2")
        tx.execute("DELETE FROM inbox WHERE node = 'ccb'")
        tx.execute("UPDATE outbox SET due_at = NULL WHERE state = 'DELIVERED'")  # no move
    with world.store.transaction() as tx:
        tx.execute("UPDATE sync_request SET state = 'SYNCHRONIZED' WHERE id = 1")
    assert overview(world.store).rows() == scanned(world.store)
    rows = overview(world.store).rows()
    assert ("inbox", "ccb", "PROCESSED") not in rows  # no row left: not listed
    assert rows[("sync_request", "", "SUPERSEDED")] == 1
    superseded = [c for c in overview(world.store).counts if c.state == "SUPERSEDED"]
    assert [c.entered for c in superseded] == [2]  # two entered, one left again


def test_a_fold_keeps_the_counts_and_leaves_a_row_per_key(world: Integration) -> None:
    before = overview(world.store).counts
    fold(world.store)
    assert overview(world.store).counts == before
    with world.store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT count(*) AS n, count(DISTINCT lifecycle || node || flow || part || state) "
            "AS keys FROM state_count"
        )
    assert row["n"] == row["keys"]


def test_the_oldest_waiting_rows_and_every_kind_of_error(world: Integration) -> None:
    now = datetime.now(UTC)
    with world.store.transaction() as tx:
        tx.execute(
            """INSERT INTO outbox (node, partner, flow, part, message_id, state, due_at,
                 first_attempt_at, last_error)
               VALUES ('bridge', 'mdm', 'PERSON_SYNC', 'request', :id, 'RETRY_WAIT', :due,
                 :first, 'unreachable'),
                      ('bridge', 'mdm', 'PERSON_SYNC', 'request', :other, 'ERROR', NULL,
                 :first, 'attempts used up')""",
            {
                "id": "6f2b1d3c-0000-4000-8000-000000000001",
                "other": "6f2b1d3c-0000-4000-8000-000000000002",
                "due": tx.instant(now + timedelta(hours=1)),
                "first": tx.instant(now - timedelta(minutes=30)),
            },
        )
        tx.execute(
            """INSERT INTO mdm_sync_request (flow, mo, external_key, message_id, state, reason,
                 created_at)
               VALUES ('PERSON_SYNC', 'CONTACT', 'C-9', :id, 'ERROR', 'no such contact', :at)""",
            {"id": "6f2b1d3c-0000-4000-8000-000000000003", "at": tx.instant(now)},
        )
    current = overview(world.store)
    waiting = {(o.lifecycle, o.node, o.waiting): o.age_s(current.taken_at) for o in current.oldest}
    assert 29 * 60 < waiting[("outbox", "bridge", "retrying")] < 60 * 60
    assert 0 <= waiting[("sync_request", "", "pending")] < 10 * 60
    assert {(e.kind, e.key, e.reason) for e in current.errors} == {
        ("sync_request", "PERSON 0000000050", "11001/16021 rejected"),
        ("mdm_sync_request", "PERSON_SYNC CONTACT C-9", "no such contact"),
        ("outbox", "bridge->mdm PERSON_SYNC request", "attempts used up"),
    }
    assert current.in_error() == 3  # the rejected request's message was delivered
    assert len(overview(world.store, errors_listed=0).errors) == 0


def test_status_as_json(world: Integration, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        lambda: app(
            ["status", "--store", world.store.dsn, "--format", "json", "--project-dir", str(REPO)]
        )
    )
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {"taken_at", "counts", "oldest", "errors", "errors_listed_per_lifecycle"}
    assert {"lifecycle": "sync_request", "node": "", "state": "ERROR", "rows": 1} in shown["counts"]
    assert {"lifecycle": "outbox", "node": "ccb", "state": "DELIVERED", "rows": 3} in shown[
        "counts"
    ]
    (pending,) = shown["oldest"]
    assert set(pending) == {"lifecycle", "node", "waiting", "since", "age_s"}
    assert (pending["lifecycle"], pending["waiting"]) == ("sync_request", "pending")
    assert shown["errors"] == [
        {
            "kind": "sync_request",
            "id": 3,
            "key": "PERSON 0000000050",
            "reason": "11001/16021 rejected",
            "retrying": False,
        }
    ]
    datetime.fromisoformat(shown["taken_at"])


def test_status_as_text_lists_states_waits_and_errors(
    world: Integration, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(lambda: app(["status", "--store", world.store.dsn, "--project-dir", str(REPO)]))
    assert code == 0
    shown = capsys.readouterr().out
    assert "SYNCHRONIZED" in shown and "oldest pending: sync_request" in shown
    assert "1 in ERROR:" in shown
    assert "sync_request 3 PERSON 0000000050: 11001/16021 rejected" in shown


def test_the_operator_benchmark_runs_on_a_small_store() -> None:
    """The benchmark's quick mode: its store built, the three measured (no time asserted)."""
    done = run_python(
        str(REPO / "benchmarks" / "bench_operator.py"), "--quick", "--pg", pg_dsn(), cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    assert "store: 2,000 sync requests, 8,000 outbox rows, 8,000 inbox rows" in done.stdout
    for measured in (
        "status (function)",
        "status --format json (command)",
        "status --format json (a process, start-up included)",
        "GET /metrics",
    ):
        assert f"{measured}: " in done.stdout, done.stdout

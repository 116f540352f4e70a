"""Crashes and leases (docs/reliability.md R1, R2, R3, O1): worker processes are killed, crash at
each commit boundary, or freeze while holding a lease; afterwards nothing committed is lost,
nothing is applied twice, and each entity's versions reach MDM in order.

Workers are spawned processes on the test's store; the checker reads what they left behind.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from multiprocessing.context import SpawnContext
from pathlib import Path
from types import ModuleType

import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.store import Store
from reliability_world import (
    BOUNDARIES,
    CRASH_SETTINGS,
    CRASHED,
    SETTINGS,
    ChangePlan,
    Cluster,
    CrashPlan,
    FaultSchedule,
    Flag,
    SavePlan,
    Source,
    Verdict,
    ZombieSpec,
    build_world,
    check,
    hot_changes,
    install,
    more_stores,
    quiesce,
    quiet,
    random_changes,
    run_changer,
    run_crash,
    run_saver,
    run_until,
    run_zombie,
    running,
)


@pytest.fixture
def spawn() -> SpawnContext:
    return multiprocessing.get_context("spawn")


def workers_for(store: Store) -> int:
    """4 workers on PostgreSQL; SQLite has one writer at a time, so 3 processes."""
    return 4 if store.dialect == "postgres" else 3


def run_under_kills(
    store: Store,
    spawn: SpawnContext,
    plan: ChangePlan | SavePlan,
    kills: int,
    seed: int,
    logs: Path,
    write_budget_s: float | None = None,
) -> tuple[Verdict, Cluster]:
    """Workers and a changer (or a saver) run while workers are killed; then quiescence and
    the checker."""
    install(store)
    cluster = Cluster(spawn, store.dsn, workers_for(store), logs, write_budget_s)
    schedule = FaultSchedule(kills, seed)
    with running(cluster):
        cluster.start_all()
        source = run_changer if isinstance(plan, ChangePlan) else run_saver
        changer = spawn.Process(target=source, args=(plan,), daemon=True)
        changer.start()
        schedule.run(cluster, store, changer)
        quiesce(store, cluster, schedule.samples)
    return check(store, schedule.samples), cluster


def recovered(store: Store) -> int:
    """Leases that expired with a killed holder and were taken back: outbox rows rescued and
    inbox rows claimed again."""
    with store.transaction() as tx:
        rows = tx.fetch(
            """SELECT count(*) AS n FROM history WHERE tbl = 'outbox'
                 AND last_error LIKE 'deadline passed%' AND old_state = 'SENDING'
               UNION ALL SELECT count(*) FROM inbox WHERE attempt > 1"""
        )
    return sum(int(row["n"]) for row in rows)


@pytest.mark.slow
def test_r1_killed_workers_lose_nothing_and_apply_everything_once(
    store: Store, spawn: SpawnContext, tmp_path: Path
) -> None:
    """R1: a random worker is SIGKILLed mid-batch every 1-3 s and restarts 0-2 s later, while
    a changer commits changes to a few hundred entities."""
    plan = ChangePlan(store.dsn, random_changes(random.Random(1), 300, 2000), 14.0)
    verdict, cluster = run_under_kills(store, spawn, plan, kills=10, seed=11, logs=tmp_path)
    assert verdict.violations() == {}, verdict.details
    assert cluster.kills == 10
    assert verdict.raw_redeliveries <= cluster.kills * SETTINGS.batch
    assert recovered(store) > 0  # the kills did strand leases, and they were taken back


@pytest.mark.slow
def test_o1_hot_entities_reach_mdm_in_version_order_under_kills(
    store: Store, spawn: SpawnContext, tmp_path: Path
) -> None:
    """O1: hot entities changed again and again, in sequence, under the R1 fault schedule:
    per key the applied entityVersion never decreases, a skipped version was coalesced into
    the next one sent (or discarded), and each key ends at its last version."""
    keys, rounds = 100, 20
    plan = ChangePlan(store.dsn, hot_changes(keys, rounds), 8.0)
    verdict, _ = run_under_kills(store, spawn, plan, kills=5, seed=5, logs=tmp_path)
    assert verdict.violations() == {}, verdict.details
    with store.transaction() as tx:
        versions = {int(r["version"]) for r in tx.fetch("SELECT version FROM mdm_contact")}
        (row,) = tx.fetch("SELECT count(*) AS n FROM mdm_contact")
    assert (int(row["n"]), versions) == (keys, {rounds})


@pytest.mark.slow
def test_source_saves_never_fail_while_killed_workers_recover(
    store: Store, spawn: SpawnContext, tmp_path: Path
) -> None:
    """A source saving every few milliseconds while workers are SIGKILLed and restarted at random
    moments, each restarted worker recovering what the killed one held: no save fails, and
    every saved change is captured and reaches MDM. On SQLite the saves give a worker's
    transaction little time (a busy timeout of 1 s, a write budget of 50 ms): workers that
    commit and begin again must not keep the write lock from a waiting save."""
    report = tmp_path / "saves.json"
    plan = SavePlan(store.dsn, keys=200, duration_s=12.0, report=str(report), busy_timeout_ms=1000)
    verdict, cluster = run_under_kills(
        store, spawn, plan, kills=6, seed=12, logs=tmp_path, write_budget_s=0.05
    )
    outcome = json.loads(report.read_text())
    assert outcome["failures"] == [], f"{len(outcome['failures'])} saves failed"
    assert outcome["saves"] >= 100  # the saves went on throughout the kills
    assert verdict.violations() == {}, verdict.details
    assert cluster.kills == 6


SEEDS = 3  # seeded runs per boundary, side by side, each on a store of its own


def sightings(store: Store, receiver: str, message_id: str) -> int:
    """How often the message reached ``receiver``."""
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT count(*) AS n FROM seen WHERE receiver = :receiver AND message_id = :id",
            {"receiver": receiver, "id": message_id},
        )
    return int(row["n"])


def applied_and_ended(store: Store, message_id: str) -> tuple[int, str | None]:
    """How often MDM applied the message, and the state its sync request ended in."""
    with store.transaction() as tx:
        (applied,) = tx.fetch(
            "SELECT count(*) AS n FROM applied WHERE message_id = :id", {"id": message_id}
        )
        request = tx.fetch_one(
            "SELECT state FROM sync_request WHERE CAST(message_id AS text) = :id",
            {"id": message_id},
        )
    return int(applied["n"]), None if request is None else str(request["state"])


def processings(store: Store, node: str, message_id: str) -> tuple[str, int]:
    """The state of ``node``'s inbox row for the message, and how often it was taken up."""
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT state, attempt FROM inbox WHERE node = :node AND CAST(message_id AS text) = :id",
            {"node": node, "id": message_id},
        )
    return str(row["state"]), int(row["attempt"])


@pytest.mark.slow
@pytest.mark.parametrize("boundary", list(BOUNDARIES))
def test_r2_a_crash_after_each_commit_boundary_is_recovered(
    store: Store,
    spawn: SpawnContext,
    registry: ContractRegistry,
    package: ModuleType,
    tmp_path: Path,
    boundary: str,
) -> None:
    """R2: a worker process dies right after the boundary (seeded: which changes, which
    passage); another worker then recovers everything. The checker finds nothing wrong; a
    message whose send or inbox commit preceded the crash reaches MDM twice, is applied once,
    and its request ends Synchronized."""
    install(store)
    with more_stores(store, SEEDS - 1, tmp_path) as others:
        stores = [store, *others]
        reports = [tmp_path / f"crash-{seed}.json" for seed in range(SEEDS)]
        crashes = [
            spawn.Process(
                target=run_crash,
                args=(CrashPlan(s.dsn, boundary, seed, str(reports[seed])),),
                daemon=True,
            )
            for seed, s in enumerate(stores)
        ]
        for process in crashes:
            process.start()
        for process in crashes:
            process.join(60)
        assert [p.exitcode for p in crashes] == [CRASHED] * SEEDS, BOUNDARIES[boundary]
        for seed, crashed in enumerate(stores):
            world = build_world(crashed, registry, package, settings=CRASH_SETTINGS)
            run_until(world, lambda s=crashed: quiet(s), timeout_s=30)  # type: ignore[misc]
            verdict = check(crashed)
            assert verdict.violations() == {}, (seed, verdict.details)
            with crashed.transaction() as tx:
                states = {r["state"] for r in tx.fetch("SELECT state FROM sync_request")}
            assert states <= {"SYNCHRONIZED", "DISCARDED"}, (seed, states)
            in_hand = json.loads(reports[seed].read_text())["ids"]
            for message_id in in_hand if boundary in ("send", "receive") else ():
                assert sightings(crashed, "mdm", message_id) == 2, seed
                assert applied_and_ended(crashed, message_id) == (1, "SYNCHRONIZED"), seed
            for message_id in in_hand if boundary == "reply" else ():
                assert sightings(crashed, "ccb", message_id) == 2, seed
                assert processings(crashed, "ccb", message_id) == ("PROCESSED", 1), seed


def stopped(pid: int) -> bool:
    """Whether the process is stopped by a signal (state T in /proc)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


def wait_for(condition: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_r3_a_frozen_lease_holder_changes_nothing_when_it_wakes(
    store: Store,
    spawn: SpawnContext,
    registry: ContractRegistry,
    package: ModuleType,
    tmp_path: Path,
) -> None:
    """R3: a worker is SIGSTOPped while it holds the lease of a batch it is about to send;
    past the lease, another worker rescues and finishes everything; then SIGCONT. Its
    transitions touch no row, its late send is applied once (as a duplicate), the live worker
    set every final state, and the zombie logs "lease lost"."""
    install(store)
    source = Source(store)
    keys = [f"{k:010d}" for k in range(1, 6)]
    for key in keys:
        source.change(key, "Moreau,Ada")
    spec = ZombieSpec(
        store.dsn, Flag(spawn), Flag(spawn), Flag(spawn), str(tmp_path / "zombie.log")
    )
    zombie = spawn.Process(target=run_zombie, args=(spec,), daemon=True)
    zombie.start()
    try:
        assert spec.posting.wait(60), "the zombie never came to send"
        assert zombie.pid is not None
        os.kill(zombie.pid, signal.SIGSTOP)
        wait_for(lambda: stopped(zombie.pid))
        spec.go.set()  # it goes on only once continued
        with store.transaction() as tx:
            held = tx.fetch(
                "SELECT id, message_id, lease_token FROM outbox WHERE node = 'ccb' AND state = 'SENDING'"
            )
        assert len(held) == len(keys)
        zombie_tokens = {str(r["lease_token"]) for r in held}

        live = build_world(store, registry, package)
        run_until(live, lambda: quiet(store), timeout_s=60)  # rescues once the lease is past

        os.kill(zombie.pid, signal.SIGCONT)
        log = Path(spec.log_path)
        wait_for(lambda: log.exists() and log.read_text().count("lease lost: ") == len(keys))
    finally:
        spec.stop.set()
        if zombie.pid is not None:
            os.kill(zombie.pid, signal.SIGCONT)
        zombie.join(30)
    assert zombie.exitcode == 0

    verdict = check(store)
    assert verdict.violations() == {}, verdict.details
    with store.transaction() as tx:
        by_zombie = tx.fetch(
            "SELECT state, last_error FROM history WHERE tbl = 'outbox' AND old_lease_token IN ("
            + ", ".join(f"'{t}'" for t in zombie_tokens)
            + ")"
        )
        finals = tx.fetch(
            """SELECT h.row_id, h.old_lease_token FROM history h WHERE h.tbl = 'outbox'
                 AND h.state = 'DELIVERED' AND h.node = 'ccb'"""
        )
        states = {r["state"] for r in tx.fetch("SELECT state FROM sync_request")}
    # the only transition ever fenced by a zombie token is the live worker's rescue of it
    assert [(r["state"], str(r["last_error"])[:15]) for r in by_zombie] == [
        ("RETRY_WAIT", "deadline passed")
    ] * len(keys)
    assert {int(r["row_id"]) for r in finals} == {int(r["id"]) for r in held}
    assert not {str(r["old_lease_token"]) for r in finals} & zombie_tokens
    assert states == {"SYNCHRONIZED"}
    for row in held:  # the zombie's late send reached the bridge again; MDM applied it once
        assert sightings(store, "bridge", str(row["message_id"])) == 2
        assert applied_and_ended(store, str(row["message_id"])) == (1, "SYNCHRONIZED")

"""Many workers, no faults: every message is claimed exactly once (docs/reliability.md P1, S1).

Workers are separate processes, each with its own connection, as monitor workers on one or
several machines would be.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest

from ccbmdm.runtime.delivery import DeliverySettings, Outbox, new_message_id
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.sqlite import SqliteStore
from runtime_world import claim_all

MESSAGES = 4000


def fill(store: Store) -> None:
    outbox = Outbox(store, "ccb", DeliverySettings())
    with store.transaction() as tx:
        for _ in range(MESSAGES):
            outbox.enqueue(tx, "bridge", "PERSON_SYNC", "request", new_message_id(), b"<m/>")


@pytest.mark.parametrize("workers", [2, 4])
def test_every_message_is_claimed_exactly_once(store: Store, workers: int) -> None:
    fill(store)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        results = pool.map(claim_all, [store.dsn] * workers)
    claimed = [i for result in results for i in result]
    assert len(claimed) == MESSAGES
    assert len(set(claimed)) == MESSAGES  # nothing claimed twice
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT count(*) AS n, max(attempt) AS top, min(attempt) AS low FROM outbox"
        )
    assert (row["n"], row["top"], row["low"]) == (MESSAGES, 1, 1)  # P1: attempt = 1 everywhere


def test_sqlite_processes_never_see_busy(tmp_path: Path) -> None:
    """S1: with BEGIN IMMEDIATE and a busy timeout, no SQLITE_BUSY reaches a caller."""
    store = SqliteStore(str(tmp_path / "s1.db"))
    store.migrate()
    fill(store)
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.map(claim_all, [str(tmp_path / "s1.db")] * 4)  # any exception fails the test
    assert sorted(i for result in results for i in result) == list(range(1, MESSAGES + 1))
    assert os.path.exists(tmp_path / "s1.db-wal")

"""The demo refreshes PostgreSQL's planner statistics after its bulk loads (runtime.sim.demo):
without them the sync monitor's claim read every Pending request for each batch."""

from __future__ import annotations

from ccbmdm.runtime.sim.demo import refresh_statistics
from ccbmdm.runtime.store import Store

ROWS = 300


def test_after_a_bulk_load_the_planner_knows_the_rows(store: Store) -> None:
    with store.transaction() as tx:
        tx.execute("CREATE TABLE loaded (n integer NOT NULL)")
        tx.execute_many("INSERT INTO loaded (n) VALUES (:n)", [{"n": n} for n in range(ROWS)])
    refresh_statistics(store)
    with store.transaction() as tx:
        if store.dialect == "postgres":
            row = tx.fetch_one("SELECT reltuples FROM pg_class WHERE oid = to_regclass('loaded')")
            assert row is not None and int(row["reltuples"]) == ROWS
        else:  # SQLite's claims name their index: no statistics are gathered
            assert tx.fetch("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'") == []

"""The demo refreshes PostgreSQL's planner statistics after its bulk loads and, while a phase
drains, does autovacuum's work on the tables changed past its thresholds (runtime.sim.demo):
without statistics the sync monitor's claim read every Pending request for each batch, and a
worker's prepared statements kept the whole-table reads planned when MDM's tables were empty;
without vacuuming, claims walked the dead entries of every request that had moved on."""

from __future__ import annotations

import threading
import time

import pytest

from ccbmdm.runtime.sim import demo
from ccbmdm.runtime.sim.demo import _Upkeep, refresh_statistics, vacuum_dead
from ccbmdm.runtime.store import Store, StoreError, Transaction
from ccbmdm.runtime.store.postgres import PostgresStore

ROWS = 300


def _load(store: Store, table: str, rows: int) -> None:
    with store.transaction() as tx:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (n integer NOT NULL)")
        tx.execute_many(f"INSERT INTO {table} (n) VALUES (:n)", [{"n": n} for n in range(rows)])
    if store.dialect == "postgres":
        _flush_counts(store)


def _flush_counts(store: Store) -> None:
    """The counts of changes made so far reach the statistics views now."""
    with store.transaction() as tx:
        tx.fetch("SELECT pg_stat_force_next_flush()")


def _analysed_rows(tx: Transaction, table: str) -> int:
    row = tx.fetch_one(f"SELECT reltuples FROM pg_class WHERE oid = to_regclass('{table}')")
    assert row is not None
    return int(row["reltuples"])


def test_after_a_bulk_load_the_planner_knows_the_rows(store: Store) -> None:
    _load(store, "loaded", ROWS)
    refresh_statistics(store)
    with store.transaction() as tx:
        if store.dialect == "postgres":
            assert _analysed_rows(tx, "loaded") == ROWS
        else:  # SQLite's claims name their index: no statistics are gathered
            assert tx.fetch("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'") == []


def test_only_the_tables_changed_past_the_threshold_are_analysed_again(
    postgres_store: PostgresStore,
) -> None:
    store = postgres_store
    _load(store, "grown", ROWS)
    _load(store, "steady", ROWS)
    refresh_statistics(store)
    _load(store, "grown", 2 * ROWS)  # 600 changes: over 50 and a tenth of 300
    _load(store, "steady", 40)  # 40 changes: under 50 and a tenth of 300
    refresh_statistics(store, changed_only=True)
    with store.transaction() as tx:
        assert _analysed_rows(tx, "grown") == 3 * ROWS
        assert _analysed_rows(tx, "steady") == ROWS


def _upkeep(store: Store, table: str) -> tuple[int, int]:
    """The table's dead rows as the statistics count them, and how often it was vacuumed."""
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT n_dead_tup, vacuum_count FROM pg_stat_user_tables "
            "WHERE schemaname = current_schema() AND relname = :table",
            {"table": table},
        )
    assert row is not None
    return int(row["n_dead_tup"]), int(row["vacuum_count"])


def test_only_the_tables_with_dead_rows_past_the_threshold_are_vacuumed(
    postgres_store: PostgresStore,
) -> None:
    store = postgres_store
    _load(store, "churned", ROWS)
    _load(store, "calm", ROWS)
    with store.transaction() as tx:
        tx.execute("UPDATE churned SET n = n + 1")  # 300 dead: over 50 and a fifth of 300
        tx.execute("UPDATE calm SET n = n + 1 WHERE n < 40")  # 40 dead: under 50
    _flush_counts(store)
    assert (_upkeep(store, "churned"), _upkeep(store, "calm")) == ((ROWS, 0), (40, 0))
    vacuum_dead(store)
    # vacuumed once (how many dead rows it could remove depends on the server's other work)
    assert (_upkeep(store, "churned")[1], _upkeep(store, "calm")) == (1, (40, 0))


def test_while_a_phase_drains_its_tables_are_vacuumed_beside_its_rounds(
    postgres_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upkeep runs in a thread of its own: it vacuums while the phase's thread does
    nothing but wait, and stops with the phase."""
    store = postgres_store
    _load(store, "churned", ROWS)
    with store.transaction() as tx:
        tx.execute("UPDATE churned SET n = n + 1")
    _flush_counts(store)
    monkeypatch.setattr(_Upkeep, "INTERVAL_S", 0.01)
    with _Upkeep(store):
        deadline = time.monotonic() + 60
        while _upkeep(store, "churned")[1] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _upkeep(store, "churned")[1] >= 1
    assert not [t for t in threading.enumerate() if t.name == "demo-upkeep"]


def test_a_failed_upkeep_is_raised_when_the_phase_ends(
    postgres_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = threading.Event()

    def refused(store: Store) -> None:
        failed.set()
        raise StoreError("cannot vacuum churned")

    monkeypatch.setattr(_Upkeep, "INTERVAL_S", 0.01)
    monkeypatch.setattr(demo, "vacuum_dead", refused)
    with pytest.raises(StoreError, match="cannot vacuum churned"), _Upkeep(postgres_store):
        assert failed.wait(60)


def test_the_runtime_s_statements_are_not_compiled_to_machine_code(
    postgres_store: PostgresStore,
) -> None:
    """A plan whose estimate is large (a table analysed before a bulk load) cost 35 ms of
    compilation for a statement of 3 ms."""
    with postgres_store.transaction() as tx:
        row = tx.fetch_one("SELECT current_setting('jit') AS jit")
    assert row is not None and row["jit"] == "off"

"""Statements sent without waiting (``Transaction.send``) and the round trips a transaction
makes: what is sent takes effect in order with the rest of the transaction, fails where it was
sent (its savepoint), and goes away with a savepoint rolled back; on PostgreSQL a transaction
waits for the server only for what its caller reads and for its commit, and a request end to
end costs fewer round trips than a bound measured (docs/runtime.md, Throughput)."""

from __future__ import annotations

import contextlib
import math
from types import ModuleType
from typing import Any

import psycopg
import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store, StoreError
from ccbmdm.runtime.store.base import WriteSpan, named_to
from ccbmdm.runtime.store.postgres import PostgresStore
from ccbmdm.runtime.worker import Worker
from runtime_world import Integration
from support import pg_dsn

# Round trips a request end to end, one worker, batches of 50 (PostgreSQL): measured 1.30 at 100
# requests and 0.84 at 1,000 (the rounds that find nothing weigh more in a short run), where
# each statement went on its own before: 2.1 at 1,000. A statement made once a message rather
# than once a batch adds at least one a request.
ROUND_TRIPS_PER_REQUEST = 1.5


def table(store: Store) -> None:
    with store.transaction() as tx:
        tx.execute("CREATE TABLE kept (id integer PRIMARY KEY, note text)")


def kept(store: Store) -> list[tuple[int, str]]:
    with store.transaction() as tx:
        return [(r["id"], r["note"]) for r in tx.fetch("SELECT id, note FROM kept ORDER BY id")]


def spans_of(store: Store) -> list[WriteSpan]:
    spans: list[WriteSpan] = []
    store.on_write = spans.append
    return spans


def test_a_sent_statement_runs_in_order_with_the_rest_and_hears_its_count(
    empty_store: Store,
) -> None:
    store = empty_store
    table(store)
    counts: list[int] = []
    with store.transaction() as tx:
        tx.send("INSERT INTO kept VALUES (1, 'a'), (2, 'b')", counted=counts.append)
        tx.send("UPDATE kept SET note = 'c' WHERE id = :id", {"id": 2}, counts.append)
        assert tx.fetch("SELECT note FROM kept ORDER BY id") == [{"note": "a"}, {"note": "c"}]
        tx.send("DELETE FROM kept WHERE id = 1", counted=counts.append)
    assert counts == [2, 1, 1]
    assert kept(store) == [(2, "c")]


def test_reads_fetched_together_come_back_each_with_its_own_rows_in_order(
    empty_store: Store,
) -> None:
    """``fetch_each``: every query's rows, in the order asked, an empty one included, seeing
    what was sent before them; on PostgreSQL all in one round trip."""
    store = empty_store
    table(store)
    spans = spans_of(store)
    with store.transaction() as tx:
        tx.send("INSERT INTO kept VALUES (1, 'a'), (2, 'b'), (3, 'c')")
        found = tx.fetch_each(
            [
                ("SELECT note FROM kept WHERE id = :id", {"id": 2}),
                ("SELECT note FROM kept WHERE id > :id ORDER BY id", {"id": 9}),
                ("SELECT count(*) AS n FROM kept", None),
                ("SELECT id FROM kept WHERE note <> :note ORDER BY id", {"note": "b"}),
            ]
        )
        assert tx.fetch_each([]) == []
    store.on_write = None
    assert found == [[{"note": "b"}], [], [{"n": 3}], [{"id": 1}, {"id": 3}]]
    if store.dialect == "postgres":
        assert [(span.committed, span.round_trips) for span in spans] == [(True, 2)]


def test_a_sent_statement_that_fails_fails_its_savepoint_alone(empty_store: Store) -> None:
    store = empty_store
    table(store)
    with store.transaction() as tx:
        tx.send("INSERT INTO kept VALUES (1, 'kept')")
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"), tx.savepoint():
            tx.send("INSERT INTO kept VALUES (2, 'rolled back with its savepoint')")
            tx.send("INSERT INTO kept VALUES (1, 'a repeat')")
        tx.send("INSERT INTO kept VALUES (3, 'kept too')")
    assert kept(store) == [(1, "kept"), (3, "kept too")]


def test_a_savepoint_rolled_back_takes_what_was_sent_under_it(empty_store: Store) -> None:
    store = empty_store
    table(store)
    with store.transaction() as tx:
        with pytest.raises(ValueError), tx.savepoint():
            tx.send("INSERT INTO kept VALUES (1, 'never')")
            raise ValueError("the item failed")
        with pytest.raises(ValueError), tx.savepoint():
            tx.execute("INSERT INTO kept VALUES (2, 'waited for, then rolled back')")
            tx.send("INSERT INTO kept VALUES (3, 'never')")
            raise ValueError("the item failed")
        with tx.savepoint():
            tx.send("INSERT INTO kept VALUES (4, 'kept')")
        with tx.savepoint(), tx.savepoint():
            pass
    assert kept(store) == [(4, "kept")]


def test_a_savepoint_not_waited_for_leaves_a_failure_of_what_it_sent_to_the_scope_around(
    empty_store: Store,
) -> None:
    """Its own exception takes back what was sent under it, as any savepoint's does; a sent
    statement that fails raises from the next statement waited for, and the savepoint around
    takes the whole item back (SQLite runs it at once: it fails inside)."""
    store = empty_store
    table(store)
    with store.transaction() as tx:
        with pytest.raises(ValueError), tx.savepoint(waited=False):
            tx.send("INSERT INTO kept VALUES (1, 'never')")
            raise ValueError("a rule broken")
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"), tx.savepoint():
            with tx.savepoint(waited=False):
                tx.send("INSERT INTO kept VALUES (2, 'rolled back with the item')")
                tx.send("INSERT INTO kept VALUES (2, 'a repeat')")
            tx.fetch("SELECT count(*) AS n FROM kept")
        with tx.savepoint(), tx.savepoint(waited=False):
            tx.send("INSERT INTO kept VALUES (3, 'kept')")
    assert kept(store) == [(3, "kept")]


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_a_savepoint_not_waited_for_costs_no_round_trip_of_its_own(empty_store: Store) -> None:
    store = empty_store
    table(store)
    spans = spans_of(store)
    with store.transaction() as tx:
        with tx.savepoint(waited=False):
            tx.send("INSERT INTO kept VALUES (1, 'a')")
        with tx.savepoint():  # waited for at its end: one round trip
            tx.send("INSERT INTO kept VALUES (2, 'b')")
    store.on_write = None
    assert [(span.committed, span.round_trips) for span in spans] == [(True, 2)]
    assert kept(store) == [(1, "a"), (2, "b")]


def test_a_failure_caught_without_a_savepoint_is_no_commit(empty_store: Store) -> None:
    """SQLite takes back the failed statement alone; PostgreSQL fails the whole transaction,
    and the store says so rather than return as if it had committed."""
    store = empty_store
    table(store)
    postgres = store.dialect == "postgres"
    refused = pytest.raises(StoreError, match="rolled the transaction back")
    with refused if postgres else contextlib.nullcontext(), store.transaction() as tx:
        tx.execute("INSERT INTO kept VALUES (1, 'only if the store took the failure back')")
        with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
            tx.execute("INSERT INTO kept VALUES (1, 'a repeat')")
    assert kept(store) == ([] if postgres else [(1, "only if the store took the failure back")])


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_a_transaction_waits_only_for_what_is_read_and_for_its_commit(
    empty_store: Store,
) -> None:
    """BEGIN, savepoints and sent statements go with the next statement waited for: a
    transaction that reads once and writes twice is two round trips; one that never sends
    anything is none."""
    store = empty_store
    table(store)
    spans = spans_of(store)
    with store.transaction() as tx:
        tx.send("INSERT INTO kept VALUES (1, 'a')")
        assert tx.fetch("SELECT count(*) AS n FROM kept") == [{"n": 1}]
        with tx.savepoint():
            pass
        tx.update_rows("kept", "note = :note", [{"id": 1, "note": "b"}], {"note": "text"})
    with store.transaction() as tx, tx.savepoint():
        # waited for at the savepoint's end, so that a failure is the savepoint's
        tx.send("INSERT INTO kept VALUES (2, 'c')")
    with store.transaction() as tx, tx.savepoint():
        pass
    store.on_write = None
    assert [(span.committed, span.round_trips) for span in spans] == [
        (True, 2),
        (True, 2),
        (True, 0),
    ]
    assert kept(store) == [(1, "b"), (2, "c")]


@pytest.mark.parametrize("empty_store", ["postgres"], indirect=True)
def test_a_request_end_to_end_costs_fewer_round_trips_than_the_bound(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """A count, which the machine's load does not move: a statement made once a message
    where it was once a batch shows here first."""
    requests = 100
    world = Integration(store, registry, package, InProcessTransport(), batch=50)
    for index in range(requests):
        world.people.change(f"{index:010d}", f"Person,Number {index}")
    nodes = (world.ccb, world.bridge, world.mdm)
    steps = [lambda: sum(vars(world.monitor.step(world.batch)).values())]
    steps += [step for node in nodes for step in (node.send_due, node.process_due)]
    # as ``ccbmdm run``'s worker runs them, the rescue swept once (before the first round)
    worker = Worker(steps, sweeps=[node.rescue_due for node in nodes], sweep_interval_s=math.inf)
    spans = spans_of(store)
    worker.drain(max_rounds=100)
    store.on_write = None
    assert {state for state, _ in world.requests()} == {"SYNCHRONIZED"}
    round_trips = sum(span.round_trips for span in spans)
    assert 0 < round_trips / requests < ROUND_TRIPS_PER_REQUEST


def test_a_sent_statement_that_fails_at_the_commit_leaves_the_store_usable(
    empty_store: Store,
) -> None:
    """Its failure raises from the block, nothing of the transaction is kept, and the next
    transaction on the same connection goes on as usual."""
    store = empty_store
    table(store)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), store.transaction() as tx:
        tx.send("INSERT INTO kept VALUES (1, 'gone with the rest')")
        tx.send("INSERT INTO kept VALUES (1, 'a repeat')")
    with store.transaction() as tx:
        tx.send("INSERT INTO kept VALUES (2, 'kept')")
    assert kept(store) == [(2, "kept")]


def test_a_libpq_without_pipeline_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    with pytest.raises(StoreError, match="without pipeline mode, which the PostgreSQL store"):
        PostgresStore(pg_dsn())


def test_a_batch_of_rows_updates_each_row_with_its_own_values(empty_store: Store) -> None:
    """``update_rows``: on PostgreSQL one statement over the batch's columns as arrays, passed
    in binary, whose elements are of one type (a float column given whole numbers too)."""
    store = empty_store
    with store.transaction() as tx:
        tx.execute("CREATE TABLE weighed (id integer PRIMARY KEY, weight float, note text)")
        tx.execute("INSERT INTO weighed (id) VALUES (1), (2), (3), (4)")
    rows: list[dict[str, Any]] = [
        {"id": 1, "weight": 30, "note": "whole"},
        {"id": 2, "weight": 30.5, "note": None},
        {"id": 3, "weight": None, "note": 'd\'été, {quoted}, "and" \\ more'},
    ]
    with store.transaction() as tx:
        tx.update_rows(
            "weighed", "weight = :weight, note = :note", rows, {"weight": "float8", "note": "text"}
        )
    with store.transaction() as tx:
        found = tx.fetch("SELECT id, weight, note FROM weighed ORDER BY id")
    assert [dict(row) for row in found] == [*rows, {"id": 4, "weight": None, "note": None}]


def test_a_statement_is_rewritten_for_psycopg_once_however_often_it_runs() -> None:
    """Every statement a worker runs passes through ``named_to``: without its cache, the
    10,000-customer demo's processor time grew from 335 s to 453 s (a decorator once moved off
    it by a function inserted above it)."""
    statement = "SELECT :a AS a, :b_of_rows AS b -- rewritten once"
    first = named_to("pyformat", statement)
    hits = named_to.cache_info().hits
    assert named_to("pyformat", statement) is first
    assert named_to.cache_info().hits == hits + 1
    assert first == "SELECT %(a)s AS a, %(b_of_rows)b AS b -- rewritten once"

"""The worker loop: rounds until quiet, sweeps on their own interval, stops when asked."""

from __future__ import annotations

import gc
import logging
import sqlite3
import subprocess
import sys
import threading

import pytest

from ccbmdm.runtime.lifecycles.machine import each_apart, together_or_apart
from ccbmdm.runtime.store import Store, StoreUnavailable
from ccbmdm.runtime.store.base import Row
from ccbmdm.runtime.worker import StillBusy, Worker, settle_collector

log = logging.getLogger("ccbmdm.test")


class Countdown:
    """A step with ``items`` to move, ``per_round`` at a time."""

    def __init__(self, items: int, per_round: int) -> None:
        self.items, self.per_round, self.calls = items, per_round, 0

    def __call__(self) -> int:
        self.calls += 1
        moved = min(self.items, self.per_round)
        self.items -= moved
        return moved


def test_drain_runs_rounds_until_one_moves_nothing() -> None:
    step, sweep = Countdown(25, 10), Countdown(3, 3)
    worker = Worker([step], sweeps=[sweep], sweep_interval_s=3600)
    assert worker.drain() == 28  # 3 swept first, then 10 + 10 + 5
    assert (step.calls, sweep.calls) == (4, 1)  # the sweep waits for its interval


def test_drain_gives_up_when_work_keeps_coming() -> None:
    endless = Worker([lambda: 1])
    with pytest.raises(StillBusy, match="after 5 rounds"):
        endless.drain(max_rounds=5)


def test_run_stops_when_asked_after_the_round_in_hand() -> None:
    stop = threading.Event()
    seen: list[int] = []

    def step() -> int:
        seen.append(1)
        if len(seen) == 3:
            stop.set()
        return 1

    assert Worker([step], poll_interval_s=0.01).run(stop) == 3


def test_run_waits_a_poll_interval_when_nothing_is_due() -> None:
    stop = threading.Event()
    idle = Countdown(0, 1)
    thread = threading.Thread(target=Worker([idle], poll_interval_s=0.01).run, args=(stop,))
    thread.start()
    while idle.calls < 3:  # it keeps polling ...
        stop.wait(0.01)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()  # ... and stops within a poll interval of being asked


def test_a_failing_round_is_logged_and_the_worker_carries_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("the server closed the connection unexpectedly")
        if len(calls) == 4:
            stop.set()
        return 1

    with caplog.at_level("ERROR", logger="ccbmdm.worker"):
        moved = Worker([flaky], poll_interval_s=0.001).run(stop)
    assert moved == 3 and len(calls) == 4  # the round after the failure went on
    assert "a round failed; retrying after a pause (1 in a row)" in caplog.text


WHERE = "PostgreSQL at postgresql://ccbmdm:***@db.example/integration"


def lost() -> StoreUnavailable:
    return StoreUnavailable(f"lost the connection to {WHERE} (server closed the connection)", WHERE)


def test_a_lost_store_is_one_warning_and_one_line_when_it_is_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three rounds in a row find the store gone: one warning, no traceback, then one line
    when a round gets through again."""
    stop = threading.Event()
    calls: list[int] = []

    def reconnecting() -> int:
        calls.append(1)
        if 2 <= len(calls) <= 4:
            raise lost()
        if len(calls) == 6:
            stop.set()
        return 1

    with caplog.at_level("INFO", logger="ccbmdm.worker"):
        moved = Worker([reconnecting], poll_interval_s=0.001).run(stop)
    assert moved == 3 and len(calls) == 6
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        (
            "WARNING",
            f"lost the connection to {WHERE} (server closed the connection); reconnecting",
            None,
        ),
        ("WARNING", f"the connection to {WHERE} is back", None),
    ]


@pytest.mark.parametrize("error", ["database is locked", "disk I/O error"])
def test_a_sqlite_failure_keeps_its_traceback(error: str, caplog: pytest.LogCaptureFixture) -> None:
    """Only a lost connection is quiet: SQLite's busy lock or I/O error is logged with its
    traceback every time."""
    stop = threading.Event()
    calls: list[int] = []

    def failing() -> int:
        calls.append(1)
        if len(calls) in (2, 3):
            raise sqlite3.OperationalError(error)
        if len(calls) == 4:
            stop.set()
        return 1

    with caplog.at_level("INFO", logger="ccbmdm.worker"):
        Worker([failing], poll_interval_s=0.001).run(stop)
    assert [(r.levelname, r.exc_info is not None) for r in caplog.records] == [("ERROR", True)] * 2
    assert all(error in r.exc_text for r in caplog.records if r.exc_text)


def rows(count: int) -> list[dict[str, int]]:
    return [{"id": n} for n in range(1, count + 1)]


@pytest.mark.parametrize("error", ["database is locked", "disk I/O error"])
def test_an_item_loop_logs_a_failing_item_and_moves_the_others(
    store: Store, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    """E4 on either store: a failing item (here SQLite's busy or I/O error, as its step would
    see it) is logged with its traceback and the loop goes on."""
    moved: list[int] = []

    def move(row: Row) -> int:
        if row["id"] == 2:
            raise sqlite3.OperationalError(error)
        moved.append(row["id"])
        return 1

    with caplog.at_level("INFO", logger="ccbmdm"), store.transaction() as tx:
        assert each_apart(tx, rows(3), move, lambda r: f"row {r['id']}", log) == 2
    assert moved == [1, 3]
    assert [(r.getMessage(), r.exc_info is not None) for r in caplog.records] == [
        ("row 2 could not be moved on", True)
    ]


def test_an_item_loop_stops_at_a_lost_connection(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A lost connection is no item's defect: the loop ends at the first, logs nothing, and the
    batch done together is not done again item by item."""
    moved: list[int] = []
    apart: list[int] = []

    def move(row: Row) -> int:
        moved.append(row["id"])
        raise lost()

    def one_by_one(items: list[Row]) -> list[int]:
        apart.append(len(items))
        return []

    quiet = caplog.at_level("INFO", logger="ccbmdm")
    with quiet, pytest.raises(StoreUnavailable), store.transaction() as tx:
        each_apart(tx, rows(3), move, lambda r: f"row {r['id']}", log)
    assert moved == [1] and caplog.records == []
    with pytest.raises(StoreUnavailable), store.transaction() as tx:
        batch: list[Row] = [{"id": 4}]
        together_or_apart(tx, batch, move, one_by_one)
    assert moved == [1, 4] and apart == []


def test_a_worker_settles_the_collector_before_its_first_round() -> None:
    """The young generation is collected every 10,000 allocations, and what was loaded before
    the first round is frozen out of the collector's passes (once per process: the test starts
    from the collector as Python sets it)."""
    settle_collector.cache_clear()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    seen: list[tuple[tuple[int, int, int], int]] = []

    def observe() -> int:
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return 0

    Worker([observe]).drain()
    ((threshold, frozen),) = seen
    assert threshold == (10_000, 10, 10) and frozen > 0


# A process whose stop event is being waited on when SIGTERM lands: the handler runs in the
# main thread while it holds the event's lock (CPython's Event.wait), as it may in any round.
SIGNAL_INSIDE_THE_WAIT = """
import os, signal, sys
from ccbmdm.runtime.worker import Shutdown
shutdown = Shutdown(grace_s=60).on_signals()
with shutdown.event._cond:
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))  # the handler runs here
sys.exit(0 if shutdown.event.wait(10) else 3)
"""


def test_a_stop_signal_that_lands_while_the_worker_waits_is_honoured() -> None:
    """Setting the event in the handler would need the lock the interrupted thread holds: the
    process hung, and its supervisor killed it at the end of the grace period."""
    done = subprocess.run(
        [sys.executable, "-P", "-c", SIGNAL_INSIDE_THE_WAIT], timeout=30, capture_output=True
    )
    assert done.returncode == 0, done.stderr

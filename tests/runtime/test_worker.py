"""The worker loop: rounds until quiet, sweeps on their own interval, stops when asked."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading

import pytest

from ccbmdm.runtime.worker import StillBusy, Worker, settle_collector


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

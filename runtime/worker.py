"""The monitor worker: moves every lifecycle and node of a runtime on, batch after batch.

Polling moves all work (reliability.md §1.3): a worker runs each step once per round, sleeps a
poll interval when a round found nothing, and sweeps passed leases and deadlines on its own,
slower, interval. Several workers, in threads, processes or on other machines, may share a store:
claims never hand one row to two of them. A stop request lets the batch in hand finish.
"""

from __future__ import annotations

import functools
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ccbmdm.runtime.store.base import background

log = logging.getLogger("ccbmdm.worker")

# A step does one batch of work and says how many items it moved (0: nothing was due).
Step = Callable[[], int]


@functools.cache
def settle_collector() -> None:
    """Once per process, before a worker's first round. A batch allocates a great many
    short-lived objects, few of them in cycles: at the collector's default of a collection every
    700 allocations, a collection ran every few messages, and the older generations' passes
    walked the contracts, models and mappings loaded at start each time. The youngest generation
    is now collected every 10,000 allocations, and what is loaded by the first round, kept for
    the life of the process, is frozen out of the passes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


class StillBusy(RuntimeError):
    """Work kept coming for longer than a bounded run allows."""


@dataclass
class Worker:
    """Runs ``steps`` round after round; ``sweeps`` (rescue of passed leases) every
    ``sweep_interval_s`` seconds, and before the first round."""

    steps: Sequence[Step]
    sweeps: Sequence[Step] = ()
    poll_interval_s: float = 1.0
    sweep_interval_s: float = 1.0
    _last_sweep: float | None = field(default=None, init=False)

    def round(self) -> int:
        """One pass over every step (and the sweeps when due); how many items moved. The
        round's write transactions give way to the source system's (``background``)."""
        moved = 0
        now = time.monotonic()
        with background():
            if self._last_sweep is None or now - self._last_sweep >= self.sweep_interval_s:
                self._last_sweep = now
                moved += sum(sweep() for sweep in self.sweeps)
            return moved + sum(step() for step in self.steps)

    def drain(self, max_rounds: int = 10_000) -> int:
        """Rounds until one moves nothing (``monitor --once``); returns the items moved."""
        total = 0
        self._last_sweep = None  # a bounded run always sweeps first
        settle_collector()
        for _ in range(max_rounds):
            moved = self.round()
            if moved == 0:
                return total
            total += moved
        raise StillBusy(f"work still due after {max_rounds} rounds ({total} items moved)")

    def run(self, stop: threading.Event) -> int:
        """Until ``stop`` is set: a round, or a poll interval's wait when it found nothing.
        A round that fails (the database restarting, a deadlock, a lost connection) is logged
        and the worker waits, then carries on: every step is a transaction, so a failed one
        changed nothing, and what it held is rescued when its lease passes. Returns the items
        moved."""
        total = 0
        failures = 0
        settle_collector()
        while not stop.is_set():
            try:
                moved = self.round()
            except Exception:
                failures += 1
                log.exception("a round failed; retrying after a pause (%d in a row)", failures)
                stop.wait(min(self.poll_interval_s * 2**failures, 30.0))
                continue
            failures = 0
            total += moved
            if moved == 0:
                stop.wait(self.poll_interval_s)
        return total


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so a worker finishes its batch and exits cleanly."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        log.info("stopping after the current batch", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop

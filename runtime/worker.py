"""The monitor worker: moves every lifecycle and node of a runtime on, batch after batch.

Polling moves all work (docs/reliability.md §1.3): a worker runs each step once per round, sleeps a
poll interval when a round found nothing, and sweeps passed leases and deadlines on its own,
slower, interval. Several workers, in threads, processes or on other machines, may share a store:
claims never hand one row to two of them. A stop request lets the batch in hand finish, within a
grace period that the process enforces (``Shutdown``).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.store import StoreUnavailable
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


class StillBusy(CcbmdmError, RuntimeError):
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
        changed nothing, and what it held is rescued when its lease passes. A lost connection
        is one warning, and one more when the store answers again, however many rounds it
        takes; any other failure is a defect and keeps its traceback. Returns the items
        moved."""
        total = 0
        failures = 0
        lost: StoreUnavailable | None = None  # the store's connection, while it is away
        settle_collector()
        while not stop.is_set():
            try:
                moved = self.round()
            except StoreUnavailable as exc:
                failures += 1
                if lost is None:
                    log.warning("%s; reconnecting", exc)
                lost = exc
                stop.wait(self._pause(failures))
                continue
            except Exception:
                failures += 1
                log.exception("a round failed; retrying after a pause (%d in a row)", failures)
                stop.wait(self._pause(failures))
                continue
            if lost is not None:
                log.warning("the connection to %s is back", lost.where)
                lost = None
            failures = 0
            total += moved
            if moved == 0:
                stop.wait(self.poll_interval_s)
        return total

    def _pause(self, failures: int) -> float:
        """The wait after ``failures`` failed rounds in a row: doubling, at most 30 s."""
        return min(self.poll_interval_s * 2.0**failures, 30.0)


FORCED_EXIT = 1  # the exit status of a process ended at its stop deadline


class Shutdown:
    """A process's stop: requested by SIGTERM or SIGINT (or by ``request``, when a worker's
    supervising process is gone), honoured by the worker after the batch in hand. The request
    also starts the grace period: past it, whatever still runs (a step stuck in a system, a
    server thread decoding a huge message, a thread the interpreter would wait for at exit) is
    ended. The ``at_deadline`` hooks run (a supervisor kills its workers), then the process
    exits with ``os._exit(FORCED_EXIT)``; a supervised worker leaves that to its ``supervisor``
    for as long as it lives, so that one deadline decides. Every batch is a transaction, so
    ending it loses nothing: what it held is rescued when its lease passes."""

    def __init__(self, grace_s: float, supervisor: int | None = None) -> None:
        self.event = threading.Event()
        self.grace_s = grace_s
        self.supervisor = supervisor  # the pid whose own deadline decides while it lives
        self._hooks: list[Callable[[], object]] = []
        # A signal handler may run while the main thread holds the event's lock: it only puts
        # the request in a queue that is safe there, and this thread, started now, acts on it.
        self._requests: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._enforce, name="ccbmdm-stop-deadline", daemon=True).start()

    def request(self, reason: str) -> None:
        """Ask the worker to stop after its batch (safe in a signal handler); the first request
        counts."""
        self._requests.put(reason)

    def at_deadline(self, hook: Callable[[], object]) -> None:
        """Run ``hook`` when the grace period has passed, before the process exits."""
        self._hooks.append(hook)

    def on_signals(self) -> Shutdown:
        """SIGTERM and SIGINT request the stop (installed from the main thread)."""

        def request_stop(signum: int, _frame: object) -> None:
            self.request(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        return self

    def _enforce(self) -> None:
        reason = self._requests.get()
        self.event.set()
        log.info("stopping after the current batch (%s)", reason)
        time.sleep(self.grace_s)
        while self.supervisor is not None and os.getppid() == self.supervisor:
            time.sleep(0.1)  # the supervisor ends its stuck workers at its own deadline
        log.warning(
            "the stop (%s) took longer than its grace period of %g s; ending the process",
            reason,
            self.grace_s,
        )
        for hook in self._hooks:
            try:
                hook()
            except Exception:
                log.exception("a stop hook failed")
        os._exit(FORCED_EXIT)

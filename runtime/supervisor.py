"""Worker processes under a supervising process (``monitor --workers N``, ``run --workers N``).

The supervisor starts each worker as a fresh interpreter (not through multiprocessing, whose
spawn start method also starts a resource tracker process that nothing here needs), restarts a
worker that dies, after a delay that doubles while workers keep dying, and stops them all with
the process: SIGTERM, the grace period for the batches in hand, then SIGKILL.

A worker never outlives its supervisor. It holds the read end of a pipe whose write end only the
supervisor holds (its standard input, which first carries the worker's configuration): the pipe
reaches its end when the supervisor is gone, however it went, on any platform. On Linux the
kernel also sends it SIGTERM at once (``PR_SET_PDEATHSIG``). Either way the worker stops as on
SIGTERM: it finishes the batch in hand, within its grace period. SIGTERM rather than SIGKILL,
because a batch that finishes leaves nothing for the restarted runtime to rescue, whereas a
killed one leaves its rows leased until their leases pass; a worker stuck in its batch is ended
at the grace period all the same (``Shutdown``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ccbmdm.codegen.project import Project, ProjectError
from ccbmdm.runtime import logs
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import ConfigError, RuntimeConfig, SupervisionSetting
from ccbmdm.runtime.store.base import StoreError
from ccbmdm.runtime.worker import Shutdown

log = logging.getLogger("ccbmdm.supervisor")

# The worker's interpreter: -P keeps the working directory off its path (a checkout of the
# project must not shadow the installed package); the parent's path is handed over instead.
_WORKER = "from ccbmdm.runtime.supervisor import work_under_supervisor; work_under_supervisor()"
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_CHECK_S = 0.1  # how often the supervisor looks at its workers


@dataclass
class _Slot:
    """One worker's place: the process in it, and when it may be started again."""

    number: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay_s: float = 0.0  # the last restart delay; 0 before the first death
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Runs ``count`` worker processes of ``config``, numbered from 1 (the supervising process
    runs worker 0), until the ``stop`` event given to ``start`` is set."""

    config: RuntimeConfig
    project_root: Path
    count: int
    batch: int | None = None
    _slots: list[_Slot] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    @property
    def settings(self) -> SupervisionSetting:
        return self.config.supervision

    def start(self, stop: threading.Event) -> None:
        """Start the workers from a thread that watches and restarts them until ``stop``, then
        passes SIGTERM on to them at once (whatever this process is still doing). The workers
        are started from that thread because, on Linux, a worker is signalled when the thread
        that started it ends, and this one lives until the workers are told to stop anyway."""
        self._slots = [_Slot(number) for number in range(1, self.count + 1)]
        self._thread = threading.Thread(
            target=self._watch, args=(stop,), name="ccbmdm-supervisor", daemon=True
        )
        self._thread.start()

    def _watch(self, stop: threading.Event) -> None:
        for slot in self._slots:
            self._launch_or_retry(slot)
        while not stop.wait(_CHECK_S):
            for slot in self._slots:
                self._look_after(slot)
        for process in self._processes():
            process.terminate()

    def _launch_or_retry(self, slot: _Slot) -> None:
        try:
            self._launch(slot)
        except OSError as exc:  # no process could be made (out of memory, of pids): later
            delay = self._schedule(slot, time.monotonic())
            log.warning("worker %d cannot be started (%s); trying in %g s", slot.number, exc, delay)

    def _look_after(self, slot: _Slot) -> None:
        now = time.monotonic()
        if slot.restart_at is not None:
            if now >= slot.restart_at:
                self._launch_or_retry(slot)
            return
        if slot.process is None or slot.process.poll() is None:
            return
        _release(slot.process)
        lived = now - slot.started
        delay = self._schedule(slot, now)
        log.warning(
            "worker %d (pid %d) %s after %.1f s; restarting it in %g s",
            slot.number,
            slot.process.pid,
            _ended(slot.process.returncode),
            lived,
            delay,
        )

    def _schedule(self, slot: _Slot, now: float) -> float:
        slot.delay_s = restart_delay(slot.delay_s, now - slot.started, self.settings)
        slot.restart_at = now + slot.delay_s
        return slot.delay_s

    def _launch(self, slot: _Slot) -> None:
        slot.restart_at = None
        slot.started = time.monotonic()
        process = start_worker(self.config, self.project_root, slot.number, self.batch)
        with self._lock:
            slot.process = process
        log.info("worker %d started (pid %d)", slot.number, process.pid)

    def wait(self) -> None:
        """Once ``stop`` is set: wait until every worker has finished its batch and exited. One
        that does not is killed by ``kill`` at the process's stop deadline."""
        if self._thread is not None:
            self._thread.join()
        for slot in self._slots:
            if slot.process is None or slot.restart_at is not None:  # its death was told
                continue
            code = slot.process.wait()
            if code not in (0, -signal.SIGTERM):  # -SIGTERM: stopped while it was starting
                log.warning("worker %d (pid %d) %s", slot.number, slot.process.pid, _ended(code))
            _release(slot.process)

    def kill(self) -> None:
        """SIGKILL every worker still running, saying which (the grace period has passed)."""
        with self._lock:
            running = [s for s in self._slots if s.process and s.process.poll() is None]
        for slot in running:
            assert slot.process is not None
            log.warning(
                "worker %d (pid %d) still running at the end of the grace period; killed",
                slot.number,
                slot.process.pid,
            )
            slot.process.kill()

    def not_running(self) -> list[int]:
        """The workers that are not running now: dead, or waiting to be restarted."""
        with self._lock:
            return [
                slot.number
                for slot in self._slots
                if slot.process is None or slot.process.poll() is not None
            ]

    def _processes(self) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            return [s.process for s in self._slots if s.process and s.process.poll() is None]


def _release(process: subprocess.Popen[bytes] | None) -> None:
    """Close this side of a worker's pipe (its end has come, or it is being stopped)."""
    if process is not None and process.stdin is not None:
        with contextlib.suppress(OSError):  # what a dead worker did not read is dropped
            process.stdin.close()


def start_worker(
    config: RuntimeConfig, project_root: Path, number: int, batch: int | None
) -> subprocess.Popen[bytes]:
    """Start worker ``number`` of ``config`` as a child of this process: its orders go down its
    standard input, which then stays open for as long as this process lives (or until it is
    closed: the worker stops)."""
    orders = {
        "parent": os.getpid(),
        "number": number,
        "config": config.model_dump(mode="json"),
        "project_root": str(project_root),
        "batch": batch,
        "path": sys.path,
        "logs": logs.configured(),  # the worker logs as its supervisor does
    }
    # A process group of its own: Ctrl-C at a terminal reaches the supervisor only, which
    # passes the stop on (a worker still importing would die of it with a traceback).
    process = subprocess.Popen(
        [sys.executable, "-P", "-c", _WORKER], stdin=subprocess.PIPE, process_group=0
    )
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(orders).encode() + b"\n")
        process.stdin.flush()
    except BrokenPipeError:  # it died at once; its supervisor sees it dead
        pass
    return process


def restart_delay(previous_s: float, lived_s: float, settings: SupervisionSetting) -> float:
    """How long to wait before a worker that died after ``lived_s`` seconds is restarted: the
    first delay, again once a worker lived as long as the longest delay (it was not dying over
    and over), else the previous delay doubled, up to the longest."""
    first, cap = settings.restart_delay_s, settings.restart_delay_cap_s
    if previous_s == 0 or lived_s >= cap:
        return first
    return min(previous_s * 2, cap)


def _ended(returncode: int) -> str:
    """How a process ended, for a log line: ``exited with status 1``, ``was killed by SIGKILL``."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


def _die_with_parent(parent: int) -> bool:
    """On Linux, have the kernel send SIGTERM to this process when its parent ends; False when
    the parent is gone already (it may have ended before the request was made)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning(
                "cannot ask to be signalled when the supervisor ends (errno %d)", ctypes.get_errno()
            )
    return os.getppid() == parent


def _watch_parent(shutdown: Shutdown) -> None:
    """Request the stop when standard input ends: the supervisor, which holds the pipe's only
    write end, is gone (the portable half of ``_die_with_parent``)."""

    def wait_for_the_end() -> None:
        # The file descriptor, not sys.stdin: a thread blocked in a buffered read holds its
        # lock, and the interpreter, closing stdin at exit, would abort on it.
        while os.read(sys.stdin.fileno(), 4096):
            pass
        shutdown.request("the supervising process is gone")

    threading.Thread(target=wait_for_the_end, name="ccbmdm-parent-watch", daemon=True).start()


def work_under_supervisor() -> None:
    """A worker process's life: its orders from standard input, tied to its supervisor, its
    own runtime and connections, until SIGTERM, SIGINT or the supervisor's end."""
    line = sys.stdin.buffer.readline()
    if not line:
        return  # the supervisor is gone before it said anything
    orders = json.loads(line)
    if orders.get("logs"):
        level, log_format = orders["logs"]
        logs.configure(level, log_format, orders["number"])
    if not _die_with_parent(orders["parent"]):
        return
    sys.path.extend(entry for entry in orders["path"] if entry not in sys.path)
    config = RuntimeConfig.model_validate(orders["config"])
    shutdown = Shutdown(config.supervision.stop_grace_s, orders["parent"]).on_signals()
    _watch_parent(shutdown)
    try:
        runtime = Runtime(config, Project.load(Path(orders["project_root"])))
    except (ConfigError, ProjectError, StoreError) as exc:  # told once; restarted later
        log.error("worker %d cannot start: %s", orders["number"], exc)
        sys.exit(1)
    try:
        runtime.worker(orders["batch"]).run(shutdown.event)
    finally:
        runtime.close()


def run_supervised(runtime: Runtime, workers: int, batch: int | None, shutdown: Shutdown) -> None:
    """Run ``runtime``'s worker in this process and ``workers - 1`` more under a supervisor,
    until ``shutdown`` is requested; then wait for them all. At the shutdown's deadline the
    workers still running are killed and the process ends (``Shutdown``)."""
    supervisor = Supervisor(runtime.config, runtime.project.root, workers - 1, batch)
    shutdown.at_deadline(supervisor.kill)
    if workers > 1:
        supervisor.start(shutdown.event)
        runtime.workers.not_running = supervisor.not_running
    try:
        runtime.worker(batch).run(shutdown.event)
    finally:
        shutdown.request("the worker has stopped")  # whatever ended it, the workers stop too
        supervisor.wait()


def work_until_stopped(runtime: Runtime, workers: int, batch: int | None) -> None:
    """This process's worker and ``workers - 1`` supervised worker processes, until SIGTERM or
    SIGINT; whatever still runs at the end of the grace period is ended (exit status 1)."""
    shutdown = Shutdown(runtime.config.supervision.stop_grace_s).on_signals()
    run_supervised(runtime, workers, batch, shutdown)

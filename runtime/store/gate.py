"""The gate in front of SQLite's one write lock, which lets the source system's saves go first.

SQLite has no queue for its write lock: a connection that finds it taken sleeps, up to 100 ms
at a time, and tries once more, and a worker that commits and begins again at once takes the
lock back before a sleeper wakes. With workers moving a backlog (after a restart, say) the lock
is taken nearly all the time, and a save of the source system can lose every try until its busy
timeout passes ("database is locked"). The gate is an advisory file lock beside the database,
``<database>-writers``: a foreground transaction (anything but the integration's own work: a
worker's round, a partner's message being stored) holds it shared from before its
``BEGIN IMMEDIATE`` to its end; a background transaction first waits until no one holds it.
So a save waits for at most the transactions workers had already begun, each kept short by its
write budget, and the kernel releases a killed process's hold on the gate.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_LONGEST_PAUSE_S = 0.002  # a worker at the gate looks again at least this often


class WriterGate:
    """One database's gate; a descriptor of its own per thread, since a file lock belongs to
    the descriptor and two threads sharing one would share the lock."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}-writers"
        self._local = threading.local()

    def _descriptor(self) -> int:
        descriptor: int | None = getattr(self._local, "descriptor", None)
        if descriptor is None or getattr(self._local, "pid", None) != os.getpid():
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._local.descriptor, self._local.pid = descriptor, os.getpid()
        return descriptor

    @contextmanager
    def foreground(self) -> Iterator[None]:
        """Held around a foreground write transaction: workers wait at the gate meanwhile."""
        descriptor = self._descriptor()
        fcntl.flock(descriptor, fcntl.LOCK_SH)  # a worker holds it exclusively only to pass
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)

    def pass_through(self, patience_s: float) -> None:
        """A worker's way in: once no foreground transaction holds the gate, or after
        ``patience_s`` (the busy timeout: then SQLite's own wait decides, as without a gate)."""
        descriptor = self._descriptor()
        deadline = time.monotonic() + patience_s
        pause = 0.0001
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(pause)
                pause = min(pause * 2, _LONGEST_PAUSE_S)
                continue
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            return

    def close(self) -> None:
        descriptor = getattr(self._local, "descriptor", None)
        if descriptor is not None and getattr(self._local, "pid", None) == os.getpid():
            os.close(descriptor)
        self._local.descriptor = None

"""A node's health, readiness and metrics over HTTP (docs/runtime.md, Operating), mounted on
the node's app next to the messages it receives:

- ``GET /healthz``: the process answers (200, always).
- ``GET /readyz``: 200 when the store answers and its schema is the one this ccbmdm writes,
  and the workers are alive: the serving process's own worker finished a round within a lease
  (a round that takes longer loses its claims anyway), and every supervised worker process is
  running; else 503 with what is wrong, one line each.
- ``GET /metrics``: the Prometheus text format (``runtime.metrics``); it needs a credential the
  node knows (a partner's or a viewer's) unless the node's ``metrics_open`` says otherwise.

Health and readiness are open: they tell nothing of the data, and a load balancer or an
orchestrator asks them without credentials.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ccbmdm.runtime.messaging.http import Receive, Scope, Send, respond
from ccbmdm.runtime.metrics import exposition
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.base import StoreError
from ccbmdm.runtime.store.schema import SCHEMA_VERSION

PATHS = ("/healthz", "/readyz", "/metrics")


@dataclass
class WorkerWatch:
    """What the serving process knows of the workers: when its own worker last finished a round
    (``beat``), and, when it supervises worker processes, which of them are not running."""

    stale_after_s: float
    last_round: float | None = None
    not_running: Callable[[], list[int]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def beat(self) -> None:
        with self._lock:
            self.last_round = time.monotonic()

    def problems(self) -> list[str]:
        with self._lock:
            last = self.last_round
        if last is None:
            found = ["the worker has not finished a round yet"]
        elif (late := time.monotonic() - last) > self.stale_after_s:
            found = [f"the worker's last round ended {late:.0f} s ago"]
        else:
            found = []
        stopped = self.not_running() if self.not_running is not None else []
        if stopped:
            numbers = ", ".join(str(number) for number in stopped)
            found.append(f"worker process(es) {numbers} not running (being restarted)")
        return found


def store_problems(store: Store) -> list[str]:
    """What keeps the store from serving: unreachable, or a schema other than this ccbmdm's."""
    try:
        with store.transaction() as tx:
            row = tx.fetch_one("SELECT max(version) AS version FROM schema_version")
    except StoreError as exc:
        return [f"store: {exc}"]
    except Exception as exc:  # the database's own error: no schema, no permission
        return [f"store: {type(exc).__name__}: {' '.join(str(exc).split())}"]
    version = int(row["version"]) if row and row["version"] is not None else 0
    if version != SCHEMA_VERSION:
        return [
            f"store: schema version {version}, this ccbmdm needs {SCHEMA_VERSION}; "
            "`ccbmdm monitor --once` or `ccbmdm run` brings it up to date"
        ]
    return []


class HealthApp:
    """ASGI app answering ``PATHS`` for one node."""

    def __init__(
        self,
        store: Store,
        workers: WorkerWatch | None,
        may_view: Callable[[str | None], bool],
        metrics_open: bool = False,
    ) -> None:
        """``may_view``: whether an Authorization header carries a credential of the node's."""
        self.store = store
        self.workers = workers
        self.may_view = may_view
        self.metrics_open = metrics_open

    def ready(self) -> list[str]:
        """What is wrong, one line each; nothing when the node is ready."""
        return store_problems(self.store) + (self.workers.problems() if self.workers else [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["method"] != "GET" or path not in PATHS:
            await respond(send, 404, b"GET /healthz, /readyz or /metrics")
            return
        if path == "/healthz":
            await respond(send, 200, b"ok\n")
        elif path == "/readyz":
            problems = await asyncio.to_thread(self.ready)
            text = "".join(f"{problem}\n" for problem in problems) or "ready\n"
            await respond(send, 503 if problems else 200, text.encode())
        else:
            seen = next(
                (v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"authorization"),
                None,
            )
            if not (self.metrics_open or self.may_view(seen)):
                challenge = [
                    (b"www-authenticate", b'Basic realm="ccbmdm", charset="UTF-8"'),
                    (b"www-authenticate", b'Bearer realm="ccbmdm"'),
                ]
                await respond(send, 401, b"metrics need the node's credential", challenge)
                return
            try:
                body, media_type = await asyncio.to_thread(exposition, self.store)
            except StoreError as exc:  # the scrape fails, and says why; the next one may not
                await respond(send, 503, f"store: {exc}".encode())
                return
            await respond(send, 200, body, media_type=media_type)

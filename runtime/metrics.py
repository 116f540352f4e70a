"""``GET /metrics``: the Prometheus text format (docs/runtime.md, Operating).

Two sources. What the store knows is read at scrape time (``StoreCollector``): rows per
lifecycle and state, messages received, delivered, retried and faulted (the counts the store
keeps as rows move, ``store.counts``), the oldest waiting rows. Those are right whichever
process or machine did the work, and survive restarts. What only a worker sees as it happens
(how long a delivery or a processing took, a batch's size, a lease lost) is measured where it
happens (``instruments``): with several worker processes, in prometheus_client's multiprocess
mode, each process writing its values to files in one folder that the scrape adds up
(``share_between_processes``).

prometheus_client is imported only when a metric is made or read: its multiprocess mode is
chosen when it is first imported, which must come after ``share_between_processes``.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ccbmdm.runtime.observe import overview
from ccbmdm.runtime.store import Store

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric

_SHARED = "PROMETHEUS_MULTIPROC_DIR"
# messages per outbox state entered: (metric, its help, the state)
_MESSAGE_MOVES = (
    ("delivered", "Messages delivered (accepted by the partner)", "DELIVERED"),
    ("retried", "Sends that failed and wait to be tried again", "RETRY_WAIT"),
    ("faulted", "Messages given up on: attempts or retry window used up, or refused", "ERROR"),
)
_MESSAGE = ("node", "flow", "part")  # a message metric's labels
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 10_000)


def share_between_processes() -> Callable[[], None]:
    """Have this process and the worker processes it starts (which inherit its environment)
    write their measurements to one folder, for the scrape to add up; returns what removes the
    folder at the end. A folder the environment names already is used as it is (and kept); in a
    process that has made a metric already, nothing changes (one process, nothing to share)."""
    if os.environ.get(_SHARED) or "prometheus_client" in sys.modules:
        return lambda: None
    folder = tempfile.mkdtemp(prefix="ccbmdm-metrics-")
    os.environ[_SHARED] = folder

    def remove() -> None:
        os.environ.pop(_SHARED, None)
        shutil.rmtree(folder, ignore_errors=True)

    return remove


@dataclass(frozen=True)
class Instruments:
    """What a worker measures as it works, per node."""

    delivery_seconds: Histogram
    processing_seconds: Histogram
    batch_size: Histogram
    lease_losses: Counter

    def sent(self, node: str, messages: int, seconds: float) -> None:
        """A send batch of ``messages`` took ``seconds`` from its claim to its outcome."""
        self._batch(self.delivery_seconds, node, "send", messages, seconds)

    def processed(self, node: str, messages: int, seconds: float) -> None:
        """A processing batch of ``messages`` took ``seconds``."""
        self._batch(self.processing_seconds, node, "process", messages, seconds)

    def lease_lost(self, node: str) -> None:
        self.lease_losses.labels(node).inc()

    def _batch(self, took: Histogram, node: str, step: str, messages: int, seconds: float) -> None:
        self.batch_size.labels(node, step).observe(messages)
        each = took.labels(node)
        for _ in range(messages):  # a latency per message, as each of them waited it
            each.observe(seconds)


@functools.cache
def _worker_registry() -> CollectorRegistry:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry(auto_describe=True)


@functools.cache
def instruments() -> Instruments:
    """This process's instruments, made at first use."""
    from prometheus_client import Counter, Histogram

    registry = _worker_registry()
    return Instruments(
        Histogram(
            "ccbmdm_delivery_seconds",
            "Seconds from a message's claim to its send's recorded outcome, per message",
            ["node"],
            buckets=_SECONDS,
            registry=registry,
        ),
        Histogram(
            "ccbmdm_processing_seconds",
            "Seconds the transaction that processed a received message took, per message",
            ["node"],
            buckets=_SECONDS,
            registry=registry,
        ),
        Histogram(
            "ccbmdm_batch_size",
            "Messages a worker's batch took (step: send or process)",
            ["node", "step"],
            buckets=_BATCH,
            registry=registry,
        ),
        Counter(
            "ccbmdm_lease_losses",
            "Claims whose lease had passed before their outcome was recorded (another worker "
            "rescued the row; nothing was recorded twice)",
            ["node"],
            registry=registry,
        ),
    )


class StoreCollector:
    """The metrics read from the store at each scrape (one transaction; no table scanned)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        current = overview(self.store, errors_listed=0)
        rows = GaugeMetricFamily(
            "ccbmdm_rows",
            "Rows per lifecycle, node, flow, part and state (exact; node and part are empty "
            "for the request lifecycles)",
            labels=["lifecycle", "node", "flow", "part", "state"],
        )
        received = CounterMetricFamily(
            "ccbmdm_messages_received",
            "Messages received and stored (inbox rows), per node, flow and part",
            labels=list(_MESSAGE),
        )
        moves = {
            state: CounterMetricFamily(f"ccbmdm_messages_{name}", text, labels=list(_MESSAGE))
            for name, text, state in _MESSAGE_MOVES
        }
        inbox: dict[tuple[str, str, str], int] = {}
        for count in current.counts:
            key = (count.node, count.flow, count.part)
            rows.add_metric([count.lifecycle, *key, count.state], count.rows)
            if count.lifecycle == "inbox":
                inbox[key] = inbox.get(key, 0) + count.rows
            elif count.lifecycle == "outbox" and count.state in moves:
                moves[count.state].add_metric(list(key), count.entered)
        for key, total in sorted(inbox.items()):
            received.add_metric(list(key), total)
        oldest = GaugeMetricFamily(
            "ccbmdm_oldest_waiting_seconds",
            "Age of the oldest row still waiting (waiting: pending or retrying), per lifecycle "
            "and node; absent when none waits",
            labels=["lifecycle", "node", "waiting"],
        )
        for waiting in current.oldest:
            oldest.add_metric(
                [waiting.lifecycle, waiting.node, waiting.waiting], waiting.age_s(current.taken_at)
            )
        yield from (rows, received, *moves.values(), oldest)


class _WorkerMeasurements:
    """This process's instruments, when there is one process to read them from."""

    def collect(self) -> Iterator[Metric]:
        instruments()  # every family is shown from the start, at zero
        yield from _worker_registry().collect()


def exposition(store: Store) -> tuple[bytes, str]:
    """The scrape's body and content type: the store's metrics and the workers'."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    if os.environ.get(_SHARED):
        from prometheus_client import multiprocess

        instruments()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_WorkerMeasurements())
    return generate_latest(registry), CONTENT_TYPE_LATEST

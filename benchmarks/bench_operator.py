"""What an operator reads, on a large PostgreSQL store: `ccbmdm status` (the function, and the
command as it runs in a process already started), a scrape of `GET /metrics`, `ccbmdm show` of
a request and of a message, and the console's overview and a page of its list.

The store is built by bulk load (COPY) in a schema of its own, dropped at the end: 1,000,000
sync requests, 4,000,000 outbox rows and 4,000,000 inbox rows (a request's four hops, each sent
from an outbox and stored in an inbox), nearly all done (SYNCHRONIZED, DELIVERED, PROCESSED),
a few thousand waiting or retrying, a thousand in Error: a store some months old. Messages are
loaded without their bodies, which none of these reads. The target is 200 ms each (median).
``--quick`` loads a few thousand rows only, to show the script works (tests/ runs it so).

Run: python benchmarks/bench_operator.py [--sync-requests 1000000] [--messages 4000000]
                                         [--repeat 15] [--pg postgresql://...] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from timing import BenchmarkFailed, machine  # noqa: E402

from ccbmdm.cli.operate import status  # noqa: E402
from ccbmdm.runtime.console.reading import KINDS, Filters, listing  # noqa: E402
from ccbmdm.runtime.console.reading import overview as console_overview  # noqa: E402
from ccbmdm.runtime.health import HealthApp  # noqa: E402
from ccbmdm.runtime.history import life  # noqa: E402
from ccbmdm.runtime.messaging.http import Server  # noqa: E402
from ccbmdm.runtime.observe import overview  # noqa: E402
from ccbmdm.runtime.store import open_store  # noqa: E402
from support import LOCAL_PG_DSN, postgres_schema  # noqa: E402

TARGET_S = 0.2
NODES = (("ccb", "bridge"), ("bridge", "mdm"), ("mdm", "bridge"), ("bridge", "ccb"))
FLOWS = ("PERSON_SYNC", "SA_SYNC", "SP_SYNC", "METER_SYNC")
PARTS = ("request", "ack")
# the one read timed as a process, start-up included: it has no target of its own
PROCESS = "status --format json (a process, start-up included)"


def spread(index: int, total: int, states: tuple[tuple[str, float], ...]) -> str:
    """The state of row ``index`` of ``total``: the rare states first, each its share; the
    last state takes the rest."""
    start = 0.0
    for state, share in states[:-1]:
        start += share
        if index < start * total:
            return state
    return states[-1][0]


def load(dsn: str, requests: int, messages: int) -> None:
    """Fill the runtime's tables of a migrated store by COPY, then vacuum and analyse them as
    autovacuum would have."""
    now = datetime.now(UTC)
    sync_states = (
        ("ERROR", 0.001),
        ("PENDING", 0.005),
        ("AWAITING_ACK", 0.005),
        ("SYNCHRONIZED", 1),
    )
    outbox_states = (
        ("ERROR", 0.0002),
        ("RETRY_WAIT", 0.0005),
        ("PENDING", 0.001),
        ("DELIVERED", 1),
    )
    inbox_states = (("RECEIVED", 0.001), ("PROCESSED", 1))
    with psycopg.connect(dsn, autocommit=True) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY sync_request (mo, pk, target, flow, state, reason, due_at, "
                "initial_snapshot, created_at) FROM STDIN"
            ) as copy:
                for index in range(requests):
                    state = spread(index, requests, sync_states)
                    open_ = state in ("PENDING", "ERROR")
                    copy.write_row(
                        (
                            "PERSON",
                            f"{index:010d}",
                            "MDM",
                            FLOWS[0],
                            state,
                            "11001/16021 rejected" if state == "ERROR" else None,
                            now if open_ else None,
                            "{}",
                            now - timedelta(seconds=requests - index),
                        )
                    )
            for table in ("outbox", "inbox"):
                states = outbox_states if table == "outbox" else inbox_states
                columns = (
                    "node, partner, flow, part, message_id, state, due_at, first_attempt_at, "
                    "last_error"
                    if table == "outbox"
                    else "node, partner, flow, part, message_id, state, due_at, received_at"
                )
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for index in range(messages):
                        node, partner = NODES[index % 4]
                        if table == "inbox":
                            node, partner = partner, node
                        state = spread(index, messages, states)
                        at = now - timedelta(seconds=(messages - index) / 4)
                        row: tuple[object, ...] = (
                            node,
                            partner,
                            FLOWS[index % len(FLOWS)],
                            PARTS[index // 4 % 2],
                            uuid.UUID(int=index),
                            state,
                            None if state in ("DELIVERED", "ERROR", "PROCESSED") else at,
                        )
                        if table == "outbox":
                            failed = state in ("RETRY_WAIT", "ERROR")
                            row += (at if failed else None, "503" if failed else None)
                        else:
                            row += (at,)
                        copy.write_row(row)
        for table in ("sync_request", "outbox", "inbox", "state_count"):
            connection.execute(f"VACUUM ANALYZE {table}")


def median_s(function: Callable[[], object], repeat: int) -> float:
    function()  # the first call warms the connection and the caches
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def status_command(dsn: str) -> Callable[[], object]:
    """`ccbmdm status --format json` as the command runs once its process has started: the
    store opened and its schema checked, the overview, the JSON written. (Starting the
    interpreter, importing the command line and building it come before, the same for every
    command: ``process_s`` measures them with it.)"""

    def command() -> None:
        with contextlib.redirect_stdout(io.StringIO()) as written:
            status(unmask=False, output="json", config=None, store=dsn, project_dir=None)
        if '"counts"' not in written.getvalue():
            raise BenchmarkFailed(f"status printed: {written.getvalue()}")

    return command


def process_s(dsn: str, repeat: int) -> float:
    """`ccbmdm status --format json` as a process, from its start to its end (median)."""
    command = [str(Path(sys.executable).parent / "ccbmdm"), "status", "--store", dsn]
    return median_s(
        lambda: subprocess.run([*command, "--format", "json"], check=True, capture_output=True),
        repeat,
    )


@contextlib.contextmanager
def metrics_server(dsn: str) -> Iterator[str]:
    """A node's health and metrics app on loopback, metrics open; its /metrics URL."""
    store = open_store(dsn)
    try:
        with Server(HealthApp(store, None, lambda _: False, metrics_open=True)) as server:
            yield f"{server.url}/metrics"
    finally:
        store.close()


@dataclass(frozen=True)
class Size:
    """The store to build and how often each read is timed."""

    sync_requests: int
    messages: int
    repeat: int


FULL = Size(1_000_000, 4_000_000, 15)
QUICK = Size(2_000, 8_000, 3)


def measure(dsn: str, size: Size) -> tuple[float, dict[str, float]]:
    """Load a store of ``size`` in a schema of its own (dropped at the end): the seconds the
    load took, and each read's median seconds by name."""
    repeat = size.repeat
    with postgres_schema(dsn, "bench_operator") as schema:
        store = open_store(schema)
        store.migrate()
        started = time.perf_counter()
        load(schema, size.sync_requests, size.messages)
        loaded = time.perf_counter() - started
        current = overview(store)
        rows = current.rows()
        if rows[("sync_request", "", "SYNCHRONIZED")] <= 0.98 * size.sync_requests or (
            sum(n for (kind, _, _), n in rows.items() if kind == "inbox") != size.messages
        ):
            raise BenchmarkFailed(f"the store was not loaded as asked: {rows}")
        figures = {"status (function)": median_s(lambda: overview(store), repeat)}
        figures["status --format json (command)"] = median_s(status_command(schema), repeat)
        figures[PROCESS] = process_s(schema, min(repeat, 5))
        with metrics_server(schema) as url, httpx.Client() as client:

            def scrape() -> None:
                answer = client.get(url)
                if answer.status_code != 200 or "ccbmdm_rows" not in answer.text:
                    raise BenchmarkFailed(f"GET /metrics answered: {answer.text}")

            figures["GET /metrics"] = median_s(scrape, repeat)
        in_error = next(e.id for e in current.errors if e.kind == "sync_request")
        figures["show of a sync request in Error"] = median_s(
            lambda: life(store, f"sync_request:{in_error}"), repeat
        )
        message_id = str(uuid.UUID(int=size.messages // 2))
        figures["show of a message id"] = median_s(lambda: life(store, message_id), repeat)
        nodes = ["ccb", "bridge", "mdm"]
        figures["console overview"] = median_s(lambda: console_overview(store, nodes), repeat)
        errors = Filters(KINDS["sync_request"], state="ERROR")
        figures["console list of sync requests in Error"] = median_s(
            lambda: listing(store, errors), repeat
        )
        store.close()
    return loaded, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sync-requests", type=int, default=FULL.sync_requests)
    parser.add_argument(
        "--messages", type=int, default=FULL.messages, help="outbox rows, and inbox"
    )
    parser.add_argument("--repeat", type=int, default=FULL.repeat)
    parser.add_argument("--pg", default=os.environ.get("CCBMDM_TEST_PG_DSN", LOCAL_PG_DSN))
    parser.add_argument("--quick", action="store_true", help="a few thousand rows, 3 repeats")
    args = parser.parse_args()
    size = QUICK if args.quick else Size(args.sync_requests, args.messages, args.repeat)
    print(machine())
    loaded, figures = measure(args.pg, size)
    print(
        f"store: {size.sync_requests:,} sync requests, {size.messages:,} outbox rows, "
        f"{size.messages:,} inbox rows, loaded in {loaded:.0f} s"
    )
    for name, seconds in figures.items():
        target = "" if name == PROCESS else f" (target: {TARGET_S * 1000:.0f} ms)"
        print(f"{name}: {seconds * 1000:.1f} ms, median{target}")


if __name__ == "__main__":
    main()

"""The end-to-end demo: a synthetic utility run through the runtime between the two simulators.

Phases run one after the other, each timed: the utility is generated in CCB (a conversion, so
nothing is captured yet), the initial load captures every entity, and the workers synchronize it
into MDM. The report says what ran: messages per flow, requests per state, the time per phase,
and every request in Error with its reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import DeliverySetting, reference_config
from ccbmdm.runtime.sim.ccb import CcbSimulator
from ccbmdm.runtime.sim.synthetic import Plan, generate
from ccbmdm.runtime.store import Store

# A phase's progress: (description, total items) -> a function advancing it by some items.
Progress = Callable[[str, int], Callable[[int], None]]

# In the demo every node is in process: a lease or a retry need not wait minutes.
DEMO_DELIVERY = DeliverySetting(
    lease_s=30, backoff_base_s=0.05, backoff_factor=2, backoff_cap_s=1, poll_interval_s=0.01
)


@dataclass
class Report:
    customers: int
    phases: list[tuple[str, float]] = field(default_factory=list)
    messages: dict[tuple[str, str], int] = field(default_factory=dict)  # (flow, part) -> sent
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (machine, state) -> rows
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # machine, key, reason

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.phases.append((name, time.perf_counter() - started))


def run_demo(
    project: Project, store: str, customers: int = 1000, progress: Progress | None = None
) -> Report:
    """Run every phase on a fresh store (a SQLite path or a postgresql:// DSN)."""
    advance = progress or (lambda _name, _total: lambda _n: None)
    runtime = Runtime(reference_config(store, DEMO_DELIVERY), project)
    report = Report(customers)
    try:
        ccb = runtime.systems["ccb"]
        assert isinstance(ccb, CcbSimulator)
        with report.phase("generate the utility"):
            generate(
                ccb, Plan(customers=customers), advance("generating", customers), converted=True
            )
        with report.phase("initial load"):
            with runtime.store.transaction() as tx:
                entities = sum(n for mo, n in ccb.counts(tx).items() if mo != "ACCOUNT")
            ccb.initial_load(progress=advance("capturing", entities))
        with report.phase("initial sync"):
            synchronize(runtime, entities, advance("synchronizing", entities))
        summarize(runtime.store, report)
    finally:
        runtime.close()
    return report


def synchronize(runtime: Runtime, total: int, advance: Callable[[int], None]) -> None:
    """Run the workers' rounds until nothing is due, advancing as sync requests end."""
    worker = runtime.worker(batch=200)
    done = 0
    while True:
        moved = worker.round()
        now_done = total - open_sync_requests(runtime.store)
        if now_done > done:
            advance(now_done - done)
            done = now_done
        if moved == 0:
            return


def open_sync_requests(store: Store) -> int:
    """Sync requests Pending or awaiting their acknowledgement (each counted by its partial
    index, so a round's progress costs no scan of the finished ones)."""
    with store.transaction() as tx:
        pending = tx.fetch_one("SELECT count(*) AS n FROM sync_request WHERE state = 'PENDING'")
        waiting = tx.fetch_one(
            "SELECT count(*) AS n FROM sync_request WHERE state = 'AWAITING_ACK'"
        )
    return sum(int(row["n"]) for row in (pending, waiting) if row is not None)


def summarize(store: Store, report: Report) -> None:
    """Messages per flow, requests per state and every Error, read from the store."""
    with store.transaction() as tx:
        for row in tx.fetch(
            "SELECT flow, part, count(*) AS n FROM outbox WHERE node = 'bridge' "
            "GROUP BY flow, part ORDER BY flow, part"
        ):
            report.messages[(str(row["flow"]), str(row["part"]))] = int(row["n"])
        for machine in ("sync_request", "usage_request"):
            for row in tx.fetch(f"SELECT state, count(*) AS n FROM {machine} GROUP BY state"):
                report.requests[(machine, str(row["state"]))] = int(row["n"])
        report.errors += [
            ("sync request", f"{r['mo']} {r['pk']}", str(r["reason"]))
            for r in tx.fetch(
                "SELECT mo, pk, reason FROM sync_request WHERE state = 'ERROR' ORDER BY id"
            )
        ]


def fresh_sqlite(path: Path) -> str:
    """The demo starts from an empty store: an earlier run's file is removed first."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)

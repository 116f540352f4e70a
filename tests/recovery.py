"""A crash and its recovery, with real processes: a small utility is entered in CCB; while its
changes are on their way, one of the three services on loopback is killed with SIGKILL, CCB's
users rename people meanwhile, and the service is started again. ``tests/sim/test_crash_recovery``
checks what follows; ``benchmarks/bench_recovery.py`` times it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.synthetic import CYCLES, Customer, Plan, generate
from ccbmdm.runtime.store import Store, open_store
from flows_world import settle
from loopback import NODES, Loopback
from support import postgres_schema

CUSTOMERS = 25
RENAMED = 10  # people CCB's users rename while a service is down, at most
RECOVERY_S = 60.0  # every request final within this long after the restart
# realistic for loopback: a lease a few seconds long, quick polls, retries within seconds
DELIVERY = (
    "{lease_s: 5, poll_interval_s: 0.1, backoff_base_s: 0.5, backoff_factor: 2, "
    "backoff_cap_s: 5, retry_window_s: 300, http_timeout_s: 2}"
)


class NotRecovered(AssertionError):
    """The run did not get as far as it must: no work in flight at the kill, or work still
    open when its time was up."""


@dataclass(frozen=True)
class Recovery:
    """What one kill and restart did, and how long the work took to be final again."""

    killed: str
    open_at_kill: int  # sync requests not yet final when the service was killed
    renamed: int  # people renamed while it was down, a request each
    requests: int  # every sync request CCB made
    seconds: float  # from the restart until nothing is open in any store
    ccb: CcbSimulator
    customers: list[Customer]


@contextmanager
def service_stores(kind: str, folder: Path, dsn: str) -> Iterator[dict[str, str]]:
    """Each service's store: a SQLite file each in ``folder``, or a PostgreSQL schema each on
    the server at ``dsn`` (dropped at the end)."""
    if kind == "sqlite":
        yield {name: str(folder / f"{name}.db") for name in NODES}
        return
    with ExitStack() as schemas:
        yield {name: schemas.enter_context(postgres_schema(dsn, name)) for name in NODES}


@contextmanager
def opened(where: dict[str, str]) -> Iterator[dict[str, Store]]:
    """The services' stores opened, as a test or a benchmark reads them; closed at the end."""
    stores = {name: open_store(target) for name, target in where.items()}
    try:
        yield stores
    finally:
        for store in stores.values():
            store.close()


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            raise NotRecovered(f"{what}: not within {seconds} s")
        time.sleep(0.05)


def ccb_states(store: Store) -> dict[str, int]:
    with store.transaction() as tx:
        rows = tx.fetch("SELECT state, count(*) AS n FROM sync_request GROUP BY state")
    return {str(r["state"]): int(r["n"]) for r in rows}


def refused_sends(store: Store) -> int:
    """Messages of this store whose last send found its partner unreachable."""
    with store.transaction() as tx:
        row = tx.fetch_one("SELECT count(*) AS n FROM outbox WHERE failure = 'unreachable'")
    return int(row["n"]) if row else 0


def rename_while_down(ccb: CcbSimulator, customers: list[Customer]) -> int:
    """CCB's users rename people whose first sync is done (so that each rename is a request
    of its own) while a service is down; how many."""
    with ccb.store.transaction() as tx:
        done = {
            str(r["pk"])
            for r in tx.fetch(
                "SELECT pk FROM sync_request WHERE mo = 'PERSON' AND state = 'SYNCHRONIZED'"
            )
        }
    renamed = [c for c in customers if c.person_id in done][:RENAMED]
    if not renamed:
        raise NotRecovered("no person was synchronized before the kill")
    with ccb.store.transaction() as tx:
        for customer in renamed:
            person = ccb.record(tx, "PERSON", (customer.person_id,))
            if person is None:
                raise NotRecovered(f"CCB has no person {customer.person_id}")
            ccb.save(tx, "PERSON", {**person, "entity_name": f"Renamed,{customer.person_id}"})
    return len(renamed)


def kill_and_restart(services: Loopback, store: dict[str, Store], killed: str) -> Recovery:
    """Enter the utility, kill ``killed`` once a tenth of its requests are final, rename
    people while it is down, start it again, and wait until every request is final (three
    looks in a row a moment apart find nothing open: the time includes them)."""
    ccb = CcbSimulator(store["ccb"])
    customers = generate(ccb, Plan(customers=CUSTOMERS, seed=12))
    total = CUSTOMERS * 6 + len(CYCLES)

    def flowing() -> bool:
        return ccb_states(store["ccb"]).get("SYNCHRONIZED", 0) >= total // 10

    wait_for(flowing, "the first changes to reach MDM")
    open_at_kill = total - ccb_states(store["ccb"]).get("SYNCHRONIZED", 0)
    services.kill(killed)
    if open_at_kill <= 0:
        raise NotRecovered("every request was final before the kill")

    renamed = rename_while_down(ccb, customers)
    watcher = {"bridge": "ccb", "mdm": "bridge"}.get(killed)
    if watcher is not None:  # its partner found it down before it comes back
        wait_for(lambda: refused_sends(store[watcher]) > 0, f"{killed} found down")
    restarted = services.start(killed)
    settle(list(store.values()), seconds=RECOVERY_S - (time.monotonic() - restarted))
    return Recovery(
        killed,
        open_at_kill,
        renamed,
        total + renamed,
        time.monotonic() - restarted,
        ccb,
        customers,
    )

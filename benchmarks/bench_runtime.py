"""Runtime throughput: PERSON_SYNC requests processed end to end per second.

Each request: capture, the monitor's claim and snapshot comparison, the CCB message, the bridge
mapping, delivery over the in-process transport to a receiver that persists and deduplicates,
the acknowledgement mapped back, and the final state. Issue targets: SQLite with one worker at
least 2,000/s (synchronous=FULL); PostgreSQL at least 1.6x from one worker to two.

Run: python benchmarks/bench_runtime.py [--requests 500] [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from timing import machine  # noqa: E402

from ccbmdm.codegen.loader import load_contracts, load_package  # noqa: E402
from ccbmdm.codegen.project import Project  # noqa: E402
from ccbmdm.runtime.store import Store, open_store  # noqa: E402
from ccbmdm.runtime.transport import InProcessTransport  # noqa: E402
from runtime_world import Integration  # noqa: E402


def measure(store: Store, requests: int) -> float:
    project = Project.load(ROOT)
    world = Integration(store, load_contracts(project), load_package(project), InProcessTransport())
    for index in range(requests):
        world.people.change(f"{index:010d}", f"Person,Number {index}")
    started = time.perf_counter()
    world.run()
    seconds = time.perf_counter() - started
    states = {state for state, _ in world.requests()}
    assert states == {"SYNCHRONIZED"}, states
    return requests / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--pg", help="a PostgreSQL DSN; a schema of its own is created and dropped")
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        store = open_store(str(Path(folder) / "bench.db"))
        store.migrate()
        print(
            f"SQLite, synchronous=FULL, one worker: {measure(store, args.requests):8.0f} requests/s"
        )
    if args.pg:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        try:
            store = open_store(f"{args.pg}?options=-csearch_path%3D{schema}")
            store.migrate()
            rate = measure(store, args.requests)
            print(f"PostgreSQL, one worker: {rate:8.0f} requests/s")
        finally:
            with psycopg.connect(args.pg, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()

"""Recovery after a crash: how long after a killed service is started again every request is
final, on a utility's own three processes (the bridge, ``ccbmdm run``, and the CCB and MDM
simulators on loopback, each with its own store).

A small utility is entered in CCB; once a tenth of its changes have reached MDM, one service is
killed with SIGKILL, CCB's users rename people while it is down, and it is started again. The
figure is the time from the restart until nothing is open in any store (three looks in a row a
moment apart find nothing, which the time includes); CCB must then hold every request
SYNCHRONIZED. The lease is 5 s and retries come within 5 s, so a killed sender's messages wait
at most that long. The target is a minute.

Run: python benchmarks/bench_recovery.py [--store sqlite postgres] [--killed bridge ccb mdm]
                                         [--pg postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from timing import BenchmarkFailed, machine  # noqa: E402

from loopback import three_services  # noqa: E402
from recovery import (  # noqa: E402
    DELIVERY,
    RECOVERY_S,
    NotRecovered,
    ccb_states,
    kill_and_restart,
    opened,
    service_stores,
)
from support import LOCAL_PG_DSN  # noqa: E402

TARGET_S = RECOVERY_S
SERVICES = ("bridge", "ccb", "mdm")


def measure(kind: str, killed: str, dsn: str = LOCAL_PG_DSN) -> tuple[int, float]:
    """Kill ``killed`` once on stores of ``kind``: the requests open at the kill, and the
    seconds from the restart until every request is final."""
    with ExitStack() as running:
        scratch = Path(running.enter_context(tempfile.TemporaryDirectory()))
        where = running.enter_context(service_stores(kind, scratch, dsn))
        services = running.enter_context(three_services(scratch, where, DELIVERY))
        store = running.enter_context(opened(where))
        try:
            run = kill_and_restart(services, store, killed)
        except (NotRecovered, AssertionError) as exc:
            raise BenchmarkFailed(f"{killed} killed on {kind}: {exc}") from exc
        states = ccb_states(store["ccb"])
    if states != {"SYNCHRONIZED": run.requests}:
        raise BenchmarkFailed(f"{killed} killed on {kind}: CCB's requests ended {states}")
    return run.open_at_kill, run.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--killed", nargs="+", default=list(SERVICES))
    parser.add_argument("--pg", default=os.environ.get("CCBMDM_TEST_PG_DSN", LOCAL_PG_DSN))
    args = parser.parse_args()
    print(machine())
    for kind in args.store:
        for killed in args.killed:
            open_at_kill, seconds = measure(kind, killed, args.pg)
            print(
                f"{kind}, {killed} killed with {open_at_kill} requests open: every request "
                f"final {seconds:.1f} s after its restart (target: {TARGET_S:.0f} s)"
            )


if __name__ == "__main__":
    main()

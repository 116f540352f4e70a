"""The two simulators and the bridge as three HTTP services on loopback, each with its own
store: a utility entered in CCB reaches MDM across real sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ccbmdm.runtime.sim.ccb import CcbSimulator
from ccbmdm.runtime.sim.synthetic import Plan, generate
from ccbmdm.runtime.store import open_store
from support import REPO

CCBMDM = str(Path(sys.executable).parent / "ccbmdm")
TOKENS = {"CCBMDM_CCB_TOKEN": "ccb-loopback-token", "CCBMDM_MDM_TOKEN": "mdm-loopback-token"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def service(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A ccbmdm command running until the block ends; it must stop cleanly on SIGTERM."""
    env = {**os.environ, **TOKENS}
    process = subprocess.Popen(
        [CCBMDM, *args, "--project-dir", str(REPO)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening: "), line + (
            process.stderr.read() if process.stderr else ""
        )
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err


def wait_for(condition: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)


def test_master_data_crosses_three_services(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("bridge", "ccb", "mdm")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    bridge_config = tmp_path / "bridge.yaml"
    bridge_config.write_text(
        f"""\
store: bridge.db
nodes:
  bridge:
    listen: "127.0.0.1:{ports["bridge"]}"
    accept: {{ccb: {{token_env: CCBMDM_CCB_TOKEN}}, mdm: {{token_env: CCBMDM_MDM_TOKEN}}}}
  ccb: {{url: "{url["ccb"]}", credential: {{token_env: CCBMDM_CCB_TOKEN}}}}
  mdm: {{url: "{url["mdm"]}", credential: {{token_env: CCBMDM_MDM_TOKEN}}}}
delivery: {{poll_interval_s: 0.05, backoff_base_s: 0.2, backoff_factor: 2}}
"""
    )

    def options(name: str) -> list[str]:
        token = f"CCBMDM_{name.upper()}_TOKEN"
        return ["--port", str(ports[name]), "--bridge", url["bridge"], "--token-env", token]

    ccb_store = tmp_path / "ccb.db"
    mdm_store = tmp_path / "mdm.db"
    with (
        service("run", "--config", str(bridge_config)),
        service("sim", "mdm", *options("mdm"), "--store", str(mdm_store)),
        service("sim", "ccb", *options("ccb"), "--store", str(ccb_store)),
    ):
        store = open_store(str(ccb_store))
        customers = generate(CcbSimulator(store), Plan(customers=5, seed=9))

        def synchronized() -> bool:
            with store.transaction() as tx:
                rows = tx.fetch("SELECT state FROM sync_request")
            return len(rows) == 5 * 6 + 4 and {r["state"] for r in rows} == {"SYNCHRONIZED"}

        wait_for(synchronized)
        store.close()
    mdm = open_store(str(mdm_store))
    with mdm.transaction() as tx:
        contacts = tx.fetch("SELECT count(*) AS n FROM mdm_contact")
        references = tx.fetch(
            "SELECT count(*) AS n FROM mdm_cross_reference WHERE external_system = 'CCB'"
        )
    mdm.close()
    assert contacts[0]["n"] == len(customers)
    assert references[0]["n"] >= 5 * 6 + 4

"""Three services on loopback, as in production: the bridge (``ccbmdm run``) and the two
reference simulators (``ccbmdm sim ccb|mdm``), each with its own store, talking HTTP with
bearer tokens. Tests start them as processes and stop them with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from support import REPO

CCBMDM = str(Path(sys.executable).parent / "ccbmdm")
TOKENS = {"CCBMDM_CCB_TOKEN": "ccb-loopback-token", "CCBMDM_MDM_TOKEN": "mdm-loopback-token"}
# The operator both simulators let read their pages (HTTP Basic, as a browser sends it).
VIEWER = ("operator", "viewer-loopback-password")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def service(*args: str) -> Iterator[subprocess.Popen[str]]:
    """A ccbmdm command running until the block ends; it must stop cleanly on SIGTERM."""
    env = {**os.environ, **TOKENS, "CCBMDM_SIM_VIEWER_PASSWORD": VIEWER[1]}
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


@dataclass(frozen=True)
class Loopback:
    """Where the three services listen and keep their stores."""

    url: dict[str, str]  # node -> base URL
    store: dict[str, Path]  # node -> SQLite file


@contextmanager
def three_services(folder: Path) -> Iterator[Loopback]:
    """The bridge and both simulators running, until the block ends."""
    ports = {name: free_port() for name in ("bridge", "ccb", "mdm")}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    stores = {name: folder / f"{name}.db" for name in ports}
    bridge_config = folder / "bridge.yaml"
    bridge_config.write_text(
        f"""\
store: {stores["bridge"].name}
nodes:
  bridge:
    listen: "127.0.0.1:{ports["bridge"]}"
    accept: {{ccb: {{token_env: CCBMDM_CCB_TOKEN}}, mdm: {{token_env: CCBMDM_MDM_TOKEN}}}}
  ccb: {{url: "{url["ccb"]}", credential: {{token_env: CCBMDM_CCB_TOKEN}}}}
  mdm: {{url: "{url["mdm"]}", credential: {{token_env: CCBMDM_MDM_TOKEN}}}}
delivery: {{poll_interval_s: 0.05, backoff_base_s: 0.2, backoff_factor: 2}}
"""
    )

    def simulator(name: str) -> list[str]:
        token = f"CCBMDM_{name.upper()}_TOKEN"
        return [
            "sim",
            name,
            "--port",
            str(ports[name]),
            "--bridge",
            url["bridge"],
            "--token-env",
            token,
            "--store",
            str(stores[name]),
        ]

    with ExitStack() as stack:
        stack.enter_context(service("run", "--config", str(bridge_config)))
        stack.enter_context(service(*simulator("mdm")))
        stack.enter_context(service(*simulator("ccb")))
        yield Loopback(url, stores)

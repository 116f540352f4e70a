"""Three services on loopback, as in production: the bridge (``ccbmdm run``) and the two
reference simulators (``ccbmdm sim ccb|mdm``), each with its own store, talking HTTP with
bearer tokens. Tests start them as processes and stop them with SIGTERM; a crash test kills
one with SIGKILL and starts it again on the same port and store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from support import REPO

CCBMDM = str(Path(sys.executable).parent / "ccbmdm")
TOKENS = {"CCBMDM_CCB_TOKEN": "ccb-loopback-token", "CCBMDM_MDM_TOKEN": "mdm-loopback-token"}
NODES = ("bridge", "mdm", "ccb")  # the order they start in
# what the services use unless a test says otherwise: quick polls and retries
DELIVERY = "{poll_interval_s: 0.05, backoff_base_s: 0.2, backoff_factor: 2}"
START_S = 60  # how long a service may take to listen
# The operator both simulators let read their pages (HTTP Basic, as a browser sends it).
VIEWER = ("operator", "viewer-loopback-password")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Loopback:
    """Where the three services listen and keep their stores (a SQLite file or a DSN), and
    the processes running them; each writes its output to ``<node>.out`` and ``<node>.err``
    in ``folder`` (a pipe nobody reads would stop a busy service once it is full)."""

    folder: Path
    url: dict[str, str]  # node -> base URL
    store: dict[str, str]  # node -> SQLite file or postgresql:// DSN
    delivery: str = DELIVERY  # the delivery: mapping every service uses, as YAML
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def command(self, name: str) -> list[str]:
        settings = self.folder / "delivery.yaml"
        settings.write_text(f"delivery: {self.delivery}\n")
        if name == "bridge":
            return ["run", "--config", str(self._bridge_config())]
        return [
            *("sim", name, "--port", self.url[name].rsplit(":", 1)[1]),
            *("--bridge", self.url["bridge"], "--token-env", f"CCBMDM_{name.upper()}_TOKEN"),
            *("--store", self.store[name], "--delivery", str(settings)),
        ]

    def _bridge_config(self) -> Path:
        path = self.folder / "bridge.yaml"
        port = self.url["bridge"].rsplit(":", 1)[1]
        path.write_text(
            f"""\
store: "{self.store["bridge"]}"
nodes:
  bridge:
    listen: "127.0.0.1:{port}"
    accept: {{ccb: {{token_env: CCBMDM_CCB_TOKEN}}, mdm: {{token_env: CCBMDM_MDM_TOKEN}}}}
  ccb: {{url: "{self.url["ccb"]}", credential: {{token_env: CCBMDM_CCB_TOKEN}}}}
  mdm: {{url: "{self.url["mdm"]}", credential: {{token_env: CCBMDM_MDM_TOKEN}}}}
delivery: {self.delivery}
"""
        )
        return path

    def start(self, name: str) -> float:
        """Start a node's service and wait until it listens; when it did (monotonic time)."""
        out, err = (self.folder / f"{name}.{kind}" for kind in ("out", "err"))
        offset = out.stat().st_size if out.exists() else 0
        with out.open("ab") as stdout, err.open("ab") as stderr:
            process = subprocess.Popen(
                [CCBMDM, *self.command(name), "--project-dir", str(REPO)],
                env={**os.environ, **TOKENS, "CCBMDM_SIM_VIEWER_PASSWORD": VIEWER[1]},
                stdout=stdout,
                stderr=stderr,
            )
        self.processes[name] = process
        deadline = time.monotonic() + START_S
        while b"listening: " not in out.read_bytes()[offset:]:
            assert process.poll() is None, f"{name} exited {process.returncode}: {self.log(name)}"
            assert time.monotonic() < deadline, f"{name} is not listening: {self.log(name)}"
            time.sleep(0.05)
        return time.monotonic()

    def kill(self, name: str) -> None:
        """SIGKILL: the node's service dies where it stands."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to every service; each must stop cleanly."""
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        failed = []
        for name, process in self.processes.items():
            if process.wait(timeout=60) != 0:
                failed.append(f"{name} exited {process.returncode}: {self.log(name)}")
        self.processes.clear()
        assert not failed, failed

    def log(self, name: str) -> str:
        """The end of a node's standard error."""
        path = self.folder / f"{name}.err"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@contextmanager
def three_services(
    folder: Path, stores: dict[str, str] | None = None, delivery: str = DELIVERY
) -> Iterator[Loopback]:
    """The bridge and both simulators running, until the block ends; ``stores``: each node's
    store (default: a SQLite file each in ``folder``)."""
    url = {name: f"http://127.0.0.1:{free_port()}" for name in NODES}
    services = Loopback(
        folder, url, stores or {name: str(folder / f"{name}.db") for name in NODES}, delivery
    )
    try:
        for name in NODES:
            services.start(name)
        yield services
    finally:
        services.stop()

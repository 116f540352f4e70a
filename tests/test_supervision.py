"""Worker processes under `ccbmdm monitor --workers N` and `ccbmdm run --workers N`, as real
processes: they end with their supervisor however it ends, a killed one is replaced, a stop
is over within the grace period even when a process is stuck in a system, and they log as
their supervisor does."""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import subprocess
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.runtime.config import SupervisionSetting, load_config
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.supervisor import restart_delay, start_worker
from ccbmdm.runtime.worker import FORCED_EXIT
from command_world import CCBMDM, alive, descendants, environment, wait_for, write_config
from loopback import free_port
from runtime_world import FLOWS, People
from support import REPO, sample

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="follows the processes through /proc"
)


def test_the_restart_delay_doubles_while_workers_keep_dying_and_starts_over() -> None:
    settings = SupervisionSetting(restart_delay_s=1, restart_delay_cap_s=60)
    delays = [restart_delay(0, 0.5, settings)]
    for _ in range(7):
        delays.append(restart_delay(delays[-1], 10, settings))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert restart_delay(60, 60, settings) == 1  # it had lived as long as the longest delay


@dataclass
class Supervised:
    """A running ``ccbmdm monitor`` or ``run`` whose MDM notes the processes that run workers
    (runtime_world.ObservedMdm) in ``folder``."""

    process: subprocess.Popen[bytes]
    folder: Path
    log: Path

    def workers(self) -> set[int]:
        """The worker processes under the supervisor that run now."""
        noted = {int(path.name) for path in self.folder.iterdir() if path.name.isdigit()}
        return {pid for pid in noted - {self.process.pid} if alive(pid)}

    def wait_for_workers(self, count: int, other_than: Collection[int] = ()) -> set[int]:
        """The workers, once ``count`` of them other than ``other_than`` run."""
        wait_for(lambda: len(self.workers() - set(other_than)) == count, 60)
        return self.workers()

    def stall(self, pid: int) -> None:
        """Have the process ``pid`` stuck in MDM's monitor, and wait until it is."""
        (self.folder / "stall").write_text(f"{pid}\n")
        wait_for(lambda: (self.folder / f"{pid}.stalled").exists())

    def stderr(self) -> str:
        return self.log.read_text()

    def lines(self) -> list[dict[str, Any]]:
        """The log lines on standard error (a file: JSON lines)."""
        return [json.loads(line) for line in self.stderr().splitlines()]

    def messages(self) -> list[str]:
        return [line["message"] for line in self.lines()]


@contextmanager
def started(
    tmp_path: Path,
    command: str,
    workers: int,
    dsn: str | None = None,
    grace_s: float = 20,
    bridge: str = "",
    lease_s: float = 2,
    log_level: str = "warning",
) -> Iterator[Supervised]:
    """``ccbmdm <command> --workers <workers>`` on the store ``dsn`` (default: SQLite in
    ``tmp_path``), with the bridge's settings ``bridge``, logging at ``log_level`` (warning:
    what went wrong only); killed with everything below it if the test leaves it running."""
    folder = tmp_path / "workers"
    folder.mkdir()
    config = write_config(
        tmp_path,
        dsn or str(tmp_path / "runtime.db"),
        bridge,
        mdm="runtime_world:observed_mdm_system",
        supervision=f"stop_grace_s: {grace_s}",
        lease_s=lease_s,
    )
    log = tmp_path / "stderr.txt"
    options = ["--workers", str(workers), "--config", str(config), "--project-dir", str(REPO)]
    options += ["--log-level", log_level]
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [CCBMDM, command, *options],
            env=environment(CCBMDM_TEST_WORKERS=str(folder)),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield Supervised(process, folder, log)
    finally:
        for pid in descendants(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()


def test_a_worker_stops_when_the_pipe_from_its_supervisor_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tie that holds on every platform: here the supervisor (this test) lives on, and only
    the pipe it holds ends."""
    folder = tmp_path / "workers"
    folder.mkdir()
    monkeypatch.setenv("CCBMDM_TEST_WORKERS", str(folder))
    written = write_config(
        tmp_path, str(tmp_path / "runtime.db"), mdm="runtime_world:observed_mdm_system"
    )
    worker = start_worker(load_config(written), REPO, 1, None)
    try:
        wait_for(lambda: (folder / str(worker.pid)).exists())  # it works
        assert worker.stdin is not None
        worker.stdin.close()
        assert worker.wait(timeout=20) == 0
    finally:
        worker.kill()
        worker.wait()


@pytest.mark.parametrize("command", ["monitor", "run"])
def test_workers_end_with_their_supervisor_when_it_is_killed(tmp_path: Path, command: str) -> None:
    with started(tmp_path, command, workers=3) as runtime:
        workers = runtime.wait_for_workers(2)
        below = descendants(runtime.process.pid)
        assert below == workers  # and no other process (such as a resource tracker)
        runtime.process.kill()
        runtime.process.wait()
        wait_for(lambda: not any(alive(pid) for pid in below), 10)


def test_a_killed_worker_is_restarted_and_the_work_completes(store: Store, tmp_path: Path) -> None:
    # The worker is killed before any work exists, so no lease of its needs rescuing; leases of
    # 120 s keep a busy machine's slow batch (waiting behind the test's saves, at a load of ten
    # a batch of 50 outlived 30 s) from losing its leases and saying so, which is right, but
    # not the one line this test counts.
    with started(tmp_path, "monitor", workers=2, dsn=store.dsn, lease_s=120) as runtime:
        (first,) = runtime.wait_for_workers(1)
        os.kill(first, signal.SIGKILL)
        (second,) = runtime.wait_for_workers(1, other_than={first})
        assert second != first
        (line,) = runtime.messages()  # one line tells it all
        assert line.startswith(f"worker 1 (pid {first}) was killed by SIGKILL after ")
        assert line.endswith(" s; restarting it in 1 s")
        people = People(store)
        for index in range(200):
            people.change(f"{index + 30000:010d}", f"Person,{index}")

        def synchronized() -> bool:
            with store.transaction() as tx:
                rows = tx.fetch("SELECT state FROM sync_request")
            return len(rows) == 200 and {r["state"] for r in rows} == {"SYNCHRONIZED"}

        wait_for(synchronized)
        runtime.process.send_signal(signal.SIGTERM)
        assert runtime.process.wait(timeout=20) == 0, runtime.stderr()
        assert not alive(second)
        assert runtime.messages() == [line]


def test_sigterm_stops_run_and_its_workers_within_the_grace_period(tmp_path: Path) -> None:
    with started(tmp_path, "run", workers=3) as runtime:
        workers = runtime.wait_for_workers(2)
        below = descendants(runtime.process.pid)
        assert workers <= below
        runtime.process.send_signal(signal.SIGTERM)
        assert runtime.process.wait(timeout=20) == 0, runtime.stderr()
        assert not any(alive(pid) for pid in below)
        assert runtime.stderr() == ""  # every process stopped cleanly and quietly


@pytest.mark.parametrize("stuck", ["worker", "supervisor"])
def test_a_stop_is_over_at_the_grace_period_even_when_a_process_is_stuck(
    tmp_path: Path, stuck: str
) -> None:
    with started(tmp_path, "monitor", workers=2, grace_s=2) as runtime:
        (worker,) = runtime.wait_for_workers(1)
        runtime.stall(worker if stuck == "worker" else runtime.process.pid)
        runtime.process.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        assert runtime.process.wait(timeout=30) == FORCED_EXIT, runtime.stderr()
        assert time.monotonic() - asked >= 2  # the batch in hand was given its grace period
        wait_for(lambda: not alive(worker), 5)
        killed = f"worker 1 (pid {worker}) still running at the end of the grace period; killed"
        assert (killed in runtime.stderr()) == (stuck == "worker")
        assert "took longer than its grace period of 2 s; ending the process" in runtime.stderr()
        assert "Traceback" not in runtime.stderr()


def test_run_stops_at_the_grace_period_while_a_request_is_stuck(tmp_path: Path) -> None:
    port = free_port()
    bridge = f'listen: "127.0.0.1:{port}", accept: {{ccb: {{user: ccb, password_env: TEST_CCB_PASSWORD}}}}'
    with started(tmp_path, "run", workers=1, grace_s=2, bridge=bridge) as runtime:
        wait_for(lambda: (runtime.folder / str(runtime.process.pid)).exists())  # it serves
        (runtime.folder / "stall-calls").touch()
        flow = next(flow for flow in FLOWS if flow.code == "HIGH_LOW")
        request = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        credential = base64.b64encode(b"ccb:ccb-secret").decode()
        request.request(
            "POST",
            f"/ccbmdm/v1/{flow.kebab}/request",
            body=sample(flow.part("request").sender),
            headers={"Authorization": f"Basic {credential}"},
        )
        wait_for(lambda: (runtime.folder / "calls.stalled").exists())
        runtime.process.send_signal(signal.SIGTERM)
        asked = time.monotonic()
        assert runtime.process.wait(timeout=30) == FORCED_EXIT, runtime.stderr()
        assert time.monotonic() - asked >= 2
        request.close()


def test_a_worker_process_logs_as_its_supervisor_does(store: Store, tmp_path: Path) -> None:
    """The supervising process's own worker is stuck, so worker 1, a process of its own, moves
    the request: its lines are JSON at info, as the supervisor was told, and carry its number."""
    with started(
        tmp_path, "monitor", workers=2, dsn=store.dsn, lease_s=120, log_level="info"
    ) as runtime:
        runtime.wait_for_workers(1)
        runtime.stall(runtime.process.pid)
        People(store).change("0000040001", "Person,Logged")

        def synchronized() -> bool:
            with store.transaction() as tx:
                return [r["state"] for r in tx.fetch("SELECT state FROM sync_request")] == [
                    "SYNCHRONIZED"
                ]

        wait_for(synchronized)
        wait_for(lambda: "SYNCHRONIZED" in runtime.stderr())  # written after the commit
        moves = [line for line in runtime.lines() if line.get("event") == "lifecycle.moved"]
        assert [(m["to_state"], m["worker"]) for m in moves] == [
            ("AWAITING_ACK", 1),
            ("SYNCHRONIZED", 1),
        ]
        started_line = next(line for line in runtime.lines() if "started (pid" in line["message"])
        assert started_line["level"] == "INFO" and "worker" not in started_line  # the supervisor

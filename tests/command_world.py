"""The ``ccbmdm`` command run as a process on a test configuration whose CCB and MDM are the
test systems of runtime_world, and what tests need to see of the processes it starts."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from support import REPO

CCBMDM = str(Path(sys.executable).parent / "ccbmdm")


def write_config(
    tmp_path: Path,
    dsn: str,
    bridge: str = "",
    *,
    mdm: str = "runtime_world:mdm_system",
    supervision: str = "",
    lease_s: float = 2,
) -> Path:
    """A runtime configuration on the store ``dsn``, with the bridge's settings ``bridge``, the
    system ``mdm`` behind MDM, the supervision settings ``supervision`` and leases of
    ``lease_s`` (short, so that a test sees a killed worker's rows rescued soon)."""
    path = tmp_path / "runtime.yaml"
    path.write_text(
        f"""\
store: "{dsn}"
nodes:
  ccb: {{system: "runtime_world:ccb_system"}}
  bridge: {{{bridge}}}
  mdm: {{system: "{mdm}"}}
delivery: {{lease_s: {lease_s}, backoff_base_s: 0, backoff_factor: 2, poll_interval_s: 0.05}}
"""
        + (f"supervision: {{{supervision}}}\n" if supervision else "")
    )
    return path


def environment(**extra: str) -> dict[str, str]:
    """The test systems importable (an empty entry would put the working directory, the
    repository with its unbuilt ccbmdm folder, on the path), and the CCB password."""
    paths = [str(REPO / "tests"), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(path for path in paths if path),
        "TEST_CCB_PASSWORD": "ccb-secret",
        **extra,
    }


def wait_for(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    """The processes ``pid`` started and that still run (Linux: /proc/<pid>/task/*/children)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(child) for child in (task / "children").read_text().split())
        except OSError:  # the task or the process ended meanwhile
            continue
    return {child for child in found if alive(child)}


def descendants(pid: int) -> set[int]:
    """Every process below ``pid``: its children, theirs, and so on."""
    found = children(pid)
    for child in list(found):
        found |= descendants(child)
    return found


def alive(pid: int) -> bool:
    """The process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"

"""A node's /healthz, /readyz and /metrics (runtime.health, runtime.metrics), served by the
runtime as `ccbmdm run` serves them: readiness follows the store, its schema and the worker;
the metrics are the store's and the worker's, in the Prometheus text format, behind the node's
credential unless the configuration opens them."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import (
    CredentialSetting,
    DeliverySetting,
    NodeSetting,
    RuntimeConfig,
)
from ccbmdm.runtime.health import HealthApp
from ccbmdm.runtime.messaging.http import Server
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.postgres import PostgresStore
from ccbmdm.runtime.store.schema import SCHEMA_VERSION
from command_world import CCBMDM, children, environment, wait_for, write_config
from loopback import free_port
from runtime_world import People
from support import REPO, sample

CCB = ("ccb", "ccb-secret")  # the partner's credential (Basic)
OPERATOR = ("operator", "operator-password")  # a viewer's
REJECTED = "0000000013"  # runtime_world.mdm_system rejects this person


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {pair}"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, parsed by prometheus_client: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def runtime_on(store: Store, port: int, *, metrics_open: bool = False) -> Runtime:
    """The test systems behind CCB and MDM, the bridge listening on ``port``."""
    bridge = NodeSetting(
        listen=f"127.0.0.1:{port}",
        accept={"ccb": CredentialSetting(user="ccb", password_env="T_CCB_PASSWORD")},
        viewers={"operator": CredentialSetting(user="operator", password_env="T_OPERATOR")},
        metrics_open=metrics_open,
    )
    config = RuntimeConfig(
        store=store.dsn,
        nodes={
            "ccb": NodeSetting(system="runtime_world:ccb_system"),
            "bridge": bridge,
            "mdm": NodeSetting(system="runtime_world:mdm_system"),
        },
        delivery=DeliverySetting(poll_interval_s=0.05, backoff_base_s=0),
    )
    return Runtime(config, Project.load(REPO))


@pytest.fixture
def served(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Runtime, str]]:
    """A runtime whose bridge listens, its worker not started; and the bridge's URL."""
    monkeypatch.setenv("T_CCB_PASSWORD", CCB[1])
    monkeypatch.setenv("T_OPERATOR", OPERATOR[1])
    port = free_port()
    runtime = runtime_on(store, port)
    try:
        with ExitStack() as stack:
            runtime.serve(stack)
            yield runtime, f"http://127.0.0.1:{port}"
    finally:
        runtime.close()


@pytest.fixture
def working(served: tuple[Runtime, str]) -> Iterator[tuple[Runtime, str]]:
    """The same with its worker running in a thread, as `ccbmdm run` runs it."""
    runtime, _ = served
    stop = threading.Event()
    worker = threading.Thread(target=runtime.worker().run, args=(stop,))
    worker.start()
    try:
        yield served
    finally:
        stop.set()
        worker.join()


def test_health_is_open_and_readiness_waits_for_the_worker(served: tuple[Runtime, str]) -> None:
    runtime, url = served
    assert httpx.get(f"{url}/healthz").text == "ok\n"
    waiting = httpx.get(f"{url}/readyz")
    assert waiting.status_code == 503
    assert waiting.text == "the worker has not finished a round yet\n"
    stop = threading.Event()
    worker = threading.Thread(target=runtime.worker().run, args=(stop,))
    worker.start()
    try:
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
        assert httpx.get(f"{url}/readyz").text == "ready\n"
    finally:
        stop.set()
        worker.join()
    runtime.workers.stale_after_s = 0  # a worker that stopped is not ready
    assert "the worker's last round ended" in httpx.get(f"{url}/readyz").text


def test_readiness_fails_while_the_schema_is_behind(working: tuple[Runtime, str]) -> None:
    runtime, url = working
    wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)
    with runtime.store.transaction() as tx:
        tx.execute(f"DELETE FROM schema_version WHERE version = {SCHEMA_VERSION}")
    behind = httpx.get(f"{url}/readyz")
    assert behind.status_code == 503
    assert behind.text.startswith(
        f"store: schema version {SCHEMA_VERSION - 1}, this ccbmdm needs {SCHEMA_VERSION};"
    )


def test_readiness_fails_when_the_store_is_gone(store: Store, tmp_path: Path) -> None:
    """The database goes away under a node: readiness says so, naming the store; health,
    which only says the process answers, does not change."""
    if isinstance(store, PostgresStore):  # a new connection (the server's threads') is refused
        store.dsn = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    else:
        shutil.rmtree(tmp_path)
    with Server(HealthApp(store, None, lambda _: False)) as server:
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        gone = httpx.get(f"{server.url}/readyz")
    assert gone.status_code == 503
    assert gone.text.startswith("store: ")
    named = "cannot connect to PostgreSQL" if isinstance(store, PostgresStore) else "runtime.db"
    assert named in gone.text


def test_metrics_need_the_nodes_credential(served: tuple[Runtime, str]) -> None:
    _, url = served
    refused = httpx.get(f"{url}/metrics")
    assert refused.status_code == 401
    assert any(c.startswith("Basic ") for c in refused.headers.get_list("www-authenticate"))
    assert "ccbmdm_rows" not in refused.text
    assert httpx.get(f"{url}/metrics", headers=basic("ccb", "guess")).status_code == 401
    for credential in (CCB, OPERATOR):
        answer = httpx.get(f"{url}/metrics", headers=basic(*credential))
        assert answer.status_code == 200, credential
        assert answer.headers["content-type"].startswith("text/plain")


def test_metrics_open_when_the_configuration_says_so(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_CCB_PASSWORD", CCB[1])
    monkeypatch.setenv("T_OPERATOR", OPERATOR[1])
    port = free_port()
    runtime = runtime_on(store, port, metrics_open=True)
    try:
        with ExitStack() as stack:
            runtime.serve(stack)
            assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 200
    finally:
        runtime.close()


def test_metrics_count_what_the_node_received_delivered_and_measured(
    working: tuple[Runtime, str],
) -> None:
    """Two people changed in CCB, one rejected by MDM; a person sync request posted to the
    bridge over HTTP. The scrape shows the store's counts and the worker's measurements."""
    runtime, url = working
    operator = basic(*OPERATOR)
    before = samples(httpx.get(f"{url}/metrics", headers=operator).text)
    ccb = runtime.systems["ccb"]
    ccb.change("0000000001", "Okafor,Ada")  # type: ignore[attr-defined]
    ccb.change(REJECTED, "Rejected,Once")  # type: ignore[attr-defined]
    posted = httpx.post(
        f"{url}/ccbmdm/v1/person-sync/request",
        content=sample("ccb/PersonSyncRequest"),
        headers=basic(*CCB),
    )
    assert posted.status_code == 202, posted.text

    def settled() -> bool:
        with runtime.store.transaction() as tx:
            open_ = tx.fetch(
                "SELECT count(*) AS n FROM sync_request WHERE state NOT IN "
                "('SYNCHRONIZED', 'ERROR') UNION ALL SELECT count(*) FROM inbox "
                "WHERE state <> 'PROCESSED'"
            )
        return [row["n"] for row in open_] == [0, 0]

    wait_for(settled)
    after = samples(httpx.get(f"{url}/metrics", headers=operator).text)

    def value(name: str, **labels: str) -> float:
        return after[(name, frozenset(labels.items()))]

    def grown(name: str, **labels: str) -> float:
        """How much the samples of ``name`` with ``labels`` grew: the worker's instruments
        live as long as the process, which ran other tests before."""

        def summed(scrape: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
            return sum(
                v for (n, seen), v in scrape.items() if n == name and set(labels.items()) <= seen
            )

        return summed(after) - summed(before)

    rows = {"node": "", "flow": "PERSON_SYNC", "part": ""}
    assert value("ccbmdm_rows", lifecycle="sync_request", state="SYNCHRONIZED", **rows) == 1
    assert value("ccbmdm_rows", lifecycle="sync_request", state="ERROR", **rows) == 1
    # the bridge received the two requests CCB sent and the one posted
    request = {"flow": "PERSON_SYNC", "part": "request"}
    assert value("ccbmdm_messages_received_total", node="bridge", **request) == 3
    assert value("ccbmdm_messages_delivered_total", node="ccb", **request) == 2
    assert grown("ccbmdm_messages_faulted_total") == 0
    assert grown("ccbmdm_messages_retried_total") == 0
    assert grown("ccbmdm_delivery_seconds_count", node="ccb") == 2
    assert grown("ccbmdm_processing_seconds_count", node="bridge") >= 3
    assert grown("ccbmdm_batch_size_count", node="bridge", step="process") >= 1
    assert grown("ccbmdm_lease_losses_total") == 0
    assert not [name for name, _ in after if name == "ccbmdm_oldest_waiting_seconds"]


def test_ccbmdm_run_with_two_workers_serves_both_workers_measurements(
    store: Store, tmp_path: Path
) -> None:
    """`ccbmdm run --workers 2`: the scrape adds up what the supervised worker process measured
    to the serving process's own; readiness fails while a worker process is down."""
    port = free_port()
    listen = (
        f'listen: "127.0.0.1:{port}", metrics_open: true, '
        "accept: {ccb: {user: ccb, password_env: TEST_CCB_PASSWORD}}"
    )
    config = write_config(tmp_path, store.dsn, listen, supervision="restart_delay_s: 60")
    people = People(store)
    for index in range(200):
        people.change(f"{index + 20000:010d}", f"Person,{index}")
    url = f"http://127.0.0.1:{port}"
    logged = (tmp_path / "stderr.log").open("w+")  # the logs: a pipe read at the end fills up
    server = subprocess.Popen(
        [CCBMDM, "run", "--workers", "2", "--config", str(config), "--project-dir", str(REPO)],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=logged,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == f"listening: bridge: {url}\n"
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 200)

        def synchronized() -> bool:
            with store.transaction() as tx:
                rows = tx.fetch("SELECT DISTINCT state FROM sync_request")
            return [row["state"] for row in rows] == ["SYNCHRONIZED"]

        wait_for(synchronized)
        scraped = samples(httpx.get(f"{url}/metrics").text)
        sent = [
            value
            for (name, labels), value in scraped.items()
            if name == "ccbmdm_delivery_seconds_count" and ("node", "ccb") in labels
        ]
        assert sum(sent) == 200  # each request sent once, by one worker or the other
        delivered = (
            "ccbmdm_messages_delivered_total",
            frozenset({("node", "ccb"), ("flow", "PERSON_SYNC"), ("part", "request")}),
        )
        assert scraped[delivered] == 200
        (supervised,) = children(server.pid)
        os.kill(supervised, signal.SIGKILL)
        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 503)
        assert "worker process(es) 1 not running" in httpx.get(f"{url}/readyz").text
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
        logged.seek(0)
        err = logged.read()
        logged.close()
    assert server.returncode == 0, err

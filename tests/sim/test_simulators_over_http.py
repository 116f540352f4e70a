"""The two simulators and the bridge as three HTTP services on loopback, each with its own
store: a utility entered in CCB reaches MDM across real sockets."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.synthetic import Plan, generate
from ccbmdm.runtime.store import open_store
from loopback import VIEWER, three_services


def wait_for(condition: Callable[[], bool], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)


def test_master_data_crosses_three_services(tmp_path: Path) -> None:
    with three_services(tmp_path) as services:
        store = open_store(str(services.store["ccb"]))
        customers = generate(CcbSimulator(store), Plan(customers=5, seed=9))

        def synchronized() -> bool:
            with store.transaction() as tx:
                rows = tx.fetch("SELECT state FROM sync_request")
            return len(rows) == 5 * 6 + 4 and {r["state"] for r in rows} == {"SYNCHRONIZED"}

        wait_for(synchronized)
        with store.transaction() as tx:
            person = tx.fetch_one("SELECT pk, data FROM ccb_entity WHERE mo = 'PERSON' ORDER BY pk")
        store.close()
        assert person is not None
        name = json.loads(person["data"])["entity_name"]
        mdm = open_store(str(services.store["mdm"]))
        with mdm.transaction() as tx:
            contact = tx.fetch_one("SELECT id FROM mdm_contact WHERE name = :n", {"n": name})
        mdm.close()
        assert contact is not None
        # A person's page on either side, as an operator's browser reads it: challenged first,
        # then shown with the viewer's password (the link between them works the same way).
        for page in (
            f"{services.url['ccb']}/ccb/person/{person['pk']}",
            f"{services.url['mdm']}/mdm/contact/{contact['id']}",
        ):
            refused = httpx.get(page)
            assert refused.status_code == 401 and name not in refused.text
            assert refused.headers["www-authenticate"].startswith("Basic ")
            shown = httpx.get(page, auth=VIEWER)
            assert shown.status_code == 200 and name in shown.text
    mdm = open_store(str(services.store["mdm"]))
    with mdm.transaction() as tx:
        contacts = tx.fetch("SELECT count(*) AS n FROM mdm_contact")
        references = tx.fetch(
            "SELECT count(*) AS n FROM mdm_cross_reference WHERE external_system = 'CCB'"
        )
    mdm.close()
    assert contacts[0]["n"] == len(customers)
    assert references[0]["n"] >= 5 * 6 + 4

"""Recovery after a crash, with real processes: the bridge (``ccbmdm run``) and the two
simulators (``ccbmdm sim ccb|mdm``) on loopback, each with its own store. A small utility is
entered in CCB; while its changes are on their way, one of the three processes is killed with
SIGKILL, CCB's users go on changing people meanwhile, and the process is started again. Every
request must be final within a minute of the restart, and CCB and MDM must then agree record
by record: nothing lost, nothing duplicated, nothing applied twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.runtime.lifecycles.sync import CCB_SYNC_FLOWS
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.mdm.apply import FLOWS
from ccbmdm.runtime.sim.mdm.records import Records, production_id
from ccbmdm.runtime.sim.synthetic import CYCLES, Customer
from ccbmdm.runtime.store import Store
from loopback import three_services
from recovery import (
    DELIVERY,
    RECOVERY_S,
    ccb_states,
    kill_and_restart,
    opened,
    service_stores,
)
from support import pg_dsn


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Each node's store: a SQLite file each, or a PostgreSQL schema each."""
    dsn = pg_dsn() if request.param == "postgres" else ""
    with service_stores(request.param, tmp_path, dsn) as where:
        yield where


@pytest.mark.parametrize("killed", ["ccb", "bridge", "mdm"])
def test_after_a_kill_and_a_restart_every_request_is_final_within_a_minute_and_both_agree(
    killed: str, stores: dict[str, str], tmp_path: Path
) -> None:
    with three_services(tmp_path, stores, DELIVERY) as services, opened(stores) as store:
        run = kill_and_restart(services, store, killed)
        print(f"{killed} killed with {run.open_at_kill} open: all final {run.seconds:.1f} s after")
        assert run.seconds <= RECOVERY_S
        assert ccb_states(store["ccb"]) == {"SYNCHRONIZED": run.requests}
        agree_message_by_message(store["ccb"], store["mdm"])
        agree_record_by_record(run.ccb, store["mdm"], run.customers)


def agree_message_by_message(ccb: Store, mdm: Store) -> None:
    """Every message CCB sent reached MDM once and was applied (the inbox keeps one row per
    message id); every key's last version sent is the version MDM applied."""
    with ccb.transaction() as tx:
        sent = tx.fetch(
            "SELECT mo, pk, entity_version, message_id FROM sync_request WHERE state = 'SYNCHRONIZED'"
        )
        versions = {
            (str(r["mo"]), str(r["pk"])): int(r["version"])
            for r in tx.fetch("SELECT mo, pk, version FROM entity_version")
        }
    with mdm.transaction() as tx:
        received = tx.fetch("SELECT message_id, state FROM mdm_sync_request")
        inbox = tx.fetch("SELECT message_id FROM inbox WHERE node = 'mdm' AND part = 'request'")
        applied = {
            (str(r["mo"]), str(r["external_key"])): int(r["entity_version"])
            for r in tx.fetch(
                "SELECT mo, external_key, entity_version FROM mdm_applied_version "
                "WHERE external_system = 'CCB'"
            )
        }
    sent_ids = sorted(str(r["message_id"]) for r in sent)
    assert sorted(str(r["message_id"]) for r in received) == sent_ids  # none lost, none twice
    assert sorted(str(r["message_id"]) for r in inbox) == sent_ids
    assert {str(r["state"]) for r in received} == {"SYNCHRONIZED"}
    last_sent: dict[tuple[str, str], int] = {}
    for r in sent:
        key = (FLOWS[CCB_SYNC_FLOWS[str(r["mo"])]].mo, str(r["pk"]))
        last_sent[key] = max(last_sent.get(key, 0), int(r["entity_version"]))
    assert applied == last_sent
    captured = {(FLOWS[CCB_SYNC_FLOWS[mo]].mo, pk): v for (mo, pk), v in versions.items()}
    assert captured == last_sent  # every key's last change was sent


def agree_record_by_record(ccb: CcbSimulator, mdm_store: Store, customers: list[Customer]) -> None:
    """What CCB holds for each customer is what MDM holds: the person, the SP, the SA with
    its contact and SP, the meter, its configuration and MC, the install event."""
    records = Records(mdm_store)
    with ccb.store.transaction() as tx, mdm_store.transaction() as mdm:

        def held(mo: str, key: str) -> str:
            found = production_id(mdm, "CCB", mo, (key,))
            assert found is not None, f"MDM has no {mo} {key}"
            return found

        for cycle, _ in CYCLES:
            assert records.bill_cycle(mdm, cycle) is not None, cycle
        for customer in customers:
            person = record(ccb, tx, "PERSON", customer.person_id)
            contact = records.contact(mdm, held("D1-CONTACT", customer.person_id))
            assert contact is not None and contact.address is not None
            assert (contact.name, contact.phone, contact.language) == (
                person["entity_name"],
                person["phone_number"],
                person["language"],
            )
            assert (contact.address.address1, contact.address.city, contact.address.postal) == (
                person["address"]["address1"],
                person["address"]["city"],
                person["address"]["postal"],
            )

            sp = record(ccb, tx, "SP", customer.sp_id)
            point = records.service_point(mdm, held("D1-SP", customer.sp_id))
            assert point is not None
            assert (
                point.external_premise_id,
                point.measurement_cycle,
                point.route,
                point.route_sequence,
                point.time_zone,
                point.address.city,
            ) == (
                sp["premise_id"],
                sp["measurement_cycle"],
                sp["route"],
                sp["route_sequence"],
                sp["time_zone"],
                sp["address"]["city"],
            )

            sa = record(ccb, tx, "SA", customer.sa_id)
            us = records.usage_subscription(mdm, held("D1-US", customer.sa_id))
            assert us is not None
            assert (us.external_account_id, us.division, us.main_contact_id) == (
                sa["account_id"],
                sa["cis_division"],
                contact.production_id,
            )
            assert [link.sp_id for link in us.service_points] == [point.production_id]

            meter = record(ccb, tx, "METER", customer.meter_id)
            device = records.device(mdm, held("D1-DEVICE", customer.meter_id))
            assert device is not None
            # (the model goes through a code table: MDM's code differs from CCB's)
            assert (device.manufacturer, device.badge_number) == (
                meter["manufacturer"],
                meter["badge_number"],
            )

            config = record(ccb, tx, "MTR CONFIG", customer.meter_config_id)
            configuration = records.device_configuration(
                mdm, held("D1-DVCCFG", customer.meter_config_id)
            )
            assert configuration is not None
            assert configuration.device_id == device.production_id
            assert [mc.register_id for mc in configuration.measuring_components] == [
                register["register_id"] for register in config["registers"]
            ]

            history = ccb.records(tx, "SP MTR HIST", ref=customer.sp_id)
            assert len(history) == 1
            event = records.install_event(
                mdm, held("D1-INSTLEVT", history[0]["sp_meter_history_id"])
            )
            assert event is not None
            assert (event.sp_id, event.device_configuration_id) == (
                point.production_id,
                configuration.production_id,
            )


def record(ccb: CcbSimulator, tx: Any, mo: str, key: str) -> dict[str, Any]:
    found = ccb.record(tx, mo, (key,))
    assert found is not None, f"CCB has no {mo} {key}"
    return found

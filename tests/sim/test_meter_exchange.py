"""A meter exchange entered in CCB reaches MDM: the old installation closes at the instant the
new one opens (docs/flows.md PD-F09)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import DeliverySetting, reference_config
from ccbmdm.runtime.sim.ccb import CcbSimulator
from ccbmdm.runtime.sim.mdm import MdmSimulator
from ccbmdm.runtime.sim.synthetic import Plan, exchange_meter, generate
from ccbmdm.runtime.store import Store

FAST = DeliverySetting(lease_s=5, backoff_base_s=0.01, backoff_factor=2, poll_interval_s=0.01)


def test_an_exchange_closes_the_old_installation_where_the_new_one_opens(
    store: Store, project: Project
) -> None:
    runtime = Runtime(reference_config(store.dsn, FAST), project)
    try:
        ccb, mdm = runtime.systems["ccb"], runtime.systems["mdm"]
        assert isinstance(ccb, CcbSimulator) and isinstance(mdm, MdmSimulator)
        (customer,) = generate(ccb, Plan(customers=1, seed=31))
        runtime.worker().drain()
        at = datetime(2025, 3, 14, 10, 0, tzinfo=ZoneInfo("America/New_York"))
        with runtime.store.transaction() as tx:
            (old_history,) = ccb.records(tx, "SP MTR HIST", ref=customer.sp_id)
            new = exchange_meter(ccb, tx, customer, at)
        runtime.worker().drain()
        with runtime.store.transaction() as tx:
            assert {r["state"] for r in tx.fetch("SELECT state FROM sync_request")} == {
                "SYNCHRONIZED"
            }
            histories = ccb.records(tx, "SP MTR HIST", ref=customer.sp_id)
            assert len(histories) == 2 and new.meter_id != customer.meter_id
            old_event = mdm.install_event(tx, old_history["sp_meter_history_id"])
            new_event = mdm.install_event(tx, histories[1]["sp_meter_history_id"])
            assert old_event is not None and new_event is not None
            assert old_event.period.end == at == new_event.period.start
            assert new_event.period.end is None  # installed
            config = mdm.device_configuration(tx, new.meter_config_id)
            assert config is not None
    finally:
        runtime.close()

"""Flow 20 end to end between the simulators: MDM moves an externally managed SP to another
measurement cycle, CCB moves the SP and its accounts and acknowledges."""

from __future__ import annotations

from datetime import date

import pytest

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import DeliverySetting, reference_config
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.mdm.bill_cycle_change import NotExternallyManaged, change_measurement_cycle
from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator
from ccbmdm.runtime.sim.synthetic import Plan, generate
from ccbmdm.runtime.store import Store

FAST = DeliverySetting(lease_s=5, backoff_base_s=0.01, backoff_factor=2, poll_interval_s=0.01)


def test_a_bill_cycle_change_moves_the_sp_and_its_accounts(store: Store, project: Project) -> None:
    runtime = Runtime(reference_config(store.dsn, FAST), project)
    try:
        ccb, mdm = runtime.systems["ccb"], runtime.systems["mdm"]
        assert isinstance(ccb, CcbSimulator) and isinstance(mdm, MdmSimulator)
        managed, plain = generate(ccb, Plan(customers=2, seed=21))
        with runtime.store.transaction() as tx:
            sp = ccb.record(tx, "SP", (managed.sp_id,))
            assert sp is not None
            ccb.save(tx, "SP", {**sp, "externally_managed": True})
        runtime.worker().drain()
        with runtime.store.transaction() as tx:
            change_measurement_cycle(mdm, tx, managed.sp_id, "MC09", "M09", date(2025, 4, 1))
            with pytest.raises(NotExternallyManaged, match="managed in CCB"):
                change_measurement_cycle(mdm, tx, plain.sp_id, "MC09", "M09", date(2025, 4, 1))
        runtime.worker().drain()
        with runtime.store.transaction() as tx:
            sp = ccb.record(tx, "SP", (managed.sp_id,))
            assert sp is not None and sp["measurement_cycle"] == "MC09"
            assert ccb.account(tx, managed.account_id).bill_cycle == "M09"
            assert ccb.account(tx, plain.account_id).bill_cycle != "M09"
            notification = tx.fetch_one(
                "SELECT state FROM outbox WHERE node = 'mdm' AND flow = 'BILL_CYCLE_CHANGE'"
            )
            assert notification is not None and notification["state"] == "DELIVERED"  # acked
            states = {r["state"] for r in tx.fetch("SELECT state FROM sync_request")}
            assert states == {"SYNCHRONIZED"}  # CCB's SP change went back to MDM as well
            mdm_sp = mdm.service_point(tx, managed.sp_id)
            assert mdm_sp is not None and mdm_sp.measurement_cycle == "MC09"
    finally:
        runtime.close()

"""CCB's synchronous calls, through the bridge to the reference MDM, after a demo month: the
answers carry what MDM holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import reference_config
from ccbmdm.runtime.sim.ccb.calls import CallFailed, CcbCalls
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.demo import DEMO_DELIVERY, billing_month, run_demo

ZONE = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def runtime(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    store = str(tmp_path_factory.mktemp("calls") / "demo.db")
    run_demo(project, store, customers=4)
    running = Runtime(reference_config(store, DEMO_DELIVERY), project)
    yield running
    running.close()


def first_sa(runtime: Runtime) -> dict[str, object]:
    ccb = runtime.systems["ccb"]
    assert isinstance(ccb, CcbSimulator)
    with runtime.store.transaction() as tx:
        return ccb.records(tx, "SA")[0]


def test_a_rate_check_answers_the_month_under_the_other_rate(runtime: Runtime) -> None:
    sa = first_sa(runtime)
    month = billing_month(date.today())
    start = datetime(month.year, month.month, 1, tzinfo=ZONE)
    reply = CcbCalls(runtime.nodes["ccb"]).rate_check(
        str(sa["sa_id"]), "COM-DEM", start, start + timedelta(days=31)
    )
    (item,) = reply.response  # type: ignore[attr-defined]
    assert (item.sa_id, item.rate_schedule, item.result.has_error) == (
        sa["sa_id"],
        "COM-DEM",
        False,
    )
    units = {sq.uom for period in item.periods for sq in period.service_quantities}
    assert units == {"KWH", "KW"}  # COM-DEM asks for energy and demand


def test_activation_gets_the_bill_cycle_of_the_sps_measurement_cycle(runtime: Runtime) -> None:
    sa = first_sa(runtime)
    sp_ids = [link["sp_id"] for link in sa["sp_links"]]  # type: ignore[attr-defined]
    reply = CcbCalls(runtime.nodes["ccb"]).activation_bill_cycle(
        str(sa["sa_id"]), str(sa["account_id"]), sp_ids, date.today()
    )
    ccb = runtime.systems["ccb"]
    assert isinstance(ccb, CcbSimulator)
    with runtime.store.transaction() as tx:
        sp = ccb.record(tx, "SP", (sp_ids[0],))
    assert sp is not None
    assert reply.measurement_cycle == sp["measurement_cycle"]  # type: ignore[attr-defined]
    assert reply.bill_cycle == "M" + str(sp["measurement_cycle"])[2:]  # type: ignore[attr-defined]


def test_usage_adjustments_and_high_low_are_answered(runtime: Runtime) -> None:
    sa = first_sa(runtime)
    calls = CcbCalls(runtime.nodes["ccb"])
    reference = datetime.now(ZONE).replace(microsecond=0) + timedelta(days=400)
    reply = calls.usage_adjustments(
        str(sa["account_id"]), "demo-user", reference, {str(sa["sa_id"]): ["RES-TOU"]}
    )
    assert reply.main_data is not None  # type: ignore[attr-defined]
    (result,) = reply.main_data.results  # type: ignore[attr-defined]
    assert result.sa_id == sa["sa_id"]
    ccb = runtime.systems["ccb"]
    assert isinstance(ccb, CcbSimulator)
    with runtime.store.transaction() as tx:
        (history,) = ccb.records(tx, "SP MTR HIST", ref=sa["sp_links"][0]["sp_id"])[-1:]  # type: ignore[index]
        config = ccb.record(tx, "MTR CONFIG", (history["meter_config_id"],))
    assert config is not None
    register = config["registers"][0]["register_id"]
    answer = calls.high_low(config["meter_config_id"], reference, [register])
    # an interval register has no high-low boundaries: left out, named in the result (PD-F33)
    assert answer.registers == ()  # type: ignore[attr-defined]
    ((category, number, parameters),) = [
        (i.message_category, i.message_number, i.message_parameters)
        for i in answer.result.exception_info  # type: ignore[attr-defined]
    ]
    assert (category, number, parameters) == (90000, 1301, (register,))


def test_an_unreachable_mdm_is_a_failed_call(runtime: Runtime) -> None:
    calls = CcbCalls(runtime.nodes["ccb"], partner="nowhere")
    with pytest.raises(CallFailed, match="MDM could not be reached"):
        calls.activation_bill_cycle("0000000001", "0000000002", ["0000000003"], date.today())

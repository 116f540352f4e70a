"""The reference MDM's read-only answers, called from CCB through the bridge's inline answerer
on both stores: high-low boundaries, get usage, usage adjustment and the SA activation bill
cycle, with their faults (docs/flows.md §14, §15, §17, §19)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import ModuleType, SimpleNamespace
from typing import Any, cast

import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import message_header, new_message_id
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.node import Node
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.mdm.answers import MdmAnswers, year_before
from ccbmdm.runtime.sim.mdm.measurements import Measurements, generate_interval_data
from ccbmdm.runtime.sim.mdm.usage import MdmUsage
from ccbmdm.runtime.sim.synthetic import Plan
from ccbmdm.runtime.store import Store, Transaction
from runtime_world import FAST, FLOWS, Unreachable
from usage_world import ZONE, World, midnight

TODAY = datetime.now(ZONE).date()
MONTH = date(TODAY.year + (1 if TODAY.month >= 3 else 0), 3, 1)  # windows still ahead
YEAR = MONTH.year
SCALAR = "8100000001"  # a scalar kWh register added to the first customer's meter
READS = tuple(  # (meter read id, read date-time, reading): 20 kWh a day
    (
        f"820000000{n}",
        datetime(YEAR, month, day, 10, tzinfo=ZONE),
        str(16000 + 20 * (date(YEAR, month, day) - date(YEAR, 1, 1)).days),
    )
    for n, (month, day) in enumerate(((1, 1), (2, 1), (3, 3)), 1)
)


def with_register(ccb: CcbSimulator, tx: Transaction) -> None:
    """The first meter gets a cumulative kWh register read monthly."""
    config = sorted(ccb.records(tx, "MTR CONFIG"), key=lambda c: c["meter_config_id"])[0]
    register = {
        "register_id": SCALAR,
        "uom": "KWH",
        "read_out_type": "DSP",
        "service_type": "E",
        "digits_left": 5,
        "digits_right": 0,
        "register_constant": "1",
        "consumptive_subtractive": "S",
        "how_to_use": "ADD",
    }
    ccb.save(
        tx, "MTR CONFIG", {**config, "registers": [*config["registers"], register]}, captured=False
    )
    (history,) = ccb.records(
        tx, "SP MTR HIST", ref=sorted(ccb.records(tx, "SP"), key=lambda s: s["sp_id"])[0]["sp_id"]
    )
    event = history["install_event"]
    reads = [*event["reads"], {"register_id": SCALAR, "reading": "10000", "read_type": "REGULAR"}]
    ccb.save(
        tx, "SP MTR HIST", {**history, "install_event": {**event, "reads": reads}}, captured=False
    )
    for read_id, at, reading in READS:
        ccb.save(
            tx,
            "METER READ",
            {
                "meter_read_id": read_id,
                "meter_config_id": config["meter_config_id"],
                "read_date_time": at.isoformat(),
                "read_type": "REGULAR",
                "register_reads": [{"register_id": SCALAR, "reading": reading}],
            },
            captured=False,
        )


@pytest.fixture
def world(store: Store, registry: ContractRegistry, package: ModuleType) -> World:
    world = World(store, registry, package, MdmUsage)
    world.utility(Plan(customers=4, commercial_share=0.5, month=MONTH, seed=10), with_register)
    generate_interval_data(store, MONTH, seed=3)
    return world


def first_customer(world: World) -> Any:
    return min(world.customers, key=lambda c: c.sp_id)


def plain_house(world: World) -> Any:
    """A residential customer with only its interval channel."""
    return next(c for c in world.customers if not c.commercial and c != first_customer(world))


def message(world: World, contract: str, flow: str, **body: Any) -> Any:
    return world.registry[contract].model.model_validate(
        {"message_header": message_header(flow, "CCB", "MDM"), **body}
    )


def errors(result: Any) -> list[tuple[int, int, tuple[str, ...]]]:
    return [
        (i.message_category, i.message_number, tuple(i.message_parameters))
        for i in result.exception_info
    ]


# -- flow 14 --------------------------------------------------------------------------------------


def test_high_low_boundaries_per_register_with_the_others_reported(world: World) -> None:
    customer = first_customer(world)
    assert customer.meter_config_id == min(c.meter_config_id for c in world.customers)
    read_at = datetime(YEAR, 3, 28, 10, tzinfo=ZONE)
    request = message(
        world,
        "ccb/MeterReadHighLowRequest",
        "HIGH_LOW",
        meter_config_id=customer.meter_config_id,
        read_date_time=read_at,
        registers=[{"register_id": r} for r in (SCALAR, customer.register_id, "8100000999")],
    )
    status, reply = world.call("high-low", "ccb/MeterReadHighLowRequest", request)
    assert status == 200
    # computed here: the average of the reads of the last 365 days, then PD-D11's factors
    first, last = Decimal(READS[0][2]), Decimal(READS[-1][2])
    daily = (last - first) / (READS[-1][1].date() - READS[0][1].date()).days
    expected = daily * (read_at.date() - READS[-1][1].date()).days
    (boundaries,) = reply.registers
    assert boundaries.register_id == SCALAR
    assert (boundaries.basis_reading, boundaries.basis_read_date_time) == (last, READS[-1][1])
    assert boundaries.estimated_reading == (last + expected).quantize(Decimal(1), ROUND_HALF_UP)
    assert boundaries.low_reading == (last + expected * Decimal("0.6")).quantize(Decimal(1))
    assert boundaries.high_reading == (last + expected * Decimal("1.4")).quantize(Decimal(1))
    assert (boundaries.low_consumption, boundaries.high_consumption) == (
        Decimal("300.000"),
        Decimal("700.000"),
    )
    assert reply.result.has_error
    assert errors(reply.result) == [
        (90000, 1301, (customer.register_id,)),  # an interval MC has no boundaries
        (90000, 1102, ("8100000999",)),
    ]


def test_high_low_for_a_configuration_mdm_does_not_know(world: World) -> None:
    request = message(
        world,
        "ccb/MeterReadHighLowRequest",
        "HIGH_LOW",
        meter_config_id="0000000001",
        read_date_time=datetime(YEAR, 3, 28, 10, tzinfo=ZONE),
        registers=[{"register_id": SCALAR}],
    )
    status, reply = world.call("high-low", "ccb/MeterReadHighLowRequest", request)
    assert status == 200 and reply.registers == ()
    assert errors(reply.result) == [(90000, 1102, ("D1-DVCCFG", "0000000001"))]


# -- flow 15 --------------------------------------------------------------------------------------


def test_get_usage_answers_each_item_in_order_and_keeps_nothing(world: World) -> None:
    residential = plain_house(world)
    start, end = midnight(MONTH), midnight(date(YEAR, 3, 15))
    window = {"start_date_time": start, "end_date_time_from": end, "end_date_time_to": end}
    items = [
        (residential.sa_id, "RES-TOU"),
        (residential.sa_id, "RES-FLAT"),
        ("0000000001", "RES-TOU"),
        (residential.sa_id, "COM-DEM"),
    ]
    request = message(
        world,
        "ccb/GetUsageRequest",
        "GET_USAGE",
        request_details={
            "usage_calculation_cal_type": "RATECOMP",
            "mode": "SIMULATE",
            "request": [
                {
                    "sa_id": sa,
                    "rate_schedule": rate,
                    "rate_schedule_seq": seq,
                    "bill_condition": "D2IM",
                    "interval_processing": window,
                }
                for seq, (sa, rate) in enumerate(items, 1)
            ],
            "language": "ENG",
        },
    )
    status, reply = world.call("get-usage", "ccb/GetUsageRequest", request)
    assert status == 200
    assert [(r.sa_id, r.rate_schedule) for r in reply.response] == items
    raw = world.raw_values(world.mc_id(residential.register_id), start, end)
    total = sum((v for _, v, _ in raw), Decimal(0)).quantize(Decimal("0.001"), ROUND_HALF_UP)
    tou, flat, unknown, demand = reply.response
    assert not tou.result.has_error
    (period,) = tou.periods
    assert (period.start_date_time, period.end_date_time) == (start, end)
    assert {(sq.uom, sq.tou): sq.quantity for sq in period.service_quantities} == {
        ("KWH", None): total,
        ("KWH", "OFF-PEAK"): total,
        ("KWH", "ON-PEAK"): Decimal("0.000"),
    }
    assert errors(flat.result) == [(90000, 1102, ("D2-USG-GRP", "RES-FLAT"))]
    assert errors(unknown.result) == [(90000, 1102, ("D1-US", "0000000001"))]
    assert not demand.result.has_error  # any usage group may be asked for a rate comparison
    peak = max(v for _, v, _ in raw) * 4
    (period,) = demand.periods
    assert {(sq.uom, sq.tou, sq.sqi): sq.quantity for sq in period.service_quantities}[
        ("KW", None, None)
    ] == peak.quantize(Decimal("0.001"))
    with world.store.transaction() as tx:
        kept = tx.fetch_one("SELECT count(*) AS n FROM mdm_usage_transaction")
    assert kept is not None and kept["n"] == 0


def test_get_usage_with_a_mode_mdm_does_not_know_is_a_fault(world: World) -> None:
    customer = world.customers[0]
    end = midnight(date(YEAR, 3, 15))
    request = message(
        world,
        "ccb/GetUsageRequest",
        "GET_USAGE",
        request_details={
            "usage_calculation_cal_type": "RATECOMP",
            "mode": "PRETEND",
            "request": [
                {
                    "sa_id": customer.sa_id,
                    "rate_schedule": "RES-TOU",
                    "rate_schedule_seq": 1,
                    "bill_condition": "D2IM",
                    "interval_processing": {
                        "start_date_time": midnight(MONTH),
                        "end_date_time_from": end,
                        "end_date_time_to": end,
                    },
                }
            ],
            "language": "ENG",
        },
    )
    status, reply = world.call("get-usage", "ccb/GetUsageRequest", request)
    assert status == 400
    assert type(reply).__name__ == "Fault"
    assert errors(reply.result) == [(90000, 1101, ("mode", "PRETEND"))]  # [table, value]


# -- flow 17 --------------------------------------------------------------------------------------


def test_usage_adjustment_reports_what_mdm_holds_now_and_the_edits_since_billing(
    world: World,
) -> None:
    residential = plain_house(world)
    world.billed_until(MONTH)
    with world.store.transaction() as tx:
        account = world.ccb.account(tx, residential.account_id)
        record = world.ccb.record(tx, "BILL CYCLE", (account.bill_cycle,))
        assert record is not None
        window = date.fromisoformat(record["schedule"][0]["window_start_date"])
        world.ccb.billing.billing_run(tx, account.bill_cycle, window)
    world.run()
    moment = midnight(date(YEAR, 3, 20)) + timedelta(hours=9)
    mc = world.mc_id(residential.register_id)
    ((_, old, _),) = world.raw_values(mc, moment - timedelta(minutes=15), moment)
    assert world.usage is not None
    corrected = world.usage.correct_read(at=moment, value=old + Decimal("1.250"), mc=mc)
    assert len(corrected.stale) == 1  # billed, not yet on a completed bill
    request = message(
        world,
        "ccb/UsageAdjustmentRequest",
        "USAGE_ADJUSTMENT",
        head={
            "action": "READ",
            "key1": {"name": "ACCT_ID", "value": residential.account_id},
            "web_user_id": "aokafor",
        },
        reference_date_time=midnight(date(YEAR, 9, 5)),
        service_agreements=[
            {
                "sa_id": residential.sa_id,
                "rates": [{"rate_schedule": "RES-TOU"}, {"rate_schedule": "COM-DEM"}],
            },
            {"sa_id": "0000000001", "rates": [{"rate_schedule": "RES-TOU"}]},
        ],
    )
    status, reply = world.call("usage-adjustment", "ccb/UsageAdjustmentRequest", request)
    assert status == 200
    (result,) = reply.main_data.results
    assert (result.sa_id, result.rate_schedule) == (residential.sa_id, "RES-TOU")
    (period,) = result.periods
    raw = world.raw_values(mc, period.start_date_time, period.end_date_time)
    total = sum((v for _, v, _ in raw), Decimal(0)).quantize(Decimal("0.001"))
    now = {(sq.uom, sq.tou): (sq.quantity, sq.quality) for sq in period.service_quantities}
    assert now[("KWH", None)] == (total, "EDITED")  # what MDM holds now, the edit included
    assert {(a.uom, a.tou, a.quality, a.delta_quantity) for a in result.adjustments} == {
        ("KWH", None, "EDITED", Decimal("1.250")),
        ("KWH", "OFF-PEAK", "EDITED", Decimal("1.250")),
    }
    assert {a.ut_id for a in result.adjustments} == set(corrected.stale)
    assert reply.result.has_error
    assert errors(reply.result) == [
        (90000, 1301, (residential.sa_id, "COM-DEM")),
        (90000, 1102, ("D1-US", "0000000001")),
    ]


def test_the_twelve_months_before_a_29_february_start_on_28_february() -> None:
    leap_day = datetime(2028, 2, 29, 10, tzinfo=ZONE)
    assert year_before(leap_day) == datetime(2027, 2, 28, 10, tzinfo=ZONE)
    assert year_before(leap_day + timedelta(days=1)) == datetime(2027, 3, 1, 10, tzinfo=ZONE)


# -- flow 19 --------------------------------------------------------------------------------------


def activation(world: World, *sp_ids: str) -> Any:
    request = message(
        world,
        "ccb/SaActivationBillCycleRequest",
        "SA_ACTIVATION_BILL_CYCLE",
        sa_id="0005520018",  # not yet known to MDM: information only
        account_id="0003318840",
        sp_ids=list(sp_ids),
        activation_date=date(YEAR, 10, 1),
    )
    status, reply = world.call(
        "sa-activation-bill-cycle", "ccb/SaActivationBillCycleRequest", request
    )
    assert status == 200
    return reply


def test_sa_activation_bill_cycle_from_the_sps_measurement_cycles(world: World) -> None:
    cycles: dict[str, list[str]] = {}
    with world.store.transaction() as tx:
        for customer in world.customers:
            sp = world.ccb.record(tx, "SP", (customer.sp_id,))
            assert sp is not None
            cycles.setdefault(sp["measurement_cycle"], []).append(customer.sp_id)
    assert len(cycles) >= 2
    (one, sps), (other, other_sps) = sorted(cycles.items())[:2]
    reply = activation(world, *sps)
    assert not reply.result.has_error
    assert (reply.bill_cycle, reply.measurement_cycle, reply.effective_date) == (
        f"M{one[2:]}",
        one,
        date(YEAR, 10, 1),
    )
    reply = activation(world, sps[0], other_sps[0])
    assert reply.bill_cycle is None
    ((category, number, _),) = errors(reply.result)
    assert (category, number) == (90000, 1305)
    assert one in reply.result.exception_info[0].comments
    # MDM holding another default for one of the cycles makes them agree
    measurements = Measurements(world.store)
    with world.store.transaction() as tx:
        measurements.set_measurement_cycle(tx, other, default_bill_cycle=f"M{one[2:]}")
    reply = activation(world, sps[0], other_sps[0])
    assert (reply.result.has_error, reply.bill_cycle) == (False, f"M{one[2:]}")
    reply = activation(world, "0000000001")
    assert errors(reply.result) == [(90000, 1102, ("D1-SP", "0000000001"))]


# -- the store unavailable --------------------------------------------------------------------


def test_an_answer_without_its_store_is_a_fault_the_caller_retries(
    registry: ContractRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """503 with 90000/1402, which names neither the database nor its address, and one warning
    without a traceback: no defect, the caller asks again."""
    store = cast(Store, Unreachable())
    node = Node("mdm", store, registry, FLOWS, InProcessTransport(), FAST)
    answers = MdmAnswers(cast(MdmUsage, SimpleNamespace(node=node, store=store)))
    flow = next(f for f in FLOWS if f.code == "HIGH_LOW")
    request = SimpleNamespace(message_header=SimpleNamespace(message_id=new_message_id()))
    with caplog.at_level("INFO", logger="ccbmdm"):
        response = answers.answer("bridge", flow, cast(ContractModel, request))
    assert response.status == 503 and response.technical_failure
    assert b"<messageNumber>1402</messageNumber>" in response.body
    assert b"store is unavailable" in response.body and b"db.example" not in response.body
    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)]

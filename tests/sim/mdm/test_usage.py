"""The reference MDM's usage transactions through the runtime, between the reference CCB and the
MDM simulator, on both stores: billing runs priced from determinants the test recomputes from
the raw values, a month of a Green Button feed, used-on-bill flags, corrections that rebill or
make a UT stale, the silent batch retry, online faults and the summary-billing skip
(docs/flows.md §11-§13, §16; docs/lifecycles.md §4; docs/determinants.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import ModuleType
from typing import Any

import pytest
from lxml import etree

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import message_header
from ccbmdm.runtime.sim.ccb.billing import RATES
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.mdm import interval_days
from ccbmdm.runtime.sim.mdm.measurements import Measurements, generate_interval_data, import_espi
from ccbmdm.runtime.sim.mdm.usage import MdmUsage, UsageTransaction, correct_read
from ccbmdm.runtime.sim.synthetic import Customer, Plan
from ccbmdm.runtime.store import Store, Transaction
from usage_world import HOURLY_FEED, World, hourly, midnight

TODAY = datetime.now(UTC).date()
# the next March: a month with the spring DST change whose billing windows are still ahead,
# so CCB's batch requests do not time out before MDM answers
MONTH = date(TODAY.year + (1 if TODAY.month >= 3 else 0), 3, 1)
WINDOW_END = date(MONTH.year, 4, 9)  # the day after the last window end (M04)
CENT = Decimal("0.01")


@pytest.fixture
def world(store: Store, registry: ContractRegistry, package: ModuleType) -> World:
    world = World(store, registry, package, MdmUsage)
    world.utility(Plan(customers=4, commercial_share=0.5, month=MONTH, seed=10))
    assert {c.commercial for c in world.customers} == {True, False}
    generate_interval_data(store, MONTH, seed=3)
    world.billed_until(MONTH)
    return world


def billing_runs(world: World) -> list[int]:
    """A billing run for every bill cycle's window closing the month; the segments made."""
    segments = []
    with world.store.transaction() as tx:
        for cycle in ("M01", "M02", "M03", "M04"):
            record = world.ccb.record(tx, "BILL CYCLE", (cycle,))
            assert record is not None
            window = date.fromisoformat(record["schedule"][0]["window_start_date"])
            segments += world.ccb.billing.billing_run(tx, cycle, window)
    world.run()
    return segments


def segment(world: World, segment_id: int) -> dict[str, Any]:
    with world.store.transaction() as tx:
        row = tx.fetch_one("SELECT * FROM ccb_bill_segment WHERE id = :id", {"id": segment_id})
    assert row is not None
    return dict(row)


def quantities(world: World, segment_id: int) -> dict[tuple[str, str | None, str | None], Any]:
    with world.store.transaction() as tx:
        rows = tx.fetch(
            "SELECT * FROM ccb_service_quantity WHERE segment_id = :id ORDER BY seq",
            {"id": segment_id},
        )
    return {(r["uom"], r["tou"], r["sqi"]): dict(r) for r in rows}


def customer_of(world: World, sa_id: str) -> Customer:
    return next(c for c in world.customers if c.sa_id == sa_id)


def uts(world: World, external_id: str) -> list[UsageTransaction]:
    assert world.usage is not None
    with world.store.transaction() as tx:
        found: list[UsageTransaction] = world.usage.usage_transactions(tx, external_id)
    return found


def request_id(world: World, segment_id: int) -> str:
    """The CCB usage request id of a segment: the UT's external id."""
    return str(segment(world, segment_id)["usage_request_id"]).zfill(10)


def kwh(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.001"), ROUND_HALF_UP)


def expected_amount(rate_schedule: str, start: str, end: str, sqs: dict[Any, Any]) -> Decimal:
    """The segment's price from the reference rate and the quantities, computed here."""
    rate = RATES[rate_schedule]
    # calendar days in legal time (docs/determinants.md §2): March is 31 days though 743 hours
    days = Decimal((datetime.fromisoformat(end).date() - datetime.fromisoformat(start).date()).days)
    amount = (days * (rate.fixed / 30).quantize(Decimal("0.0001"), ROUND_HALF_UP)).quantize(
        CENT, ROUND_HALF_UP
    )
    for (uom, tou, sqi), sq in sqs.items():
        price = None
        if uom == "KWH" and sqi is None:
            price = rate.energy.get(tou)
        elif uom == "KW" and sqi == "BILLDMD" and rate.demand:
            price = rate.demand
        if price is not None:
            amount += (Decimal(sq["quantity"]) * price).quantize(CENT, ROUND_HALF_UP)
    return amount


# -- billing runs -------------------------------------------------------------------------------


def test_a_billing_run_bills_each_segment_what_the_raw_values_add_up_to(world: World) -> None:
    segments = billing_runs(world)
    assert len(segments) == len(world.customers) == 4
    for segment_id in segments:
        billed = segment(world, segment_id)
        assert billed["status"] == "FREEZABLE", billed["reason"]
        customer = customer_of(world, billed["sa_id"])
        start = datetime.fromisoformat(billed["start_date_time"])
        end = datetime.fromisoformat(billed["end_date_time"])
        assert start == midnight(MONTH)
        # the data is complete to every window's end: the period ends at endDateTimeTo
        assert end == datetime.fromisoformat(billed["end_to"])
        raw = world.raw_values(world.mc_id(customer.register_id), start, end)
        intervals = int(end.timestamp() - start.timestamp()) // 900
        assert len(raw) == intervals  # 92 on March's DST day, none missed or doubled
        total = sum((value for _, value, _ in raw), Decimal(0))
        estimated = sum(codes == "3.8.0" for *_, codes in raw)
        quality = "ESTIMATED" if estimated else "ACTUAL"
        sqs = quantities(world, segment_id)
        if customer.commercial:
            peak = max(value for _, value, _ in raw) * 4
            assert {k: (v["quantity"], v["quality"], v["value_count"]) for k, v in sqs.items()} == {
                ("KWH", None, None): (str(kwh(total)), quality, intervals),
                ("KW", None, None): (str(kwh(peak)), quality, intervals),
                ("KW", "ON-PEAK", None): ("0.000", "ACTUAL", 0),  # no on-peak hours in spring
                ("KW", None, "BILLDMD"): (str(kwh(peak)), quality, intervals),  # no history
            }
        else:
            assert {k: (v["quantity"], v["quality"], v["value_count"]) for k, v in sqs.items()} == {
                ("KWH", None, None): (str(kwh(total)), quality, intervals),
                ("KWH", "OFF-PEAK", None): (str(kwh(total)), quality, intervals),
                ("KWH", "ON-PEAK", None): ("0.000", "ACTUAL", 0),
            }
        assert sum(v["estimated_count"] for k, v in sqs.items() if k[0] == "KWH" and not k[1]) == (
            estimated
        )
        rate = "COM-DEM" if customer.commercial else "RES-TOU"
        assert Decimal(billed["amount"]) == expected_amount(
            rate, billed["start_date_time"], billed["end_date_time"], sqs
        )
        (ut,) = uts(world, request_id(world, segment_id))
        assert (ut.state, ut.usage_group, ut.used_on_bill) == ("SENT", rate, False)


def test_a_month_of_a_green_button_feed_is_billed_as_its_readings_add_up(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package, MdmUsage)
    (customer,) = world.utility(
        Plan(customers=1, commercial_share=0.0, month=date(2011, 3, 1), seed=5), hourly
    )
    import_espi(store, HOURLY_FEED, customer.sp_id)
    world.billed_until(date(2011, 3, 1))
    with store.transaction() as tx:
        (segment_id,) = world.ccb.billing.bill_online(tx, customer.account_id, date(2011, 3, 31))
    world.run()
    billed = segment(world, segment_id)
    assert billed["status"] == "FREEZABLE", billed["reason"]
    assert (billed["start_date_time"], billed["end_date_time"]) == (
        "2011-03-01T00:00:00-05:00",
        "2011-04-01T00:00:00-04:00",
    )
    # the readings of March in New York, straight from the feed's XML
    low = int(datetime.fromisoformat("2011-03-01T00:00:00-05:00").timestamp())
    high = int(datetime.fromisoformat("2011-04-01T00:00:00-04:00").timestamp())
    espi = "{http://naesb.org/espi}"
    root = etree.parse(str(HOURLY_FEED)).getroot()
    (reading_type,) = root.iter(f"{espi}ReadingType")
    assert reading_type.findtext(f"{espi}uom") == "72"  # Wh
    multiplier = int(reading_type.findtext(f"{espi}powerOfTenMultiplier") or "0")
    total, count = Decimal(0), 0
    for reading in root.iter(f"{espi}IntervalReading"):
        start = int(reading.findtext(f"{espi}timePeriod/{espi}start") or "")
        duration = int(reading.findtext(f"{espi}timePeriod/{espi}duration") or "")
        if low <= start and start + duration <= high:
            total += Decimal(reading.findtext(f"{espi}value") or "").scaleb(multiplier - 3)
            count += 1
    assert count == 31 * 24 - 1  # March 13, 2011 has 23 hours
    sqs = quantities(world, segment_id)
    assert {k: (v["quantity"], v["value_count"]) for k, v in sqs.items()} == {
        ("KWH", None, None): (str(kwh(total)), count),
        ("KWH", "OFF-PEAK", None): (str(kwh(total)), count),  # winter: no on-peak window
        ("KWH", "ON-PEAK", None): ("0.000", 0),
    }
    assert Decimal(billed["amount"]) == expected_amount(
        "RES-TOU", billed["start_date_time"], billed["end_date_time"], sqs
    )


# -- used on bill and corrections -----------------------------------------------------------------


def complete(world: World, customer: Customer) -> None:
    with world.store.transaction() as tx:
        assert world.ccb.billing.complete_bills(tx, [customer.account_id]) == 1
    world.run()


def an_interval_end(world: World, segment_id: int, day: int) -> datetime:
    """An interval end inside the segment: 14:00 on March ``day``."""
    moment = datetime(MONTH.year, 3, day, 14, tzinfo=midnight(MONTH).tzinfo)
    billed = segment(world, segment_id)
    assert datetime.fromisoformat(billed["start_date_time"]) < moment
    return moment


def test_completing_a_bill_sets_used_on_bill_and_a_correction_rebills_it(world: World) -> None:
    segments = billing_runs(world)
    residential = [
        s for s in segments if not customer_of(world, segment(world, s)["sa_id"]).commercial
    ]
    first, other = residential[0], residential[1]
    customer = customer_of(world, segment(world, first)["sa_id"])
    complete(world, customer)
    (ut,) = uts(world, request_id(world, first))
    assert (ut.state, ut.used_on_bill) == ("SENT", True)
    responses = world.outbox("mdm", "UT_INFO_UPDATE")
    assert len(responses) == 1 and not responses[0].result.has_error
    assert [i.external_pk1 for i in responses[0].result.external_ids] == [ut.ut_id]

    moment = an_interval_end(world, first, 12)
    mc = world.mc_id(customer.register_id)
    ((_, old, _),) = world.raw_values(mc, moment - timedelta(minutes=15), moment)
    assert world.usage is not None
    result = world.usage.correct_read(
        at=moment, value=old + Decimal("2.500"), mc=customer.register_id
    )
    assert (result.mc_id, result.old_value, result.corrected) == (mc, old, (ut.ut_id,))
    (notice,) = world.outbox("mdm", "REPLACEMENT_READS")
    assert (notice.ut_id, notice.external_id, notice.us_external_id) == (
        ut.ut_id,
        ut.external_id,
        customer.sa_id,
    )
    assert (notice.corrected_period.start_date_time, notice.corrected_period.end_date_time) == (
        moment - timedelta(minutes=15),
        moment,
    )
    (correction,) = notice.corrections
    assert (correction.mc, correction.old_value, correction.new_value) == (
        mc,
        old,
        old + Decimal("2.500"),
    )
    assert correction.quality_codes == ("3.7.0",)
    assert correction.measurement_date_time.isoformat() == moment.isoformat()

    before = quantities(world, first)
    world.run()  # CCB cancels the segment and rebills it online with the corrected value
    old_segment = segment(world, first)
    assert (old_segment["status"], old_segment["reason"]) == ("CANCELED", "MDM Corrected Read")
    with world.store.transaction() as tx:
        row = tx.fetch_one("SELECT id FROM ccb_bill_segment WHERE rebill_of = :id", {"id": first})
    assert row is not None
    rebill = segment(world, int(row["id"]))
    assert rebill["status"] == "FROZEN"  # CCB completed the off-cycle bill
    assert (rebill["start_date_time"], rebill["end_date_time"]) == (
        old_segment["start_date_time"],
        old_segment["end_date_time"],
    )
    after = quantities(world, int(row["id"]))
    for key in (("KWH", None, None), ("KWH", "OFF-PEAK", None)):
        assert Decimal(after[key]["quantity"]) == Decimal(before[key]["quantity"]) + Decimal("2.5")
        assert (after[key]["quality"], after[key]["edited_count"]) == ("EDITED", 1)
    (old_ut,) = uts(world, ut.external_id)
    assert (old_ut.state, old_ut.superseded, old_ut.used_on_bill) == (
        "SUBSEQUENT_CORRECTION",
        True,
        False,  # the cancelled segment cleared it
    )
    (new_ut,) = uts(world, request_id(world, int(row["id"])))
    assert (new_ut.state, new_ut.used_on_bill, new_ut.flow) == ("SENT", True, "ONLINE_BD")

    # the other house was billed but its bill not completed: the correction makes it stale
    other_customer = customer_of(world, segment(world, other)["sa_id"])
    stale = correct_read(
        world.store,
        world.mdm_node,
        at=an_interval_end(world, other, 20),
        value="0.001",
        sp_id=other_customer.sp_id,
    )
    (other_ut,) = uts(world, request_id(world, other))
    assert (stale.corrected, stale.stale) == ((), (other_ut.ut_id,))
    assert (other_ut.state, other_ut.stale) == ("SENT", True)
    world.run()
    assert len(world.outbox("mdm", "REPLACEMENT_READS")) == 1  # nothing sent for it
    assert segment(world, other)["status"] == "FREEZABLE"


def test_an_update_for_a_usage_mdm_never_sent_fails_that_item_only(world: World) -> None:
    segment_id = billing_runs(world)[0]
    known = request_id(world, segment_id)
    codec = world.registry["mdm/UsageTransactionUpdate"]
    update = codec.model.model_validate(
        {
            "message_header": message_header("UT_INFO_UPDATE", "CCB", "MDM"),
            "bill_reference": "0000000099",
            "items": [
                {
                    "bill_segment_reference": "0000000001",
                    "external_id": external_id,
                    "used_on_bill": True,
                    "used_on_bill_date_time": datetime.now(UTC).replace(microsecond=0),
                }
                for external_id in ("0000009999", known)
            ],
        }
    )
    answer = world.mdm_node.receiver.receive(
        "bridge", "ut-info-update", "request", codec.encode(update)
    )
    assert answer.status == 202
    world.mdm_node.process_due()
    (response,) = world.outbox("mdm", "UT_INFO_UPDATE")
    assert response.message_header.correlation_id == update.message_header.message_id  # type: ignore[attr-defined]
    assert response.result.has_error
    (info,) = response.result.exception_info
    assert (info.message_category, info.message_number, info.message_parameters) == (
        11302,
        11406,
        ("0000009999",),
    )
    (ut,) = uts(world, known)
    assert ut.used_on_bill


# -- faults, retries and the skip -------------------------------------------------------------------


def test_an_online_request_lacking_data_is_answered_1301_at_once_and_discarded(
    world: World,
) -> None:
    customer = world.customers[0]
    with world.store.transaction() as tx:
        (segment_id,) = world.ccb.billing.bill_online(
            tx, customer.account_id, date(MONTH.year, 4, 20)
        )
    world.run()
    billed = segment(world, segment_id)
    assert billed["status"] == "ERROR"
    assert "90000/1301" in billed["reason"]
    (ut,) = uts(world, request_id(world, segment_id))
    assert ut.state == "DISCARDED" and "90000/1301" in str(ut.reason)


def test_a_batch_request_lacking_data_waits_silently_then_is_answered(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    now = [midnight(date(MONTH.year, 4, 2)).astimezone(UTC)]  # before any estimate date
    world = World(store, registry, package, lambda s, n, r: MdmUsage(s, n, r, clock=lambda: now[0]))
    world.utility(Plan(customers=4, commercial_share=0.5, month=MONTH, seed=10))
    generate_interval_data(store, MONTH, seed=3)
    world.billed_until(MONTH)
    late, never = world.customers[0], world.customers[1]
    cut = int(midnight(date(MONTH.year, 3, 31)).timestamp())
    held = {}
    mcs = [world.mc_id(customer.register_id) for customer in (late, never)]
    with store.transaction() as tx:  # the last days of two meters have not arrived
        for mc in mcs:
            held[mc] = interval_days.read(tx, mc, cut, 2**40).rows()
            assert held[mc]
            assert interval_days.delete(tx, store.dialect, mc, cut, 2**40) == len(held[mc])
    segments = billing_runs(world)
    by_sa = {segment(world, s)["sa_id"]: s for s in segments}
    waiting = {c.sa_id: uts(world, request_id(world, by_sa[c.sa_id]))[0] for c in (late, never)}
    for ut in waiting.values():
        assert ut.state == "ERROR" and "90000/1301" in str(ut.reason)
    answered = {r.ut_id for r in world.outbox("mdm", "BATCH_BD")}
    assert len(answered) == len(segments) - 2
    assert not answered & {ut.ut_id for ut in waiting.values()}  # nothing said yet
    assert {segment(world, by_sa[c.sa_id])["status"] for c in (late, never)} == {"PENDING"}

    def retry_now() -> None:
        with store.transaction() as tx:
            tx.execute(
                f"UPDATE mdm_usage_transaction SET due_at = {store.now} WHERE state = 'ERROR'"
            )
        world.run()

    with store.transaction() as tx:  # one meter's data arrives
        interval_days.write(
            tx, store.dialect, [(mcs[0], *row) for row in held[mcs[0]]], replace=False
        )
    retry_now()
    assert uts(world, waiting[late.sa_id].external_id)[0].state == "SENT"
    assert segment(world, by_sa[late.sa_id])["status"] == "FREEZABLE"
    assert uts(world, waiting[never.sa_id].external_id)[0].state == "ERROR"
    assert segment(world, by_sa[never.sa_id])["status"] == "PENDING"  # still silent

    # past endDateTimeTo and the estimate date: estimated where VEE may, else answered
    now[0] = midnight(date(MONTH.year, 4, 20)).astimezone(UTC)
    retry_now()
    (ut,) = uts(world, waiting[never.sa_id].external_id)
    assert ut.state == "ERROR" and "90000/1301" in str(ut.reason)
    failed = segment(world, by_sa[never.sa_id])
    assert failed["status"] == "ERROR" and "90000/1301" in str(failed["reason"])
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT due_at FROM mdm_usage_transaction WHERE ut_id = :ut", {"ut": ut.ut_id}
        )
    assert row is not None and row["due_at"] is None  # no more retries


def test_a_summary_billed_sa_with_no_read_in_the_window_is_skipped(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    def summary_billed(ccb: CcbSimulator, tx: Transaction) -> None:
        for sa in ccb.records(tx, "SA"):
            ccb.save(tx, "SA", {**sa, "summary_billed": True}, captured=False)

    world = World(store, registry, package, MdmUsage)
    (customer,) = world.utility(
        Plan(customers=1, commercial_share=0.0, month=MONTH, seed=5), summary_billed
    )
    generate_interval_data(store, MONTH, seed=3)
    world.billed_until(MONTH)
    measurements = Measurements(store)
    with store.transaction() as tx:
        sp = world.ccb.record(tx, "SP", (customer.sp_id,))
        assert sp is not None
        measurements.set_measurement_cycle(
            tx, sp["measurement_cycle"], read_dates=[date(MONTH.year, 4, 26)]
        )
    (segment_id,) = billing_runs(world)
    billed = segment(world, segment_id)
    assert billed["status"] == "CANCELED"
    assert str(billed["reason"]).startswith("skipped: summary billed")
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT value FROM ccb_sa_characteristic WHERE sa_id = :sa", {"sa": customer.sa_id}
        )
    assert row is not None and row["value"] == date(MONTH.year, 4, 26).isoformat()
    (ut,) = uts(world, request_id(world, segment_id))
    assert ut.state == "DISCARDED" and ut.determinants is None

"""The reference CCB's billing: a billing run makes segments and usage requests, determinants
become priced service quantities, completing a bill tells MDM the usage was used, cancelling
tells it the usage no longer is."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

import pytest

from ccbmdm.runtime.lifecycles.usage import UsageRequestMonitor
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.node import Node
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.sim.ccb.billing import Segment, calendar_days
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.synthetic import Plan, generate
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.bodies import original
from runtime_world import FAST, FLOWS
from support import OUTBOX, sample


class World:
    def __init__(self, store: Store, registry: ContractRegistry) -> None:
        self.store = store
        self.registry = registry
        self.node = Node("ccb", store, registry, FLOWS, InProcessTransport(), FAST)
        self.ccb = CcbSimulator(store, self.node)
        self.usage = UsageRequestMonitor(store, registry, self.ccb, self.node.outbox)
        self.node.handler = self.usage.responded
        self.customers = generate(
            self.ccb, Plan(customers=8, commercial_share=0.0, seed=11), converted=True
        )

    def run_billing(self) -> list[int]:
        with self.store.transaction() as tx:
            cycle = self.ccb.record(tx, "BILL CYCLE", ("M01",))
            assert cycle is not None
            window = date.fromisoformat(cycle["schedule"][0]["window_start_date"])
            return self.ccb.billing.billing_run(tx, "M01", window)

    def respond(
        self, segment_id: int, variant: str | None = None, body: bytes | None = None
    ) -> None:
        """MDM's answer for the segment's request: the sample response (or ``body``),
        correlated."""
        with self.store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT r.message_id FROM usage_request r JOIN ccb_bill_segment s ON s.usage_request_id = r.id WHERE s.id = :id",
                {"id": segment_id},
            )
        assert row is not None and row["message_id"] is not None
        _, message = self.registry.decode(body or sample("ccb/BillDeterminantsResponse", variant))
        header = message.message_header.model_copy(  # type: ignore[attr-defined]
            update={"message_id": str(uuid.uuid4()), "correlation_id": str(row["message_id"])}
        )
        payload = self.registry.encode(
            message.model_copy(update={"message_header": header}), "ccb/BillDeterminantsResponse"
        )
        assert self.node.receiver.receive("bridge", "batch-bd", "response", payload).status == 202
        self.node.process_due()

    def segment(self, segment_id: int) -> dict[str, object]:
        with self.store.transaction() as tx:
            row = tx.fetch_one("SELECT * FROM ccb_bill_segment WHERE id = :id", {"id": segment_id})
        assert row is not None
        return dict(row)


def test_a_billing_run_requests_usage_for_each_sa_of_the_cycle(
    store: Store, registry: ContractRegistry
) -> None:
    world = World(store, registry)
    segments = world.run_billing()
    with store.transaction() as tx:
        accounts = tx.fetch("SELECT account_id FROM ccb_account WHERE bill_cycle = 'M01'")
    assert len(segments) == len(accounts) > 0
    assert world.run_billing() == []  # the duplicate guard: the SAs already have open requests
    assert world.usage.step() == len(segments)
    with store.transaction() as tx:
        rows = tx.fetch(f"SELECT b.payload FROM {OUTBOX} WHERE flow = 'BATCH_BD' ORDER BY o.id")
    _, request = registry.decode(original(rows[0]["payload"]))
    details = request.send_details  # type: ignore[attr-defined]
    assert details.bill_condition == "D2IL"  # the SA's first segment
    assert details.bill_cycle == "M01"
    assert (
        details.end_date_time_from.isoformat() == "2025-04-01T00:00:00-04:00"
    )  # window start, 00:00
    assert (
        details.end_date_time_to.isoformat() == "2025-04-06T00:00:00-04:00"
    )  # day after window end
    assert details.start_date_time.isoformat() == "2024-03-01T00:00:00-05:00"  # the SA's start


def test_determinants_become_priced_service_quantities(
    store: Store, registry: ContractRegistry
) -> None:
    world = World(store, registry)
    segment_id = world.run_billing()[0]
    world.usage.step()
    world.respond(segment_id)
    world.usage.step()  # batch: processed by the next step
    segment = world.segment(segment_id)
    assert segment["status"] == "FREEZABLE"
    assert segment["end_date_time"] == "2025-07-14T00:00:00-04:00"
    with store.transaction() as tx:
        quantities = tx.fetch(
            "SELECT period_start, uom, tou, quantity FROM ccb_service_quantity WHERE segment_id = :id ORDER BY seq",
            {"id": segment_id},
        )
        lines = tx.fetch(
            "SELECT description, amount FROM ccb_bill_line WHERE segment_id = :id ORDER BY seq",
            {"id": segment_id},
        )
    assert len(quantities) == 6  # one per usage period and UOM/TOU/SQI (PD-D15)
    assert [(r["description"], r["amount"]) for r in lines] == [
        ("fixed charge, days", "10.13"),  # 32 days at 9.50 / 30
        ("energy ON-PEAK", "44.41"),  # 142.350 kWh at 0.3120
        ("energy OFF-PEAK", "59.01"),  # 398.720 kWh at 0.1480
        ("energy ON-PEAK", "36.95"),
        ("energy OFF-PEAK", "45.82"),
    ]
    assert Decimal(str(segment["amount"])) == Decimal("196.32")


def test_the_fixed_charge_counts_calendar_days_across_a_dst_change(
    store: Store, registry: ContractRegistry
) -> None:
    """From 1 March (-05:00) to 14 July (-04:00) is 135 days, though 23 hours short of 135 x 24
    hours: the fixed charge counts the days."""
    world = World(store, registry)
    segment_id = world.run_billing()[0]
    world.usage.step()
    spring = sample("ccb/BillDeterminantsResponse").replace(
        b"2025-06-12T00:00:00-04:00", b"2025-03-01T00:00:00-05:00", 1
    )
    world.respond(segment_id, body=spring)
    world.usage.step()
    with store.transaction() as tx:
        line = tx.fetch_one(
            "SELECT quantity, amount FROM ccb_bill_line WHERE segment_id = :id AND seq = 0",
            {"id": segment_id},
        )
    assert line is not None
    assert (line["quantity"], line["amount"]) == ("135", "42.75")  # 135 days at 9.50 / 30


def test_completing_and_cancelling_tell_mdm_about_used_on_bill(
    store: Store, registry: ContractRegistry
) -> None:
    world = World(store, registry)
    segment_id = world.run_billing()[0]
    world.usage.step()
    world.respond(segment_id)
    world.usage.step()
    with store.transaction() as tx:
        assert world.ccb.billing.complete_bills(tx) == 1
    assert world.segment(segment_id)["status"] == "FROZEN"
    with store.transaction() as tx:
        world.ccb.billing.cancel_segment(tx, segment_id, "MDM Corrected Read")
    segment = world.segment(segment_id)
    assert (segment["status"], segment["reason"]) == ("CANCELED", "MDM Corrected Read")
    with store.transaction() as tx:
        rows = tx.fetch(
            f"SELECT b.payload FROM {OUTBOX} WHERE flow = 'UT_INFO_UPDATE' ORDER BY o.id"
        )
    flags = []
    for row in rows:
        _, update = registry.decode(original(row["payload"]))
        (item,) = update.items  # type: ignore[attr-defined]
        flags.append((item.bill_segment_id, item.used_on_bill))
    assert flags == [(str(segment_id).zfill(10), True), (str(segment_id).zfill(10), False)]
    with store.transaction() as tx, pytest.raises(ValueError, match="is not frozen"):
        world.ccb.billing.cancel_segment(tx, segment_id, "again")


def test_a_skip_answer_cancels_the_segment_and_skips_the_sa(
    store: Store, registry: ContractRegistry
) -> None:
    world = World(store, registry)
    segment_id = world.run_billing()[0]
    world.usage.step()
    world.respond(segment_id, "skip")
    segment = world.segment(segment_id)
    assert segment["status"] == "CANCELED"
    assert str(segment["reason"]).startswith("skipped: Summary-billed")
    with store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT value FROM ccb_sa_characteristic WHERE sa_id = :sa", {"sa": segment["sa_id"]}
        )
    assert row is not None and row["value"] == "2025-07-22"


def test_a_negative_answer_leaves_the_segment_in_error(
    store: Store, registry: ContractRegistry
) -> None:
    world = World(store, registry)
    segment_id = world.run_billing()[0]
    world.usage.step()
    world.respond(segment_id, "fault")
    segment = world.segment(segment_id)
    assert segment["status"] == "ERROR"
    assert "90000/1301" in str(segment["reason"])


def notify(world: World, segment_id: int, notification_id: str = "740193385216") -> None:
    """MDM's replacement read notification for the usage the segment was billed with."""
    segment = world.segment(segment_id)
    _, notice = world.registry.decode(sample("ccb/CorrectedReadNotification"))
    header = notice.message_header.model_copy(update={"message_id": str(uuid.uuid4())})  # type: ignore[attr-defined]
    changed = notice.model_copy(
        update={
            "message_header": header,
            "notification_id": notification_id,
            "usage_id": segment["usage_id"],
            "sa_id": segment["sa_id"],
        }
    )
    payload = world.registry.encode(changed, "ccb/CorrectedReadNotification")
    answer = world.node.receiver.receive("bridge", "replacement-reads", "notification", payload)
    assert answer.status == 202, answer.body
    world.node.handler = world.ccb.handle  # CCB's own handler takes the notification
    world.node.process_due()
    world.node.handler = world.usage.responded


def billed(world: World) -> int:
    segment_id = world.run_billing()[0]
    world.usage.step()
    world.respond(segment_id)
    world.usage.step()
    with world.store.transaction() as tx:
        world.ccb.billing.complete_bills(tx)
    return segment_id


def generators(world: World) -> list[tuple[str, str | None]]:
    with world.store.transaction() as tx:
        return [
            (r["state"], r["reason"])
            for r in tx.fetch("SELECT state, reason FROM ccb_ocbg ORDER BY id")
        ]


def test_a_corrected_read_cancels_and_rebills_the_segment(
    store: Store, registry: ContractRegistry
) -> None:
    world = World(store, registry)
    old = billed(world)
    notify(world, old)
    notify(world, old)  # a repeated notification makes no second generator
    assert generators(world) == [("PENDING", None)]
    (corrections,) = world.ccb.steps()
    assert corrections() == 1
    assert world.segment(old)["status"] == "PENDING_CANCEL"
    assert generators(world) == [("PROCESSING_REQUEST", None)]
    with store.transaction() as tx:
        new = tx.fetch_one("SELECT id FROM ccb_bill_segment WHERE rebill_of = :old", {"old": old})
    assert new is not None
    world.usage.step()  # the rebill's online request goes out, with the old usage as previous
    with store.transaction() as tx:
        row = tx.fetch_one(f"SELECT b.payload FROM {OUTBOX} WHERE flow = 'ONLINE_BD'")
    assert row is not None
    _, request = registry.decode(original(row["payload"]))
    assert request.send_details.previous_usage_id == world.segment(old)["usage_id"]  # type: ignore[attr-defined]
    world.respond(int(new["id"]))  # online: processed at once
    assert (world.segment(old)["status"], world.segment(old)["reason"]) == (
        "CANCELED",
        "MDM Corrected Read",
    )
    assert world.segment(int(new["id"]))["status"] == "FROZEN"  # an off-cycle bill
    assert generators(world) == [("COMPLETED", None)]


def test_a_failed_rebill_leaves_the_segment_frozen_and_discards_the_rest(
    store: Store, registry: ContractRegistry
) -> None:
    world = World(store, registry)
    old = billed(world)
    notify(world, old, "1")
    notify(world, old, "2")
    (corrections,) = world.ccb.steps()
    corrections()  # the first starts; the second waits behind it
    with store.transaction() as tx:
        new = tx.fetch_one("SELECT id FROM ccb_bill_segment WHERE rebill_of = :old", {"old": old})
    assert new is not None
    world.usage.step()
    world.respond(int(new["id"]), "fault")
    assert world.segment(old)["status"] == "FROZEN"
    states = generators(world)
    assert [s for s, _ in states] == ["ERROR", "DISCARDED"]
    assert str(states[0][1]).startswith("rebill failed: 90000/1301")


def test_a_generator_whose_rebill_raises_does_not_stop_the_others(
    store: Store, registry: ContractRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E4 for the off-cycle bill generators: the defective one stays Pending for the next step;
    the other SA's generator starts."""
    world = World(store, registry)
    first, second = world.run_billing()[:2]
    world.usage.step()
    world.respond(first)
    world.respond(second)
    world.usage.step()
    with store.transaction() as tx:
        world.ccb.billing.complete_bills(tx)
    notify(world, first, "1")
    notify(world, second, "2")
    rebill = world.ccb.billing.rebill

    def defective(tx: Transaction, old: Segment) -> int | None:
        if old.id == first:
            raise RuntimeError("a defect in the rebill")
        return rebill(tx, old)

    monkeypatch.setattr(world.ccb.billing, "rebill", defective)
    (corrections,) = world.ccb.steps()
    assert corrections() == 1
    assert generators(world) == [("PENDING", None), ("PROCESSING_REQUEST", None)]
    assert world.segment(first)["status"] == "FROZEN"
    assert world.segment(second)["status"] == "PENDING_CANCEL"


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        ("2025-03-01T00:00:00-05:00", "2025-04-01T00:00:00-04:00", 31),  # 743 hours
        ("2025-11-01T00:00:00-04:00", "2025-12-01T00:00:00-05:00", 30),  # 721 hours
        ("2025-03-09T00:00:00-05:00", "2025-03-10T00:00:00-04:00", 1),  # 23 hours
    ],
)
def test_the_fixed_charge_counts_calendar_days_in_legal_time(
    start: str, end: str, days: int
) -> None:
    assert calendar_days(datetime.fromisoformat(start), datetime.fromisoformat(end)) == days

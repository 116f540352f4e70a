"""CCB usage requests through their lifecycle (docs/lifecycles.md §3): the data sync barrier (O4,
PD-L07), sending, responses matched on correlationId, timeouts, and the duplicate guard."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ccbmdm.runtime.lifecycles.usage import UsageRequest, UsageRequestMonitor, request_usage
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.transport import Answer, InProcessTransport, Posting, Response
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.sqlite import SqliteStore
from runtime_world import Integration
from support import sample

PERSON = "0000000101"
SA = "0004417823"


class SampleBilling:
    """Billing for one SA whose main customer is PERSON: the person's sync is related (a
    stand-in for the SA's own master data, which the CCB simulator relates for real)."""

    def __init__(self, registry: ContractRegistry, *, unbuildable: bool = False) -> None:
        self.registry = registry
        self.unbuildable = unbuildable
        self.applied: list[tuple[int, str]] = []
        self.errors: list[tuple[int, str]] = []

    def related_keys(self, tx: Transaction, sa_id: str) -> Iterable[tuple[str, tuple[str, ...]]]:
        return [("PERSON", (PERSON,))]

    def build_request(self, tx: Transaction, request: UsageRequest) -> ContractModel:
        if self.unbuildable:
            raise ValueError("the SA has SPs in two time zones")
        _, message = self.registry.decode(sample("ccb/BillDeterminantsRequest"))
        header = message.message_header.model_copy(  # type: ignore[attr-defined]
            update={"message_id": str(uuid.uuid4()), "flow": request.flow}
        )
        details = message.send_details.model_copy(  # type: ignore[attr-defined]
            update={"usage_id": request.external_id, "sa_id": request.sa_id}
        )
        return message.model_copy(update={"message_header": header, "send_details": details})

    def apply(self, tx: Transaction, request: UsageRequest, response: ContractModel) -> None:
        self.applied.append((request.id, type(response).__name__))

    def report_error(self, tx: Transaction, request: UsageRequest, reason: str) -> None:
        self.errors.append((request.id, reason))


class World:
    def __init__(self, store: Store, registry: ContractRegistry, package: ModuleType, **kw: Any):
        self.store = store
        self.integration = Integration(store, registry, package, InProcessTransport())
        self.billing = SampleBilling(registry, **kw)
        self.monitor = UsageRequestMonitor(
            store, registry, self.billing, self.integration.ccb.outbox
        )

    def request(self, flow: str = "BATCH_BD", segment: str = "SEG-1") -> int | None:
        later = datetime.now(UTC) + timedelta(days=5)
        with self.store.transaction() as tx:
            return request_usage(
                tx, flow, SA, segment, window_end=later, end_date_time_to=later, estimate_date=later
            )

    def state(self, request_id: int) -> tuple[str, str | None]:
        with self.store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT state, reason FROM usage_request WHERE id = :id", {"id": request_id}
            )
        assert row is not None
        return row["state"], row["reason"]

    def respond(self, request_id: int, variant: str | None = None) -> None:
        """MDM's response (the sample, correlated with the request's message) arrives at CCB."""
        with self.store.transaction() as tx:
            row = tx.fetch_one(
                "SELECT flow, message_id FROM usage_request WHERE id = :id", {"id": request_id}
            )
        assert row is not None and row["message_id"] is not None
        body = sample("ccb/BillDeterminantsResponse", variant)
        _, message = self.integration.ccb.contracts.decode(body)
        header = message.message_header.model_copy(  # type: ignore[attr-defined]
            update={
                "message_id": str(uuid.uuid4()),
                "correlation_id": str(row["message_id"]),
                "flow": row["flow"],
            }
        )
        payload = self.integration.ccb.contracts.encode(
            message.model_copy(update={"message_header": header}), "ccb/BillDeterminantsResponse"
        )
        kebab = row["flow"].lower().replace("_", "-")
        answer = self.integration.ccb.receiver.receive("bridge", kebab, "response", payload)
        assert answer.status == 202, answer.body
        (received,) = self.integration.ccb.inbox.claim()
        with self.store.transaction() as tx:
            self.monitor.responded(tx, received)

    def age(self, request_id: int) -> None:
        """Let the request's deadline pass, as if its time had come."""
        with self.store.transaction() as tx:
            tx.execute(
                f"UPDATE usage_request SET due_at = {self.store.now_plus} WHERE id = :id",
                {"id": request_id, "seconds": -60},
            )


def test_a_usage_request_waits_for_its_related_sync_requests(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    world.integration.people.change(PERSON, "Related,Customer")  # a sync request, Pending
    request_id = world.request()
    assert request_id is not None
    assert world.monitor.step() == 1
    assert world.state(request_id) == ("AWAITING_DATA_SYNC", None)
    assert world.monitor.step() == 0  # still blocked: nothing moves, nothing is sent
    world.integration.run()  # the person's sync request ends SYNCHRONIZED
    assert world.monitor.step() == 1
    assert world.state(request_id) == ("AWAITING_BILL_DETERMINANTS", None)
    with store.transaction() as tx:
        (row,) = tx.fetch(
            "SELECT partner, flow, part, owner_type, reply_timeout_s FROM outbox WHERE flow = 'BATCH_BD'"
        )
    assert (row["partner"], row["part"], row["owner_type"]) == (
        "bridge",
        "request",
        "usage_request",
    )
    assert row["reply_timeout_s"] is None  # one-way for delivery: the lifecycle awaits the answer


def test_a_batch_response_is_processed_by_the_next_step(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    request_id = world.request()
    assert request_id is not None
    world.monitor.step()
    world.respond(request_id)
    assert world.state(request_id) == ("BILL_DETERMINANTS_RECEIVED", None)
    assert world.billing.applied == []
    world.monitor.step()
    assert world.state(request_id) == ("BILL_DETERMINANTS_PROCESSED", None)
    assert world.billing.applied == [(request_id, "BillDeterminantsResponse")]
    with store.transaction() as tx:
        row = tx.fetch_one("SELECT usage_id FROM usage_request WHERE id = :id", {"id": request_id})
    assert row is not None and row["usage_id"] == "519284736102"


def test_an_online_response_is_processed_at_once(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    request_id = world.request("ONLINE_BD")
    assert request_id is not None
    world.monitor.step()
    world.respond(request_id)
    assert world.state(request_id) == ("BILL_DETERMINANTS_PROCESSED", None)


@pytest.mark.parametrize(
    ("variant", "state", "reason"),
    [
        ("fault", "ERROR", "90000/1301 Insufficient data"),
        ("skip", "CANCELED", "Summary-billed usage subscription"),
    ],
)
def test_negative_and_skip_responses(
    store: Store,
    registry: ContractRegistry,
    package: ModuleType,
    variant: str,
    state: str,
    reason: str,
) -> None:
    world = World(store, registry, package)
    request_id = world.request()
    assert request_id is not None
    world.monitor.step()
    world.respond(request_id, variant)
    got_state, got_reason = world.state(request_id)
    assert got_state == state
    assert got_reason is not None and reason in got_reason
    if state == "ERROR":
        assert world.billing.errors == [(request_id, got_reason)]


def test_a_late_response_is_ignored(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    request_id = world.request("ONLINE_BD")
    assert request_id is not None
    world.monitor.step()
    world.age(request_id)
    world.monitor.step()
    assert world.state(request_id) == ("ERROR", "no bill determinants in time")
    world.respond(request_id)  # the response comes after the request gave up on it
    assert world.state(request_id) == ("ERROR", "no bill determinants in time")
    assert world.billing.applied == []


def test_blocked_past_its_deadline_ends_in_error(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    world.integration.people.change(PERSON, "Stuck,Customer")
    request_id = world.request("ONLINE_BD")
    assert request_id is not None
    world.monitor.step()
    world.age(request_id)
    world.monitor.step()
    assert world.state(request_id) == ("ERROR", "related master data still not synchronized")
    assert world.billing.errors == [(request_id, "related master data still not synchronized")]


def test_a_request_that_cannot_be_built_ends_in_error(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package, unbuildable=True)
    request_id = world.request()
    assert request_id is not None
    world.monitor.step()
    state, reason = world.state(request_id)
    assert state == "ERROR"
    assert reason == "request not built: the SA has SPs in two time zones"
    with store.transaction() as tx:
        assert tx.fetch("SELECT id FROM outbox WHERE flow = 'BATCH_BD'") == []


def test_one_open_request_per_bill_segment(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    first = world.request(segment="SEG-9")
    assert first is not None
    assert world.request(segment="SEG-9") is None  # the duplicate guard
    world.monitor.step()
    world.respond(first, "fault")  # Error is final and does not block the guard (PD-L13)
    assert world.request(segment="SEG-9") is not None


def test_an_unknown_flow_is_refused(store: Store) -> None:
    with store.transaction() as tx, pytest.raises(ValueError, match="BATCH_BD or ONLINE_BD"):
        request_usage(tx, "SA_SYNC", SA, "SEG-1")


class Failing(InProcessTransport):
    """A bridge that answers every message with 503."""

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        return [Response(503, b"unavailable") for _ in postings]


def test_a_request_that_cannot_be_delivered_ends_in_error(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    world.integration.ccb.transport = Failing()
    request_id = world.request()
    assert request_id is not None
    world.monitor.step()
    for _ in range(4):  # every attempt failed (no backoff nor retry window in the settings)
        world.integration.ccb.send_due()
    state, reason = world.state(request_id)
    assert state == "ERROR"
    assert reason == "request not delivered: HTTP 503: unavailable"
    assert [r for r, _ in world.billing.errors] == [request_id]


def test_status_counts_usage_requests_and_lists_their_errors(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    from ccbmdm.runtime.observe import overview

    world = World(store, registry, package, unbuildable=True)
    request_id = world.request(segment="SEG-7")
    world.monitor.step()
    current = overview(store)
    assert current.rows()[("usage_request", "", "ERROR")] == 1
    (entry,) = [e for e in current.errors if e.kind == "usage_request"]
    assert (entry.id, entry.key) == (request_id, f"BATCH_BD SA {SA} segment SEG-7")
    assert entry.reason.startswith("request not built")


def test_a_step_reads_the_due_requests_and_those_awaiting_sync_through_their_indexes(
    tmp_path: Path, registry: ContractRegistry, package: ModuleType
) -> None:
    """Requests awaiting their determinants (not due) are not read by a step: the due ones come
    from the partial index in order and stop at the batch, those awaiting their data to sync
    from the index on state. A single claim with an OR read every open request whenever fewer
    than a batch were due, so a billing run of n segments read n rows each step."""
    store = SqliteStore(str(tmp_path / "runtime.db"))
    store.migrate()
    world = World(store, registry, package)
    sent = [world.request(segment=f"SEG-{n}") for n in range(4)]
    assert world.monitor.step(batch=10) == 4  # all four sent: awaiting determinants, not due
    world.integration.people.change(PERSON, "Related,Customer")  # the next one waits for it
    waiting = world.request(segment="SEG-W")
    assert world.monitor.step(batch=10) == 1
    assert waiting is not None and world.state(waiting) == ("AWAITING_DATA_SYNC", None)
    claims: list[str] = []
    store.connection().set_trace_callback(
        lambda sql: claims.append(sql) if "* FROM usage_request" in sql else None
    )
    assert world.monitor.step(batch=10) == 0  # the waiting one is looked at, still blocked
    store.connection().set_trace_callback(None)
    assert len(claims) == 2
    with store.transaction() as tx:
        plans = [
            " | ".join(str(row["detail"]) for row in tx.fetch(f"EXPLAIN QUERY PLAN {claim}"))
            for claim in claims
        ]
    assert "usage_request_due" in plans[0] and "TEMP B-TREE" not in plans[0], plans[0]
    assert "SCAN" not in plans[1], plans[1]
    world.integration.run()  # the person is synchronized: the waiting request is sent
    assert world.monitor.step(batch=10) == 1
    assert world.state(waiting) == ("AWAITING_BILL_DETERMINANTS", None)
    assert all(world.state(n)[0] == "AWAITING_BILL_DETERMINANTS" for n in sent if n is not None)
    store.close()

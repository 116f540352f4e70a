"""The business lifecycles of docs/lifecycles.md §2-§5 as tables, and the store-backed engine that moves
their rows (docs/reliability.md §2.2: guarded updates, deadlines on the database clock)."""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import pytest

from ccbmdm.runtime.lifecycles.lifecycle import (
    HOURS_12,
    HOURS_24,
    MDM_INBOUND_SYNC,
    MINUTES_15,
    OFF_CYCLE_BILL_GENERATOR,
    SYNC_REQUEST,
    USAGE_REQUEST,
    USAGE_TRANSACTION,
    Deadline,
    IllegalTransition,
    Lifecycle,
    State,
    Transition,
)
from ccbmdm.runtime.lifecycles.machine import Machine
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Flush, Row

# The transitions as docs/lifecycles.md lists them: (id, from, to). §4 numbers them (U1-U9); for §2,
# §3 and §5, which do not, the ids are the tables' own (MS, UR, OB).
EXPECTED_TRANSITIONS: dict[str, set[tuple[str, str, str]]] = {
    "MDM inbound sync request": {  # PD-L05, PD-L06, PD-L15
        ("MS1", "PENDING", "TRANSFORMED"),
        ("MS2", "PENDING", "ERROR"),  # schema or DVM validation error
        ("MS3", "TRANSFORMED", "RESOLVED"),
        ("MS4", "TRANSFORMED", "ERROR_RETRYABLE"),  # a foreign key unresolved
        ("MS5", "TRANSFORMED", "ERROR"),  # BO validation error
        ("MS6", "RESOLVED", "APPLIED"),
        ("MS7", "APPLIED", "SYNCHRONIZED"),
        ("MS8", "ERROR_RETRYABLE", "TRANSFORMED"),  # retried every 15 min
        ("MS9", "ERROR_RETRYABLE", "ERROR"),  # after 12 h, negative ack 90000/1102
        ("MS10", "ERROR_RETRYABLE", "DISCARDED"),
    },
    "usage request": {  # §3 "Transitions", the online regeneration, PD-L07
        ("UR1", "PENDING", "AWAITING_DATA_SYNC"),
        ("UR2", "PENDING", "SEND_REQUEST"),
        ("UR3", "AWAITING_DATA_SYNC", "SEND_REQUEST"),
        ("UR4", "AWAITING_DATA_SYNC", "ERROR"),
        ("UR5", "SEND_REQUEST", "AWAITING_BILL_DETERMINANTS"),
        ("UR6", "SEND_REQUEST", "ERROR"),
        ("UR7", "AWAITING_BILL_DETERMINANTS", "BILL_DETERMINANTS_RECEIVED"),
        ("UR8", "AWAITING_BILL_DETERMINANTS", "ERROR"),
        ("UR9", "AWAITING_BILL_DETERMINANTS", "ERROR"),
        ("UR10", "AWAITING_BILL_DETERMINANTS", "CANCELED"),
        ("UR11", "BILL_DETERMINANTS_RECEIVED", "BILL_DETERMINANTS_PROCESSED"),
        ("UR12", "PENDING", "CANCELED"),
        ("UR12", "AWAITING_DATA_SYNC", "CANCELED"),
        ("UR12", "AWAITING_BILL_DETERMINANTS", "CANCELED"),
        ("UR12", "BILL_DETERMINANTS_RECEIVED", "CANCELED"),
    },
    "usage transaction": {  # U1-U9, PD-L14
        ("U1", "PENDING", "CALCULATION_DEFERRED"),
        ("U2", "PENDING", "CALCULATION"),
        ("U2", "CALCULATION_DEFERRED", "CALCULATION"),
        ("U3", "CALCULATION", "CALCULATION_IN_PROGRESS"),
        ("U4", "CALCULATION", "APPROVAL_IN_PROGRESS"),
        ("U5", "CALCULATION", "SENT"),
        ("U5", "CALCULATION_IN_PROGRESS", "SENT"),
        ("U5", "APPROVAL_IN_PROGRESS", "SENT"),
        ("U6", "CALCULATION", "ERROR"),
        ("U6", "CALCULATION_IN_PROGRESS", "ERROR"),
        ("U7", "PENDING", "DISCARDED"),
        ("U7", "CALCULATION_DEFERRED", "DISCARDED"),
        ("U7", "CALCULATION", "DISCARDED"),
        ("U7", "CALCULATION_IN_PROGRESS", "DISCARDED"),
        ("U7", "APPROVAL_IN_PROGRESS", "DISCARDED"),
        ("U7", "ERROR", "DISCARDED"),
        ("U8", "ERROR", "CALCULATION"),
        ("U9", "SENT", "SUBSEQUENT_CORRECTION"),
    },
    "off-cycle bill generator": {  # PD-L10, §5 step 5
        ("OB1", "PENDING", "PROCESSING_REQUEST"),
        ("OB2", "PROCESSING_REQUEST", "COMPLETED"),
        ("OB3", "PENDING", "ERROR"),
        ("OB4", "PROCESSING_REQUEST", "ERROR"),
        ("OB5", "PENDING", "DISCARDED"),
    },
}

# Deadlines where the document gives them (PD-L06, PD-L07), and "claimable at once" for a
# Pending row and for a received response waiting for the monitor.
AT_ONCE = Deadline()
EXPECTED_DEADLINES: dict[str, dict[str, tuple[Deadline, ...]]] = {
    "MDM inbound sync request": {
        "PENDING": (AT_ONCE,),
        "ERROR_RETRYABLE": (
            Deadline("retries_exhausted", 12 * 3600, after=("first_error_at",)),
            Deadline("retry", 15 * 60),
        ),
    },
    "usage request": {
        "PENDING": (AT_ONCE,),
        "AWAITING_DATA_SYNC": (
            Deadline("timeout", 0, after=("window_end",), flow="BATCH_BD"),
            Deadline("timeout", 15 * 60, flow="ONLINE_BD"),
        ),
        "AWAITING_BILL_DETERMINANTS": (
            Deadline(
                "timeout", 24 * 3600, after=("end_date_time_to", "estimate_date"), flow="BATCH_BD"
            ),
            Deadline("timeout", 15 * 60, flow="ONLINE_BD"),
        ),
        "BILL_DETERMINANTS_RECEIVED": (Deadline("process"),),
    },
    "usage transaction": {},
    "off-cycle bill generator": {"PENDING": (AT_ONCE,)},
}

EXPECTED_ENTER: dict[str, dict[str, str]] = {
    "MDM inbound sync request": {
        "SYNCHRONIZED": "send_acknowledgement",
        "ERROR": "send_negative_acknowledgement",
        "DISCARDED": "send_negative_acknowledgement",
    },
    "usage request": {
        "SEND_REQUEST": "send_request",
        "BILL_DETERMINANTS_PROCESSED": "apply_determinants",
        "ERROR": "report_error",
    },
    "usage transaction": {
        "CALCULATION": "calculate_usage",
        "SENT": "send_usage",
        "SUBSEQUENT_CORRECTION": "send_subsequent_correction",
        "ERROR": "send_error",
    },
    "off-cycle bill generator": {
        "PROCESSING_REQUEST": "rebill_segment",
        "COMPLETED": "replace_segment",
        "ERROR": "raise_todo",
    },
}

EXPECTED_FINAL = {
    "MDM inbound sync request": {"SYNCHRONIZED", "ERROR", "DISCARDED"},
    "usage request": {"BILL_DETERMINANTS_PROCESSED", "ERROR", "CANCELED"},  # PD-L13
    "usage transaction": {"SUBSEQUENT_CORRECTION", "DISCARDED"},  # PD-L14: Sent only by U9
    "off-cycle bill generator": {"COMPLETED", "ERROR", "DISCARDED"},
}

MACHINES = [MDM_INBOUND_SYNC, USAGE_REQUEST, USAGE_TRANSACTION, OFF_CYCLE_BILL_GENERATOR]
by_name = pytest.mark.parametrize("lifecycle", MACHINES, ids=lambda m: m.name)


# -- the tables -------------------------------------------------------------------------------


@by_name
def test_every_transition_the_document_lists_is_there_with_its_id(lifecycle: Lifecycle) -> None:
    assert {(t.id, t.source, t.target) for t in lifecycle.transitions} == EXPECTED_TRANSITIONS[
        lifecycle.name
    ]


@by_name
def test_an_event_leads_to_one_place(lifecycle: Lifecycle) -> None:
    pairs = [(t.source, t.event) for t in lifecycle.transitions]
    assert len(pairs) == len(set(pairs))


@by_name
def test_every_state_is_reachable_from_the_one_initial_state(lifecycle: Lifecycle) -> None:
    (initial,) = [s for s in lifecycle.states if lifecycle.kind(s) == "initial"]
    seen, queue = {initial}, deque([initial])
    while queue:
        state = queue.popleft()
        for transition in lifecycle.transitions:
            if transition.source == state and transition.target not in seen:
                seen.add(transition.target)
                queue.append(transition.target)
    assert seen == set(lifecycle.states)


@by_name
def test_final_states_accept_no_event(lifecycle: Lifecycle) -> None:
    finals = {s for s in lifecycle.states if lifecycle.kind(s) == "final"}
    assert finals == EXPECTED_FINAL[lifecycle.name]
    events = {t.event for t in lifecycle.transitions}
    for state in finals:
        for event in events:
            with pytest.raises(IllegalTransition, match="none \\(a final state\\)"):
                lifecycle.next(state, event)


@pytest.mark.parametrize(
    ("lifecycle", "state", "event"),
    [
        (MDM_INBOUND_SYNC, "PENDING", "retry"),
        (USAGE_REQUEST, "AWAITING_DATA_SYNC", "positive_response"),
        (USAGE_TRANSACTION, "SENT", "discard"),
        (OFF_CYCLE_BILL_GENERATOR, "COMPLETED", "start"),
    ],
    ids=lambda v: v.name if isinstance(v, Lifecycle) else v,
)
def test_an_illegal_event_names_machine_state_and_event(
    lifecycle: Lifecycle, state: str, event: str
) -> None:
    with pytest.raises(IllegalTransition) as raised:
        lifecycle.next(state, event)
    assert str(raised.value).startswith(
        f"{lifecycle.name}: event {event!r} is not allowed in state {state}; allowed: "
    )
    assert (raised.value.machine, raised.value.state, raised.value.event) == (
        lifecycle.name,
        state,
        event,
    )


@by_name
def test_deadlines_are_declared_where_the_document_gives_them(lifecycle: Lifecycle) -> None:
    declared = {
        s: lifecycle.state(s).deadlines for s in lifecycle.states if lifecycle.state(s).deadlines
    }
    assert declared == EXPECTED_DEADLINES[lifecycle.name]
    for state, deadlines in declared.items():
        for deadline in deadlines:
            if deadline.event is not None:
                lifecycle.next(state, deadline.event)  # a deadline fires an accepted event


def test_the_deadline_constants_are_the_documents() -> None:
    assert (MINUTES_15, HOURS_12, HOURS_24) == (900, 43200, 86400)


@pytest.mark.parametrize("lifecycle", [USAGE_REQUEST, MDM_INBOUND_SYNC], ids=lambda m: m.name)
def test_every_stored_non_final_state_has_a_deadline(lifecycle: Lifecycle) -> None:
    """The tables' CHECK wants a due_at on every non-final row, and the engine computes it."""
    for state in lifecycle.states:
        if lifecycle.kind(state) not in ("final", "transitory"):
            assert lifecycle.state(state).deadlines, state


@by_name
def test_enter_actions_are_declared_by_name(lifecycle: Lifecycle) -> None:
    declared = {s: lifecycle.state(s).enter for s in lifecycle.states if lifecycle.state(s).enter}
    assert declared == EXPECTED_ENTER[lifecycle.name]


def test_the_sync_request_table_reads_as_before() -> None:
    assert SYNC_REQUEST.kind("AWAITING_ACK") == "waiting"
    assert SYNC_REQUEST.state("ERROR") == State("exception")
    assert SYNC_REQUEST.next("PENDING", "claim").target == "DETERMINE"


@pytest.mark.parametrize(
    ("states", "transitions", "message"),
    [
        ({"A": "initial"}, (Transition("X1", "A", "go", "B"),), "transition X1 names B"),
        (
            {"A": "initial", "B": State("final", (Deadline(),))},
            (Transition("X1", "A", "go", "B"),),
            "a final state \\(B\\) cannot have a deadline",
        ),
        (
            {"A": State("initial", (Deadline("later"),)), "B": "final"},
            (Transition("X1", "A", "go", "B"),),
            "A's deadline fires 'later', which the state does not accept",
        ),
        (
            {"A": State("initial", (Deadline(seconds=1), Deadline(seconds=2))), "B": "final"},
            (Transition("X1", "A", "go", "B"),),
            "A has two clock deadlines",
        ),
    ],
)
def test_a_lifecycle_refuses_an_inconsistent_table(
    states: dict[str, Any], transitions: tuple[Transition, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Lifecycle("probe", states, transitions)


def test_a_deadline_counts_only_from_plain_column_names() -> None:
    with pytest.raises(ValueError, match="not a plain column name"):
        Deadline("timeout", after=("window_end; DROP TABLE usage_request",))


def test_a_step_walks_through_transitory_states_to_a_stored_one() -> None:
    path = USAGE_REQUEST.walk("PENDING", ["data_synced", "sent"])
    assert [t.id for t in path] == ["UR2", "UR5"]
    path = MDM_INBOUND_SYNC.walk("ERROR_RETRYABLE", ["retry", "unresolved"])
    assert [t.target for t in path] == ["TRANSFORMED", "ERROR_RETRYABLE"]


@pytest.mark.parametrize(
    ("source", "events", "message"),
    [
        ("PENDING", ["data_synced"], "cannot end in the transitory state SEND_REQUEST"),
        ("PENDING", ["data_sync_pending", "data_synced"], "AWAITING_DATA_SYNC is stored"),
        ("SEND_REQUEST", ["sent"], "SEND_REQUEST is transitory and never stored"),
        ("PENDING", [], "at least one event"),
    ],
)
def test_a_step_refuses_a_path_the_store_cannot_hold(
    source: str, events: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        USAGE_REQUEST.walk(source, events)


# -- the engine on both stores ----------------------------------------------------------------


def clock(store: Store, parameter: str) -> str:
    """SQL for the database clock plus ``:parameter`` seconds."""
    return store.now_plus.replace(":seconds", f":{parameter}")


def new_usage_request(
    store: Store,
    flow: str,
    *,
    segment: str = "BS1",
    window_end_s: float = 3600.0,
    end_to_s: float = 7200.0,
    estimate_s: float = 100.0,
    state: str = "PENDING",
    due: bool = True,
    message: bool = True,
) -> int:
    """A usage request; a batch one has its dates, given in seconds from now."""
    dates = (
        f"{clock(store, 'window_end')}, {clock(store, 'end_to')}, {clock(store, 'estimate')}"
        if flow == "BATCH_BD"
        else "NULL, NULL, NULL"
    )
    with store.transaction() as tx:
        row = tx.fetch_one(
            f"""INSERT INTO usage_request (flow, sa_id, bill_segment_id, state, due_at, message_id,
                                           window_end, end_date_time_to, estimate_date, created_at)
                VALUES (:flow, '0000000001', :segment, :state, {tx.now if due else "NULL"}, :message,
                        {dates}, {tx.now}) RETURNING id""",
            {
                "flow": flow,
                "segment": segment,
                "state": state,
                "message": str(uuid.uuid4()) if message else None,
                "window_end": window_end_s,
                "end_to": end_to_s,
                "estimate": estimate_s,
            },
        )
    assert row is not None
    return int(row["id"])


def new_mdm_sync_request(store: Store, *, state: str = "PENDING", due: bool = True) -> int:
    with store.transaction() as tx:
        row = tx.fetch_one(
            f"""INSERT INTO mdm_sync_request (flow, mo, external_key, message_id, state, due_at,
                                              first_error_at, created_at)
                VALUES ('SP_SYNC', 'SP', '0000000001', :message, :state,
                        {tx.now if due else "NULL"}, {tx.now}, {tx.now}) RETURNING id""",
            {"message": str(uuid.uuid4()), "state": state},
        )
    assert row is not None
    return int(row["id"])


def read(store: Store, tx: Transaction, table: str, row_id: int) -> dict[str, Any]:
    """The row, with its timestamps as datetimes and the database clock as ``now``."""
    row = tx.fetch_one(f"SELECT *, {tx.now} AS now FROM {table} WHERE id = :id", {"id": row_id})
    assert row is not None
    times = ("due_at", "now", "window_end", "end_date_time_to", "estimate_date", "first_error_at")
    return {k: store.to_datetime(v) if k in times else v for k, v in row.items()}


def without_clock(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "now"}


def close_to(actual: datetime | None, expected: datetime | None, within_s: float = 1.0) -> bool:
    assert actual is not None and expected is not None
    return abs((actual - expected).total_seconds()) < within_s


@pytest.fixture
def usage_requests(store: Store) -> Machine:
    return Machine(store, USAGE_REQUEST, "usage_request")


@pytest.fixture
def mdm_requests(store: Store) -> Machine:
    return Machine(store, MDM_INBOUND_SYNC, "mdm_sync_request")


def test_online_awaiting_data_sync_is_due_in_15_minutes(
    store: Store, usage_requests: Machine
) -> None:
    request = new_usage_request(store, "ONLINE_BD")
    with store.transaction() as tx:
        assert usage_requests.move(tx, request, "PENDING", "data_sync_pending")
        row = read(store, tx, "usage_request", request)
        assert usage_requests.due_event(tx, request) is None
    assert row["state"] == "AWAITING_DATA_SYNC"
    assert close_to(row["due_at"], row["now"] + timedelta(minutes=15))


def test_batch_awaiting_data_sync_is_due_at_window_end(
    store: Store, usage_requests: Machine
) -> None:
    request = new_usage_request(store, "BATCH_BD", window_end_s=5 * 86400)
    with store.transaction() as tx:
        assert usage_requests.move(tx, request, "PENDING", "data_sync_pending")
        row = read(store, tx, "usage_request", request)
    assert close_to(row["due_at"], row["window_end"], within_s=0.001)
    assert close_to(row["due_at"], row["now"] + timedelta(days=5))


def test_batch_awaiting_data_sync_times_out_once_the_window_has_ended(
    store: Store, usage_requests: Machine
) -> None:
    request = new_usage_request(store, "BATCH_BD", window_end_s=-60)
    with store.transaction() as tx:
        assert usage_requests.move(tx, request, "PENDING", "data_sync_pending")
        assert usage_requests.due_event(tx, request) == "timeout"
        assert usage_requests.move(tx, request, "AWAITING_DATA_SYNC", "timeout", reason="blocked")
        row = read(store, tx, "usage_request", request)
    assert (row["state"], row["reason"], row["due_at"]) == ("ERROR", "blocked", None)


@pytest.mark.parametrize(
    ("end_to_s", "estimate_s", "later"),
    [(7200.0, 3600.0, "end_date_time_to"), (3600.0, 2 * 86400.0, "estimate_date")],
)
def test_batch_awaiting_bill_determinants_is_due_24_hours_after_the_later_date(
    store: Store, usage_requests: Machine, end_to_s: float, estimate_s: float, later: str
) -> None:
    request = new_usage_request(store, "BATCH_BD", end_to_s=end_to_s, estimate_s=estimate_s)
    with store.transaction() as tx:
        assert usage_requests.move(tx, request, "PENDING", "data_synced", "sent")
        row = read(store, tx, "usage_request", request)
    assert row["state"] == "AWAITING_BILL_DETERMINANTS"
    assert close_to(row["due_at"], row[later] + timedelta(hours=24), within_s=0.001)


def test_online_awaiting_bill_determinants_is_due_in_15_minutes(
    store: Store, usage_requests: Machine
) -> None:
    request = new_usage_request(store, "ONLINE_BD")
    with store.transaction() as tx:
        assert usage_requests.move(tx, request, "PENDING", "data_sync_pending")
        assert usage_requests.move(tx, request, "AWAITING_DATA_SYNC", "data_synced", "sent")
        row = read(store, tx, "usage_request", request)
    assert row["state"] == "AWAITING_BILL_DETERMINANTS"
    assert close_to(row["due_at"], row["now"] + timedelta(minutes=15))


def test_received_determinants_are_due_for_processing_at_once(
    store: Store, usage_requests: Machine
) -> None:
    request = new_usage_request(store, "ONLINE_BD")
    with store.transaction() as tx:
        usage_requests.move(tx, request, "PENDING", "data_synced", "sent")
        assert usage_requests.move(tx, request, "AWAITING_BILL_DETERMINANTS", "positive_response")
    with store.transaction() as tx:
        row = read(store, tx, "usage_request", request)
        assert row["due_at"] is not None and row["due_at"] <= row["now"]
        assert usage_requests.due_event(tx, request) == "process"


def test_a_final_state_clears_due_at_and_keeps_the_reason(
    store: Store, usage_requests: Machine
) -> None:
    request = new_usage_request(store, "ONLINE_BD")
    with store.transaction() as tx:
        usage_requests.move(tx, request, "PENDING", "data_synced", "sent")
        assert usage_requests.move(
            tx, request, "AWAITING_BILL_DETERMINANTS", "negative_response", reason="90000/1301"
        )
    with store.transaction() as tx:
        row = read(store, tx, "usage_request", request)
    assert (row["state"], row["reason"], row["due_at"]) == ("ERROR", "90000/1301", None)


def test_a_move_of_a_row_another_transaction_moved_first_changes_nothing(
    store: Store, usage_requests: Machine
) -> None:
    """The response and the timeout race for one request: the later move finds it gone."""
    request = new_usage_request(store, "ONLINE_BD")
    with store.transaction() as tx:
        usage_requests.move(tx, request, "PENDING", "data_synced", "sent")

    def response_arrives() -> None:
        with store.transaction() as other:
            assert usage_requests.move(
                other, request, "AWAITING_BILL_DETERMINANTS", "positive_response"
            )

    if store.dialect == "postgres":  # the timeout's step has read the row before the response
        with store.transaction() as tx:
            assert (
                read(store, tx, "usage_request", request)["state"] == "AWAITING_BILL_DETERMINANTS"
            )
            worker = threading.Thread(target=response_arrives)
            worker.start()
            worker.join()
            moved = read(store, tx, "usage_request", request)
            assert not usage_requests.move(
                tx, request, "AWAITING_BILL_DETERMINANTS", "timeout", reason="late"
            )
    else:  # BEGIN IMMEDIATE: the two transactions can only run one after the other
        response_arrives()
        with store.transaction() as tx:
            moved = read(store, tx, "usage_request", request)
            assert not usage_requests.move(
                tx, request, "AWAITING_BILL_DETERMINANTS", "timeout", reason="late"
            )
    with store.transaction() as tx:
        after = read(store, tx, "usage_request", request)
    assert after["state"] == "BILL_DETERMINANTS_RECEIVED"
    assert without_clock(after) == without_clock(moved)


class Recording(Transaction):
    """A transaction that records the statements run through it."""

    def __init__(self, inner: Transaction) -> None:
        super().__init__()
        self.inner, self.now = inner, inner.now
        self.statements: list[str] = []

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        self.statements.append(sql)
        return self.inner.execute(sql, params)

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        self.statements.append(sql)
        return self.inner.fetch(sql, params)

    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        self.statements.append(sql)
        return self.inner.execute_many(sql, params)

    def _savepoint(self, waited: bool) -> AbstractContextManager[None]:
        return self.inner.savepoint(waited=waited)

    def later(self, flush: Flush, row: Any) -> None:
        self.inner.later(flush, row)  # written by the inner transaction, unrecorded


def test_an_illegal_event_raises_before_any_sql(store: Store, usage_requests: Machine) -> None:
    request = new_usage_request(store, "ONLINE_BD")
    with store.transaction() as tx:
        before = read(store, tx, "usage_request", request)
        recording = Recording(tx)
        with pytest.raises(IllegalTransition, match="usage request: event 'process'"):
            usage_requests.move(recording, request, "PENDING", "process")
        assert recording.statements == []
        after = read(store, tx, "usage_request", request)
    assert without_clock(after) == without_clock(before)


@pytest.mark.parametrize(
    ("lifecycle", "table"),
    [(USAGE_REQUEST, "usage_request"), (MDM_INBOUND_SYNC, "mdm_sync_request")],
    ids=["usage_request", "mdm_sync_request"],
)
def test_the_table_stores_exactly_the_lifecycles_stored_states(
    store: Store, lifecycle: Lifecycle, table: str
) -> None:
    for i, state in enumerate(lifecycle.states):
        stored = lifecycle.kind(state) != "transitory"
        try:
            if table == "usage_request":
                new_usage_request(store, "BATCH_BD", state=state, segment=f"BS{i}")
            else:
                new_mdm_sync_request(store, state=state)
        except Exception as exc:
            assert not stored, f"{state}: {exc}"
            assert "check" in str(exc).lower()
        else:
            assert stored, f"{table} accepted the transitory state {state}"


@pytest.mark.parametrize(
    "state",
    ["PENDING", "AWAITING_DATA_SYNC", "AWAITING_BILL_DETERMINANTS", "BILL_DETERMINANTS_RECEIVED"],
)
def test_the_database_refuses_a_non_final_usage_request_without_due_at(
    store: Store, state: str
) -> None:
    with pytest.raises(Exception, match=r"(?i)check"):
        new_usage_request(store, "ONLINE_BD", state=state, due=False)
    assert new_usage_request(store, "ONLINE_BD", state="ERROR", due=False) > 0


@pytest.mark.parametrize("state", ["PENDING", "ERROR_RETRYABLE"])
def test_the_database_refuses_a_non_final_mdm_sync_request_without_due_at(
    store: Store, state: str
) -> None:
    with pytest.raises(Exception, match=r"(?i)check"):
        new_mdm_sync_request(store, state=state, due=False)
    assert new_mdm_sync_request(store, state="SYNCHRONIZED", due=False) > 0


def test_the_database_refuses_awaiting_determinants_without_a_message(
    store: Store, usage_requests: Machine
) -> None:
    request = new_usage_request(store, "ONLINE_BD", message=False)
    with pytest.raises(Exception, match=r"(?i)check"), store.transaction() as tx:
        usage_requests.move(tx, request, "PENDING", "data_synced", "sent")


def test_a_deadline_counted_from_a_missing_date_is_refused(store: Store) -> None:
    """The later of two dates, one missing, is no deadline on either store: the CHECK refuses."""
    probe = Lifecycle(
        "probe",
        {
            "PENDING": "initial",
            "AWAITING_DATA_SYNC": State(
                "waiting", (Deadline("timeout", after=("window_end", "estimate_date")),)
            ),
            "ERROR": "final",
        },
        (
            Transition("P1", "PENDING", "wait", "AWAITING_DATA_SYNC"),
            Transition("P2", "AWAITING_DATA_SYNC", "timeout", "ERROR"),
        ),
    )
    machine = Machine(store, probe, "usage_request")
    request = new_usage_request(store, "ONLINE_BD")
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE usage_request SET estimate_date = {clock(store, 'seconds')} WHERE id = :id",
            {"seconds": 60.0, "id": request},
        )
    with pytest.raises(Exception, match=r"(?i)check"), store.transaction() as tx:
        machine.move(tx, request, "PENDING", "wait")
    with store.transaction() as tx:
        tx.execute(
            f"UPDATE usage_request SET window_end = {clock(store, 'seconds')} WHERE id = :id",
            {"seconds": 120.0, "id": request},
        )
        assert machine.move(tx, request, "PENDING", "wait")
        row = read(store, tx, "usage_request", request)
    assert close_to(row["due_at"], row["window_end"], within_s=0.001)


def test_an_unresolved_mdm_request_retries_every_15_minutes_for_12_hours(
    store: Store, mdm_requests: Machine
) -> None:
    request = new_mdm_sync_request(store)
    with store.transaction() as tx:
        tx.execute(
            "UPDATE mdm_sync_request SET first_error_at = NULL WHERE id = :id", {"id": request}
        )
        assert mdm_requests.move(tx, request, "PENDING", "transformed", "unresolved", reason="SP?")
        row = read(store, tx, "mdm_sync_request", request)
        assert mdm_requests.due_event(tx, request) is None
    assert (row["state"], row["reason"]) == ("ERROR_RETRYABLE", "SP?")
    assert close_to(row["first_error_at"], row["now"])
    assert close_to(row["due_at"], row["now"] + timedelta(minutes=15))

    with store.transaction() as tx:  # 15 minutes later: the retry is due
        tx.execute(
            f"UPDATE mdm_sync_request SET due_at = {clock(store, 'seconds')} WHERE id = :id",
            {"seconds": -1.0, "id": request},
        )
        assert mdm_requests.due_event(tx, request) == "retry"
    with store.transaction() as tx:  # the first error was 11 h 55 min ago; still unresolved
        tx.execute(
            f"UPDATE mdm_sync_request SET first_error_at = {clock(store, 'seconds')} WHERE id = :id",
            {"seconds": -(HOURS_12 - 300), "id": request},
        )
        first = read(store, tx, "mdm_sync_request", request)["first_error_at"]
        assert mdm_requests.move(tx, request, "ERROR_RETRYABLE", "retry", "unresolved")
        row = read(store, tx, "mdm_sync_request", request)
    assert row["first_error_at"] == first  # re-entering keeps the first error's time
    assert close_to(row["due_at"], row["now"] + timedelta(minutes=5))  # the limit comes first

    with store.transaction() as tx:  # 12 h after the first error: final, negative ack
        tx.execute(
            f"UPDATE mdm_sync_request SET first_error_at = {clock(store, 'seconds')}, due_at = {store.now} WHERE id = :id",
            {"seconds": -(HOURS_12 + 1), "id": request},
        )
        event = mdm_requests.due_event(tx, request)
        assert event == "retries_exhausted"
        assert mdm_requests.move(tx, request, "ERROR_RETRYABLE", event, reason="90000/1102")
        row = read(store, tx, "mdm_sync_request", request)
    assert (row["state"], row["due_at"]) == ("ERROR", None)
    with pytest.raises(IllegalTransition, match="state ERROR"), store.transaction() as tx:
        mdm_requests.move(tx, request, "ERROR", "retry")


def test_a_resolved_mdm_request_is_synchronized(store: Store, mdm_requests: Machine) -> None:
    request = new_mdm_sync_request(store)
    with store.transaction() as tx:
        assert mdm_requests.move(
            tx, request, "PENDING", "transformed", "resolved", "applied", "acknowledge"
        )
        row = read(store, tx, "mdm_sync_request", request)
    assert (row["state"], row["due_at"]) == ("SYNCHRONIZED", None)


def test_a_pending_row_leaves_its_event_to_the_step(store: Store, mdm_requests: Machine) -> None:
    request = new_mdm_sync_request(store)
    with store.transaction() as tx:
        assert read(store, tx, "mdm_sync_request", request)["due_at"] is not None
        assert mdm_requests.due_event(tx, request) is None


@pytest.mark.parametrize("table", ["usage_request; DELETE FROM outbox", "Usage_Request"])
def test_the_engine_writes_only_plain_table_names(store: Store, table: str) -> None:
    with pytest.raises(ValueError, match="not a plain table or column name"):
        Machine(store, USAGE_REQUEST, table)

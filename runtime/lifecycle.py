"""Business lifecycles as declarative tables: states, and the events that move between them.

Code asks a lifecycle where an event leads; an event a state does not accept is an error that
names the machine, the state and the event, so an impossible move never writes silently.

A state may also declare, as data, when a row in it falls due (its deadlines: a delay from the
moment it enters, or from columns of the row) and the action its entry runs (a name the step
that moves the row dispatches on). ``ccbmdm.runtime.machine`` turns both into guarded updates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["initial", "waiting", "transitory", "exception", "final"]

_NAME = re.compile(r"^[a-z_]+$")


class IllegalTransition(Exception):
    """An event the current state does not accept."""

    def __init__(self, machine: str, state: str, event: str, accepted: list[str]) -> None:
        self.machine, self.state, self.event = machine, state, event
        allowed = ", ".join(accepted) or "none (a final state)"
        super().__init__(
            f"{machine}: event {event!r} is not allowed in state {state}; allowed: {allowed}"
        )


@dataclass(frozen=True)
class Transition:
    id: str  # as docs/lifecycles.md numbers it (S1, U3, …), or the table's own id where it does not
    source: str
    event: str
    target: str


@dataclass(frozen=True)
class Deadline:
    """When a row in a state falls due: ``seconds`` after the moment it enters the state, or,
    with ``after``, after the latest of those columns of the row (row data, never code).

    ``event`` is what the deadline fires when it passes; None: the row becomes claimable and the
    monitor's step chooses the event from the data (a Pending row). ``flow``: only rows whose
    ``flow`` column has this value (batch and online usage requests differ); None: every row.
    """

    event: str | None = None
    seconds: float = 0.0
    after: tuple[str, ...] = ()
    flow: str | None = None

    def __post_init__(self) -> None:
        for column in self.after:
            if not _NAME.match(column):
                raise ValueError(f"deadline column {column!r} is not a plain column name")


@dataclass(frozen=True)
class State:
    """A state's kind, its deadlines (the earliest that applies to a row rules its ``due_at``),
    the action its entry runs, and the column that keeps when a row first entered it (kept on
    re-entry, so a limit can count from the first time, PD-L06)."""

    kind: Kind
    deadlines: tuple[Deadline, ...] = ()
    enter: str | None = None
    first_entry: str | None = None


@dataclass(frozen=True)
class Lifecycle:
    name: str
    states: Mapping[str, Kind | State]  # a bare kind: a state with no deadline and no action
    transitions: tuple[Transition, ...]
    _states: dict[str, State] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        states = {
            name: value if isinstance(value, State) else State(value)
            for name, value in self.states.items()
        }
        object.__setattr__(self, "_states", states)
        for transition in self.transitions:
            for end in (transition.source, transition.target):
                if end not in states:
                    raise ValueError(f"{self.name}: transition {transition.id} names {end}")
        for name, state in states.items():
            self._check_deadlines(name, state)

    def _check_deadlines(self, name: str, state: State) -> None:
        if state.deadlines and state.kind in ("final", "transitory"):
            raise ValueError(f"{self.name}: a {state.kind} state ({name}) cannot have a deadline")
        accepted = {t.event for t in self.transitions if t.source == name}
        for deadline in state.deadlines:
            if deadline.event is not None and deadline.event not in accepted:
                raise ValueError(
                    f"{self.name}: {name}'s deadline fires {deadline.event!r}, "
                    "which the state does not accept"
                )
        # A clock deadline cannot be recomputed later, so which one fired must be unambiguous.
        for flow in {None} | {d.flow for d in state.deadlines}:
            clocks = [d for d in state.deadlines if not d.after and d.flow in (None, flow)]
            if len(clocks) > 1:
                raise ValueError(f"{self.name}: {name} has two clock deadlines for flow {flow}")

    def state(self, name: str) -> State:
        """The declared state ``name`` (KeyError for a state the lifecycle does not have)."""
        return self._states[name]

    def kind(self, name: str) -> Kind:
        return self._states[name].kind

    def next(self, state: str, event: str) -> Transition:
        """The transition ``event`` takes from ``state``, or IllegalTransition."""
        for transition in self.transitions:
            if transition.source == state and transition.event == event:
                return transition
        accepted = sorted({t.event for t in self.transitions if t.source == state})
        raise IllegalTransition(self.name, state, event, accepted)

    def walk(self, state: str, events: Sequence[str]) -> tuple[Transition, ...]:
        """The transitions a step takes from a stored state: through transitory states only,
        to a state that is stored (a transitory state lives inside one transaction)."""
        if not events:
            raise ValueError(f"{self.name}: a move needs at least one event")
        if self.kind(state) == "transitory":
            raise ValueError(f"{self.name}: {state} is transitory and never stored")
        path: list[Transition] = []
        for event in events:
            if path and self.kind(state) != "transitory":
                raise ValueError(
                    f"{self.name}: {state} is stored, so a step cannot pass through it"
                )
            path.append(self.next(state, event))
            state = path[-1].target
        if self.kind(state) == "transitory":
            raise ValueError(f"{self.name}: a step cannot end in the transitory state {state}")
        return tuple(path)


# CCB outbound sync request (docs/lifecycles.md §1, stored as docs/reliability.md §1.2 says).
# Determine if Sync Needed and Send Request are transitory: they happen inside the monitor's step.
SYNC_REQUEST = Lifecycle(
    "sync request",
    {
        "PENDING": "initial",
        "DETERMINE": "transitory",
        "AWAITING_ACK": "waiting",
        "ERROR": "exception",
        "SYNCHRONIZED": "final",
        "DISCARDED": "final",
        "CANCELED": "final",
        "SUPERSEDED": "final",
    },
    (
        Transition("S1", "PENDING", "claim", "DETERMINE"),
        Transition("S3", "DETERMINE", "no_difference", "DISCARDED"),
        Transition("S4-S5", "DETERMINE", "sent", "AWAITING_ACK"),
        Transition("S6b", "DETERMINE", "build_failed", "ERROR"),
        Transition("S6b", "AWAITING_ACK", "attempts_used_up", "ERROR"),
        Transition("S7", "AWAITING_ACK", "positive_ack", "SYNCHRONIZED"),
        Transition("S8", "AWAITING_ACK", "negative_ack", "ERROR"),
        Transition("S10", "ERROR", "resubmit", "DETERMINE"),
        Transition("S11", "ERROR", "discard", "CANCELED"),
        Transition("S12", "ERROR", "supersede", "SUPERSEDED"),
    ),
)

MINUTES_15 = 15 * 60.0
HOURS_12 = 12 * 3600.0
HOURS_24 = 24 * 3600.0
DUE_AT_ONCE = Deadline()  # claimable from the moment the row enters; the step picks the event

# MDM inbound sync request (docs/lifecycles.md §2, PD-L05, PD-L06, PD-L15). §2 does not number its
# transitions: MS1… are this table's own ids.
#
# Transformed, Resolved and Applied are transitory: MDM's step applies a request in one
# transaction, as CCB's monitor passes Determine and Send Request (docs/reliability.md §2.2), so
# only Pending, the retryable Error and the final states are stored. The retry re-derives the
# transformed entity from the received message (a mapping is a pure function of it).
#
# Initial-load requests run on this same machine, with no Key Allocated or Loaded state: §2.1
# describes the sibling ODM integration, while PD-L05 allocates the key on the fly while
# resolving (a request for an entity MDM does not know creates it), Loaded is what Applied means
# here, and Additional Processing (the acknowledgement with the production id) is Synchronized's
# enter action. Its failures map onto the same two errors: a validation error is final, a
# resolution error is retryable. The stored row keeps the initial_load flag for the seeder.
#
# The retryable Error is retried every 15 min and, 12 h after the first error, becomes the final
# Error with the negative acknowledgement 90000/1102 (PD-L06): the limit counts from
# first_error_at, which re-entering the state leaves alone. A discarded request (a user's act,
# which §2 leaves open) also answers CCB negatively, so CCB's request leaves Awaiting
# Acknowledgement with the reason instead of timing out and resending a message MDM will not
# apply.
MDM_INBOUND_SYNC = Lifecycle(
    "MDM inbound sync request",
    {
        "PENDING": State("initial", (DUE_AT_ONCE,)),
        "TRANSFORMED": "transitory",
        "RESOLVED": "transitory",
        "APPLIED": "transitory",
        "ERROR_RETRYABLE": State(
            "exception",
            (
                Deadline("retries_exhausted", HOURS_12, after=("first_error_at",)),
                Deadline("retry", MINUTES_15),
            ),
            first_entry="first_error_at",
        ),
        "SYNCHRONIZED": State("final", enter="send_acknowledgement"),
        "ERROR": State("final", enter="send_negative_acknowledgement"),
        "DISCARDED": State("final", enter="send_negative_acknowledgement"),
    },
    (
        # mapped to the target BO schema and schema-validated
        Transition("MS1", "PENDING", "transformed", "TRANSFORMED"),
        # schema or DVM validation error: negative acknowledgement at once
        Transition("MS2", "PENDING", "invalid", "ERROR"),
        # foreign keys resolved through the cross-references, key allocated, BO validated
        Transition("MS3", "TRANSFORMED", "resolved", "RESOLVED"),
        # a foreign key not known yet, or an install event overlapping an open one (PD-L15)
        Transition("MS4", "TRANSFORMED", "unresolved", "ERROR_RETRYABLE"),
        # BO validation error: negative acknowledgement at once
        Transition("MS5", "TRANSFORMED", "invalid", "ERROR"),
        Transition("MS6", "RESOLVED", "applied", "APPLIED"),
        Transition("MS7", "APPLIED", "acknowledge", "SYNCHRONIZED"),
        Transition("MS8", "ERROR_RETRYABLE", "retry", "TRANSFORMED"),  # D1-SIOER, every 15 min
        Transition("MS9", "ERROR_RETRYABLE", "retries_exhausted", "ERROR"),  # 90000/1102
        Transition("MS10", "ERROR_RETRYABLE", "discard", "DISCARDED"),
    ),
)

# CCB usage request (docs/lifecycles.md §3, PD-L07, PD-L13). §3 does not number its transitions:
# UR1… are this table's own ids. Error is final (PD-L13): a batch request's retry is a new
# request from the next billing run, an online one's a regenerated segment.
#
# Regenerating an online segment cancels its request; Oracle deletes one still Pending or
# Awaiting Data Sync, the framework cancels it too, so every request keeps its outcome and
# reason. The step raises "regenerate" for online requests only.
#
# Awaiting Data Sync's due_at is its timeout; whether the related sync requests are final is
# checked by the monitor's step on every run, not by a deadline. Dates (window end, estimate
# date) are stored as the instants they stand for, so deadlines compute on the database clock.
_UR_REGENERABLE = (
    "PENDING",
    "AWAITING_DATA_SYNC",
    "AWAITING_BILL_DETERMINANTS",
    "BILL_DETERMINANTS_RECEIVED",
)
USAGE_REQUEST = Lifecycle(
    "usage request",
    {
        "PENDING": State("initial", (DUE_AT_ONCE,)),
        "AWAITING_DATA_SYNC": State(
            "waiting",
            (
                Deadline("timeout", after=("window_end",), flow="BATCH_BD"),
                Deadline("timeout", MINUTES_15, flow="ONLINE_BD"),
            ),
        ),
        "SEND_REQUEST": State("transitory", enter="send_request"),
        "AWAITING_BILL_DETERMINANTS": State(
            "waiting",
            (
                # outlasts MDM's silent retry (PD-L08)
                Deadline(
                    "timeout",
                    HOURS_24,
                    after=("end_date_time_to", "estimate_date"),
                    flow="BATCH_BD",
                ),
                Deadline("timeout", MINUTES_15, flow="ONLINE_BD"),
            ),
        ),
        # batch: the next monitor run; online: at once (woken after commit)
        "BILL_DETERMINANTS_RECEIVED": State("waiting", (Deadline("process"),)),
        "BILL_DETERMINANTS_PROCESSED": State("final", enter="apply_determinants"),
        # batch: a To Do once the window has closed; online: the user is told
        "ERROR": State("final", enter="report_error"),
        "CANCELED": "final",
    },
    (
        Transition("UR1", "PENDING", "data_sync_pending", "AWAITING_DATA_SYNC"),
        Transition("UR2", "PENDING", "data_synced", "SEND_REQUEST"),
        Transition("UR3", "AWAITING_DATA_SYNC", "data_synced", "SEND_REQUEST"),
        Transition("UR4", "AWAITING_DATA_SYNC", "timeout", "ERROR"),
        Transition("UR5", "SEND_REQUEST", "sent", "AWAITING_BILL_DETERMINANTS"),
        Transition("UR6", "SEND_REQUEST", "build_failed", "ERROR"),
        Transition(
            "UR7", "AWAITING_BILL_DETERMINANTS", "positive_response", "BILL_DETERMINANTS_RECEIVED"
        ),
        Transition("UR8", "AWAITING_BILL_DETERMINANTS", "negative_response", "ERROR"),
        Transition("UR9", "AWAITING_BILL_DETERMINANTS", "timeout", "ERROR"),
        Transition("UR10", "AWAITING_BILL_DETERMINANTS", "skip", "CANCELED"),  # summary billing
        Transition("UR11", "BILL_DETERMINANTS_RECEIVED", "process", "BILL_DETERMINANTS_PROCESSED"),
        *(Transition("UR12", state, "regenerate", "CANCELED") for state in _UR_REGENERABLE),
    ),
)

# MDM usage transaction (docs/lifecycles.md §4, U1 to U9, PD-L09, PD-L14). Calculation is
# transitory: its enter action runs the usage rules and the outcome leaves it. Sent is final unless
# corrected (PD-L14), so it is a waiting state whose only way out is U9; Superseded and stale are
# attributes of a Sent UT, not states (PD-L09). §4 gives no deadlines: how long Error retries
# (PD-L08) is decided by `automatedRetry` and the request's dates, not by the table.
_UT_BEFORE_SENT = (
    "PENDING",
    "CALCULATION_DEFERRED",
    "CALCULATION",
    "CALCULATION_IN_PROGRESS",
    "APPROVAL_IN_PROGRESS",
    "ERROR",
)
USAGE_TRANSACTION = Lifecycle(
    "usage transaction",
    {
        "PENDING": "initial",
        "CALCULATION_DEFERRED": "waiting",
        "CALCULATION": State("transitory", enter="calculate_usage"),
        "CALCULATION_IN_PROGRESS": "waiting",  # sub-UTs calculate one usage period each
        "APPROVAL_IN_PROGRESS": "waiting",
        "SENT": State("waiting", enter="send_usage"),  # D2-SEND-USG / X1-SENDUSGRP
        "SUBSEQUENT_CORRECTION": State("final", enter="send_subsequent_correction"),
        "ERROR": State("exception", enter="send_error"),  # D2-SEND-EROR, as automatedRetry says
        "DISCARDED": "final",
    },
    (
        Transition("U1", "PENDING", "defer", "CALCULATION_DEFERRED"),
        Transition("U2", "PENDING", "calculate", "CALCULATION"),
        Transition("U2", "CALCULATION_DEFERRED", "calculate", "CALCULATION"),
        Transition("U3", "CALCULATION", "date_breaks", "CALCULATION_IN_PROGRESS"),
        Transition("U4", "CALCULATION", "approval_required", "APPROVAL_IN_PROGRESS"),
        Transition("U5", "CALCULATION", "calculated", "SENT"),
        Transition("U5", "CALCULATION_IN_PROGRESS", "calculated", "SENT"),  # all sub-UTs done
        Transition("U5", "APPROVAL_IN_PROGRESS", "release", "SENT"),
        Transition("U6", "CALCULATION", "exception", "ERROR"),
        Transition("U6", "CALCULATION_IN_PROGRESS", "exception", "ERROR"),
        # rejected in approval; D1NA or a user in Error; replaced by a newer request (PD-L09)
        *(Transition("U7", state, "discard", "DISCARDED") for state in _UT_BEFORE_SENT),
        Transition("U8", "ERROR", "retry", "CALCULATION"),  # D1YS, or a user's retry
        # a correction inside the period while usedOnBill is true (PD-L09)
        Transition("U9", "SENT", "correct", "SUBSEQUENT_CORRECTION"),
    ),
)

# CCB off-cycle bill generator for corrected reads (docs/lifecycles.md §5, PD-L10). §5 does not
# number its transitions: OB1… are this table's own ids. An SA's generators run one at a time,
# oldest segment first: a Pending one is claimable at once and held behind an older one of its
# SA, as a sync request is behind its key. Processing Request has no deadline of its own: its usage
# request's rules it. Error is final: a failure discards the SA's remaining generators (step 5),
# so no retry could continue the sequence; the To Do hands the segments to a user.
OFF_CYCLE_BILL_GENERATOR = Lifecycle(
    "off-cycle bill generator",
    {
        "PENDING": State("initial", (DUE_AT_ONCE,)),
        # the segment goes to Pending Cancel and its new usage request is created
        "PROCESSING_REQUEST": State("waiting", enter="rebill_segment"),
        # the old segment canceled ("MDM Corrected Read"), the new one replaces it, the next starts
        "COMPLETED": State("final", enter="replace_segment"),
        "ERROR": State("final", enter="raise_todo"),
        "DISCARDED": "final",
    },
    (
        Transition("OB1", "PENDING", "start", "PROCESSING_REQUEST"),
        Transition("OB2", "PROCESSING_REQUEST", "determinants_processed", "COMPLETED"),
        Transition("OB3", "PENDING", "failed", "ERROR"),  # no frozen segment found, or BO error
        Transition("OB4", "PROCESSING_REQUEST", "failed", "ERROR"),  # its usage request failed
        Transition("OB5", "PENDING", "discard", "DISCARDED"),  # another of the SA's failed
    ),
)

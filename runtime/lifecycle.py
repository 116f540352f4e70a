"""Business lifecycles as declarative tables: states, and the events that move between them.

Code asks a lifecycle where an event leads; an event a state does not accept is an error that
names the machine, the state and the event, so an impossible move never writes silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["initial", "waiting", "transitory", "exception", "final"]


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
    id: str  # as lifecycles.md numbers it (S1, S3, …)
    source: str
    event: str
    target: str


@dataclass(frozen=True)
class Lifecycle:
    name: str
    states: dict[str, Kind]
    transitions: tuple[Transition, ...]

    def next(self, state: str, event: str) -> Transition:
        """The transition ``event`` takes from ``state``, or IllegalTransition."""
        for transition in self.transitions:
            if transition.source == state and transition.event == event:
                return transition
        accepted = sorted({t.event for t in self.transitions if t.source == state})
        raise IllegalTransition(self.name, state, event, accepted)


# CCB outbound sync request (lifecycles.md §1, stored as reliability.md §1.2 says). Determine if
# Sync Needed and Send Request are transitory: they happen inside the monitor's step.
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

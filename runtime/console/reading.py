"""What the console's pages read from the store: the overview per node, the lists of requests
(filtered by flow, state and time, a page at a time by id, newest first), and one request.

Every list query runs over an index of schema 8 (state, flow or creation time, with the id) and
pages by ``id < :after``, never by an offset, so that the hundredth page costs what the first
does on a store of a million rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ccbmdm.runtime import observe
from ccbmdm.runtime.lifecycles.lifecycle import (
    MDM_INBOUND_SYNC,
    SYNC_REQUEST,
    USAGE_REQUEST,
    Lifecycle,
)
from ccbmdm.runtime.lifecycles.sync import CCB_SYNC_FLOWS
from ccbmdm.runtime.lifecycles.usage import USAGE_FLOWS
from ccbmdm.runtime.observe import InError
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.base import Row

PAGE = 50  # rows on a page of a list
CHART_MINUTES = 15  # the throughput chart's span


class Refused(ValueError):
    """A page or an action the console cannot give: the message says why; ``status`` is the
    HTTP status of the page that says it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Kind:
    """A kind of request the console lists: its table, lifecycle and the columns shown."""

    table: str
    title: str
    node: str  # the node whose lifecycle it is
    lifecycle: Lifecycle
    columns: tuple[str, ...]  # shown in a list, after the id
    flows: tuple[str, ...]
    times: tuple[str, ...] = ("created_at",)  # timestamp columns

    def states(self) -> list[str]:
        """The states a row can be stored in (transitory ones live inside a transaction)."""
        return [s for s in self.lifecycle.states if self.lifecycle.kind(s) != "transitory"]


KINDS: Mapping[str, Kind] = {
    kind.table: kind
    for kind in (
        Kind(
            "sync_request",
            "CCB sync requests",
            "ccb",
            SYNC_REQUEST,
            ("flow", "mo", "pk", "state", "reason", "created_at"),
            tuple(CCB_SYNC_FLOWS.values()),
            ("created_at", "due_at"),
        ),
        Kind(
            "usage_request",
            "CCB usage requests",
            "ccb",
            USAGE_REQUEST,
            ("flow", "sa_id", "bill_segment_id", "state", "reason", "created_at"),
            USAGE_FLOWS,
            ("created_at", "due_at", "window_end", "end_date_time_to", "estimate_date"),
        ),
        Kind(
            "mdm_sync_request",
            "MDM inbound sync requests",
            "mdm",
            MDM_INBOUND_SYNC,
            ("flow", "mo", "external_key", "state", "reason", "created_at"),
            tuple(CCB_SYNC_FLOWS.values()),
            ("created_at", "due_at", "first_error_at"),
        ),
    )
}
# What each node's request lifecycles are (its messages are the outbox and inbox rows it owns)
_NODE_MACHINES = {
    "ccb": ("sync_request", "usage_request"),
    "bridge": (),
    "mdm": ("mdm_sync_request",),
}


@dataclass(frozen=True)
class NodeOverview:
    node: str
    rows: list[tuple[str, str, int]]  # machine, state, rows
    errors: int  # rows in ERROR (requests and messages)
    retrying: int  # rows waiting to be tried again (ERROR_RETRYABLE, RETRY_WAIT)
    oldest_pending: datetime | None  # the oldest Pending sync request (CCB)
    received: list[int] = field(default_factory=list)  # messages received, per minute


@dataclass(frozen=True)
class Overview:
    nodes: list[NodeOverview]
    errors: tuple[InError, ...]  # the requests and messages in Error, the first of them
    more_errors: int  # how many more there are


def overview(
    store: Store, nodes: list[str], now: datetime | None = None, errors_shown: int = 20
) -> Overview:
    """Each node's rows per lifecycle and state, its Errors, its oldest Pending and the messages
    it received in each of the last minutes; and the first Errors, each with its reason."""
    current = observe.overview(store)  # what `ccbmdm status` and /metrics read
    now = now or datetime.now(UTC)
    per_state = current.rows()
    oldest_pending = next(
        (
            o.since
            for o in current.oldest
            if (o.lifecycle, o.waiting) == ("sync_request", "pending")
        ),
        None,
    )
    found: list[NodeOverview] = []
    for node in nodes:
        rows = [
            (lifecycle, state, n)
            for (lifecycle, at, state), n in per_state.items()
            if lifecycle in _NODE_MACHINES.get(node, ())
            or (lifecycle in ("outbox", "inbox") and at == node)
        ]
        found.append(
            NodeOverview(
                node,
                rows,
                errors=sum(n for _, state, n in rows if state == "ERROR"),
                retrying=sum(n for _, state, n in rows if state in _RETRYING),
                oldest_pending=oldest_pending if node == "ccb" else None,
                received=received_per_minute(store, node, now),
            )
        )
    shown = current.errors[:errors_shown]
    return Overview(found, shown, len(current.errors) - len(shown))


_RETRYING = ("ERROR_RETRYABLE", "RETRY_WAIT")  # waiting to be tried again
# the minute (0 = the chart's first) a message was received in, as each dialect counts it
_MINUTE = {
    "sqlite": "CAST((received_at - :since) * 1440 AS INTEGER)",
    "postgres": "CAST(floor(extract(epoch FROM received_at - :since) / 60) AS integer)",
}


def received_per_minute(
    store: Store, node: str, now: datetime, minutes: int = CHART_MINUTES
) -> list[int]:
    """Messages the node received in each of the last ``minutes`` minutes, oldest first (the
    index on the inbox's node and arrival time: only the chart's rows are read)."""
    since = now.replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    with store.transaction() as tx:
        found = tx.fetch(
            f"SELECT {_MINUTE[store.dialect]} AS minute, count(*) AS n FROM inbox "
            "WHERE node = :node AND received_at >= :since GROUP BY 1",
            {"node": node, "since": tx.instant(since)},
        )
    per_minute = [0] * minutes
    for row in found:
        if 0 <= int(row["minute"]) < minutes:
            per_minute[int(row["minute"])] = int(row["n"])
    return per_minute


@dataclass(frozen=True)
class Filters:
    """What a list shows: one kind of request, optionally of one flow, in one state, created
    in a span of time (UTC), older than the row ``after`` (the last of the page before)."""

    kind: Kind
    flow: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        """Filters from a page's query string; a value the list cannot take is Refused."""
        name = query.get("kind") or "sync_request"
        kind = KINDS.get(name)
        if kind is None:
            raise Refused(f"no such kind of request: {name!r}; one of {', '.join(KINDS)}")
        state = query.get("state") or None
        if state is not None and state not in kind.states():
            raise Refused(
                f"{kind.title} have no state {state!r}; one of {', '.join(kind.states())}"
            )
        after = query.get("after") or None
        if after is not None and not after.isdigit():
            raise Refused(f"after must be a request id, not {after!r}")
        return cls(
            kind,
            (query.get("flow") or "").strip() or None,
            state,
            _instant(query, "since"),
            _instant(query, "until"),
            int(after) if after is not None else None,
        )

    def query(self, after: int | None = None) -> dict[str, str]:
        """The query string of these filters (``after``: of the page after this one)."""
        values = {
            "kind": self.kind.table,
            "flow": self.flow,
            "state": self.state,
            "since": _text(self.since),
            "until": _text(self.until),
            "after": str(after) if after is not None else None,
        }
        return {name: value for name, value in values.items() if value}


def _instant(query: Mapping[str, str], name: str) -> datetime | None:
    """A time from a form's ``datetime-local`` field (or an ISO 8601 instant), read as UTC."""
    text = (query.get(name) or "").strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(
            f"{name} must be a date and time such as 2026-12-06T14:30, not {text!r}"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _text(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_after: int | None  # the ``after`` of the next page; None on the last


def listing(store: Store, filters: Filters, size: int = PAGE) -> Page:
    """One page of a list: the newest rows that pass the filters, below ``after``."""
    kind = filters.kind
    clauses: list[str] = ["1 = 1"]
    params: dict[str, Any] = {"limit": size + 1}
    with store.transaction() as tx:
        for column, value in (("flow", filters.flow), ("state", filters.state)):
            if value is not None:
                clauses.append(f"{column} = :{column}")
                params[column] = value
        if filters.since is not None:
            clauses.append("created_at >= :since")
            params["since"] = tx.instant(filters.since)
        if filters.until is not None:
            clauses.append("created_at < :until")
            params["until"] = tx.instant(filters.until)
        if filters.after is not None:
            clauses.append("id < :after")
            params["after"] = filters.after
        found = tx.fetch(
            f"SELECT id, {', '.join(kind.columns)} FROM {kind.table} "
            f"WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT :limit",
            params,
        )
    rows = [shown(store, kind, row) for row in found[:size]]
    return Page(rows, int(found[size - 1]["id"]) if len(found) > size else None)


def request_row(store: Store, kind: Kind, request_id: int) -> dict[str, Any]:
    """One request's row, every column; Refused (404) when there is none."""
    with store.transaction() as tx:
        row = tx.fetch_one(f"SELECT * FROM {kind.table} WHERE id = :id", {"id": request_id})
    if row is None:
        raise Refused(f"there is no {kind.table.replace('_', ' ')} {request_id}", 404)
    return shown(store, kind, row)


def shown(store: Store, kind: Kind, row: Row) -> dict[str, Any]:
    """A row as a page shows it: times as UTC instants, a key's parts joined by slashes."""
    values = dict(row)
    for column in kind.times:
        if column in values:
            values[column] = store.to_datetime(values[column])
    if "initial_load" in values:  # SQLite keeps a boolean as 0 or 1
        values["initial_load"] = bool(values["initial_load"])
    if isinstance(values.get("pk"), str):
        values["pk"] = values["pk"].replace(chr(31), "/")
    return values

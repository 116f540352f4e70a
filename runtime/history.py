"""One request's life, as an operator reads it (``ccbmdm show``, the console's request page):
the states it went through with their times and reasons, its messages with their bodies, the
rows on other nodes that carry the same message or correlation id, and what can be done next.

An id names what to show (docs/operating.md, "Reading a request's life"):

- ``KIND:N``: the row ``N`` of a kind, one of ``KINDS`` (``sync_request:12``, ``outbox:7``);
- a message id (a UUID): the request that sent that message, else the request that received
  it, else the outbox row that first sent it, else the inbox row that first received it (the
  others are among its related rows);
- a bare number: a request of that id, tried against every request kind; when several have
  one, ``Ambiguous`` lists them in the first form.

Every query goes through an index: a row by its key, the states by (kind, row id), a message by
its id, a reply by its correlation id, a request's messages by their owner. The states come from
``transition``, which the store's triggers append to on every move of a request and on a
message's moves from its first failure on (``store.schema``); a row's first state is its
creation (``created_at``, ``received_at``) or a message's first send (``first_attempt_at``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.lifecycles.lifecycle import (
    MDM_INBOUND_SYNC,
    SYNC_REQUEST,
    USAGE_REQUEST,
    USAGE_TRANSACTION,
    Lifecycle,
)
from ccbmdm.runtime.lifecycles.sync import KEY_SEPARATOR
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.personal import masked
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row
from ccbmdm.runtime.store.bodies import BodyError, original

REQUEST_KINDS = ("sync_request", "usage_request", "mdm_sync_request", "usage_transaction")
MESSAGE_KINDS = ("outbox", "inbox")
KINDS = REQUEST_KINDS + MESSAGE_KINDS
# The MDM simulator's usage transactions live in its own tables, which a store may not have
_TABLES = {"usage_transaction": "mdm_usage_transaction"}
_LIFECYCLES: Mapping[str, Lifecycle] = {
    "sync_request": SYNC_REQUEST,
    "usage_request": USAGE_REQUEST,
    "mdm_sync_request": MDM_INBOUND_SYNC,
    "usage_transaction": USAGE_TRANSACTION,
}
_MESSAGE_FINAL = {"outbox": ("DELIVERED", "ERROR"), "inbox": ("PROCESSED",)}
# A sync request an operator discarded (S11) is stored CANCELED, apart from one discarded for
# having no difference (DISCARDED) and one superseded (SUPERSEDED); it reads as discarded.
DISCARDED_BY_OPERATOR = "DISCARDED by an operator"
_RELATED_LIMIT = 50  # rows of the chain of messages followed, at most
_RELATED_ROUNDS = 6  # hops from message to reply to relayed message, at most


class NotFound(CcbmdmError, LookupError):
    """No row has that id."""


class Ambiguous(CcbmdmError, LookupError):
    """A bare number that several kinds of request have; ``matches`` names each as KIND:N."""

    def __init__(self, given: str, matches: list[str]) -> None:
        super().__init__(
            f"{given} names {len(matches)} rows: {', '.join(matches)}; show one of them"
        )
        self.matches = matches


@dataclass(frozen=True)
class Step:
    """A state the row entered, when, and why (the reason stored with the move)."""

    state: str
    at: datetime | None
    reason: str | None


@dataclass(frozen=True)
class Message:
    """An outbox or inbox row, with its body as JSON text (personal values masked unless
    unmasked), or a note why the body is not shown."""

    kind: Literal["outbox", "inbox"]
    id: int
    node: str
    partner: str
    flow: str
    part: str
    message_id: str
    correlation_id: str | None
    outcome_message_id: str | None  # what a received message led to (a reply, a relay)
    state: str
    attempt: int
    reason: str | None
    due_at: datetime | None
    contract: str | None = None
    body: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"

    @property
    def direction(self) -> str:
        return (
            f"{self.node} -> {self.partner}"
            if self.kind == "outbox"
            else (f"{self.node} <- {self.partner}")
        )


@dataclass(frozen=True)
class RelatedRequest:
    """A request on another node that carries one of the messages (an MDM sync request, a
    usage transaction), or the one that owns a shown message."""

    kind: str
    id: int
    state: str
    message_id: str

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class Action:
    """What an operator can do next: ``resubmit``, ``discard``, ``wait`` or ``nothing``;
    ``command`` the arguments of the ccbmdm command that does it (none for wait and nothing)."""

    name: Literal["resubmit", "discard", "wait", "nothing"]
    explanation: str
    command: tuple[str, ...] = ()


@dataclass(frozen=True)
class RequestLife:
    kind: str
    id: int
    key: str  # how an operator recognises the row (an entity, a segment, a route)
    flow: str
    state: str  # as stored
    reads_as: str  # as an operator reads it (a discarded request reads discarded)
    final: bool
    reason: str | None
    due_at: datetime | None
    created_at: datetime | None
    history: tuple[Step, ...]
    messages: tuple[Message, ...]
    related: tuple[Message, ...]
    related_requests: tuple[RelatedRequest, ...]
    actions: tuple[Action, ...]
    # why the message was not built, with its personal values: only on an operator's terminal
    # (``ccbmdm show --unmask``), re-derived from the final snapshot kept with the request
    unmasked_reason: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}"

    def as_json(self) -> dict[str, Any]:
        """JSON data: times as ISO 8601, every field by name."""
        data = asdict(self)
        data["ref"] = self.ref
        shown: dict[str, Any] = json.loads(json.dumps(data, default=_iso))
        return shown


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON data")


def life(
    store: Store,
    given: str,
    contracts: ContractRegistry | None = None,
    *,
    unmask: bool = False,
) -> RequestLife:
    """The life of the row ``given`` names (see the module's docstring). Bodies are decoded
    through ``contracts`` (without it, only their size is shown) with personal values masked
    unless ``unmask``. Raises NotFound or Ambiguous; reads only."""
    with store.transaction() as tx:
        kind, row_id = resolve(store, tx, given)
        return _Reader(store, tx, contracts, unmask).life(kind, row_id)


def resolve(store: Store, tx: Transaction, given: str) -> tuple[str, int]:
    """The kind and row id ``given`` names, or NotFound / Ambiguous."""
    text = given.strip()
    kind, sep, number = text.partition(":")
    kind = kind.replace("-", "_").lower()
    if sep:
        if kind not in KINDS:
            raise NotFound(f"{given!r}: no kind {kind!r}; the kinds are {', '.join(KINDS)}")
        if not number.strip().isdigit():
            raise NotFound(f"{given!r}: {kind}: needs a row number, as in {kind}:12")
        row_id = int(number)
        if not _exists(store, tx, kind, row_id):
            raise NotFound(f"no {kind} {row_id} in this store")
        return kind, row_id
    if text.isdigit():
        row_id = int(text)
        found = [k for k in REQUEST_KINDS if _exists(store, tx, k, row_id)]
        if not found:
            raise NotFound(
                f"no request {row_id} in this store (tried {', '.join(REQUEST_KINDS)}); "
                "name an outbox or inbox row as outbox:N or inbox:N"
            )
        if len(found) > 1:
            raise Ambiguous(given, [f"{k}:{row_id}" for k in found])
        return found[0], row_id
    try:
        message_id = str(uuid.UUID(text))
    except ValueError:
        raise NotFound(
            f"{given!r} is not an id: give KIND:N ({', '.join(KINDS)}), a message id or a "
            "request's number"
        ) from None
    return _by_message_id(store, tx, message_id)


def _by_message_id(store: Store, tx: Transaction, message_id: str) -> tuple[str, int]:
    """The request that sent the message (a sync or usage request), else the one that received
    it (MDM's), else the outbox row that first sent it (a bridge relays a message under its
    own id), else the inbox row that first received it. The others are its related rows."""
    kinds = [k for k in REQUEST_KINDS if _has_table(store, tx, k)]
    for kind in (*kinds, *MESSAGE_KINDS):
        row = tx.fetch_one(
            f"SELECT id FROM {_TABLES.get(kind, kind)} WHERE message_id = :m ORDER BY id LIMIT 1",
            {"m": message_id},
        )
        if row is not None:
            return kind, int(row["id"])
    raise NotFound(f"no request or message with message id {message_id} in this store")


def _exists(store: Store, tx: Transaction, kind: str, row_id: int) -> bool:
    if not _has_table(store, tx, kind):
        return False
    table = _TABLES.get(kind, kind)
    return (
        tx.fetch_one(f"SELECT 1 AS found FROM {table} WHERE id = :id", {"id": row_id}) is not None
    )


def _has_table(store: Store, tx: Transaction, kind: str) -> bool:
    table = _TABLES.get(kind)
    if table is None:
        return True  # the runtime's own tables
    if store.dialect == "sqlite":
        sql = "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = :t"
    else:
        sql = "SELECT 1 AS found WHERE to_regclass(:t) IS NOT NULL"
    return tx.fetch_one(sql, {"t": table}) is not None


# An outbox or inbox row as a Message reads it (the outbox has no correlation or outcome id)
_MESSAGE_COLUMNS = {
    kind: "id, node, partner, flow, part, message_id, state, attempt, last_error AS reason, "
    + (
        "due_at, correlation_id, outcome_message_id"
        if kind == "inbox"
        else "due_at, NULL AS correlation_id, NULL AS outcome_message_id"
    )
    for kind in MESSAGE_KINDS
}


def _any_of(column: str, values: Iterable[str]) -> tuple[str, dict[str, str]]:
    """SQL matching ``column`` against any of ``values`` (an index lookup per value), and its
    parameters."""
    params = {f"v{i}": value for i, value in enumerate(sorted(values))}
    return f"{column} IN ({', '.join(':' + name for name in params)})", params


class _Reader:
    """Reads one row's life in one transaction."""

    def __init__(
        self, store: Store, tx: Transaction, contracts: ContractRegistry | None, unmask: bool
    ) -> None:
        self.store, self.tx, self.contracts, self.unmask = store, tx, contracts, unmask
        self._tables: dict[str, bool] = {}

    def has(self, kind: str) -> bool:
        """Whether the store has the table of ``kind`` (asked once per reading)."""
        if kind not in self._tables:
            self._tables[kind] = _has_table(self.store, self.tx, kind)
        return self._tables[kind]

    def life(self, kind: str, row_id: int) -> RequestLife:
        if kind in MESSAGE_KINDS:
            return self._message_life(kind, row_id)
        return self._request_life(kind, row_id)

    # -- requests -------------------------------------------------------------------------

    def _request_life(self, kind: str, row_id: int) -> RequestLife:
        table = _TABLES.get(kind, kind)
        row = self.tx.fetch_one(f"SELECT * FROM {table} WHERE id = :id", {"id": row_id})
        if row is None:
            raise NotFound(f"no {kind} {row_id} in this store")
        own = self._own_messages(kind, row)
        ids = {m.message_id for m in own} | {
            str(row[c]) for c in ("message_id", "response_message_id") if row.get(c) is not None
        }
        related, requests = self._related(ids, {m.ref for m in own}, (kind, row_id))
        lifecycle = _LIFECYCLES[kind]
        state = str(row["state"])
        created = self.store.to_datetime(row.get("created_at"))
        return RequestLife(
            kind=kind,
            id=row_id,
            key=_request_key(kind, row),
            flow=str(row["flow"]),
            state=state,
            reads_as=reads_as(kind, state),
            final=lifecycle.kind(state) == "final",
            reason=row.get("reason"),
            due_at=self.store.to_datetime(row.get("due_at")),
            created_at=created,
            history=self._ending_in(
                self._history(kind, row_id, Step("PENDING", created, None)),
                state,
                row.get("reason"),
            ),
            messages=tuple(own),
            related=tuple(related),
            related_requests=tuple(requests),
            actions=tuple(_request_actions(kind, row_id, row, lifecycle, self.store)),
        )

    def _own_messages(self, kind: str, row: Row) -> list[Message]:
        """The messages a request sent (every one, a resubmitted request's earlier ones too)
        and the replies its node received; or, for a request MDM received, that message and
        what MDM answered."""
        row_id = int(row["id"])
        if kind in ("sync_request", "usage_request"):
            sent = self._messages(
                "outbox",
                "owner_type = :owner AND owner_id = :id AND owner_id IS NOT NULL",
                {"owner": kind, "id": row_id},
            )
            replies = self._replies(sent)
            extra = []
            response = row.get("response_message_id")
            if response is not None and not any(m.message_id == str(response) for m in replies):
                extra = self._messages("inbox", "message_id = :m", {"m": str(response)})
            return sent + replies + extra
        # MDM's side: the request message as MDM's node received it (the message's last hop:
        # a bridge sharing the store received it first), then what MDM answered with
        received = self._messages("inbox", "message_id = :m", {"m": str(row["message_id"])})[-1:]
        answers = [m for r in received for m in self._outcomes(r) if m.node == r.node]
        return received + answers

    # -- outbox and inbox rows -----------------------------------------------------------

    def _message_life(self, kind: str, row_id: int) -> RequestLife:
        (message,) = self._messages(kind, "id = :id", {"id": row_id})
        own = [message]
        if kind == "outbox":
            own += [m for m in self._replies(own) if m.node == message.node]
        else:
            own += [m for m in self._outcomes(message) if m.node == message.node]
        owner = self._owner(kind, row_id)
        related, requests = self._related({m.message_id for m in own}, {m.ref for m in own}, None)
        if owner is not None and owner not in requests:
            requests.insert(0, owner)
        # a message's moves are recorded from its first failure on (``store.schema``): before
        # them, when it arrived, or when it was first sent
        column, state = (
            ("received_at", "RECEIVED") if kind == "inbox" else ("first_attempt_at", "SENDING")
        )
        began = self.tx.fetch_one(
            f"SELECT {column} AS at FROM {kind} WHERE id = :id", {"id": row_id}
        )
        at = self.store.to_datetime(began["at"]) if began else None
        first = None if at is None else Step(state, at, None)
        history = self._ending_in(self._history(kind, row_id, first), message.state, message.reason)
        final = message.state in _MESSAGE_FINAL[kind]
        return RequestLife(
            kind=kind,
            id=row_id,
            key=f"{message.direction} {message.flow} {message.part}",
            flow=message.flow,
            state=message.state,
            reads_as=message.state,
            final=final,
            reason=message.reason,
            due_at=message.due_at,
            created_at=history[0].at if history else None,
            history=history,
            messages=tuple(own),
            related=tuple(related),
            related_requests=tuple(requests),
            actions=tuple(_message_actions(message, owner)),
        )

    def _owner(self, kind: str, row_id: int) -> RelatedRequest | None:
        """The request an outbox row was sent for."""
        if kind != "outbox":
            return None
        row = self.tx.fetch_one(
            "SELECT owner_type, owner_id FROM outbox WHERE id = :id", {"id": row_id}
        )
        if row is None or row["owner_type"] not in REQUEST_KINDS or row["owner_id"] is None:
            return None
        owner = self.tx.fetch_one(
            f"SELECT id, state, message_id FROM {row['owner_type']} WHERE id = :id",
            {"id": row["owner_id"]},
        )
        if owner is None:
            return None
        return RelatedRequest(
            str(row["owner_type"]), int(owner["id"]), str(owner["state"]), str(owner["message_id"])
        )

    def _messages(self, kind: str, where: str, params: Mapping[str, Any]) -> list[Message]:
        """Rows with their bodies."""
        rows = self.tx.fetch(
            f"SELECT {_MESSAGE_COLUMNS[kind]}, b.payload FROM {kind} m "
            f"LEFT JOIN {kind}_body b USING (id) WHERE {where} ORDER BY id",
            params,
        )
        return [self._message(kind, row) for row in rows]

    def _replies(self, sent: list[Message]) -> list[Message]:
        """The inbox rows that answer these messages, on the node that sent them."""
        if not sent:
            return []
        where, params = _any_of("correlation_id", {m.message_id for m in sent})
        nodes = {m.node for m in sent}
        return [m for m in self._messages("inbox", where, params) if m.node in nodes]

    def _outcomes(self, received: Message) -> list[Message]:
        """The message a received one led to (an acknowledgement, a relayed message)."""
        if received.outcome_message_id is None:
            return []
        return self._messages("outbox", "message_id = :m", {"m": received.outcome_message_id})

    def _message(self, kind: str, row: Row) -> Message:
        contract, body = self._body(row["payload"])
        return Message(
            kind="outbox" if kind == "outbox" else "inbox",
            id=int(row["id"]),
            node=str(row["node"]),
            partner=str(row["partner"]),
            flow=str(row["flow"]),
            part=str(row["part"]),
            message_id=str(row["message_id"]),
            correlation_id=_text(row["correlation_id"]),
            outcome_message_id=_text(row["outcome_message_id"]),
            state=str(row["state"]),
            attempt=int(row["attempt"]),
            reason=row["reason"],
            due_at=self.store.to_datetime(row["due_at"]),
            contract=contract,
            body=body,
        )

    def _body(self, payload: Any) -> tuple[str | None, str | None]:
        """The contract and the body as indented JSON, personal values masked unless
        unmasked; a body that cannot be decoded is not shown (it may hold personal data)."""
        if payload is None:
            return None, None
        try:
            data = original(payload)
        except BodyError as exc:  # a body changed outside the runtime: say so, show nothing
            return None, f"({exc})"
        if self.contracts is None:
            return None, f"({len(data)} bytes; not decoded without the project's contracts)"
        try:
            codec, message = self.contracts.decode(data)
        except Exception as exc:  # a stored body no contract reads: say so, show nothing
            return None, f"({len(data)} bytes the contracts do not read: {type(exc).__name__})"
        shown = (
            message.model_dump(mode="json", exclude_none=True) if self.unmask else masked(message)
        )
        return codec.name, json.dumps(shown, indent=2, ensure_ascii=False)

    # -- the other nodes' rows -------------------------------------------------------------

    def _related(
        self, message_ids: set[str], shown: set[str], itself: tuple[str, int] | None
    ) -> tuple[list[Message], list[RelatedRequest]]:
        """The rows of the conversation these messages belong to, on every node: the same message
        id, the replies (their correlation id), the message a reply answers, the messages a
        received one led to (its outcome), and so on a few hops; and the requests that carry
        any of those messages. Bodies are not read: each row can be shown on its own."""
        seen_ids = set(message_ids)
        frontier = set(message_ids)
        rows: dict[str, Message] = {}
        for _ in range(_RELATED_ROUNDS):
            if not frontier or len(rows) >= _RELATED_LIMIT:
                break
            found: list[Message] = []
            for kind, column in (
                ("outbox", "message_id"),
                ("inbox", "message_id"),
                ("inbox", "correlation_id"),
            ):
                where, params = _any_of(column, frontier)
                found += self._bare(kind, where, params)
            frontier = set()
            for message in found:
                if message.ref in rows:
                    continue
                rows[message.ref] = message
                for next_id in (
                    message.message_id,
                    message.correlation_id,
                    message.outcome_message_id,
                ):
                    if next_id is not None and next_id not in seen_ids:
                        seen_ids.add(next_id)
                        frontier.add(next_id)
        related = [m for ref, m in sorted(rows.items(), key=lambda i: (i[1].kind, i[1].id))]
        related = [m for m in related if m.ref not in shown][:_RELATED_LIMIT]
        return related, self._requests_carrying(seen_ids, itself)

    def _bare(self, kind: str, where: str, params: Mapping[str, Any]) -> list[Message]:
        """Rows without their bodies."""
        rows = self.tx.fetch(
            f"SELECT {_MESSAGE_COLUMNS[kind]} FROM {kind} WHERE {where} ORDER BY id", params
        )
        return [self._message(kind, {**row, "payload": None}) for row in rows]

    def _requests_carrying(
        self, message_ids: set[str], itself: tuple[str, int] | None
    ) -> list[RelatedRequest]:
        columns = {
            "sync_request": ("message_id",),
            "usage_request": ("message_id", "response_message_id"),
            "mdm_sync_request": ("message_id",),
            "usage_transaction": ("message_id",),
        }
        found: dict[tuple[str, int], RelatedRequest] = {}
        if not message_ids:
            return []
        for kind, names in columns.items():
            if not self.has(kind):
                continue
            table = _TABLES.get(kind, kind)
            for name in names:
                where, params = _any_of(name, message_ids)
                for row in self.tx.fetch(
                    f"SELECT id, state, {name} AS carried FROM {table} WHERE {where}", params
                ):
                    key = (kind, int(row["id"]))
                    if key != itself:
                        found[key] = RelatedRequest(
                            kind, key[1], str(row["state"]), str(row["carried"])
                        )
        return list(found.values())

    # -- states ------------------------------------------------------------------------

    def _history(self, kind: str, row_id: int, first: Step | None) -> tuple[Step, ...]:
        rows = self.tx.fetch(
            "SELECT state, reason, at FROM transition WHERE kind = :kind AND row_id = :id "
            "ORDER BY id",
            {"kind": kind, "id": row_id},
        )
        steps = [Step(str(r["state"]), self.store.to_datetime(r["at"]), r["reason"]) for r in rows]
        if first is not None:
            steps.insert(0, first)
        return tuple(steps)

    def _ending_in(
        self, steps: tuple[Step, ...], state: str, reason: str | None
    ) -> tuple[Step, ...]:
        """The states, ending in the row's own: a row moved before its moves were recorded
        (schema 7) shows the state it is in, its time unknown."""
        if steps and steps[-1].state == state:
            return steps
        return (*steps, Step(state, None, reason))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def reads_as(kind: str, state: str) -> str:
    """A state as an operator reads it: a sync request an operator discarded is stored
    CANCELED (docs/lifecycles.md §1.2) and reads as discarded."""
    if kind == "sync_request" and state == "CANCELED":
        return DISCARDED_BY_OPERATOR
    return state


_KEYS: Mapping[str, Callable[[Row], str]] = {
    "sync_request": lambda r: (
        f"{r['mo']} {str(r['pk']).replace(KEY_SEPARATOR, '/')} to {r['target']}"
    ),
    "usage_request": lambda r: f"SA {r['sa_id']} segment {r['bill_segment_id']}",
    "mdm_sync_request": lambda r: f"{r['mo']} {r['external_key']}",
    "usage_transaction": lambda r: f"{r['ut_id']} for usage request {r['external_id']}",
}


def _request_key(kind: str, row: Row) -> str:
    return _KEYS[kind](row)


def _request_actions(
    kind: str, row_id: int, row: Row, lifecycle: Lifecycle, store: Store
) -> list[Action]:
    state = str(row["state"])
    due = store.to_datetime(row.get("due_at"))
    if kind == "sync_request" and state == "ERROR":
        return [
            Action(
                "resubmit",
                "once the cause is fixed: the final snapshot is taken again and sent under a "
                "new message id (S10)",
                ("resubmit", str(row_id)),
            ),
            Action(
                "discard",
                "if the change must not reach MDM: give the reason, which is kept (S11)",
                ("discard", str(row_id), "--reason", "WHY"),
            ),
        ]
    if lifecycle.kind(state) == "final":
        return [Action("nothing", f"{reads_as(kind, state)} is final")]
    if kind == "usage_transaction" and state == "SENT":
        return [Action("nothing", "SENT is final unless a correction comes (U9, PD-L14)")]
    if kind == "mdm_sync_request" and state == "ERROR_RETRYABLE":
        waits = (
            f"; storing {row['waiting_mo']} {row['waiting_key']} retries it at once"
            if row.get("waiting_mo")
            else ""
        )
        return [
            Action(
                "wait",
                f"retried automatically{_at(due)}, every 15 min, and answered with 90000/1102 "
                f"12 h after the first error{waits}",
            )
        ]
    if state == "ERROR":  # a usage transaction in Error: MDM retries it as automatedRetry says
        return [Action("wait", f"retried by MDM as its automated retry says{_at(due)}")]
    if state == "PENDING":
        return [Action("wait", f"the monitor takes it{_at(due) or ' when it is due'}")]
    return [Action("wait", f"waits in {state}{_deadline(due)}")]


def _message_actions(message: Message, owner: RelatedRequest | None) -> list[Action]:
    if message.kind == "outbox" and message.state == "ERROR":
        if owner is not None:
            return [
                Action(
                    "nothing",
                    f"given up; its request {owner.ref} is {reads_as(owner.kind, owner.state)}: "
                    f"act on the request (ccbmdm show {owner.ref})",
                )
            ]
        return [Action("nothing", "given up; the message is not sent again")]
    if message.state in _MESSAGE_FINAL[message.kind]:
        return [Action("nothing", f"{message.state} is final")]
    if message.state in ("PENDING", "RETRY_WAIT", "RECEIVED"):
        return [Action("wait", f"sent or processed again{_at(message.due_at)}")]
    return [Action("wait", f"in {message.state}{_deadline(message.due_at)}")]


def _at(due: datetime | None) -> str:
    return "" if due is None else f" at {due.isoformat(timespec='seconds')}"


def _deadline(due: datetime | None) -> str:
    return "" if due is None else f" until {due.isoformat(timespec='seconds')}"

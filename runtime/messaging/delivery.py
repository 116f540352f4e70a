"""Delivery: the generic outbox and inbox every asynchronous message goes through.

At-least-once on the wire, applied once (docs/reliability.md §1.3): a message is committed to the
sender's outbox before it is sent and to the receiver's inbox before its receipt; every attempt
sends the same id and bytes; every transition after a claim is fenced by the claim's lease token,
so a worker whose lease expired changes nothing.

Every state change of a message is logged once its transaction commits (docs/runtime.md, Logs):
receipt and processing, delivery, each retry with its attempt and next due time, each failure
with its reason.
"""

from __future__ import annotations

import functools
import logging
import random
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from ccbmdm.runtime.lifecycles.lifecycle import SYNC_REQUEST
from ccbmdm.runtime.lifecycles.machine import moved
from ccbmdm.runtime.logs import emit
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row, background, listed, on_the_row, unnested
from ccbmdm.runtime.store.bodies import original, stored_rows

log = logging.getLogger("ccbmdm.delivery")
RELAY = "relay"  # owner type of a bridge outbox row: the inbox row of the message it maps


@dataclass(frozen=True)
class DeliverySettings:
    """Leases, attempts, the retry window and backoff (docs/runtime.md, Delivery).

    A message is given up only when both its ``max_attempts`` are used and ``retry_window_s``
    has passed since its first send: a partner down for a few seconds must not use up every
    attempt. The backoff is capped at 15 minutes: a partner that comes back is retried at
    once by the first message that gets through (``Outbox.record``), and the cap bounds how
    long that first message may wait."""

    lease_s: float = 60.0
    max_attempts: int = 4
    backoff_base_s: float = 60.0
    backoff_factor: float = 4.0
    backoff_cap_s: float = 15 * 60.0
    batch: int = 50
    retry_window_s: float = 3600.0

    def backoff(self, attempt: int) -> float:
        """``min(cap, base * factor^(n-1)) * U(0.5, 1)`` after the n-th attempt."""
        delay = min(self.backoff_cap_s, self.backoff_base_s * self.backoff_factor ** (attempt - 1))
        return delay * random.uniform(0.5, 1.0)


# Why a send failed, as the outbox records it: ``unreachable`` (nothing was sent: refused, no
# route; no attempt used), ``transport`` (a timeout or a connection lost after sending),
# ``answer`` (the partner answered 401, 429 or 5xx), ``business`` (400, 413: ERROR at once);
# a rescue records ``deadline`` (a lease or reply deadline passed).
Failure = Literal["unreachable", "transport", "answer", "business"]
# The failures that say the partner, not the message, was the trouble: a success to that
# partner retries such rows at once.
PARTNER_DOWN = "('unreachable','transport','deadline')"

# A body is keyed by its row's id. SQLite may give a new row the id of a row deleted before (rows
# purged by an operator): the new message's body takes the place of the one left behind.
_REPLACING = " ON CONFLICT (id) DO UPDATE SET payload = excluded.payload"
# What each stored message gives of its row (name -> PostgreSQL type, ``insert_with_bodies``)
_MESSAGE_COLUMNS = {
    "node": "text",
    "partner": "text",
    "flow": "text",
    "part": "text",
    "message_id": "uuid",
}
_OUTBOX_COLUMNS = _MESSAGE_COLUMNS | {
    "ordering_key": "text",
    "owner_type": "text",
    "owner_id": "bigint",
    "reply_timeout_s": "float8",
}
_INBOX_COLUMNS = _MESSAGE_COLUMNS | {"correlation_id": "uuid"}


class Claim(NamedTuple):
    """An outbox row a worker holds under a lease (a named tuple: a batch makes one a message,
    at a third of a frozen dataclass's cost)."""

    id: int
    partner: str
    flow: str
    part: str
    message_id: str
    payload: bytes
    attempt: int
    lease_token: str
    reply_timeout_s: float | None
    owner_type: str | None
    owner_id: int | None


def claim_rows(
    store: Store,
    node: str,
    settings: DeliverySettings,
    table: str,
    state: str,
    pick: str,
    columns: str,
    batch: int | None,
    tx: Transaction | None = None,
    stamp: str = "",
) -> list[Row]:
    """Move the rows ``pick`` selects to ``state`` under a new lease, in one statement:
    PostgreSQL picks with ``FOR UPDATE SKIP LOCKED`` in a materialised CTE (so the limit applies
    before the update); SQLite, under BEGIN IMMEDIATE, updates the rows a subquery picks. With
    ``tx``, the claim is part of that transaction; else it commits on its own. Each row comes
    with its message's ``payload``, from the table's body table.

    The rows of one claim share its lease token: it tells this claim from any later one of the
    same row, which is all the fencing needs. ``stamp``: more assignments (``, col = …``)."""
    params = {
        "node": node,
        "batch": batch or settings.batch,
        "seconds": settings.lease_s,
        "token": secrets.token_hex(16),
    }
    if store.dialect == "postgres":
        lock = " FOR UPDATE OF r SKIP LOCKED" if " r " in pick else " FOR UPDATE SKIP LOCKED"
        sql = f"""WITH picked AS MATERIALIZED ({pick} LIMIT :batch{lock})
                  UPDATE {table} s SET state = '{state}', attempt = s.attempt + 1,
                         lease_token = :token, due_at = {store.now_plus}{stamp}
                  FROM picked WHERE s.id = picked.id
                  RETURNING {", ".join("s." + c for c in columns.split(", "))},
                            (SELECT b.payload FROM {table}_body b WHERE b.id = s.id) AS payload"""
    else:
        sql = f"""UPDATE {table} SET state = '{state}', attempt = attempt + 1,
                         lease_token = :token, due_at = {store.now_plus}{stamp}
                  WHERE id IN ({pick} LIMIT :batch)
                  RETURNING {columns},
                            (SELECT b.payload FROM {table}_body b WHERE b.id = {table}.id) AS payload"""
    if tx is not None:
        rows = tx.fetch(sql, params)
    else:
        with store.transaction() as own:
            rows = own.fetch(sql, params)
    return sorted(rows, key=lambda row: int(row["id"]))


class Outbox:
    """One node's outgoing messages."""

    def __init__(self, store: Store, node: str, settings: DeliverySettings) -> None:
        self.store = store
        self.node = node
        self.settings = settings
        # owner type -> what to do, in the same transaction, when a message it owns ends in
        # ERROR undelivered: (tx, owner id, reason)
        self.on_undelivered: dict[str, Callable[[Transaction, int, str], None]] = {}

    def _undelivered(
        self, tx: Transaction, owner_type: str | None, owner_id: int | None, reason: str
    ) -> None:
        hook = self.on_undelivered.get(owner_type or "")
        if hook is not None and owner_id is not None:
            hook(tx, owner_id, reason)

    def enqueue(
        self,
        tx: Transaction,
        partner: str,
        flow: str,
        part: str,
        message_id: str,
        payload: bytes,
        *,
        ordering_key: str | None = None,
        owner: tuple[str, int] | None = None,
        reply_timeout_s: float | None = None,
    ) -> None:
        """Store a message to send, in the caller's transaction (nothing is sent yet); a message
        already in the outbox (the same id to the same partner) is left as it is. The row is
        written at the commit, with the transaction's other messages (``Transaction.later``)."""
        row = {
            "node": self.node,
            "partner": partner,
            "flow": flow,
            "part": part,
            "message_id": message_id,
            "ordering_key": ordering_key,
            "owner_type": owner[0] if owner else None,
            "owner_id": owner[1] if owner else None,
            "reply_timeout_s": reply_timeout_s,
            "payload": payload,
        }
        tx.later(self._write, row)

    def _write(self, tx: Transaction, rows: list[dict[str, Any]]) -> None:
        constants = {"state": "'PENDING'", "due_at": tx.now}
        send_with_bodies(tx, "outbox", _OUTBOX_COLUMNS, constants, rows)

    def claim(self, batch: int | None = None, tx: Transaction | None = None) -> list[Claim]:
        """Claim due rows whose key has no older open row: SENDING, one more attempt, a lease;
        with ``tx``, in that transaction, else in one of its own.

        The guard keeps per-key order across workers (docs/reliability.md §2.3).
        """
        store = self.store
        due = f"""r.node = :node AND r.state IN ('PENDING','RETRY_WAIT') AND r.due_at <= {store.now}
                  AND (r.ordering_key IS NULL  -- an unordered message never waits
                       OR NOT EXISTS (SELECT 1 FROM outbox o
                                      WHERE o.node = r.node AND o.partner = r.partner AND o.ordering_key = r.ordering_key
                                        AND o.id < r.id AND o.state IN ('PENDING','SENDING','AWAITING_REPLY','RETRY_WAIT')))"""
        columns = "id, partner, flow, part, message_id, attempt, lease_token, reply_timeout_s, owner_type, owner_id"
        pick = f"SELECT r.id FROM outbox r WHERE {due} ORDER BY r.due_at, r.id"
        first = f", first_attempt_at = COALESCE(first_attempt_at, {store.now})"
        rows = claim_rows(
            self.store,
            self.node,
            self.settings,
            "outbox",
            "SENDING",
            pick,
            columns,
            batch,
            tx,
            stamp=first,
        )
        return [
            Claim(
                **{**row, "message_id": str(row["message_id"]), "payload": original(row["payload"])}
            )
            for row in rows
        ]

    def _fenced(
        self,
        tx: Transaction,
        claims: Sequence[Claim],
        assignments: str,
        params: Mapping[str, Any],
        claimed_here: bool = False,
    ) -> set[int]:
        """Apply ``assignments`` to the claims whose lease is still theirs, in one statement;
        returns their ids (a claim missing from it lost its lease: do not send, log). Claims
        made in ``tx`` itself (``claimed_here``) hold their rows locked until it ends, so
        their leases are theirs: the statement is sent without waiting (``Transaction.send``),
        still fenced."""
        if not claimed_here:
            return {int(row["id"]) for row in self._fenced_rows(tx, claims, assignments, params)}
        if claims:
            fenced, values = fenced_rows(claims)
            tx.send(
                f"UPDATE outbox SET {assignments} WHERE state = 'SENDING' AND {fenced}",
                {**params, **values},
            )
        return {claim.id for claim in claims}

    def _fenced_rows(
        self,
        tx: Transaction,
        claims: Sequence[Claim],
        assignments: str,
        params: Mapping[str, Any],
        returning: str = "id",
    ) -> list[Row]:
        """``_fenced``, returning ``returning`` of each row changed."""
        if not claims:
            return []
        fenced, values = fenced_rows(claims)
        held = f"state = 'SENDING' AND {fenced}"
        if self.store.dialect == "postgres":
            # A row another transaction is changing (its reply being matched, its lease being
            # rescued) is skipped, not waited for: this lease no longer decides its state, and
            # waiting would deadlock with a batch of replies that locks the rows in another order.
            held = f"id IN (SELECT id FROM outbox WHERE {held} FOR UPDATE SKIP LOCKED)"
        return tx.fetch(
            f"UPDATE outbox SET {assignments} WHERE {held} RETURNING {returning}",
            {**params, **values},
        )

    def renew(self, claims: list[Claim]) -> list[Claim]:
        """Extend the leases just before sending, in one statement; the claims still held
        (a claim whose lease is gone must not be sent)."""
        with self.store.transaction() as tx:
            held = self._fenced(
                tx, claims, f"due_at = {self.store.now_plus}", {"seconds": self.settings.lease_s}
            )
        return [claim for claim in claims if claim.id in held]

    def record(
        self,
        outcomes: list[tuple[Claim, str | None, Failure | None]],
        tx: Transaction | None = None,
        claimed_here: bool = False,
    ) -> list[Claim]:
        """Record what each send came to, in one transaction (``tx``, else one of its own):
        (claim, error or None for an accepted message, the kind of failure). A partner that
        took a message is up again: its rows waiting after it seemed down are retried at once.
        Returns the claims whose lease was gone (none when they were claimed in ``tx``,
        ``claimed_here``: their rows are locked until it ends)."""
        if tx is None:
            with self.store.transaction() as own:
                return self._record(own, outcomes, claimed_here)
        return self._record(tx, outcomes, claimed_here)

    def _record(
        self,
        tx: Transaction,
        outcomes: list[tuple[Claim, str | None, Failure | None]],
        claimed_here: bool,
    ) -> list[Claim]:
        held: set[int] = set()
        failed: dict[int, Row] = {}  # claim id -> its row's new state and due time
        accepted = [claim for claim, error, _ in outcomes if error is None]
        # first after the commit, before the lines of the owners that moved with them
        tx.after_commit(functools.partial(self._log_outcomes, outcomes, held, failed))
        # The receiver stored the message (202): done for a one-way message, else await the reply.
        held |= self._fenced(
            tx,
            [claim for claim in accepted if claim.reply_timeout_s is None],
            "state = 'DELIVERED', due_at = NULL, lease_token = NULL",
            {},
            claimed_here,
        )
        for timeout in {c.reply_timeout_s for c in accepted} - {None}:
            held |= self._fenced(
                tx,
                [claim for claim in accepted if claim.reply_timeout_s == timeout],
                f"state = 'AWAITING_REPLY', due_at = {self.store.now_plus}",
                {"seconds": timeout},
                claimed_here,
            )
        for claim, error, failure in outcomes:
            if error is not None:
                row = self._failed(tx, claim, error, failure or "transport")
                if row is not None:
                    held.add(claim.id)
                    failed[claim.id] = row
        for partner in sorted({claim.partner for claim in accepted if claim.id in held}):
            self._partner_back(tx, partner)
        return [claim for claim, _, _ in outcomes if claim.id not in held]

    def _log_outcomes(
        self,
        outcomes: list[tuple[Claim, str | None, Failure | None]],
        held: set[int],
        failed: Mapping[int, Row],
    ) -> None:
        """One line per recorded send: delivered (info), to be retried (warning, with the
        attempt and when the next is due), given up (error), each with the reason."""
        informed = log.isEnabledFor(logging.INFO)
        for claim, error, failure in outcomes:
            if claim.id not in held or (error is None and not informed):
                continue
            if error is None:
                to = "DELIVERED" if claim.reply_timeout_s is None else "AWAITING_REPLY"
                emit(log, logging.INFO, "delivered", self._about(claim, "delivery.delivered", to))
                continue
            row = failed[claim.id]
            fields = self._about(claim, "", str(row["state"])) | {
                "failure": failure,
                "reason": error,
            }
            if row["state"] == "ERROR":
                fields["event"] = "delivery.failed"
                emit(log, logging.ERROR, "not delivered: given up", fields)
            else:
                fields |= {"event": "delivery.retry", "next_due": self._instant(row["due_at"])}
                emit(log, logging.WARNING, "send failed; retrying", fields)

    def _about(self, claim: Claim, event: str, to_state: str) -> dict[str, Any]:
        """The fields of a line about a claimed message leaving SENDING."""
        return {
            "event": event,
            "node": self.node,
            "partner": claim.partner,
            "flow": claim.flow,
            "part": claim.part,
            "message_id": claim.message_id,
            "from_state": "SENDING",
            "to_state": to_state,
            "attempt": claim.attempt,
            **owned_by(claim.owner_type, claim.owner_id),
        }

    def _instant(self, value: Any) -> str | None:
        instant = self.store.to_datetime(value)
        return None if instant is None else instant.isoformat(timespec="seconds")

    def _given_up(self, refused_now: str = "0") -> str:
        """SQL: whether a row's technical failure is its last (its attempts used and its retry
        window passed); a send refused before anything was sent uses up no attempt.
        ``refused_now``: 1 when the failure being recorded is such a refusal."""
        window = self.store.now_plus.replace(":seconds", ":window_ago")
        return (
            f"(attempt - refused - {refused_now} >= :max_attempts"
            f" AND (first_attempt_at IS NULL OR first_attempt_at <= {window}))"
        )

    def _window(self) -> dict[str, Any]:
        return {
            "max_attempts": self.settings.max_attempts,
            "window_ago": -self.settings.retry_window_s,
        }

    def _failed(self, tx: Transaction, claim: Claim, error: str, failure: Failure) -> Row | None:
        """Business failures end in ERROR at once; technical ones wait and retry until the
        message is given up (``_given_up``). The owner of a message in ERROR moves with it.
        Returns the row's new state and due time; None when the lease was gone."""
        final_sql = "1 = 1" if failure == "business" else self._given_up(":refused")
        rows = self._fenced_rows(
            tx,
            [claim],
            f"""state = CASE WHEN {final_sql} THEN 'ERROR' ELSE 'RETRY_WAIT' END,
                due_at = CASE WHEN {final_sql} THEN NULL ELSE {self.store.now_plus} END,
                refused = refused + :refused, failure = :failure, lease_token = NULL,
                last_error = :error""",
            {
                **self._window(),
                "error": error[:1000],
                "failure": failure,
                "refused": 1 if failure == "unreachable" else 0,
                "seconds": self.settings.backoff(claim.attempt),
            },
            returning="id, state, due_at",
        )
        if rows and rows[0]["state"] == "ERROR":
            business = failure == "business"
            self._owner_in_error(
                tx,
                (claim.owner_type, claim.owner_id),
                f"{'rejected' if business else 'not delivered, attempts used up'}: {error}",
                "negative_ack" if business else "attempts_used_up",
                error,
                flow=claim.flow,
                message_id=claim.message_id,
            )
        return rows[0] if rows else None

    def _owner_in_error(
        self,
        tx: Transaction,
        owner: tuple[str | None, int | None],
        request_reason: str,
        trigger: str,
        reason: str,
        **message: str,
    ) -> None:
        """A message (its ``flow`` and ``message_id``) ended in ERROR undelivered: a sync
        request awaiting its acknowledgement goes to Error with ``request_reason``
        (``trigger``: its lifecycle's event); any other owner's hook hears ``reason``."""
        owner_type, owner_id = owner
        if (
            owner_type == "sync_request"
            and owner_id is not None
            and tx.execute(
                f"UPDATE sync_request SET state = 'ERROR', reason = :reason, due_at = {tx.now} WHERE id = :id AND state = 'AWAITING_ACK'",
                {"reason": request_reason[:1000], "id": owner_id},
            )
        ):
            path = (SYNC_REQUEST.next("AWAITING_ACK", trigger),)
            moved(tx, SYNC_REQUEST, owner_type, owner_id, path, request_reason[:1000], **message)
        self._undelivered(tx, owner_type, owner_id, reason)

    def _partner_back(self, tx: Transaction, partner: str) -> None:
        """``partner`` took a message: the rows waiting for it after a failure that blamed the
        partner (unreachable, a lost connection, a passed deadline) are due now, a batch of
        them at most (the next batches follow as these get through). A row the partner
        answered with an error keeps its backoff: that partner is up, and said no to it. The
        oldest messages go first. (The state list is outbox_claimable's, so that the rows are
        found through it, the few due later, not through every open row to the partner.)"""
        now = self.store.now
        waiting = f"""SELECT id FROM outbox
                      WHERE node = :node AND partner = :partner AND state = 'RETRY_WAIT'
                        AND state IN ('PENDING','RETRY_WAIT') AND failure IN {PARTNER_DOWN} AND due_at > {now}
                      ORDER BY id LIMIT :batch"""
        if self.store.dialect == "postgres":  # the limit applies before the update (claim_rows)
            sql = f"""WITH picked AS MATERIALIZED ({waiting} FOR UPDATE SKIP LOCKED)
                      UPDATE outbox o SET due_at = {now} FROM picked
                      WHERE o.id = picked.id AND o.state = 'RETRY_WAIT'"""
        else:
            sql = f"UPDATE outbox SET due_at = {now} WHERE id IN ({waiting})"
        params = {"node": self.node, "partner": partner, "batch": self.settings.batch}
        if not log.isEnabledFor(logging.INFO):
            tx.send(sql, params)
            return
        due: list[int] = []  # the count, once the statement's round trip is made
        tx.send(sql, params, due.append)
        fields = {"event": "delivery.partner_back", "node": self.node, "partner": partner}
        tx.after_commit(functools.partial(self._log_partner_back, fields, due))

    @staticmethod
    def _log_partner_back(fields: dict[str, Any], due: list[int]) -> None:
        """The rows ``_partner_back`` made due, if it made any (logged after the commit, in
        the place of its statement among the transaction's lines)."""
        if due and due[0]:
            emit(
                log,
                logging.INFO,
                "the partner took a message: its waiting messages are due now",
                fields | {"count": due[0]},
            )

    def rescue(self) -> int:
        """Rows whose lease or reply deadline passed: again (same id and bytes), or ERROR."""
        store = self.store
        # The rows stay locked until the commit (PostgreSQL): a reply or a late record that ends
        # the lease meanwhile waits and then finds the rescued row, instead of being overwritten;
        # rows another transaction holds are left to the next sweep.
        lock = " FOR UPDATE SKIP LOCKED" if store.dialect == "postgres" else ""
        with store.transaction() as tx:
            expired = tx.fetch(
                f"SELECT id, partner, flow, part, message_id, attempt, state, owner_type, owner_id, "
                f"CASE WHEN {self._given_up()} THEN 1 ELSE 0 END AS given_up FROM outbox "
                f"WHERE node = :node AND state IN ('SENDING','AWAITING_REPLY') "
                f"AND due_at < {store.now}{lock}",
                {"node": self.node, **self._window()},
            )
            rescued = 0
            for row in tx.budgeted(expired):  # those left wait for the next sweep
                rescued += 1
                final = bool(row["given_up"])
                due = tx.fetch(
                    f"""UPDATE outbox SET state = :state, lease_token = NULL, failure = 'deadline',
                           last_error = 'deadline passed in ' || state,
                           due_at = {"NULL" if final else store.now_plus} WHERE id = :id
                        RETURNING due_at""",
                    {
                        "state": "ERROR" if final else "RETRY_WAIT",
                        "id": row["id"],
                        "seconds": self.settings.backoff(row["attempt"]),
                    },
                )
                if final:
                    self._owner_in_error(
                        tx,
                        (row["owner_type"], row["owner_id"]),
                        f"no acknowledgement after {row['attempt']} attempts",
                        "attempts_used_up",
                        f"deadline passed in {row['state']} after {row['attempt']} attempts",
                        flow=str(row["flow"]),
                        message_id=str(row["message_id"]),
                    )
                self._log_rescue(tx, row, None if final else due[0]["due_at"])
        return rescued

    def _log_rescue(self, tx: Transaction, row: Row, due: Any) -> None:
        """A message whose lease or reply deadline passed: to be sent again at ``due``
        (warning), or given up (error; ``due`` is None)."""
        final = due is None
        fields = {
            "event": "delivery.failed" if final else "delivery.retry",
            "node": self.node,
            "partner": row["partner"],
            "flow": row["flow"],
            "part": row["part"],
            "message_id": str(row["message_id"]),
            "from_state": row["state"],
            "to_state": "ERROR" if final else "RETRY_WAIT",
            "attempt": row["attempt"],
            "failure": "deadline",
            "reason": f"deadline passed in {row['state']}",
            **owned_by(row["owner_type"], row["owner_id"]),
        }
        if final:
            tx.after_commit(
                functools.partial(emit, log, logging.ERROR, "not delivered: given up", fields)
            )
            return
        fields["next_due"] = self._instant(due)
        tx.after_commit(
            functools.partial(emit, log, logging.WARNING, "deadline passed; retrying", fields)
        )

    def reply_received(
        self, tx: Transaction, partner: str, correlation_id: str
    ) -> tuple[str, int] | None:
        """Match a reply to the message it answers; returns its owner, or None (recorded and
        ignored: a reply to an earlier message, or one that comes after the request went on)."""
        return self.replies_received(tx, [(partner, correlation_id)])[0]

    def replies_received(
        self, tx: Transaction, replies: Sequence[tuple[str, str]]
    ) -> list[tuple[str, int] | None]:
        """Match a batch of replies, each (partner, correlation id), to the messages they
        answer, in one statement per partner; each reply's owner, or None, as
        ``reply_received`` says. Of two replies to one message, the first matches, as it would
        one after the other."""
        matched: dict[tuple[str, str], Row] = {}
        for partner in dict.fromkeys(partner for partner, _ in replies):
            ids = list(dict.fromkeys(c for p, c in replies if p == partner))
            params: dict[str, Any] = {f"c{i}": c for i, c in enumerate(ids)}
            listed = ", ".join(f":c{i}" for i in range(len(ids)))
            for row in tx.fetch(
                f"""UPDATE outbox SET state = 'DELIVERED', due_at = NULL, lease_token = NULL
                    WHERE node = :node AND partner = :partner AND message_id IN ({listed})
                      AND {on_the_row("state IN ('SENDING','AWAITING_REPLY','RETRY_WAIT')")}
                    RETURNING message_id, flow, part, owner_type, owner_id""",
                {"node": self.node, "partner": partner, **params},
            ):
                # PostgreSQL's uuid column gives the id back in its own (lowercase) spelling
                matched[partner, str(row["message_id"]).lower()] = row
        owners: list[tuple[str, int] | None] = []
        for partner, correlation_id in replies:
            match = matched.pop((partner, correlation_id.lower()), None)  # the first reply's
            if match is not None and log.isEnabledFor(logging.INFO):
                fields = {
                    "event": "delivery.replied",
                    "node": self.node,
                    "partner": partner,
                    "flow": match["flow"],
                    "part": match["part"],
                    "message_id": correlation_id,
                    "to_state": "DELIVERED",
                    **owned_by(match["owner_type"], match["owner_id"]),
                }
                tx.after_commit(
                    functools.partial(emit, log, logging.INFO, "the reply came", fields)
                )
            owners.append(
                None
                if match is None or match["owner_type"] is None
                else (str(match["owner_type"]), int(match["owner_id"]))
            )
        return owners


def owned_by(owner_type: str | None, owner_id: int | None) -> dict[str, Any]:
    """A log line's fields naming what a message belongs to: the request (``request_type``,
    its table, and ``request_id``), or, for a message the bridge relays, the inbox row of the
    message it maps (``relayed_inbox_id``)."""
    if owner_type is None or owner_id is None:
        return {}
    if owner_type == RELAY:
        return {"relayed_inbox_id": owner_id}
    return {"request_type": owner_type, "request_id": owner_id}


@dataclass(frozen=True)
class Arrival:
    """A checked message about to be stored in the inbox."""

    flow: str
    part: str
    message_id: str
    correlation_id: str | None
    payload: bytes


class _Repeats(Exception):
    """A batch of messages holds some the table already has."""


def insert_with_bodies(
    tx: Transaction,
    table: str,
    columns: Mapping[str, str],
    constants: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
) -> list[bool]:
    """Insert messages into ``table`` (nothing for one the table has: the same node, partner
    and message id) and their ``payload`` into its body table; per row, whether it was new.
    ``columns``: those each row gives (name -> PostgreSQL type); ``constants``: those the same
    SQL sets for every row. On PostgreSQL one statement for the batch, over its rows as arrays
    (``_unnested_insert``), which tells the new rows from the repeats by what it returns; on
    SQLite one statement each, executed once a row, in process. When some are repeats there
    (a sender retrying, a handler run again), the batch is written again message by message
    to tell which. A repeat's stored bytes stay as they are."""
    if tx.dialect == "postgres":
        sql, params = _unnested_insert(table, columns, constants, rows)
        ids = {(r["node"], r["partner"], str(r["message_id"])) for r in tx.fetch(sql, params)}
        new = []
        for row in rows:
            # the first of a batch's rows with one id is the one inserted; the uuid column
            # gives the id back in its own (lowercase) spelling
            key = (row["node"], row["partner"], str(row["message_id"]).lower())
            new.append(key in ids)
            ids.discard(key)
        return new
    names = ", ".join([*columns, *constants])
    conflict = "ON CONFLICT (node, partner, message_id) DO NOTHING"
    listed = ", ".join([*(f":{name}" for name in columns), *constants.values()])
    insert = f"INSERT INTO {table} ({names}) VALUES ({listed}) {conflict}"
    body = f"""INSERT INTO {table}_body (id, payload)
               SELECT id, :payload FROM {table} WHERE node = :node AND partner = :partner AND message_id = :message_id
               {_REPLACING}"""
    try:
        with tx.savepoint():
            if tx.execute_many(insert, rows) != len(rows):
                raise _Repeats
            tx.execute_many(body, stored_rows(rows))
        return [True] * len(rows)
    except _Repeats:
        pass
    new = []
    for row in rows:
        fresh = bool(tx.execute(insert, row))
        if fresh:
            tx.execute(body, stored_rows([row])[0])
        new.append(fresh)
    return new


def send_with_bodies(
    tx: Transaction,
    table: str,
    columns: Mapping[str, str],
    constants: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """``insert_with_bodies`` when nothing waits to know which rows were new (the messages a
    transaction queued to send): on PostgreSQL its one statement is sent with the next that
    is waited for, or the commit (``Transaction.send``)."""
    if tx.dialect == "postgres":
        tx.send(*_unnested_insert(table, columns, constants, rows))
    else:
        insert_with_bodies(tx, table, columns, constants, rows)


@functools.lru_cache(maxsize=16)
def _unnested_statement(
    table: str, columns: tuple[tuple[str, str], ...], constants: tuple[tuple[str, str], ...]
) -> str:
    """``_unnested_insert``'s statement: the same few are made once a batch, so each is
    written once."""
    relation, _ = unnested([], {**dict(columns), "payload": "bytea"})
    into = ", ".join([*(name for name, _ in columns), *(name for name, _ in constants)])
    selected = ", ".join([*(f"v.{name}" for name, _ in columns), *(sql for _, sql in constants)])
    return f"""WITH v AS MATERIALIZED (SELECT * FROM {relation}),
                inserted AS (
                  INSERT INTO {table} ({into}) SELECT {selected} FROM v ORDER BY v.n
                  ON CONFLICT (node, partner, message_id) DO NOTHING
                  RETURNING id, node, partner, message_id),
                bodies AS (
                  INSERT INTO {table}_body (id, payload)
                  SELECT DISTINCT ON (i.id) i.id, v.payload FROM inserted i
                  JOIN v ON v.node = i.node AND v.partner = i.partner
                        AND v.message_id = i.message_id
                  ORDER BY i.id, v.n{_REPLACING})
            SELECT node, partner, message_id FROM inserted"""


def _unnested_insert(
    table: str,
    columns: Mapping[str, str],
    constants: Mapping[str, str],
    rows: Sequence[Mapping[str, Any]],
) -> tuple[str, dict[str, Any]]:
    """``insert_with_bodies`` on PostgreSQL, as one statement over the batch's rows as arrays
    (``unnested``), and its parameters: the rows inserted in their order (the ids keep it,
    which the claims' per-key order goes by), each new one's body with it; it returns the
    new rows' keys."""
    _, params = unnested(
        stored_rows(rows),
        {**columns, "payload": "bytea"},
    )
    statement = _unnested_statement(table, tuple(columns.items()), tuple(constants.items()))
    return statement, params


class Received(NamedTuple):
    """An inbox row a worker holds under a lease, to process (a named tuple, as ``Claim``)."""

    id: int
    partner: str
    flow: str
    part: str
    message_id: str
    correlation_id: str | None
    payload: bytes
    lease_token: str


class Inbox:
    """One node's incoming messages: stored before the receipt, deduplicated by (partner, id)."""

    def __init__(self, store: Store, node: str, settings: DeliverySettings) -> None:
        self.store = store
        self.node = node
        self.settings = settings

    def store_messages(
        self, partner: str, arrivals: Sequence[Arrival]
    ) -> list[tuple[bool, str | None]]:
        """Commit messages from one partner together, before any receipt goes out; per message:
        (new, the recorded outcome's message id when it is a repeat). Storing what a partner
        sent is the integration's own work: on SQLite its commit gives way to the source
        system's saves (``background``), wherever the message came in."""
        if not arrivals:
            return []
        now = self.store.now
        constants = {"state": "'RECEIVED'", "due_at": now, "received_at": now}
        rows = [{"node": self.node, "partner": partner, **a.__dict__} for a in arrivals]
        with background(), self.store.transaction() as tx:
            new = insert_with_bodies(tx, "inbox", _INBOX_COLUMNS, constants, rows)
            stored = [
                (True, None) if fresh else (False, self._outcome(tx, partner, arrival))
                for fresh, arrival in zip(new, arrivals, strict=True)
            ]
            if log.isEnabledFor(logging.INFO):
                tx.after_commit(functools.partial(self._log_stored, partner, arrivals, new))
        return stored

    def _log_stored(self, partner: str, arrivals: Sequence[Arrival], new: Sequence[bool]) -> None:
        """A line per message stored: received (info), or received again (debug)."""
        for fresh, arrival in zip(new, arrivals, strict=True):
            if fresh:
                fields = self._about(arrival, partner, "message.received")
                emit(log, logging.INFO, "received", fields | {"to_state": "RECEIVED"})
            else:
                emit(
                    log,
                    logging.DEBUG,
                    "received again; answered with its recorded outcome",
                    self._about(arrival, partner, "message.repeat"),
                )

    def _about(self, message: Arrival | Received, partner: str, event: str) -> dict[str, Any]:
        """The fields of a line about a received message."""
        return {
            "event": event,
            "node": self.node,
            "partner": partner,
            "flow": message.flow,
            "part": message.part,
            "message_id": message.message_id,
            "correlation_id": message.correlation_id,
        }

    def payload(self, tx: Transaction, partner: str, message_id: str) -> bytes | None:
        """The bytes of a message received from ``partner``, or None when there is none."""
        return self.payloads(tx, partner, [message_id]).get(message_id)

    def payloads(
        self, tx: Transaction, partner: str, message_ids: Sequence[str]
    ) -> dict[str, bytes]:
        """The bytes of the messages received from ``partner`` by their ids, in one statement
        (a step's batch read at once, not a round trip each); an id not received is absent."""
        if not message_ids:
            return {}
        ids, params = listed("m", message_ids)
        rows = tx.fetch(
            f"""SELECT i.message_id, b.payload FROM inbox i JOIN inbox_body b ON b.id = i.id
                WHERE i.node = :node AND i.partner = :partner AND i.message_id IN ({ids})""",
            {"node": self.node, "partner": partner, **params},
        )
        return {str(row["message_id"]): original(row["payload"]) for row in rows}

    def _outcome(self, tx: Transaction, partner: str, arrival: Arrival) -> str | None:
        row = tx.fetch_one(
            "SELECT outcome_message_id FROM inbox WHERE node = :node AND partner = :partner AND message_id = :message_id",
            {"node": self.node, "partner": partner, "message_id": arrival.message_id},
        )
        outcome = row["outcome_message_id"] if row else None
        return None if outcome is None else str(outcome)

    def claim(self, batch: int | None = None, tx: Transaction | None = None) -> list[Received]:
        """Claim received messages for processing, in one statement, as the outbox does; with
        ``tx``, in the transaction that processes them (their rows stay locked until it ends,
        so nothing can rescue them meanwhile, and a crash leaves them received)."""
        pick = f"SELECT id FROM inbox WHERE node = :node AND state = 'RECEIVED' AND due_at <= {self.store.now} ORDER BY due_at, id"
        columns = "id, partner, flow, part, message_id, correlation_id, lease_token"
        rows = claim_rows(
            self.store, self.node, self.settings, "inbox", "PROCESSING", pick, columns, batch, tx
        )
        return [
            Received(
                **{
                    **row,
                    "message_id": str(row["message_id"]),
                    "payload": original(row["payload"]),
                    "correlation_id": None
                    if row["correlation_id"] is None
                    else str(row["correlation_id"]),
                }
            )
            for row in rows
        ]

    def processed(self, tx: Transaction, outcomes: Sequence[tuple[Received, str | None]]) -> None:
        """Mark held messages processed with the message id each led to, in the transaction of
        their processing."""
        tx.update_rows(
            "inbox",
            "state = 'PROCESSED', due_at = NULL, lease_token = NULL, outcome_message_id = :outcome",
            [{"outcome": outcome, "id": message.id} for message, outcome in outcomes],
            {"outcome": "uuid"},
            "inbox.state = 'PROCESSING'",
        )
        if outcomes and log.isEnabledFor(logging.INFO):
            lines = [
                self._about(message, message.partner, "message.processed")
                | {
                    "from_state": "PROCESSING",
                    "to_state": "PROCESSED",
                    "outcome_message_id": outcome,
                }
                for message, outcome in outcomes
            ]
            tx.after_commit(functools.partial(emit, log, logging.INFO, "processed", *lines))

    def give_back(self, tx: Transaction, messages: Sequence[Received]) -> None:
        """Messages claimed in ``tx`` and left unprocessed (its write budget spent): received
        again, the attempt the claim counted taken back, and due from their arrival, so that
        they keep their place before the messages that came after them (an entity's next
        version among them)."""
        if messages:
            tx.execute_many(
                """UPDATE inbox SET state = 'RECEIVED', attempt = attempt - 1, lease_token = NULL,
                     due_at = received_at WHERE id = :id AND state = 'PROCESSING'""",
                [{"id": message.id} for message in messages],
            )

    def failed(self, tx: Transaction, message: Received, error: str) -> None:
        """Why a held message's processing failed, kept with it (its processing was rolled
        back; it is received again when its lease passes, ``rescue``)."""
        tx.execute(
            "UPDATE inbox SET last_error = :error WHERE id = :id AND lease_token = :token",
            {"error": error[:1000], "id": message.id, "token": message.lease_token},
        )

    def rescue(self, give_up: Callable[[Transaction, Row], str | None] | None = None) -> int:
        """Messages whose processing lease passed are received again, to be processed anew;
        one whose attempts are used up is PROCESSED instead, with the outcome ``give_up``
        records for it (the fault its partner gets, docs/reliability.md §2.4)."""
        lock = " FOR UPDATE SKIP LOCKED" if self.store.dialect == "postgres" else ""
        with self.store.transaction() as tx:
            expired = tx.fetch(
                f"""SELECT id, partner, flow, part, message_id, correlation_id, attempt FROM inbox
                    WHERE node = :node AND state = 'PROCESSING' AND due_at < {tx.now}{lock}""",
                {"node": self.node},
            )
            rescued = 0
            for row in tx.budgeted(expired):  # those left wait for the next sweep
                rescued += 1
                fields = {
                    "event": "message.rescued",
                    "node": self.node,
                    "partner": row["partner"],
                    "flow": row["flow"],
                    "part": row["part"],
                    "message_id": str(row["message_id"]),
                    "from_state": "PROCESSING",
                    "attempt": row["attempt"],
                }
                # the reason a failed processing recorded (``failed``), else a worker that
                # never finished: a crash, or a batch that outlasted its lease
                if row["attempt"] < self.settings.max_attempts:
                    tx.execute(
                        f"""UPDATE inbox SET state = 'RECEIVED', lease_token = NULL,
                              last_error = COALESCE(last_error, '{_UNFINISHED}'),
                              due_at = {tx.now} WHERE id = :id""",
                        {"id": row["id"]},
                    )
                    fields |= {"to_state": "RECEIVED", "reason": "processing lease passed"}
                    tx.after_commit(
                        functools.partial(
                            emit,
                            log,
                            logging.WARNING,
                            "processing lease passed; to be processed again",
                            fields,
                        )
                    )
                    continue
                outcome = None if give_up is None else give_up(tx, row)
                tx.execute(
                    f"""UPDATE inbox SET state = 'PROCESSED', due_at = NULL, lease_token = NULL,
                         last_error = 'not processed, attempts used up: '
                                      || COALESCE(last_error, '{_UNFINISHED}'),
                         outcome_message_id = :outcome WHERE id = :id""",
                    {"outcome": outcome, "id": row["id"]},
                )
                fields |= {
                    "event": "message.not_processed",
                    "to_state": "PROCESSED",
                    "outcome_message_id": outcome,
                    "reason": "attempts used up",
                }
                tx.after_commit(
                    functools.partial(emit, log, logging.ERROR, "not processed: given up", fields)
                )
        return rescued


_UNFINISHED = "processing did not finish within its lease"


def fenced_rows(rows: Sequence[Claim | Received]) -> tuple[str, dict[str, Any]]:
    """A condition matching the rows whose lease token is still the one they were claimed
    with, for one fenced statement over a batch, and its parameters. The id list lets both
    databases find the rows by primary key; the token does the fencing: one for all when the
    rows come from one claim (the usual case), else one per row."""
    values: dict[str, Any] = {f"i{index}": row.id for index, row in enumerate(rows)}
    ids = ", ".join(f":i{i}" for i in range(len(rows)))
    tokens = {row.lease_token for row in rows}
    if len(tokens) == 1:
        values["t"] = tokens.pop()
        return f"id IN ({ids}) AND lease_token = :t", values
    for index, row in enumerate(rows):
        values[f"t{index}"] = row.lease_token
    pairs = ", ".join(f"(:i{i}, :t{i})" for i in range(len(rows)))
    return f"id IN ({ids}) AND (id, lease_token) IN (VALUES {pairs})", values

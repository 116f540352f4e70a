"""The audit trail: every action an operator takes on a request (resubmit, discard), who took it,
when, why and what came of it, kept in the store beside the request (schema 7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row

Action = Literal["resubmit", "discard"]


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    node: str  # the node whose console the action was taken on
    operator: str  # the user of the credential the operator signed in with
    action: Action
    target_kind: str  # sync_request, ...
    target_id: int
    reason: str | None
    outcome: str


def record(
    tx: Transaction,
    node: str,
    operator: str,
    action: Action,
    target: tuple[str, int],
    reason: str | None,
    outcome: str,
) -> None:
    """Keep one action, at the database clock's now, in the transaction that took it."""
    tx.execute(
        f"INSERT INTO audit (at, node, operator, action, target_kind, target_id, reason, outcome) "
        f"VALUES ({tx.now}, :node, :operator, :action, :kind, :id, :reason, :outcome)",
        {
            "node": node,
            "operator": operator,
            "action": action,
            "kind": target[0],
            "id": target[1],
            "reason": reason,
            "outcome": outcome[:1000],
        },
    )


def trail(store: Store, target: tuple[str, int]) -> list[AuditEntry]:
    """What was done to one request, oldest first."""
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT at, node, operator, action, target_kind, target_id, reason, outcome "
            "FROM audit WHERE target_kind = :kind AND target_id = :id ORDER BY id",
            {"kind": target[0], "id": target[1]},
        )
    return [_entry(store, row) for row in rows]


def latest(store: Store, limit: int = 10) -> list[AuditEntry]:
    """The last actions taken, newest first."""
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT at, node, operator, action, target_kind, target_id, reason, outcome "
            "FROM audit ORDER BY id DESC LIMIT :limit",
            {"limit": limit},
        )
    return [_entry(store, row) for row in rows]


def _entry(store: Store, row: Row) -> AuditEntry:
    at = store.to_datetime(row["at"])
    assert at is not None
    return AuditEntry(
        at,
        str(row["node"]),
        str(row["operator"]),
        row["action"],
        str(row["target_kind"]),
        int(row["target_id"]),
        row["reason"],
        str(row["outcome"]),
    )

"""Flow 20, CCB's half: told by MDM that an SP moved to another measurement cycle, CCB updates
the SP (a change CCB captures like any other, so the SP's next sync carries the new cycle), sets
the bill cycle of every account with an active SA at the SP unless that account's bill cycle is
protected, and acknowledges with the SP and the accounts it changed (docs/flows.md §20, PD-F21,
PD-F37); MDM's half is ``sim.mdm.bill_cycle_change``.

Decisions:
- The change takes effect in CCB when the notification is processed; the effective date
  travels for information (CCB's account bill cycle history is not simulated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ccbmdm.runtime.messages.header import message_header, new_message_id
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.sim.ccb.records import Account
from ccbmdm.runtime.store import Transaction

if TYPE_CHECKING:
    from ccbmdm.runtime.messaging.node import Node

FLOW = "BILL_CYCLE_CHANGE"


class CcbRecords(Protocol):
    """What flow 20 uses of CCB (``simulator.CcbSimulator``)."""

    @property
    def node(self) -> Node | None: ...
    def record(self, tx: Transaction, mo: str, key: Sequence[str]) -> dict[str, Any] | None: ...
    def records(self, tx: Transaction, mo: str, ref: str | None = None) -> list[dict[str, Any]]: ...
    def save(
        self, tx: Transaction, mo: str, record: Mapping[str, Any], *, captured: bool = True
    ) -> tuple[str, ...]: ...
    def account(self, tx: Transaction, account_id: str) -> Account: ...


def notified(ccb: CcbRecords, tx: Transaction, received: Received) -> str | None:
    """CCB's side: move the SP and its accounts, acknowledge; the acknowledgement's id."""
    assert ccb.node is not None
    contracts = ccb.node.contracts
    _, notice = contracts.decode(received.payload)
    change = notice.service_point  # type: ignore[attr-defined]
    sp = ccb.record(tx, "SP", (change.sp_id,))
    ids: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    if sp is None:
        errors.append(
            {
                "message_category": 90000,
                "message_number": 1102,
                "message_parameters": ["SP", change.sp_id],
                "comments": f"CCB has no SP {change.sp_id}",
            }
        )
    else:
        ccb.save(tx, "SP", {**sp, "measurement_cycle": change.measurement_cycle})
        ids.append({"entity": "SP", "external_pk1": change.sp_id})
        for account_id in _accounts_at(ccb, tx, change.sp_id):
            account = ccb.account(tx, account_id)
            if account.bill_cycle_protected:
                continue
            tx.execute(
                "UPDATE ccb_account SET bill_cycle = :cycle WHERE account_id = :id",
                {"cycle": change.bill_cycle, "id": account_id},
            )
            ids.append({"entity": "ACCOUNT", "external_pk1": account_id})
    codec = contracts["ccb/SyncAcknowledgement"]
    message_id = new_message_id()
    ack = codec.model.model_validate(
        {
            "message_header": message_header(
                FLOW, "CCB", "MDM", message_id=message_id, correlation_id=received.message_id
            ),
            "external_reference_id": notice.external_reference_id,  # type: ignore[attr-defined]
            "result": {
                "has_error": bool(errors),
                "exception_info": errors,
                "external_ids": [] if errors else ids,
            },
        }
    )
    ccb.node.outbox.enqueue(tx, "bridge", FLOW, "ack", message_id, codec.encode(ack))
    return message_id


def _accounts_at(ccb: CcbRecords, tx: Transaction, sp_id: str) -> list[str]:
    """Accounts with an active SA linked to the SP."""
    accounts = []
    for sa in ccb.records(tx, "SA"):
        if sa["sa_status"] not in ("ACTIVE", "PENDSTOP", "REACTIVATED"):
            continue
        if any(link["sp_id"] == sp_id for link in sa.get("sp_links") or ()):
            accounts.append(str(sa["account_id"]))
    return sorted(set(accounts))

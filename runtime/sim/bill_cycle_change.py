"""Flow 20, the bill cycle change: MDM changes the measurement cycle of an externally managed SP
and tells CCB, which moves the SP and its customers' accounts (docs/flows.md §20, PD-F21, PD-F37).

MDM's side sends the notification through its outbox as an outbound sync (its own entity
version per SP, the SP's sync key as ordering key, the acknowledgement awaited a day); CCB's side
updates the SP (a change CCB captures like any other, so the SP's next sync carries the new
cycle), sets the bill cycle of every account with an active SA at the SP unless that account's
bill cycle is protected, and acknowledges with the SP and the accounts it changed.

Decisions:
- The change takes effect in CCB when the notification is processed; the effective date
  travels for information (CCB's account bill cycle history is not simulated).
- MDM numbers its outbound sync requests from its id sequence, like its production ids.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from ccbmdm.runtime.contracts import ContractRegistry
from ccbmdm.runtime.delivery import Outbox, Received, new_message_id
from ccbmdm.runtime.header import message_header
from ccbmdm.runtime.sim.ccb import CcbSimulator
from ccbmdm.runtime.sim.mdm import MdmSimulator
from ccbmdm.runtime.sim.mdm_apply import FIRST_PRODUCTION_ID
from ccbmdm.runtime.store import Transaction
from ccbmdm.runtime.sync import KEY_SEPARATOR

log = logging.getLogger("ccbmdm.sim")

FLOW = "BILL_CYCLE_CHANGE"
SP_MO = "D1-SP"


class NotExternallyManaged(ValueError):
    """Only an SP whose cycles MDM manages has its measurement cycle changed in MDM."""


def change_measurement_cycle(
    mdm: MdmSimulator,
    tx: Transaction,
    sp_id: str,
    measurement_cycle: str,
    bill_cycle: str,
    effective: date,
) -> str:
    """MDM moves a CCB SP to another measurement cycle and notifies CCB; the message id."""
    sp = mdm.service_point(tx, sp_id)
    if sp is None:
        raise LookupError(f"MDM holds no SP for CCB SP {sp_id}")
    if not sp.externally_managed:
        raise NotExternallyManaged(f"SP {sp_id}: its cycles are managed in CCB, not in MDM")
    tx.execute(
        "UPDATE mdm_service_point SET measurement_cycle = :cycle WHERE id = :id",
        {"cycle": measurement_cycle, "id": sp.production_id},
    )
    version = _next_version(tx, sp.production_id)
    sync_id = _next_sync_id(tx)
    contracts = mdm.node.contracts
    codec = contracts["mdm/BillCycleChangeSyncRequest"]
    message_id = new_message_id()
    message = codec.model.model_validate(
        {
            "message_header": message_header(FLOW, "MDM", "CCB", message_id=message_id),
            "send_details": {
                "sync_request_id": sync_id,
                "source_system": "MDM",
                "initial_load": False,
                "mo": SP_MO,
                "pk_value1": sp.production_id,
            },
            "change_type": "CHANGE",
            "entity_version": version,
            "service_point": {
                "sp_external_id": sp_id,
                "measurement_cycle": measurement_cycle,
                "bill_cycle": bill_cycle,
                "effective_date": effective,
            },
        }
    )
    mdm.node.outbox.enqueue(
        tx,
        "bridge",
        FLOW,
        "notification",
        message_id,
        codec.encode(message),
        ordering_key=KEY_SEPARATOR.join((SP_MO, sp.production_id, "CCB")),
        reply_timeout_s=86400.0,
    )
    return message_id


def acknowledged(
    outbox: Outbox, contracts: ContractRegistry, tx: Transaction, received: Received
) -> None:
    """MDM's side: CCB's acknowledgement ends the notification's wait (matched on its
    correlationId); a negative one is logged for the MDM user."""
    _, update = contracts.decode(received.payload)
    header = update.message_header  # type: ignore[attr-defined]
    outbox.reply_received(tx, received.partner, str(header.correlation_id))
    result = update.result  # type: ignore[attr-defined]
    if result.has_error:
        log.warning(
            "CCB refused a bill cycle change: %s",
            "; ".join(f"{i.message_category}/{i.message_number}" for i in result.exception_info),
            extra={"message_id": received.message_id},
        )


def notified(ccb: CcbSimulator, tx: Transaction, received: Received) -> str | None:
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


def _accounts_at(ccb: CcbSimulator, tx: Transaction, sp_id: str) -> list[str]:
    """Accounts with an active SA linked to the SP."""
    accounts = []
    for sa in ccb.records(tx, "SA"):
        if sa["sa_status"] not in ("ACTIVE", "PENDSTOP", "REACTIVATED"):
            continue
        if any(link["sp_id"] == sp_id for link in sa.get("sp_links") or ()):
            accounts.append(str(sa["account_id"]))
    return sorted(set(accounts))


def _next_version(tx: Transaction, production_id: str) -> int:
    tx.execute(
        """INSERT INTO entity_version (mo, pk, target, version) VALUES (:mo, :pk, 'CCB', 1)
           ON CONFLICT (mo, pk, target) DO UPDATE SET version = entity_version.version + 1""",
        {"mo": SP_MO, "pk": production_id},
    )
    row = tx.fetch_one(
        "SELECT version FROM entity_version WHERE mo = :mo AND pk = :pk AND target = 'CCB'",
        {"mo": SP_MO, "pk": production_id},
    )
    return int(row["version"]) if row else 1


def _next_sync_id(tx: Transaction) -> str:
    """An outbound sync request id from MDM's id sequence, like its production ids."""
    row = tx.fetch_one("INSERT INTO mdm_key (mo) VALUES ('F1-SYNCREQ') RETURNING id")
    assert row is not None
    return f"{FIRST_PRODUCTION_ID + int(row['id']):012d}"

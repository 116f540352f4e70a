"""Flow 20, MDM's half: MDM changes the measurement cycle of an externally managed SP and tells
CCB (docs/flows.md §20, PD-F21, PD-F37); CCB's half is ``sim.ccb.bill_cycle_change``.

The notification goes through MDM's outbox as an outbound sync (its own entity version per SP,
the SP's sync key as ordering key, the acknowledgement awaited a day).

Decisions:
- MDM numbers its outbound sync requests from its id sequence, like its production ids.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Protocol

from ccbmdm.runtime.lifecycles.sync import KEY_SEPARATOR
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import message_header, new_message_id
from ccbmdm.runtime.messaging.delivery import Outbox, Received
from ccbmdm.runtime.sim.mdm.apply import FIRST_PRODUCTION_ID
from ccbmdm.runtime.sim.mdm.records import ServicePoint
from ccbmdm.runtime.store import Transaction

if TYPE_CHECKING:
    from ccbmdm.runtime.messaging.node import Node

log = logging.getLogger("ccbmdm.sim")

FLOW = "BILL_CYCLE_CHANGE"
SP_MO = "D1-SP"


class MdmRecords(Protocol):
    """What flow 20 uses of MDM (``simulator.MdmSimulator``)."""

    @property
    def node(self) -> Node: ...
    def service_point(
        self, tx: Transaction, sp_id: str, system: str = "CCB"
    ) -> ServicePoint | None: ...


class NotExternallyManaged(ValueError):
    """Only an SP whose cycles MDM manages has its measurement cycle changed in MDM."""


def change_measurement_cycle(
    mdm: MdmRecords,
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

"""The end state of a flow case: what the simulators' users would look at once the flow is done.

Three views, each limited to what the case's events made or touched, so that a golden shows the
case and not its starting state:

- ``requests``: the lifecycle rows the events created or changed, per table, with their flow,
  key and final state (and reason): CCB's sync and usage requests and corrected-read
  notifications, MDM's sync requests and usage transactions (a usage transaction of the
  starting state flagged used on a bill, or corrected, is the events' doing);
- ``mdm``: the record MDM holds for every CCB entity a sync request of the events named;
- ``ccb``: the accounts the events changed (a bill cycle moved by MDM, say), and the bill
  segments they created or changed, with their service quantities.

Surrogate ids, lease tokens and timestamps of the store are not shown: they say when a row was
written, not what the flow did. Values are written as the store holds them.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator
from ccbmdm.runtime.store import Store, Transaction

# Lifecycle tables: (table, the columns shown), rows in the order they were created.
REQUESTS: tuple[tuple[str, str], ...] = (
    ("sync_request", "flow, mo, pk AS key, target, state, reason"),
    ("usage_request", "flow, sa_id, bill_segment_id, state, reason"),
    ("ccb_ocbg", "sa_id, usage_id, period_start, period_end, state, reason"),
    ("mdm_sync_request", "flow, mo, external_key, state, reason"),
    (
        "mdm_usage_transaction",
        "ut_id, external_id, flow, bill_condition, usage_group, state, reason, "
        "used_on_bill, superseded, stale",
    ),
)
SEGMENTS = (
    "SELECT id, sa_id, start_date_time, end_date_time, status, usage_id, rebill_of, reason, "
    "amount FROM ccb_bill_segment ORDER BY id"
)
QUANTITIES = (
    "SELECT period_start, period_end, uom, tou, sqi, quantity, quality, value_count, "
    "estimated_count, edited_count FROM ccb_service_quantity WHERE segment_id = :id ORDER BY seq"
)
# What MDM keeps for each CCB maintenance object, by the simulator's accessor.
MDM_RECORDS = {
    "PERSON": "contact",
    "SP": "service_point",
    "SA": "usage_subscription",
    "SA REL": "market_participant",
    "CONTRACT OPT": "dynamic_option",
    "CONTR OPT EVT": "dynamic_option_event",
    "METER": "device",
    "MTR CONFIG": "device_configuration",
    "SP MTR HIST": "install_event",
    "BILL CYCLE": "bill_cycle",
}
ACCOUNTS = (
    "SELECT account_id, person_id, bill_cycle, bill_cycle_protected, cis_division "
    "FROM ccb_account ORDER BY account_id"
)
_TABLES = (*(table for table, _ in REQUESTS), "ccb_bill_segment")


@dataclass(frozen=True)
class Watermark:
    """What the store held before the events, as the views show it: a row the events added or
    changed is theirs. Starting states are a customer or two, so keeping them is cheap."""

    rows: dict[str, dict[int, Any]]  # per lifecycle table and the segments: the shown row by id
    accounts: list[dict[str, Any]]  # accounts have no id to count from


def watermark(store: Store) -> Watermark:
    with store.transaction() as tx:
        return Watermark({table: _shown_rows(tx, table) for table in _TABLES}, _accounts(tx))


def end_state(ccb: CcbSimulator, mdm: MdmSimulator, mark: Watermark) -> dict[str, Any]:
    """The three views after the events (``mark``: taken before them)."""
    with ccb.store.transaction() as tx:
        requests = {
            table: [
                {k: v for k, v in row.items() if k != "id"}
                for row in _new_or_changed(tx, table, mark).values()
            ]
            for table, _ in REQUESTS
        }
        synced = {(str(row["mo"]), str(row["key"])): None for row in requests["sync_request"]}
        records = {
            f"{mo} {key}": _mdm_record(mdm, tx, mo, key)
            for mo, key in synced
            if mo in MDM_RECORDS or mo == "METER READ"
        }
        segments = _segments(tx, mark)
        accounts = [a for a in _accounts(tx) if a not in mark.accounts]
    state: dict[str, Any] = {"requests": {k: v for k, v in requests.items() if v}}
    if records:
        state["mdm"] = records
    ccb_view = {"accounts": accounts, "bill segments": segments}
    if any(ccb_view.values()):
        state["ccb"] = {name: rows for name, rows in ccb_view.items() if rows}
    return state


def _shown_rows(tx: Transaction, table: str) -> dict[int, Any]:
    """A table's rows as the views show them (with the id), by id."""
    if table == "ccb_bill_segment":
        query = SEGMENTS
    else:
        query = f"SELECT id, {dict(REQUESTS)[table]} FROM {table} ORDER BY id"
    return {int(row["id"]): plain(dict(row)) for row in tx.fetch(query)}


def _new_or_changed(tx: Transaction, table: str, mark: Watermark) -> dict[int, Any]:
    return _changed(_shown_rows(tx, table), mark.rows[table])


def _changed(rows: dict[int, Any], before: dict[int, Any]) -> dict[int, Any]:
    return {id_: row for id_, row in rows.items() if before.get(id_) != row}


def _accounts(tx: Transaction) -> list[dict[str, Any]]:
    return [plain(dict(row)) for row in tx.fetch(ACCOUNTS)]


def _mdm_record(mdm: MdmSimulator, tx: Transaction, mo: str, key: str) -> Any:
    if mo == "METER READ":
        return plain(list(mdm.meter_read(tx, key)))
    return plain(getattr(mdm, MDM_RECORDS[mo])(tx, key))


def _segments(tx: Transaction, mark: Watermark) -> list[dict[str, Any]]:
    """The segments the events added or changed, and the one each rebill replaces."""
    every = _shown_rows(tx, "ccb_bill_segment")
    touched = _changed(every, mark.rows["ccb_bill_segment"])
    replaced = {row["rebill_of"] for row in touched.values() if row["rebill_of"] is not None}
    found = []
    for id_ in sorted(touched.keys() | (replaced & every.keys())):
        segment = dict(every[id_])
        segment["service quantities"] = [plain(dict(q)) for q in tx.fetch(QUANTITIES, {"id": id_})]
        found.append(segment)
    return found


def plain(value: Any) -> Any:
    """Records as YAML can write and deepdiff compare: dataclasses and mappings as dicts,
    tuples as lists, instants and decimals as text."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return plain(value.value)
    return value

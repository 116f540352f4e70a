"""Navigation links between the two systems.

From a CCB person, SA, SP, usage request or meter, a user jumps to MDM's contact, usage
subscription, SP, usage transaction or device (and from an SA to MDM's 360 view); from an MDM SP
to CCB's account information. A link names the target system's own id, found through MDM's
cross-reference (docs/flows.md §0.5: the cross-reference serves MDM → CCB messages and navigation
links). Each simulator serves a minimal HTML page at those addresses (``sim.pages``).

Addresses: ``{base}/ccb/{kind}/{id}`` and ``{base}/mdm/{kind}/{id}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.sim.ccb.records import parse_record
from ccbmdm.runtime.sim.mdm.records import external_key, production_id
from ccbmdm.runtime.store import Store, Transaction

# CCB entity -> (MDM page kind, MDM MO of its cross-reference)
CCB_TO_MDM: Mapping[str, tuple[str, str]] = {
    "person": ("contact", "D1-CONTACT"),
    "sa": ("usage-subscription", "D1-US"),
    "sa-360": ("360", "D1-US"),
    "sp": ("service-point", "D1-SP"),
    "meter": ("device", "D1-DEVICE"),
    "usage-request": ("usage-transaction", ""),
}
MDM_TO_CCB: Mapping[str, str] = {"service-point": "account"}


class NoLink(CcbmdmError, LookupError):
    """The entity is unknown, or the other system does not know it (yet)."""


@dataclass(frozen=True)
class Bases:
    """Where each simulator serves its pages."""

    ccb: str = "http://127.0.0.1:8401"
    mdm: str = "http://127.0.0.1:8402"


def link(store: Store, system: str, kind: str, entity_id: str, bases: Bases = Bases()) -> str:
    """The address in the other system of what ``system`` knows as ``kind`` ``entity_id``."""
    with store.transaction() as tx:
        if system == "ccb":
            return _ccb_to_mdm(tx, kind, entity_id, bases)
        if system == "mdm":
            return _mdm_to_ccb(store, tx, kind, entity_id, bases)
    raise NoLink(f"no system {system!r}: ccb or mdm")


def _ccb_to_mdm(tx: Transaction, kind: str, entity_id: str, bases: Bases) -> str:
    if kind not in CCB_TO_MDM:
        raise NoLink(f"CCB links from {', '.join(sorted(CCB_TO_MDM))}, not {kind!r}")
    page, mo = CCB_TO_MDM[kind]
    if kind == "usage-request":
        row = tx.fetch_one(
            "SELECT ut_id FROM mdm_usage_transaction WHERE external_id = :id "
            "ORDER BY id DESC LIMIT 1",
            {"id": entity_id.zfill(10)},
        )
        target = None if row is None else str(row["ut_id"])
    else:
        target = production_id(tx, "CCB", mo, (entity_id,))
    if target is None:
        raise NoLink(f"MDM does not know CCB {kind} {entity_id} (not synchronized yet?)")
    return f"{bases.mdm}/mdm/{page}/{target}"


def _mdm_to_ccb(store: Store, tx: Transaction, kind: str, entity_id: str, bases: Bases) -> str:
    if kind not in MDM_TO_CCB:
        raise NoLink(f"MDM links from {', '.join(sorted(MDM_TO_CCB))}, not {kind!r}")
    known = external_key(tx, "D1-SP", entity_id)
    if known is None or known[0] != "CCB":
        raise NoLink(f"MDM SP {entity_id} did not come from CCB")
    sp_id = known[1]
    for row in tx.fetch("SELECT data FROM ccb_entity WHERE mo = 'SA' ORDER BY pk"):
        sa = parse_record(store, row["data"])
        if any(link["sp_id"] == sp_id for link in sa.get("sp_links") or ()):
            return f"{bases.ccb}/ccb/{MDM_TO_CCB[kind]}/{sa['account_id']}"
    raise NoLink(f"CCB SP {sp_id} has no account (no SA links it)")

"""How CCB keys its master-data records (maintenance object, key, the one foreign key queries
need), its accounts, and a stored record read back as Python data."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ccbmdm.runtime.store import Store


@dataclass(frozen=True)
class EntityKind:
    """How CCB keys a maintenance object's records, and the foreign key kept beside them."""

    mo: str
    key: tuple[str, ...]  # the record's fields that make its primary key, in order
    ref: str | None = None  # the record's field queries look records up by


ENTITY_KINDS: Mapping[str, EntityKind] = {
    kind.mo: kind
    for kind in (
        EntityKind("BILL CYCLE", ("bill_cycle",)),
        EntityKind("PERSON", ("person_id",)),
        EntityKind("SP", ("sp_id",), "premise_id"),
        EntityKind("SA", ("sa_id",), "account_id"),
        EntityKind("SA REL", ("sa_relationship_id",), "sa_id"),
        EntityKind("CONTRACT OPT", ("contract_option_id",)),
        EntityKind("CONTR OPT EVT", ("contract_option_event_id",), "contract_option_id"),
        EntityKind("METER", ("meter_id",)),
        EntityKind("MTR CONFIG", ("meter_config_id",), "meter_id"),
        EntityKind("SP MTR HIST", ("sp_meter_history_id",), "sp_id"),
        EntityKind("METER READ", ("meter_read_id",), "meter_config_id"),
    )
}
# The order an initial load captures in: what others refer to first (docs/lifecycles.md PD-L06).
LOAD_ORDER = tuple(ENTITY_KINDS)


class UnknownEntity(LookupError):
    """A record the simulator does not hold."""


@dataclass(frozen=True)
class Account:
    account_id: str
    person_id: str
    bill_cycle: str
    cis_division: str
    bill_cycle_protected: bool = False


def parse_record(store: Store, value: Any) -> dict[str, Any]:
    """A ``ccb_entity`` record as Python data, from either store's JSON column."""
    data = store.json_value(value)
    return json.loads(data) if isinstance(data, str) else dict(data)

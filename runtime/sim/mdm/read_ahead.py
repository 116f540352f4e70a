"""What MDM's sync step reads for its whole claim at once: each request's message, the version
last applied for its key and the production id of its key, in a few statements where each cost
a round trip a request on PostgreSQL (docs/runtime.md, "Round trips")."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from ccbmdm.runtime.lifecycles.sync import KEY_SEPARATOR
from ccbmdm.runtime.sim.mdm.apply import SyncMessage, trimmed_key
from ccbmdm.runtime.sim.mdm.records import KEY_COLUMNS, key_params
from ccbmdm.runtime.store import Transaction
from ccbmdm.runtime.store.base import Row, listed

VersionKey = tuple[str, str, str]  # external system, MO, external key


def version_key(request: SyncMessage) -> VersionKey:
    return request.system, request.kind.mo, request.canonical_key


def _by_system_and_mo(requests: Iterable[SyncMessage]) -> dict[tuple[str, str], list[SyncMessage]]:
    grouped: dict[tuple[str, str], list[SyncMessage]] = {}
    for request in requests:
        grouped.setdefault((request.system, request.kind.mo), []).append(request)
    return grouped


def applied_versions(tx: Transaction, requests: Iterable[SyncMessage]) -> dict[VersionKey, int]:
    """The version last applied for each request's key, where one was: a statement for each
    external system and MO among them, each reading the table's key."""
    found: dict[VersionKey, int] = {}
    for (system, mo), grouped in _by_system_and_mo(requests).items():
        keys, params = listed("k", sorted({request.canonical_key for request in grouped}))
        rows = tx.fetch(
            f"""SELECT external_key, entity_version FROM mdm_applied_version
                WHERE external_system = :system AND mo = :mo AND external_key IN ({keys})""",
            {"system": system, "mo": mo, **params},
        )
        found |= {(system, mo, str(r["external_key"])): int(r["entity_version"]) for r in rows}
    return found


def production_ids(tx: Transaction, requests: Iterable[SyncMessage]) -> dict[VersionKey, str]:
    """The production id of each request's own key, where the cross-reference has one: a
    statement for each external system and MO among them, each reading the table's key."""
    found: dict[VersionKey, str] = {}
    columns = ", ".join(KEY_COLUMNS)
    for (system, mo), grouped in _by_system_and_mo(requests).items():
        keys = sorted({tuple(key_params(request.key).values()) for request in grouped})
        params: dict[str, str] = {"system": system, "mo": mo}
        listed = []
        for n, key in enumerate(keys):
            names = [f"{column}_{n}" for column in KEY_COLUMNS]
            params |= dict(zip(names, key, strict=True))
            listed.append(f"({', '.join(':' + name for name in names)})")
        rows = tx.fetch(
            f"""SELECT {columns}, production_id FROM mdm_cross_reference
                WHERE external_system = :system AND mo = :mo
                  AND ({columns}) IN ({", ".join(listed)})""",
            params,
        )
        found |= {(system, mo, _canonical(row)): str(row["production_id"]) for row in rows}
    return found


def _canonical(row: Row) -> str:
    """A cross-reference row's key as ``SyncMessage.canonical_key`` spells it."""
    return KEY_SEPARATOR.join(trimmed_key([str(row[column]) for column in KEY_COLUMNS]))


@dataclass
class ReadAhead:
    """A claim's messages (by message id, as stored and as decoded, each with the production
    id of its key) and applied versions."""

    payloads: dict[str, bytes]
    requests: dict[str, SyncMessage]
    versions: dict[VersionKey, int]
    asked: set[VersionKey] = field(default_factory=set)

    @classmethod
    def of(
        cls, tx: Transaction, payloads: dict[str, bytes], requests: dict[str, SyncMessage]
    ) -> ReadAhead:
        held = production_ids(tx, requests.values())
        with_held = {
            message_id: dataclasses.replace(
                request, read_ahead=True, held=held.get(version_key(request))
            )
            for message_id, request in requests.items()
        }
        return cls(payloads, with_held, applied_versions(tx, requests.values()))

    def taken(self, tx: Transaction, request: SyncMessage) -> tuple[SyncMessage, int | None]:
        """The request as its step takes it, and the version last applied for its key: as read
        ahead for the claim's first request of that key; read again for a later one, which
        must see what the earlier one left (its savepoint may have been rolled back, or have
        recorded the key and a newer version)."""
        key = version_key(request)
        if key in self.asked:
            fresh = dataclasses.replace(request, read_ahead=False, held=None)
            return fresh, applied_versions(tx, [request]).get(key)
        self.asked.add(key)
        return request, self.versions.get(key)

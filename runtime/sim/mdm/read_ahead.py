"""What MDM's sync step reads for its whole claim at once: each request's message and the
version last applied for its key, in a statement or two where one a request cost a round trip
each on PostgreSQL (docs/runtime.md, "Round trips")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ccbmdm.runtime.sim.mdm.apply import SyncMessage
from ccbmdm.runtime.store import Transaction

VersionKey = tuple[str, str, str]  # external system, MO, external key


def version_key(request: SyncMessage) -> VersionKey:
    return request.system, request.kind.mo, request.canonical_key


def applied_versions(tx: Transaction, requests: Iterable[SyncMessage]) -> dict[VersionKey, int]:
    """The version last applied for each request's key, where one was: a statement for each
    external system and MO among them, each reading the table's key."""
    keys: dict[tuple[str, str], set[str]] = {}
    for request in requests:
        keys.setdefault((request.system, request.kind.mo), set()).add(request.canonical_key)
    found: dict[VersionKey, int] = {}
    for (system, mo), external_keys in keys.items():
        names = {f"k{n}": key for n, key in enumerate(sorted(external_keys))}
        rows = tx.fetch(
            f"""SELECT external_key, entity_version FROM mdm_applied_version
                WHERE external_system = :system AND mo = :mo
                  AND external_key IN ({", ".join(":" + name for name in names)})""",
            {"system": system, "mo": mo, **names},
        )
        found |= {(system, mo, str(r["external_key"])): int(r["entity_version"]) for r in rows}
    return found


@dataclass
class ReadAhead:
    """A claim's messages (by message id, as stored and as decoded) and applied versions."""

    payloads: dict[str, bytes]
    requests: dict[str, SyncMessage]
    versions: dict[VersionKey, int]
    asked: set[VersionKey] = field(default_factory=set)

    def applied_version(self, tx: Transaction, request: SyncMessage) -> int | None:
        """The version last applied for the request's key: as read ahead for the claim's first
        request of that key; read again for a later one, which must see what the earlier one
        left (its savepoint may have been rolled back, or committed a newer version)."""
        key = version_key(request)
        if key in self.asked:
            return applied_versions(tx, [request]).get(key)
        self.asked.add(key)
        return self.versions.get(key)

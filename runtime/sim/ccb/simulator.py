"""The reference CCB: its entities live in the runtime's store, and every change is captured in
the same transaction that makes it, as OUAF's MO audit does (docs/runtime.md, "Sync requests").

Each master-data entity is kept as CCB knows it (``ccb_entity``: maintenance object, key, the
record as JSON, and the one foreign key queries need); accounts have a table of their own. The
snapshot a sync request compares and sends is derived from the record: the entity element of the
flow's CCB contract, in its JSON form. Most records are their own snapshot; a service agreement's
adds what CCB derives when it builds the message (its time zone from its SPs, its main customer
from the account) and is empty while the SA is Pending Start or Canceled, or when its type needs
no bill determinants (docs/flows.md PD-F03, PD-F24).

Decisions:
- A CIS division names the time zone of an SA without SPs (PD-F03); the reference divisions are
  in ``DIVISION_ZONES``.
- The SA types whose special role is *Bill Determinants Required* are ``BILL_DETERMINANT_SA_TYPES``.
- ``initial_load`` captures every entity with the initial-load flag and an empty "before"
  snapshot, so each is sent as ADD; a change made meanwhile joins its Pending request.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.lifecycles.sync import CCB_SYNC_FLOWS, KEY_SEPARATOR, capture
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.transport import Response
from ccbmdm.runtime.sim.ccb.bill_cycle_change import notified
from ccbmdm.runtime.sim.ccb.billing import Billing
from ccbmdm.runtime.sim.ccb.corrected_reads import CorrectedReads
from ccbmdm.runtime.sim.ccb.records import (
    ENTITY_KINDS,
    LOAD_ORDER,
    Account,
    EntityKind,
    UnknownEntity,
    parse_record,
)
from ccbmdm.runtime.sim.ccb.schema import MIGRATIONS
from ccbmdm.runtime.sim.pages import page
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row, listed
from ccbmdm.runtime.store.schema import migrate

if TYPE_CHECKING:
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.lifecycles.usage import UsageRequest
    from ccbmdm.runtime.messaging.node import Node

log = logging.getLogger("ccbmdm.sim.ccb")

DIVISION_ZONES: Mapping[str, str] = {
    "MA": "America/New_York",
    "NEDIV": "America/New_York",
    "CA": "America/Los_Angeles",
    "TX": "America/Chicago",
}
BILL_DETERMINANT_SA_TYPES = frozenset({"E-RES", "E-COM", "E-COM-DMD", "G-RES", "G-COM"})
_EMPTY_SA_STATES = frozenset({"PENDSTART", "CANCELED"})
_RECORD = "SELECT data FROM ccb_entity WHERE mo = :mo AND pk = :pk"
_ACCOUNT = "SELECT * FROM ccb_account WHERE account_id = :id"
# A record added or changed: its row in CCB's entity table, whole.
_UPSERT = """INSERT INTO ccb_entity (mo, pk, ref, data) VALUES (:mo, :pk, :ref, :data)
             ON CONFLICT (mo, pk) DO UPDATE SET ref = excluded.ref, data = excluded.data"""


class CcbSimulator:
    """CCB's master data and its change capture; the source of the sync requests' snapshots."""

    def __init__(
        self,
        store: Store,
        node: Node | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.store = store
        self.node = node
        migrate(store, MIGRATIONS, "ccb_sim_schema_version")
        self._billing: Billing | None = None
        self._corrections: CorrectedReads | None = None
        if node is not None:
            self._billing = Billing(self, node.contracts, node.outbox, clock)
            self._corrections = CorrectedReads(store, node.contracts, self._billing)
        self._snapshots: Mapping[str, Callable[[Transaction, dict[str, Any]], Any]] = {
            "SA": self._sa_snapshot,
            "SA REL": self._in_sa_zone,
            "CONTRACT OPT": self._option_snapshot,
        }

    # -- records -------------------------------------------------------------------------

    def save(
        self, tx: Transaction, mo: str, record: Mapping[str, Any], *, captured: bool = True
    ) -> tuple[str, ...]:
        """Add or change a record and capture the change, in the caller's transaction; returns
        the record's key. ``captured=False`` is data conversion before go-live: nothing is
        captured, and an initial load sends it later."""
        key = self._key(mo, record)
        before = self.read(tx, mo, key) if captured else None
        tx.send(_UPSERT, self._row(mo, key, record))
        if captured:
            capture(tx, mo, key, before)
        return key

    def convert(self, tx: Transaction, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Add or change records as ``save`` does with ``captured=False`` (a conversion before
        go-live), in one statement for the lot: a load of a utility is not a round trip to
        the store per record."""
        rows = [self._row(mo, self._key(mo, record), record) for mo, record in records]
        if rows:
            tx.execute_many(_UPSERT, rows)

    def _key(self, mo: str, record: Mapping[str, Any]) -> tuple[str, ...]:
        return tuple(str(record[field]) for field in self._kind(mo).key)

    def _row(self, mo: str, key: tuple[str, ...], record: Mapping[str, Any]) -> dict[str, Any]:
        ref = self._kind(mo).ref
        return {
            "mo": mo,
            "pk": KEY_SEPARATOR.join(key),
            "ref": None if ref is None else record.get(ref),
            "data": json.dumps(record, sort_keys=True, default=str),
        }

    def delete(self, tx: Transaction, mo: str, key: Sequence[str]) -> None:
        """Delete a record and capture it (MDM gets a DELETE, PD-C03)."""
        before = self.read(tx, mo, tuple(key))
        tx.send(
            "DELETE FROM ccb_entity WHERE mo = :mo AND pk = :pk",
            {"mo": self._kind(mo).mo, "pk": KEY_SEPARATOR.join(key)},
        )
        capture(tx, mo, tuple(key), before)

    def record(self, tx: Transaction, mo: str, key: Sequence[str]) -> dict[str, Any] | None:
        """A record as CCB holds it; None when there is none."""
        row = tx.fetch_one(_RECORD, {"mo": mo, "pk": KEY_SEPARATOR.join(key)})
        return None if row is None else parse_record(self.store, row["data"])

    def records(self, tx: Transaction, mo: str, ref: str | None = None) -> list[dict[str, Any]]:
        """Every record of a maintenance object, or those whose foreign key is ``ref``."""
        (found,) = self.records_each(tx, [(mo, ref)])
        return found

    def records_each(
        self, tx: Transaction, asks: Sequence[tuple[str, str | None]]
    ) -> list[list[dict[str, Any]]]:
        """``records`` of each (MO, ref), in order, read together (one round trip)."""
        reads = [
            (
                "SELECT data FROM ccb_entity WHERE mo = :mo"
                + ("" if ref is None else " AND ref = :ref")
                + " ORDER BY pk",
                {"mo": mo, "ref": ref},
            )
            for mo, ref in asks
        ]
        return [
            [parse_record(self.store, row["data"]) for row in rows] for rows in tx.fetch_each(reads)
        ]

    def save_account(self, tx: Transaction, account: Account) -> None:
        """Accounts are not synchronized: MDM knows them only as an SA's external account id."""
        self.save_accounts(tx, [account])

    def save_accounts(self, tx: Transaction, accounts: Sequence[Account]) -> None:
        """``save_account`` of each, in one statement."""
        if not accounts:
            return
        tx.execute_many(
            """INSERT INTO ccb_account
                 (account_id, person_id, bill_cycle, bill_cycle_protected, cis_division)
               VALUES
                 (:account_id, :person_id, :bill_cycle, :bill_cycle_protected, :cis_division)
               ON CONFLICT (account_id) DO UPDATE SET
                 person_id = excluded.person_id, bill_cycle = excluded.bill_cycle,
                 bill_cycle_protected = excluded.bill_cycle_protected,
                 cis_division = excluded.cis_division""",
            [vars(account) for account in accounts],
        )

    def account(self, tx: Transaction, account_id: str) -> Account:
        row = tx.fetch_one(_ACCOUNT, {"id": account_id})
        if row is None:
            raise UnknownEntity(f"no account {account_id}")
        return _account_from(row)

    def counts(self, tx: Transaction) -> dict[str, int]:
        """Records per maintenance object, and accounts."""
        counts = {
            str(row["mo"]): int(row["n"])
            for row in tx.fetch("SELECT mo, count(*) AS n FROM ccb_entity GROUP BY mo")
        }
        row = tx.fetch_one("SELECT count(*) AS n FROM ccb_account")
        counts["ACCOUNT"] = int(row["n"]) if row else 0
        return counts

    # -- snapshots -----------------------------------------------------------------------

    def read(self, tx: Transaction, mo: str, key: tuple[str, ...]) -> Mapping[str, Any] | None:
        """The final snapshot of an entity: the entity element of its flow's CCB contract, as
        JSON; None when CCB has nothing to send (the SnapshotReader of sync requests)."""
        return self.snapshot(tx, mo, self.record(tx, self._kind(mo).mo, key))

    def read_many(
        self, tx: Transaction, mo: str, keys: Sequence[tuple[str, ...]]
    ) -> list[Mapping[str, Any] | None]:
        """``read`` for a batch of keys, their records in one statement (the sync monitor's
        ``BatchSnapshotReader``)."""
        pk_list, pks = listed("pk", [KEY_SEPARATOR.join(key) for key in keys])
        rows = tx.fetch(
            f"SELECT pk, data FROM ccb_entity WHERE mo = :mo AND pk IN ({pk_list})",
            {"mo": self._kind(mo).mo, **pks},
        )
        found = {row["pk"]: row["data"] for row in rows}
        return [
            self.snapshot(tx, mo, None if data is None else parse_record(self.store, data))
            for data in (found.get(pk) for pk in pks.values())
        ]

    def snapshot(
        self, tx: Transaction, mo: str, record: dict[str, Any] | None
    ) -> Mapping[str, Any] | None:
        """The snapshot a record already read gives (None: none, or nothing to send): an SA's
        with its account's person and its SPs' time zone."""
        if record is None:
            return None
        derive = self._snapshots.get(mo)
        return record if derive is None else derive(tx, record)

    def _sa_snapshot(self, tx: Transaction, record: dict[str, Any]) -> dict[str, Any] | None:
        if record["sa_status"] in _EMPTY_SA_STATES:
            return None  # PD-F24: activation sends ADD, a cancel DELETE
        if record["sa_type"] not in BILL_DETERMINANT_SA_TYPES:
            return None  # PD-F03: only SAs that need bill determinants
        # the account and the SPs read together, in one round trip
        account, *sps = tx.fetch_each(
            [(_ACCOUNT, {"id": record["account_id"]}), *_sp_reads(record)]
        )
        if not account:
            raise UnknownEntity(f"no account {record['account_id']}")
        return {
            **record,
            "person_id": _account_from(account[0]).person_id,
            "time_zone": self._zone_of(record, sps),
        }

    def _sa_zone(self, tx: Transaction, record: Mapping[str, Any]) -> str:
        """The zone of the SA's SPs, which must share one; the division's when it has none."""
        return self._zone_of(record, tx.fetch_each(_sp_reads(record)))

    def _zone_of(self, record: Mapping[str, Any], sps: Sequence[Sequence[Row]]) -> str:
        """``_sa_zone`` from the rows of the SA's SPs, read in the order of its links."""
        zones = set()
        for link, rows in zip(record.get("sp_links") or (), sps, strict=True):
            if not rows:
                raise ValueError(f"SA {record['sa_id']} links SP {link['sp_id']}, which CCB lacks")
            zones.add(str(parse_record(self.store, rows[0]["data"])["time_zone"]))
        if len(zones) > 1:
            raise ValueError(
                f"the SPs of SA {record['sa_id']} are in different time zones: {sorted(zones)}"
            )
        if zones:
            return zones.pop()
        division = record["cis_division"]
        if division not in DIVISION_ZONES:
            raise ValueError(f"CIS division {division} has no time zone")
        return DIVISION_ZONES[division]

    def _in_sa_zone(self, tx: Transaction, record: dict[str, Any]) -> dict[str, Any]:
        """An SA relationship's dates convert in its main SA's zone (PD-F25)."""
        sa = self.record(tx, "SA", (record["sa_id"],))
        if sa is None:
            raise ValueError(
                f"SA relationship {record['sa_relationship_id']}: no SA {record['sa_id']}"
            )
        return {**record, "time_zone": self._sa_zone(tx, sa)}

    def _option_snapshot(self, tx: Transaction, record: dict[str, Any]) -> dict[str, Any]:
        """A contract option's dates convert in the zone its linked SAs share (PD-F26)."""
        zones = set()
        for link in record.get("sa_links") or ():
            sa = self.record(tx, "SA", (link["sa_id"],))
            if sa is None:
                raise ValueError(f"contract option links SA {link['sa_id']}, which CCB lacks")
            zones.add(self._sa_zone(tx, sa))
        if len(zones) != 1:
            raise ValueError(
                f"contract option {record['contract_option_id']}: its SAs must share one time "
                f"zone, not {sorted(zones)}"
            )
        return {**record, "time_zone": zones.pop()}

    # -- initial load --------------------------------------------------------------------

    def initial_load(self, batch: int = 500, progress: Callable[[int], None] | None = None) -> int:
        """Create one sync request per entity with the initial-load flag, ``batch`` entities a
        transaction; returns how many were captured."""
        total = 0
        for chunk in self._keys_in_load_order(batch):
            with self.store.transaction() as tx:
                for mo, pk in chunk:
                    capture(tx, mo, tuple(pk.split(KEY_SEPARATOR)), None, initial_load=True)
            total += len(chunk)
            if progress is not None:
                progress(len(chunk))
        return total

    def _keys_in_load_order(self, batch: int) -> Iterator[list[tuple[str, str]]]:
        with self.store.transaction() as tx:
            keys = [
                (str(row["mo"]), str(row["pk"]))
                for row in tx.fetch("SELECT mo, pk FROM ccb_entity ORDER BY mo, pk")
            ]
        order = {mo: index for index, mo in enumerate(LOAD_ORDER)}
        keys.sort(key=lambda key: (order.get(key[0], len(order)), key[1]))
        for start in range(0, len(keys), batch):
            yield keys[start : start + batch]

    def _kind(self, mo: str) -> EntityKind:
        kind = ENTITY_KINDS.get(mo)
        if kind is None or mo not in CCB_SYNC_FLOWS:
            raise UnknownEntity(
                f"maintenance object {mo!r} is not one CCB synchronizes; known: "
                f"{', '.join(sorted(ENTITY_KINDS))}"
            )
        return kind

    # -- billing (the runtime's usage requests call these) --------------------------------

    def related_keys(self, tx: Transaction, sa_id: str) -> Iterable[tuple[str, tuple[str, ...]]]:
        return self.billing.related_keys(tx, sa_id)

    def build_request(self, tx: Transaction, request: UsageRequest) -> ContractModel:
        return self.billing.build_request(tx, request)

    def apply(self, tx: Transaction, request: UsageRequest, response: ContractModel) -> None:
        self.billing.apply(tx, request, response)

    def report_error(self, tx: Transaction, request: UsageRequest, reason: str) -> None:
        self.billing.report_error(tx, request, reason)

    @property
    def billing(self) -> Billing:
        if self._billing is None:
            raise RuntimeError("this CCB has no node to send from, so it does not bill")
        return self._billing

    # -- the hosted system ---------------------------------------------------------------

    def handle(self, tx: Transaction, received: Received) -> str | None:
        """What CCB receives besides acknowledgements and usage responses (which the runtime
        matches itself): replacement read notifications, bill cycle changes, and MDM's answer
        to a used-on-bill update."""
        if received.flow == "REPLACEMENT_READS" and self._corrections is not None:
            return self._corrections.notified(tx, received)
        if received.flow == "BILL_CYCLE_CHANGE" and received.part == "notification":
            return notified(self, tx, received)
        if received.flow == "UT_INFO_UPDATE" and received.part == "response" and self.node:
            _, response = self.node.contracts.decode(received.payload)
            header = response.message_header  # type: ignore[attr-defined]
            self.node.outbox.reply_received(tx, received.partner, str(header.correlation_id))
            for info in response.result.exception_info:  # type: ignore[attr-defined]
                log.warning(
                    "MDM did not take a used-on-bill flag: %s/%s %s",
                    info.message_category,
                    info.message_number,
                    info.comments or "",
                    extra={"message_id": received.message_id},
                )
        return None

    def answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        """CCB answers no synchronous calls: it makes them."""
        if self.node is None:
            return Response(400)
        return self.node.receiver.fault(None, flow.code, 1002, "CCB answers no calls", 400)

    def page(self, path: str) -> str | None:
        """The HTML page of an entity, at the address navigation links use."""
        return page(self.store, "ccb", path, functools.partial(page_fields, self.store))

    def steps(self) -> Sequence[Callable[[], int]]:
        """The off-cycle bill generators' monitor."""
        return () if self._corrections is None else self._corrections.steps()


def connect(runtime: Runtime, node: str) -> CcbSimulator:
    """The reference CCB behind a hosted ``ccb`` node
    (``system: ccbmdm.runtime.sim.ccb.simulator:connect``)."""
    return CcbSimulator(runtime.store, runtime.nodes[node], runtime.clock)


def page_fields(
    store: Store, tx: Transaction, kind: str, entity_id: str
) -> dict[str, object] | None:
    """A CCB entity's fields for its page (``sim.pages``); None when there is none."""
    if kind == "account":
        row = tx.fetch_one("SELECT * FROM ccb_account WHERE account_id = :id", {"id": entity_id})
        return None if row is None else dict(row)
    mo = {"person": "PERSON", "sa": "SA", "sp": "SP", "meter": "METER"}.get(kind)
    if mo is None:
        return None
    row = tx.fetch_one(_RECORD, {"mo": mo, "pk": entity_id})
    return None if row is None else parse_record(store, row["data"])


def _sp_reads(record: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The reads of an SA's SPs' records, in the order of its links."""
    return [(_RECORD, {"mo": "SP", "pk": link["sp_id"]}) for link in record.get("sp_links") or ()]


def _account_from(row: Row) -> Account:
    """An account as its row holds it."""
    return Account(
        account_id=row["account_id"],
        person_id=row["person_id"],
        bill_cycle=row["bill_cycle"],
        cis_division=row["cis_division"],
        bill_cycle_protected=bool(row["bill_cycle_protected"]),
    )

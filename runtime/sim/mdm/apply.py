"""How MDM loads one inbound master-data message: its codes checked against MDM's admin data,
its business rules, its foreign keys resolved through the cross-reference, and its full state
written (docs/flows.md §1-§10, §18; docs/lifecycles.md §2).

Validation comes first and writes nothing; applying resolves every foreign key before it
writes, and raises ``Unresolved`` or ``RuleBroken`` when it cannot, so the caller's savepoint
drops whatever it had begun (a production key allocated on first sight included).
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ccbmdm.runtime.lifecycles.sync import KEY_SEPARATOR
from ccbmdm.runtime.messages.mapping import CodeTables
from ccbmdm.runtime.messages.personal import WITHHELD, is_personal
from ccbmdm.runtime.sim.mdm.records import (
    external_key,
    key_params,
    production_id,
    production_ids,
)
from ccbmdm.runtime.store import Transaction
from ccbmdm.runtime.store.base import unnested

FAULT_CATEGORY = 90000
SCHEMA_VIOLATION = 1003  # a business-object rule: the message is well formed but not loadable
CODE_TABLE_MISS = 1101
UNRESOLVED_KEY = 1102
FIRST_PRODUCTION_ID = 100_000_000_000  # production ids are 12-digit numbers
MEASURING_COMPONENT = "D1-MC"  # loaded with its device configuration (composite, PD-F08)
SECONDS_PER_DAY = 86_400

ExternalId = tuple[str, str]  # (MDM maintenance object, production id), for externalIds


@dataclass(frozen=True)
class FlowKind:
    """One inbound master-data flow as MDM loads it."""

    code: str
    contract: str  # the MDM contract of its request
    mo: str  # MDM's maintenance object, the targetMo the bridge sends
    entity: str  # the request's entity element
    rank: int  # the dependency order the step claims in (PD-L06)


FLOWS: Mapping[str, FlowKind] = {
    kind.code: kind
    for kind in (
        FlowKind("BILL_CYCLE_SYNC", "mdm/BillCycleSyncRequest", "D1-BILLCYCLE", "bill_cycle", 0),
        FlowKind("PERSON_SYNC", "mdm/ContactSyncRequest", "D1-CONTACT", "contact", 1),
        FlowKind("SP_SYNC", "mdm/ServicePointSyncRequest", "D1-SP", "service_point", 2),
        FlowKind("SA_SYNC", "mdm/UsageSubscriptionSyncRequest", "D1-US", "usage_subscription", 3),
        FlowKind(
            "SA_REL_SYNC",
            "mdm/MarketParticipantSyncRequest",
            "D1-USMKTPART",
            "market_participant",
            4,
        ),
        FlowKind("DOP_SYNC", "mdm/DynamicOptionSyncRequest", "D1-DOP", "dynamic_option", 5),
        FlowKind(
            "DOP_EVENT_SYNC",
            "mdm/DynamicOptionEventSyncRequest",
            "D1-DOPEVT",
            "dynamic_option_event",
            6,
        ),
        FlowKind("METER_SYNC", "mdm/DeviceSyncRequest", "D1-DEVICE", "device", 7),
        FlowKind(
            "METER_CONFIG_SYNC",
            "mdm/DeviceConfigurationSyncRequest",
            "D1-DVCCFG",
            "device_configuration",
            8,
        ),
        FlowKind(
            "SP_METER_HISTORY_SYNC",
            "mdm/InstallEventSyncRequest",
            "D1-INSTLEVT",
            "install_event",
            9,
        ),
        FlowKind(
            "SCALAR_READ_SYNC", "mdm/ScalarReadingSyncRequest", "D1-IMD", "scalar_reading", 10
        ),
    )
}


class Rejected(Exception):
    """The message cannot be loaded as sent: Error with a negative acknowledgement at once."""

    number = 0

    def __init__(self, text: str, *parameters: str) -> None:
        super().__init__(text)
        self.text, self.parameters = text, parameters


class CodeMiss(Rejected):
    """A code MDM's admin data does not have (90000/1101 [table, value])."""

    number = CODE_TABLE_MISS


class RuleBroken(Rejected):
    """A business-object rule the entity breaks (90000/1003 [element])."""

    number = SCHEMA_VIOLATION


class Unresolved(Exception):
    """A foreign key MDM cannot resolve yet, or an install event waiting for a removal
    (PD-L06, PD-L15): retried, and answered 90000/1102 [MO, key] once the retries are over.
    ``mo`` and ``key`` name what the request waits for: storing it wakes the request."""

    def __init__(self, mo: str, key: str, text: str) -> None:
        super().__init__(text)
        self.mo, self.key, self.text = mo, key, text


def wake_waiting(tx: Transaction, mo: str, key: str) -> None:
    """An entity of ``mo`` and ``key`` was stored: the requests in retryable Error that wait
    for it fall due now, in the transaction that stores it, rather than at their next 15-minute
    retry (an SA that came before its person moves on as soon as the person is loaded). Woken
    at the commit, with every other entity the transaction stored (``_woken``)."""
    tx.later(_woken, (mo, key))


def _woken(tx: Transaction, keys: list[tuple[str, str]]) -> None:
    """The requests waiting for any of the entities ``keys`` fall due now, in one statement: a
    statement an applied request had cost the server its plan's run and the table's counting
    trigger, most often to change no row."""
    rows = [{"mo": mo, "key": key} for mo, key in dict.fromkeys(keys)]
    waiting = f"state = 'ERROR_RETRYABLE' AND due_at > {tx.now}"
    if tx.dialect == "postgres":
        relation, params = unnested(rows, {"mo": "text", "key": "text"})
        tx.send(
            f"""UPDATE mdm_sync_request SET due_at = {tx.now} FROM {relation}
                WHERE {waiting} AND waiting_mo = v.mo AND waiting_key = v.key""",
            params,
        )
    else:
        tx.execute_many(
            f"""UPDATE mdm_sync_request SET due_at = {tx.now}
                WHERE {waiting} AND waiting_mo = :mo AND waiting_key = :key""",
            rows,
        )


def trimmed_key(values: Sequence[str]) -> tuple[str, ...]:
    """An external key's five values without the empty ones that end it."""
    values = list(values)
    while values and not values[-1]:
        values.pop()
    return tuple(values)


@dataclass(frozen=True)
class SyncMessage:
    """A decoded inbound sync request and what its header says."""

    kind: FlowKind
    message: Any  # the generated model of ``kind.contract``
    # Whether the claim read the production id of the request's own key ahead (``held``, None
    # when MDM had none): a key already recorded stays so (the cross-reference only grows)
    read_ahead: bool = False
    held: str | None = None

    @property
    def system(self) -> str:
        return str(self.message.external_system)

    @property
    def key(self) -> tuple[str, ...]:
        return trimmed_key(
            [str(getattr(self.message, f"external_pk_value{i}") or "") for i in range(1, 6)]
        )

    @property
    def canonical_key(self) -> str:
        return KEY_SEPARATOR.join(self.key)

    @property
    def change(self) -> str:
        return str(self.message.change_type)

    @property
    def version(self) -> int:
        return int(self.message.entity_version)

    @property
    def entity(self) -> Any:
        return getattr(self.message, self.kind.entity)

    @property
    def changed_at(self) -> datetime:
        """The change date a DELETE inactivates from: when CCB built the message."""
        sent: datetime = self.message.message_header.sent_date_time
        return sent


# -- MDM's admin data ----------------------------------------------------------------------

# (element, code table, column holding MDM's code) for every code an entity carries
_CODES: Mapping[str, tuple[tuple[str, str, str], ...]] = {
    "contact": (
        ("contactType", "OUCCB2_OUMDM2_ContactType", "contactType"),
        ("address/country", "OUCCB2_OUMDM2_Country", "mdmCountry"),
    ),
    "service_point": (
        ("spType", "OUCCB2_OUMDM2_SPType", "mdmSpType"),
        ("disconnectLocation", "OUCCB2_OUMDM2_DisconnectLocation", "mdmDisconnectLocation"),
        ("address/country", "OUCCB2_OUMDM2_Country", "mdmCountry"),
    ),
    "usage_subscription": (("usType", "OUCCB2_OUMDM2_USType", "usType"),),
    "market_participant": (("participantRole", "OUCCB2_OUMDM2_SARelType", "participantRole"),),
    "dynamic_option": (
        ("dynamicOptionType", "OUCCB2_OUMDM2_DynamicOptionType", "dynamicOptionType"),
    ),
    "dynamic_option_event": (
        ("eventType", "OUCCB2_OUMDM2_DynamicOptionType", "dynamicOptionType"),
    ),
    "device": (
        ("deviceType", "OUCCB2_OUMDM2_DeviceType", "deviceType"),
        ("manufacturer", "OUCCB2_OUMDM2_Manufacturer", "mdmManufacturer"),
        ("model", "OUCCB2_OUMDM2_Model", "mdmModel"),
    ),
    "device_configuration": (
        ("deviceConfigurationType", "OUCCB2_OUMDM2_DeviceConfigType", "deviceConfigurationType"),
        ("measuringComponents/uom", "OUMDM2_OUCCB2_UOM", "mdmUom"),
        ("measuringComponents/tou", "OUMDM2_OUCCB2_TOU", "mdmTou"),
        ("measuringComponents/sqi", "OUMDM2_OUCCB2_SQI", "mdmSqi"),
        ("measuringComponents/readOutType", "OUCCB2_OUMDM2_ReadOutType", "mdmReadOutType"),
        ("measuringComponents/serviceType", "OUCCB2_OUMDM2_MCServiceType", "mdmServiceType"),
    ),
    "install_event": (
        ("installationReads/readingSource", "OUCCB2_OUMDM2_ReadType", "readingSource"),
        ("installationReads/qualityCode", "OUCCB2_OUMDM2_ReadType", "qualityCode"),
        ("removalReads/readingSource", "OUCCB2_OUMDM2_ReadType", "readingSource"),
        ("removalReads/qualityCode", "OUCCB2_OUMDM2_ReadType", "qualityCode"),
    ),
    "scalar_reading": (
        ("readingSource", "OUCCB2_OUMDM2_ReadType", "readingSource"),
        ("qualityCode", "OUCCB2_OUMDM2_ReadType", "qualityCode"),
    ),
    "bill_cycle": (),
}
_MO_TABLE = ("OUCCB2_OUMDM2_MO", "targetMo")


class Codes:
    """MDM's admin codes: the MDM side of each code table, which must equal MDM's own admin data
    (docs/flows.md §0.5). A code the bridge translated but MDM does not have is a code-table
    miss."""

    def __init__(self, tables: CodeTables) -> None:
        self.known: dict[tuple[str, str], frozenset[str]] = {}
        for table in tables.tables.values():
            for column in (*table.keys, *table.values):
                values = frozenset(row[column] for row in table.rows.values() if column in row)
                self.known[(table.name, column)] = values

    def check(
        self, table: str, column: str, value: str, element: str, personal: bool = False
    ) -> None:
        """A code MDM lacks is a CodeMiss, which names the code unless it is personal data (a
        country of an address): the reason and the negative acknowledgement never quote it."""
        if value not in self.known.get((table, column), frozenset()):
            shown = WITHHELD if personal else repr(value)
            raise CodeMiss(
                f"{element}: code table {table} has no MDM code {shown}",
                table,
                WITHHELD if personal else value,
            )

    def check_message(self, request: SyncMessage) -> None:
        """The target MO and every code of the entity (nothing to check on DELETE)."""
        self.check(*_MO_TABLE, str(request.message.target_mo), "targetMo")
        entity = request.entity
        if entity is None:
            return
        for element, table, column in _CODES[request.kind.entity]:
            path = element.split("/")
            personal = is_personal(type(entity), [_snake(step) for step in path])
            for value in _values(entity, path):
                self.check(table, column, value, element, personal)


def _values(node: Any, path: Sequence[str]) -> Iterator[str]:
    """The values at an element path of a model (lists followed, absent elements skipped)."""
    if node is None:
        return
    if isinstance(node, tuple):
        for item in node:
            yield from _values(item, path)
        return
    if not path:
        yield str(node)
        return
    yield from _values(getattr(node, _snake(path[0])), path[1:])


@functools.cache
def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# -- business-object rules -----------------------------------------------------------------


def check_rules(request: SyncMessage) -> None:
    """Rules an entity must keep before MDM loads it (RuleBroken names the element)."""
    if request.message.target_mo != request.kind.mo:
        raise RuleBroken(
            f"targetMo {request.message.target_mo} is not {request.kind.mo}, the MO of "
            f"{request.kind.code}",
            "targetMo",
        )
    entity = request.entity
    if entity is None:
        if request.change != "DELETE":
            raise RuleBroken(f"a {request.change} carries the entity", request.kind.entity)
        return
    if request.change == "DELETE":
        raise RuleBroken("a DELETE carries no entity", request.kind.entity)
    _RULES[request.kind.entity](request, entity)


def _ordered(start: datetime | None, end: datetime | None, element: str) -> None:
    if start is not None and end is not None and end <= start:
        raise RuleBroken(f"{element}: the period ends ({end}) before it starts ({start})", element)


def _same_key(request: SyncMessage, value: str, element: str) -> None:
    if (value,) != request.key:
        raise RuleBroken(
            f"{element} {value} is not the request's key {request.canonical_key}", element
        )


def _no_rules(request: SyncMessage, entity: Any) -> None:
    return None


def _service_point_rules(request: SyncMessage, entity: Any) -> None:
    if entity.time_zone not in _time_zones():
        raise RuleBroken(
            f"timeZone {entity.time_zone} is not in the time zone database (PD-F23)", "timeZone"
        )
    _ordered(entity.install_date_time, entity.abolish_date_time, "abolishDateTime")


def _usage_subscription_rules(request: SyncMessage, entity: Any) -> None:
    _same_key(request, entity.external_id, "externalId")
    _ordered(entity.start_date_time, entity.end_date_time, "endDateTime")
    starts = [group.start_date_time for group in entity.usage_groups]
    if len(set(starts)) != len(starts):
        raise RuleBroken("two usage-group periods start at the same instant", "usageGroups")
    for link in entity.service_points:
        _ordered(link.start_date_time, link.end_date_time, "servicePoints/endDateTime")


def _market_participant_rules(request: SyncMessage, entity: Any) -> None:
    _same_key(request, entity.external_id, "externalId")
    _ordered(entity.start_date_time, entity.end_date_time, "endDateTime")


def _dynamic_option_rules(request: SyncMessage, entity: Any) -> None:
    _ordered(entity.start_date_time, entity.end_date_time, "endDateTime")
    for link in entity.usage_subscriptions:
        _ordered(link.start_date_time, link.end_date_time, "usageSubscriptions/endDateTime")


def _dynamic_option_event_rules(request: SyncMessage, entity: Any) -> None:
    _ordered(entity.start_date_time, entity.end_date_time, "endDateTime")


def _device_configuration_rules(request: SyncMessage, entity: Any) -> None:
    registers = [mc.external_id for mc in entity.measuring_components]
    if len(set(registers)) != len(registers):
        raise RuleBroken("two measuring components have one external id", "measuringComponents")
    for mc in entity.measuring_components:
        seconds = mc.seconds_per_interval
        if seconds is not None and SECONDS_PER_DAY % seconds:
            raise RuleBroken(
                f"MC {mc.external_id}: {seconds} s does not divide a day (PD-D01)",
                "measuringComponents/secondsPerInterval",
            )


def _install_event_rules(request: SyncMessage, entity: Any) -> None:
    _ordered(entity.installation_date_time, entity.removal_date_time, "removalDateTime")
    if entity.removal_reads and entity.removal_date_time is None:
        raise RuleBroken("removal reads without a removal date-time", "removalReads")


def _scalar_reading_rules(request: SyncMessage, entity: Any) -> None:
    for measurement in entity.measurements:
        expected = f"{request.canonical_key}-{measurement.mc_external_id}"
        if measurement.external_id != expected:
            raise RuleBroken(
                f"IMD {measurement.external_id} is not {expected} (PD-F30)",
                "measurements/externalId",
            )


def _bill_cycle_rules(request: SyncMessage, entity: Any) -> None:
    _same_key(request, entity.bill_cycle, "billCycle")
    starts = [entry.window_start_date for entry in entity.schedule]
    if len(set(starts)) != len(starts):
        raise RuleBroken("two schedule entries start on the same date", "schedule")
    for entry in entity.schedule:
        if entry.window_end_date < entry.window_start_date:
            raise RuleBroken(
                f"window {entry.window_start_date} ends before it starts",
                "schedule/windowEndDate",
            )


_RULES: Mapping[str, Callable[[SyncMessage, Any], None]] = {
    "contact": _no_rules,
    "service_point": _service_point_rules,
    "usage_subscription": _usage_subscription_rules,
    "market_participant": _market_participant_rules,
    "dynamic_option": _dynamic_option_rules,
    "dynamic_option_event": _dynamic_option_event_rules,
    "device": _no_rules,
    "device_configuration": _device_configuration_rules,
    "install_event": _install_event_rules,
    "scalar_reading": _scalar_reading_rules,
    "bill_cycle": _bill_cycle_rules,
}


# -- loading -------------------------------------------------------------------------------


class Loader:
    """Writes a message's full state into MDM's tables (ADD and CHANGE alike: a CHANGE for an
    entity MDM does not know creates it, PD-L05); DELETE inactivates (PD-C03)."""

    def __init__(self) -> None:
        self._apply: Mapping[str, Callable[[Transaction, SyncMessage, Any], list[ExternalId]]]
        self._apply = {
            "contact": self._contact,
            "service_point": self._service_point,
            "usage_subscription": self._usage_subscription,
            "market_participant": self._market_participant,
            "dynamic_option": self._dynamic_option,
            "dynamic_option_event": self._dynamic_option_event,
            "device": self._device,
            "device_configuration": self._device_configuration,
            "install_event": self._install_event,
            "scalar_reading": self._scalar_reading,
            "bill_cycle": self._bill_cycle,
        }

    def load(self, tx: Transaction, request: SyncMessage) -> list[ExternalId]:
        """Apply the request; the MDM keys it created or updated."""
        if request.entity is None:
            return self._delete(tx, request)
        return self._apply[request.kind.entity](tx, request, request.entity)

    # -- keys ----------------------------------------------------------------------------

    def allocate(self, tx: Transaction, mo: str) -> str:
        """A new production id: MDM's own, never the external system's."""
        row = tx.fetch_one("INSERT INTO mdm_key (mo) VALUES (:mo) RETURNING id", {"mo": mo})
        assert row is not None
        return f"{FIRST_PRODUCTION_ID + int(row['id']):012d}"

    def allocation(self, tx: Transaction, mo: str) -> tuple[str, str, dict[str, Any]]:
        """A new production id for the statement that records it: the WITH clause to put
        before that statement, the expression giving the id, and their parameters. On
        PostgreSQL the statement allocates the id itself, without a round trip of its own;
        SQLite's is allocated here (``allocate``)."""
        if tx.dialect == "postgres":
            return (
                "WITH allocated AS (INSERT INTO mdm_key (mo) VALUES (:allocated_mo) RETURNING id) ",
                "(SELECT lpad(CAST(:first_id + id AS text), 12, '0') FROM allocated)",
                {"allocated_mo": mo, "first_id": FIRST_PRODUCTION_ID},
            )
        return "", ":allocated_id", {"allocated_id": self.allocate(tx, mo)}

    def key_for(
        self,
        tx: Transaction,
        system: str,
        mo: str,
        key: Sequence[str],
        production: str | None = None,
    ) -> str:
        """The production id the external key maps to, allocated on first sight (or the one
        given, for a bill cycle whose code both systems share)."""
        found = production_id(tx, system, mo, key)
        return found if found is not None else self._recorded(tx, system, mo, key, production)

    def held(self, tx: Transaction, request: SyncMessage) -> str | None:
        """The production id of the request's own key, None when MDM has none: as the claim
        read it ahead, when it did."""
        if request.read_ahead:
            return request.held
        return production_id(tx, request.system, request.kind.mo, request.key)

    def own_key(self, tx: Transaction, request: SyncMessage, production: str | None = None) -> str:
        """``key_for`` of the request's own key, without looking it up again when the claim
        read it ahead."""
        held = self.held(tx, request)
        if held is not None:
            return held
        return self._recorded(tx, request.system, request.kind.mo, request.key, production)

    def _recorded(
        self,
        tx: Transaction,
        system: str,
        mo: str,
        key: Sequence[str],
        production: str | None,
    ) -> str:
        """A new key recorded in the cross-reference with its production id (the one given,
        else a new one); the one recorded meanwhile by another worker, if any."""
        params = {"system": system, "mo": mo, **key_params(key)}
        if production is None:
            allocated, new_id, allocating = self.allocation(tx, mo)
        else:
            allocated, new_id, allocating = "", ":id", {"id": production}
        inserted = tx.fetch(  # nothing when the key has an id already
            f"""{allocated}INSERT INTO mdm_cross_reference
                  (external_system, mo, pk1, pk2, pk3, pk4, pk5, production_id, created_at)
                VALUES (:system, :mo, :pk1, :pk2, :pk3, :pk4, :pk5, {new_id}, {tx.now})
                ON CONFLICT (external_system, mo, pk1, pk2, pk3, pk4, pk5) DO NOTHING
                RETURNING production_id""",
            {**params, **allocating},
        )
        if inserted:
            return str(inserted[0]["production_id"])
        found = production_id(tx, system, mo, key)  # another worker saw it first, and committed
        if found is None:
            raise LookupError(f"{mo} {list(key)}: the cross-reference lost its entry")
        return found

    def resolve_each(
        self, tx: Transaction, request: SyncMessage, keys: Sequence[tuple[str, str]]
    ) -> list[str]:
        """``resolve`` of each (MO, key), read together; the first unknown one is raised."""
        found = production_ids(tx, request.system, [(mo, (key,)) for mo, key in keys])
        for (mo, key), production in zip(keys, found, strict=True):
            if production is None:
                raise Unresolved(mo, key, f"MDM has no {mo} for {request.system} key {key}")
        return [production for production in found if production is not None]

    def resolve(self, tx: Transaction, request: SyncMessage, mo: str, key: str) -> str:
        """A foreign key, which the payload carries as the external system's key (§0.5)."""
        (found,) = self.resolve_each(tx, request, [(mo, key)])
        return found

    # -- writing -------------------------------------------------------------------------

    def _upsert(
        self, tx: Transaction, table: str, values: Mapping[str, Any], new_of: str | None = None
    ) -> None:
        """The row written whole, sent. An ``id`` of None takes a new production id of the MO
        ``new_of``, allocated by the statement itself (``allocation``)."""
        columns = list(values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id")
        allocated, allocating = "", dict[str, Any]()
        placeholders = {c: ":" + c for c in columns}
        if new_of is not None and values["id"] is None:
            allocated, placeholders["id"], allocating = self.allocation(tx, new_of)
        tx.send(
            f"{allocated}INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join(placeholders.values())}) "
            f"ON CONFLICT (id) DO UPDATE SET {updates}",
            {**values, **allocating},
        )

    def _replace(
        self, tx: Transaction, table: str, owner: str, owner_id: str, rows: list[dict[str, Any]]
    ) -> None:
        """Replace an entity's dependent list (periods, links, values) with the one sent."""
        tx.send(f"DELETE FROM {table} WHERE {owner} = :id", {"id": owner_id})
        for seq, row in enumerate(rows, 1):
            values = {owner: owner_id, "seq": seq, **row}
            tx.send(
                f"INSERT INTO {table} ({', '.join(values)}) "
                f"VALUES ({', '.join(':' + c for c in values)})",
                values,
            )

    def _delete(self, tx: Transaction, request: SyncMessage) -> list[ExternalId]:
        """Inactivate from the change date; a meter read's IMDs are discarded (PD-C03)."""
        kind = request.kind
        if kind.entity == "scalar_reading":
            rows = tx.fetch(
                """UPDATE mdm_scalar_measurement SET status = 'DISCARDED'
                   WHERE meter_read_id = :read RETURNING id""",
                {"read": request.canonical_key},
            )
            return [(kind.mo, str(row["id"])) for row in sorted(rows, key=lambda r: r["id"])]
        production = self.held(tx, request)
        if production is None:
            return []  # never known to MDM: nothing to inactivate
        table = _TABLES[kind.entity]
        at = tx.instant(request.changed_at)
        tx.send(
            f"UPDATE {table} SET status = 'INACTIVE', inactive_from = :at WHERE id = :id",
            {"at": at, "id": production},
        )
        if kind.entity == "device_configuration":
            tx.send(
                """UPDATE mdm_measuring_component SET status = 'INACTIVE'
                   WHERE device_configuration_id = :id""",
                {"id": production},
            )
            row = tx.fetch_one(
                "SELECT device_id FROM mdm_device_configuration WHERE id = :id",
                {"id": production},
            )
            if row is not None:
                self._chain_configurations(tx, str(row["device_id"]))
        return [(kind.mo, production)]

    def _contact(self, tx: Transaction, request: SyncMessage, contact: Any) -> list[ExternalId]:
        production = self.own_key(tx, request)
        self._upsert(
            tx,
            "mdm_contact",
            {
                "id": production,
                "contact_type": contact.contact_type,
                "name": contact.name,
                "phone": contact.phone,
                "email": contact.email,
                "language": contact.language,
                **_address(contact.address),
                **_active(),
            },
        )
        return [(request.kind.mo, production)]

    def _service_point(self, tx: Transaction, request: SyncMessage, sp: Any) -> list[ExternalId]:
        production = self.own_key(tx, request)
        self._upsert(
            tx,
            "mdm_service_point",
            {
                "id": production,
                "sp_type": sp.sp_type,
                "disconnect_location": sp.disconnect_location,
                "external_premise_id": sp.external_premise_id,
                **_address(sp.address),
                "time_zone": sp.time_zone,
                "measurement_cycle": sp.measurement_cycle,
                "route": sp.measurement_cycle_route,
                "route_sequence": sp.sequence,
                "install_date_time": tx.instant(sp.install_date_time),
                "abolish_date_time": tx.instant(sp.abolish_date_time),
                "externally_managed": bool(sp.externally_managed),
                "status": sp.status,
                "inactive_from": None,
            },
        )
        return [(request.kind.mo, production)]

    def _usage_subscription(
        self, tx: Transaction, request: SyncMessage, us: Any
    ) -> list[ExternalId]:
        contact, *sps = self.resolve_each(
            tx,
            request,
            [
                ("D1-CONTACT", us.main_contact_external_id),
                *(("D1-SP", link.sp_external_id) for link in us.service_points),
            ],
        )
        points = list(zip(sps, us.service_points, strict=True))
        production = self.own_key(tx, request)
        self._upsert(
            tx,
            "mdm_usage_subscription",
            {
                "id": production,
                "external_id": us.external_id,
                "external_account_id": us.external_account_id,
                "us_type": us.us_type,
                "division": us.division,
                "start_date_time": tx.instant(us.start_date_time),
                "end_date_time": tx.instant(us.end_date_time),
                "main_contact_id": contact,
                "summary_billed": bool(us.summary_billed),
                "status": us.status,
                "inactive_from": None,
            },
        )
        groups = sorted(us.usage_groups, key=lambda group: group.start_date_time)
        ends = [group.start_date_time for group in groups[1:]] + [None]
        self._replace(
            tx,
            "mdm_us_usage_group",
            "us_id",
            production,
            [
                {
                    "usage_group": group.usage_group_external_id,
                    "start_date_time": tx.instant(group.start_date_time),
                    "end_date_time": tx.instant(end),
                }
                for group, end in zip(groups, ends, strict=True)
            ],
        )
        self._replace(
            tx,
            "mdm_us_service_point",
            "us_id",
            production,
            [
                {
                    "sp_id": sp,
                    "start_date_time": tx.instant(link.start_date_time),
                    "end_date_time": tx.instant(link.end_date_time),
                }
                for sp, link in points
            ],
        )
        return [(request.kind.mo, production)]

    def _market_participant(
        self, tx: Transaction, request: SyncMessage, participant: Any
    ) -> list[ExternalId]:
        us = self.resolve(tx, request, "D1-US", participant.us_external_id)
        production = self.own_key(tx, request)
        self._upsert(
            tx,
            "mdm_us_market_participant",
            {
                "id": production,
                "us_id": us,
                "participant_role": participant.participant_role,
                "requires_date_break": bool(participant.requires_date_break),
                "service_provider": participant.service_provider,
                "start_date_time": tx.instant(participant.start_date_time),
                "end_date_time": tx.instant(participant.end_date_time),
                **_active(),
            },
        )
        return [(request.kind.mo, production)]

    def _dynamic_option(
        self, tx: Transaction, request: SyncMessage, option: Any
    ) -> list[ExternalId]:
        links = [
            (self.resolve(tx, request, "D1-US", link.us_external_id), link)
            for link in option.usage_subscriptions
        ]
        production = self.own_key(tx, request)
        self._upsert(
            tx,
            "mdm_dynamic_option",
            {
                "id": production,
                "dynamic_option_type": option.dynamic_option_type,
                "start_date_time": tx.instant(option.start_date_time),
                "end_date_time": tx.instant(option.end_date_time),
                **_active(),
            },
        )
        self._replace(
            tx,
            "mdm_dynamic_option_us",
            "option_id",
            production,
            [
                {
                    "us_id": us,
                    "start_date_time": tx.instant(link.start_date_time),
                    "end_date_time": tx.instant(link.end_date_time),
                }
                for us, link in links
            ],
        )
        self._replace(
            tx,
            "mdm_dynamic_option_value",
            "option_id",
            production,
            [{"name": v.name, "value": v.value} for v in option.values],
        )
        return [(request.kind.mo, production)]

    def _dynamic_option_event(
        self, tx: Transaction, request: SyncMessage, event: Any
    ) -> list[ExternalId]:
        option = self.resolve(tx, request, "D1-DOP", event.dynamic_option_external_id)
        production = self.own_key(tx, request)
        self._upsert(
            tx,
            "mdm_dynamic_option_event",
            {
                "id": production,
                "option_id": option,
                "event_type": event.event_type,
                "start_date_time": tx.instant(event.start_date_time),
                "end_date_time": tx.instant(event.end_date_time),
                **_active(),
            },
        )
        self._replace(
            tx,
            "mdm_dynamic_option_event_value",
            "event_id",
            production,
            [{"name": v.name, "value": v.value} for v in event.values],
        )
        return [(request.kind.mo, production)]

    def _device(self, tx: Transaction, request: SyncMessage, device: Any) -> list[ExternalId]:
        production = self.own_key(tx, request)
        retired = device.retire_date
        self._upsert(
            tx,
            "mdm_device",
            {
                "id": production,
                "device_type": device.device_type,
                "manufacturer": device.manufacturer,
                "model": device.model,
                "badge_number": device.badge_number,
                "serial_number": device.serial_number,
                "retire_date": None if retired is None else retired.isoformat(),
                "status": device.status,
                "inactive_from": None,
            },
        )
        return [(request.kind.mo, production)]

    def _device_configuration(
        self, tx: Transaction, request: SyncMessage, configuration: Any
    ) -> list[ExternalId]:
        device = self.resolve(tx, request, "D1-DEVICE", configuration.device_external_id)
        production = self.own_key(tx, request)
        before = tx.fetch_one(
            "SELECT device_id FROM mdm_device_configuration WHERE id = :id", {"id": production}
        )
        self._upsert(
            tx,
            "mdm_device_configuration",
            {
                "id": production,
                "device_id": device,
                "device_configuration_type": configuration.device_configuration_type,
                "effective_date_time": tx.instant(configuration.effective_date_time),
                **_active(),
            },
        )
        loaded: list[ExternalId] = [(request.kind.mo, production)]
        for mc in configuration.measuring_components:
            mc_id = self.key_for(tx, request.system, MEASURING_COMPONENT, (mc.external_id,))
            wake_waiting(tx, MEASURING_COMPONENT, str(mc.external_id))
            seconds = mc.seconds_per_interval
            self._upsert(
                tx,
                "mdm_measuring_component",
                {
                    "id": mc_id,
                    "device_configuration_id": production,
                    "register_id": mc.external_id,
                    "kind": "SCALAR" if seconds is None else "INTERVAL",
                    "uom": mc.uom,
                    "tou": mc.tou,
                    "sqi": mc.sqi,
                    "read_out_type": mc.read_out_type,
                    "service_type": mc.service_type,
                    "number_of_dials": mc.number_of_dials,
                    "decimal_positions": mc.decimal_positions,
                    "register_constant": str(mc.register_constant),
                    "reading_kind": mc.reading_kind,
                    "contribution": mc.contribution,
                    "seconds_per_interval": seconds,
                    "status": "ACTIVE",
                },
            )
            loaded.append((MEASURING_COMPONENT, mc_id))
        kept = [mc_id for _, mc_id in loaded[1:]]
        tx.send(
            f"""UPDATE mdm_measuring_component SET status = 'INACTIVE'
                WHERE device_configuration_id = :id
                  AND id NOT IN ({", ".join(f":mc{i}" for i in range(len(kept)))})""",
            {"id": production, **{f"mc{i}": mc_id for i, mc_id in enumerate(kept)}},
        )
        self._chain_configurations(tx, device)
        if before is not None and before["device_id"] != device:
            self._chain_configurations(tx, str(before["device_id"]))
        return loaded

    def _chain_configurations(self, tx: Transaction, device: str) -> None:
        """Each active configuration of a device ends where the next one takes effect."""
        rows = tx.fetch(
            """SELECT id, effective_date_time FROM mdm_device_configuration
               WHERE device_id = :device AND status = 'ACTIVE'
               ORDER BY effective_date_time, id""",
            {"device": device},
        )
        ends = [row["effective_date_time"] for row in rows[1:]] + [None]
        for row, end in zip(rows, ends, strict=True):
            tx.send(
                "UPDATE mdm_device_configuration SET end_date_time = :end WHERE id = :id",
                {"end": end, "id": row["id"]},
            )

    def _measuring_component(
        self, tx: Transaction, request: SyncMessage, configuration: str, register: str
    ) -> tuple[str, str]:
        """A register of the message resolved to its MC, which must belong to the
        configuration; its id and kind."""
        mc = self.resolve(tx, request, MEASURING_COMPONENT, register)
        row = tx.fetch_one(
            "SELECT device_configuration_id, kind FROM mdm_measuring_component WHERE id = :id",
            {"id": mc},
        )
        if row is None or row["device_configuration_id"] != configuration:
            raise RuleBroken(
                f"register {register} is not a measuring component of the device "
                "configuration sent",
                "mcExternalId",
            )
        return mc, str(row["kind"])

    def _install_event(self, tx: Transaction, request: SyncMessage, event: Any) -> list[ExternalId]:
        sp, configuration = self.resolve_each(
            tx,
            request,
            [
                ("D1-SP", event.sp_external_id),
                ("D1-DVCCFG", event.device_configuration_external_id),
            ],
        )
        reads = []
        for reason, at, sent in (
            ("INSTALLATION", event.installation_date_time, event.installation_reads),
            ("REMOVAL", event.removal_date_time, event.removal_reads),
        ):
            for read in sent:
                mc, _ = self._measuring_component(tx, request, configuration, read.mc_external_id)
                reads.append((reason, at, read, mc))
        own = self.held(tx, request)
        self._wait_for_removal(tx, request, sp, own or "", event)
        production = own or self._recorded(tx, request.system, request.kind.mo, request.key, None)
        self._upsert(
            tx,
            "mdm_install_event",
            {
                "id": production,
                "sp_id": sp,
                "device_configuration_id": configuration,
                "installation_date_time": tx.instant(event.installation_date_time),
                "removal_date_time": tx.instant(event.removal_date_time),
                **_active(),
            },
        )
        existing = {
            (str(row["reason"]), str(row["mc_id"])): str(row["id"])
            for row in tx.fetch(
                "SELECT id, reason, mc_id FROM mdm_scalar_measurement WHERE install_event_id = :e",
                {"e": production},
            )
        }
        for reason, at, read, mc in reads:
            self._upsert(
                tx,
                "mdm_scalar_measurement",
                {
                    "id": existing.pop((reason, mc), None),  # None: a new one
                    "mc_id": mc,
                    "measurement_date_time": tx.instant(at),
                    "reading": str(read.reading),
                    "reading_source": read.reading_source,
                    "quality_code": read.quality_code,
                    "reason": reason,
                    "external_id": None,
                    "meter_read_id": None,
                    "install_event_id": production,
                    "status": "ACTIVE",
                },
                new_of="D1-IMD",
            )
        for imd in existing.values():  # a read no longer sent
            tx.send(
                "UPDATE mdm_scalar_measurement SET status = 'DISCARDED' WHERE id = :id",
                {"id": imd},
            )
        return [(request.kind.mo, production)]

    def _wait_for_removal(
        self, tx: Transaction, request: SyncMessage, sp: str, own: str, event: Any
    ) -> None:
        """PD-L15: an install event overlapping another still active at the SP waits for that
        one's removal at its instant (an exchange is applied removal first)."""
        removal = "" if event.removal_date_time is None else "AND installation_date_time < :end"
        other = tx.fetch_one(
            f"""SELECT id FROM mdm_install_event
                WHERE sp_id = :sp AND id <> :own AND status = 'ACTIVE' {removal}
                  AND (removal_date_time IS NULL OR removal_date_time > :start)
                ORDER BY installation_date_time LIMIT 1""",
            {
                "sp": sp,
                "own": own,
                "start": tx.instant(event.installation_date_time),
                "end": tx.instant(event.removal_date_time),
            },
        )
        if other is None:
            return
        known = external_key(tx, request.kind.mo, str(other["id"]))
        key = known[1] if known else str(other["id"])
        raise Unresolved(
            request.kind.mo,
            key,
            f"install event {key} is still installed at SP {event.sp_external_id} when this "
            "one starts; waiting for its removal (PD-L15)",
        )

    def _scalar_reading(
        self, tx: Transaction, request: SyncMessage, reading: Any
    ) -> list[ExternalId]:
        configuration = self.resolve(
            tx, request, "D1-DVCCFG", reading.device_configuration_external_id
        )
        measurements = []
        for measurement in reading.measurements:
            register = measurement.mc_external_id
            mc, kind = self._measuring_component(tx, request, configuration, register)
            if kind != "SCALAR":
                raise RuleBroken(
                    f"register {register} is an interval MC; scalar reads need a scalar one",
                    "measurements/mcExternalId",
                )
            measurements.append((measurement, mc))
        loaded: list[ExternalId] = []
        for measurement, mc in measurements:
            imd = self.key_for(tx, request.system, request.kind.mo, (measurement.external_id,))
            self._upsert(
                tx,
                "mdm_scalar_measurement",
                {
                    "id": imd,
                    "mc_id": mc,
                    "measurement_date_time": tx.instant(reading.measurement_date_time),
                    "reading": str(measurement.reading),
                    "reading_source": reading.reading_source,
                    "quality_code": reading.quality_code,
                    "reason": "METER_READ",
                    "external_id": measurement.external_id,
                    "meter_read_id": request.canonical_key,
                    "install_event_id": None,
                    "status": "ACTIVE",
                },
            )
            loaded.append((request.kind.mo, imd))
        kept = [imd for _, imd in loaded]
        tx.send(  # a CHANGE replaces the read's IMDs (PD-F30)
            f"""UPDATE mdm_scalar_measurement SET status = 'DISCARDED'
                WHERE meter_read_id = :read
                  AND id NOT IN ({", ".join(f":imd{i}" for i in range(len(kept)))})""",
            {"read": request.canonical_key, **{f"imd{i}": imd for i, imd in enumerate(kept)}},
        )
        return loaded

    def _bill_cycle(self, tx: Transaction, request: SyncMessage, cycle: Any) -> list[ExternalId]:
        code = str(cycle.bill_cycle)
        production = self.own_key(tx, request, code)
        self._upsert(
            tx,
            "mdm_bill_cycle",
            {
                "id": production,
                "description": cycle.description,
                "division": cycle.division,
                **_active(),
            },
        )
        if cycle.schedule:  # PD-F19: the entries from the earliest window end sent replaced
            earliest = min(entry.window_end_date for entry in cycle.schedule)
            tx.send(
                """DELETE FROM mdm_bill_cycle_schedule
                   WHERE bill_cycle_id = :id AND window_end_date >= :earliest""",
                {"id": production, "earliest": earliest.isoformat()},
            )
        for entry in cycle.schedule:
            tx.send(
                """INSERT INTO mdm_bill_cycle_schedule
                     (bill_cycle_id, window_start_date, window_end_date, accounting_date,
                      estimate_date, freeze_complete)
                   VALUES (:id, :start, :end, :accounting, :estimate, :freeze)
                   ON CONFLICT (bill_cycle_id, window_start_date) DO UPDATE SET
                     window_end_date = excluded.window_end_date,
                     accounting_date = excluded.accounting_date,
                     estimate_date = excluded.estimate_date,
                     freeze_complete = excluded.freeze_complete""",
                {
                    "id": production,
                    "start": entry.window_start_date.isoformat(),
                    "end": entry.window_end_date.isoformat(),
                    "accounting": entry.accounting_date.isoformat(),
                    "estimate": entry.estimate_date.isoformat(),
                    "freeze": bool(entry.freeze_complete),
                },
            )
        return [(request.kind.mo, production)]


_TABLES: Mapping[str, str] = {
    "contact": "mdm_contact",
    "service_point": "mdm_service_point",
    "usage_subscription": "mdm_usage_subscription",
    "market_participant": "mdm_us_market_participant",
    "dynamic_option": "mdm_dynamic_option",
    "dynamic_option_event": "mdm_dynamic_option_event",
    "device": "mdm_device",
    "device_configuration": "mdm_device_configuration",
    "install_event": "mdm_install_event",
    "bill_cycle": "mdm_bill_cycle",
}


def _active() -> dict[str, Any]:
    """A loaded entity is active again, whatever an earlier DELETE did."""
    return {"status": "ACTIVE", "inactive_from": None}


def _address(address: Any) -> dict[str, Any]:
    fields = ("address1", "address2", "address3", "city", "state", "postal", "country")
    return {name: None if address is None else getattr(address, name) for name in fields}

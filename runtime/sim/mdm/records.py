"""MDM's master data as plain records, read from the simulator's tables by production id, and
the cross-reference that finds them by the external system's key.

Instants come back as aware UTC datetimes rounded to the millisecond (SQLite keeps them as
Julian days, a few microseconds off); quantities come back as the decimals that were sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ccbmdm.runtime.lifecycles.sync import KEY_SEPARATOR
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row

KEY_COLUMNS = ("pk1", "pk2", "pk3", "pk4", "pk5")


@dataclass(frozen=True)
class Address:
    address1: str
    address2: str | None
    address3: str | None
    city: str
    state: str | None
    postal: str
    country: str


@dataclass(frozen=True)
class Contact:
    production_id: str
    contact_type: str
    name: str
    phone: str | None
    email: str | None
    language: str
    address: Address | None
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class ServicePoint:
    production_id: str
    sp_type: str
    disconnect_location: str | None
    external_premise_id: str
    address: Address
    time_zone: str
    measurement_cycle: str
    route: str
    route_sequence: int
    install_date_time: datetime
    abolish_date_time: datetime | None
    externally_managed: bool
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class Period:
    """A half-open period ``[start, end)``; ``end`` None: open-ended."""

    start: datetime
    end: datetime | None


@dataclass(frozen=True)
class UsageGroupPeriod:
    usage_group: str
    period: Period


@dataclass(frozen=True)
class ServicePointPeriod:
    sp_id: str  # MDM's production id of the SP
    period: Period


@dataclass(frozen=True)
class MarketParticipant:
    production_id: str
    us_id: str
    participant_role: str
    requires_date_break: bool
    service_provider: str
    period: Period
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class UsageSubscription:
    production_id: str
    external_id: str  # the CCB SA id
    external_account_id: str
    us_type: str
    division: str
    period: Period
    main_contact_id: str  # MDM's production id of the contact
    summary_billed: bool
    usage_groups: tuple[UsageGroupPeriod, ...]
    service_points: tuple[ServicePointPeriod, ...]
    market_participants: tuple[MarketParticipant, ...]
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class UsageSubscriptionLink:
    us_id: str
    period: Period


@dataclass(frozen=True)
class DynamicOption:
    production_id: str
    dynamic_option_type: str
    period: Period
    usage_subscriptions: tuple[UsageSubscriptionLink, ...]
    values: tuple[tuple[str, str], ...]
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class DynamicOptionEvent:
    production_id: str
    option_id: str
    event_type: str
    period: Period
    values: tuple[tuple[str, str], ...]
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class Device:
    production_id: str
    device_type: str
    manufacturer: str
    model: str
    badge_number: str
    serial_number: str | None
    retire_date: date | None
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class MeasuringComponent:
    production_id: str
    register_id: str  # the CCB register id, the MC's external key
    interval: bool
    uom: str
    tou: str | None
    sqi: str | None
    read_out_type: str
    service_type: str
    number_of_dials: int
    decimal_positions: int
    register_constant: Decimal
    reading_kind: str
    contribution: str
    seconds_per_interval: int | None
    status: str


@dataclass(frozen=True)
class DeviceConfiguration:
    production_id: str
    device_id: str
    device_configuration_type: str
    period: Period  # from its effective date-time to the next configuration's
    measuring_components: tuple[MeasuringComponent, ...]
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class ScalarMeasurement:
    """An IMD: one reading of a scalar MC."""

    production_id: str
    mc_id: str
    measurement_date_time: datetime
    reading: Decimal
    reading_source: str
    quality_code: str
    reason: str  # INSTALLATION, REMOVAL or METER_READ
    external_id: str | None  # meter read id and register id (PD-F30); None for install reads
    status: str  # ACTIVE or DISCARDED


@dataclass(frozen=True)
class InstallEvent:
    production_id: str
    sp_id: str
    device_configuration_id: str
    period: Period  # installation to removal; open while installed
    reads: tuple[ScalarMeasurement, ...]  # installation reads, then removal reads
    status: str
    inactive_from: datetime | None


@dataclass(frozen=True)
class ScheduleEntry:
    window_start_date: date
    window_end_date: date
    accounting_date: date
    estimate_date: date
    freeze_complete: bool


@dataclass(frozen=True)
class BillCycle:
    code: str
    description: str
    division: str | None
    schedule: tuple[ScheduleEntry, ...]
    status: str
    inactive_from: datetime | None


# -- the cross-reference -------------------------------------------------------------------


def key_params(key: Sequence[str]) -> dict[str, str]:
    """Up to five external key values as the cross-reference's columns ('' when absent)."""
    if not 1 <= len(key) <= len(KEY_COLUMNS):
        raise ValueError(f"an external key has one to five values, not {len(key)}")
    padded = [*key, *[""] * (len(KEY_COLUMNS) - len(key))]
    return dict(zip(KEY_COLUMNS, padded, strict=True))


_PRODUCTION_ID = """SELECT production_id FROM mdm_cross_reference
    WHERE external_system = :system AND mo = :mo AND pk1 = :pk1 AND pk2 = :pk2
      AND pk3 = :pk3 AND pk4 = :pk4 AND pk5 = :pk5"""


def production_id(tx: Transaction, system: str, mo: str, key: Sequence[str]) -> str | None:
    """MDM's production id of the entity the external system knows by ``key``; None: unknown."""
    (found,) = production_ids(tx, system, [(mo, key)])
    return found


def production_ids(
    tx: Transaction, system: str, keys: Sequence[tuple[str, Sequence[str]]]
) -> list[str | None]:
    """``production_id`` of each (MO, key), in order, read together (one round trip)."""
    found = tx.fetch_each(
        [(_PRODUCTION_ID, {"system": system, "mo": mo, **key_params(key)}) for mo, key in keys]
    )
    return [str(rows[0]["production_id"]) if rows else None for rows in found]


def external_key(tx: Transaction, mo: str, production: str) -> tuple[str, str] | None:
    """The (external system, canonical key) an entity was created from; None: MDM's own."""
    row = tx.fetch_one(
        """SELECT external_system, pk1, pk2, pk3, pk4, pk5 FROM mdm_cross_reference
           WHERE mo = :mo AND production_id = :id ORDER BY external_system""",
        {"mo": mo, "id": production},
    )
    if row is None:
        return None
    values = [str(row[column]) for column in KEY_COLUMNS if row[column]]
    return str(row["external_system"]), KEY_SEPARATOR.join(values)


# -- readers -------------------------------------------------------------------------------


class Records:
    """Reads MDM's records by production id; None for an id MDM does not have."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def instant(self, value: Any) -> datetime | None:
        moment = self.store.to_datetime(value)
        if moment is None:
            return None
        moment = moment.astimezone(UTC)
        millis = round(moment.microsecond / 1000) * 1000
        return moment.replace(microsecond=0) + timedelta(microseconds=millis)

    def _required(self, value: Any) -> datetime:
        moment = self.instant(value)
        if moment is None:
            raise ValueError("a required instant is missing")
        return moment

    def _period(self, row: Row) -> Period:
        return Period(self._required(row["start_date_time"]), self.instant(row["end_date_time"]))

    def _one(self, tx: Transaction, table: str, production: str) -> Row | None:
        found = self._with_dependents(tx, table, production)
        return None if found is None else found[0]

    def _with_dependents(
        self, tx: Transaction, table: str, production: str, *dependents: str
    ) -> tuple[Row, list[list[Row]]] | None:
        """An entity's row and the rows of each of ``dependents`` (queries of ``:id``), read
        together in one round trip; None when the entity has no row."""
        key = {"id": production}
        found, *rows = tx.fetch_each(
            [(f"SELECT * FROM {table} WHERE id = :id", key), *((sql, key) for sql in dependents)]
        )
        return (found[0], rows) if found else None

    def contact(self, tx: Transaction, production: str) -> Contact | None:
        row = self._one(tx, "mdm_contact", production)
        if row is None:
            return None
        return Contact(
            production_id=production,
            contact_type=row["contact_type"],
            name=row["name"],
            phone=row["phone"],
            email=row["email"],
            language=row["language"],
            address=_address(row) if row["address1"] is not None else None,
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def service_point(self, tx: Transaction, production: str) -> ServicePoint | None:
        row = self._one(tx, "mdm_service_point", production)
        if row is None:
            return None
        return ServicePoint(
            production_id=production,
            sp_type=row["sp_type"],
            disconnect_location=row["disconnect_location"],
            external_premise_id=row["external_premise_id"],
            address=_address(row),
            time_zone=row["time_zone"],
            measurement_cycle=row["measurement_cycle"],
            route=row["route"],
            route_sequence=int(row["route_sequence"]),
            install_date_time=self._required(row["install_date_time"]),
            abolish_date_time=self.instant(row["abolish_date_time"]),
            externally_managed=bool(row["externally_managed"]),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def usage_subscription(self, tx: Transaction, production: str) -> UsageSubscription | None:
        """The US with its usage groups, SPs and market participants, read together."""
        found = self._with_dependents(
            tx,
            "mdm_usage_subscription",
            production,
            "SELECT * FROM mdm_us_usage_group WHERE us_id = :id ORDER BY seq",
            "SELECT * FROM mdm_us_service_point WHERE us_id = :id ORDER BY seq",
            "SELECT id FROM mdm_us_market_participant WHERE us_id = :id ORDER BY id",
        )
        if found is None:
            return None
        row, (groups, points, participants) = found
        return UsageSubscription(
            production_id=production,
            external_id=row["external_id"],
            external_account_id=row["external_account_id"],
            us_type=row["us_type"],
            division=row["division"],
            period=self._period(row),
            main_contact_id=row["main_contact_id"],
            summary_billed=bool(row["summary_billed"]),
            usage_groups=tuple(UsageGroupPeriod(g["usage_group"], self._period(g)) for g in groups),
            service_points=tuple(ServicePointPeriod(p["sp_id"], self._period(p)) for p in points),
            market_participants=tuple(
                participant
                for p in participants
                if (participant := self.market_participant(tx, str(p["id"]))) is not None
            ),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def market_participant(self, tx: Transaction, production: str) -> MarketParticipant | None:
        row = self._one(tx, "mdm_us_market_participant", production)
        if row is None:
            return None
        return MarketParticipant(
            production_id=production,
            us_id=row["us_id"],
            participant_role=row["participant_role"],
            requires_date_break=bool(row["requires_date_break"]),
            service_provider=row["service_provider"],
            period=self._period(row),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def dynamic_option(self, tx: Transaction, production: str) -> DynamicOption | None:
        row = self._one(tx, "mdm_dynamic_option", production)
        if row is None:
            return None
        links = tx.fetch(
            "SELECT * FROM mdm_dynamic_option_us WHERE option_id = :id ORDER BY seq",
            {"id": production},
        )
        values = tx.fetch(
            "SELECT name, value FROM mdm_dynamic_option_value WHERE option_id = :id ORDER BY seq",
            {"id": production},
        )
        return DynamicOption(
            production_id=production,
            dynamic_option_type=row["dynamic_option_type"],
            period=self._period(row),
            usage_subscriptions=tuple(
                UsageSubscriptionLink(link["us_id"], self._period(link)) for link in links
            ),
            values=tuple((v["name"], v["value"]) for v in values),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def dynamic_option_event(self, tx: Transaction, production: str) -> DynamicOptionEvent | None:
        row = self._one(tx, "mdm_dynamic_option_event", production)
        if row is None:
            return None
        values = tx.fetch(
            """SELECT name, value FROM mdm_dynamic_option_event_value
               WHERE event_id = :id ORDER BY seq""",
            {"id": production},
        )
        return DynamicOptionEvent(
            production_id=production,
            option_id=row["option_id"],
            event_type=row["event_type"],
            period=self._period(row),
            values=tuple((v["name"], v["value"]) for v in values),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def device(self, tx: Transaction, production: str) -> Device | None:
        row = self._one(tx, "mdm_device", production)
        if row is None:
            return None
        retired = row["retire_date"]
        return Device(
            production_id=production,
            device_type=row["device_type"],
            manufacturer=row["manufacturer"],
            model=row["model"],
            badge_number=row["badge_number"],
            serial_number=row["serial_number"],
            retire_date=None if retired is None else date.fromisoformat(retired),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def device_configuration(self, tx: Transaction, production: str) -> DeviceConfiguration | None:
        """The configuration with its measuring components, read together."""
        found = self._with_dependents(
            tx,
            "mdm_device_configuration",
            production,
            """SELECT * FROM mdm_measuring_component WHERE device_configuration_id = :id
               ORDER BY register_id""",
        )
        if found is None:
            return None
        row, (components,) = found
        return DeviceConfiguration(
            production_id=production,
            device_id=row["device_id"],
            device_configuration_type=row["device_configuration_type"],
            period=Period(
                self._required(row["effective_date_time"]), self.instant(row["end_date_time"])
            ),
            measuring_components=tuple(_measuring_component(c) for c in components),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def install_event(self, tx: Transaction, production: str) -> InstallEvent | None:
        """The install event with its installation and removal reads, read together."""
        found = self._with_dependents(
            tx,
            "mdm_install_event",
            production,
            """SELECT * FROM mdm_scalar_measurement WHERE install_event_id = :id
               ORDER BY CASE reason WHEN 'INSTALLATION' THEN 0 ELSE 1 END, mc_id""",
        )
        if found is None:
            return None
        row, (reads,) = found
        return InstallEvent(
            production_id=production,
            sp_id=row["sp_id"],
            device_configuration_id=row["device_configuration_id"],
            period=Period(
                self._required(row["installation_date_time"]),
                self.instant(row["removal_date_time"]),
            ),
            reads=tuple(self.measurement(r) for r in reads),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )

    def meter_read(self, tx: Transaction, meter_read_id: str) -> tuple[ScalarMeasurement, ...]:
        """The IMDs of one CCB meter read (flow 10), discarded ones included."""
        rows = tx.fetch(
            """SELECT * FROM mdm_scalar_measurement WHERE meter_read_id = :id
               ORDER BY external_id""",
            {"id": meter_read_id},
        )
        return tuple(self.measurement(row) for row in rows)

    def measurement(self, row: Row) -> ScalarMeasurement:
        return ScalarMeasurement(
            production_id=row["id"],
            mc_id=row["mc_id"],
            measurement_date_time=self._required(row["measurement_date_time"]),
            reading=Decimal(row["reading"]),
            reading_source=row["reading_source"],
            quality_code=row["quality_code"],
            reason=row["reason"],
            external_id=row["external_id"],
            status=row["status"],
        )

    def bill_cycle(self, tx: Transaction, code: str) -> BillCycle | None:
        row = self._one(tx, "mdm_bill_cycle", code)
        if row is None:
            return None
        entries = tx.fetch(
            """SELECT * FROM mdm_bill_cycle_schedule WHERE bill_cycle_id = :id
               ORDER BY window_start_date""",
            {"id": code},
        )
        return BillCycle(
            code=code,
            description=row["description"],
            division=row["division"],
            schedule=tuple(
                ScheduleEntry(
                    window_start_date=date.fromisoformat(e["window_start_date"]),
                    window_end_date=date.fromisoformat(e["window_end_date"]),
                    accounting_date=date.fromisoformat(e["accounting_date"]),
                    estimate_date=date.fromisoformat(e["estimate_date"]),
                    freeze_complete=bool(e["freeze_complete"]),
                )
                for e in entries
            ),
            status=row["status"],
            inactive_from=self.instant(row["inactive_from"]),
        )


def _address(row: Row) -> Address:
    return Address(
        address1=row["address1"],
        address2=row["address2"],
        address3=row["address3"],
        city=row["city"],
        state=row["state"],
        postal=row["postal"],
        country=row["country"],
    )


def _measuring_component(row: Row) -> MeasuringComponent:
    seconds = row["seconds_per_interval"]
    return MeasuringComponent(
        production_id=row["id"],
        register_id=row["register_id"],
        interval=row["kind"] == "INTERVAL",
        uom=row["uom"],
        tou=row["tou"],
        sqi=row["sqi"],
        read_out_type=row["read_out_type"],
        service_type=row["service_type"],
        number_of_dials=int(row["number_of_dials"]),
        decimal_positions=int(row["decimal_positions"]),
        register_constant=Decimal(row["register_constant"]),
        reading_kind=row["reading_kind"],
        contribution=row["contribution"],
        seconds_per_interval=None if seconds is None else int(seconds),
        status=row["status"],
    )

"""The MDM simulator's own tables, in the runtime's store and versioned apart from it
(``mdm_sim_schema_version``), so the runtime's schema never has to know MDM's master data.

Production ids are MDM's own: text, allocated from ``mdm_key`` (whose identity column is the
sequence) and never a CCB id; ``mdm_cross_reference`` maps each external key to one of them
(docs/flows.md §0.5, PD-C08). Instants are the store's timestamps, so periods compare in SQL; dates
that stay dates are ISO text; quantities are decimal text, so the scale sent is the scale kept.
An entity is never deleted: DELETE inactivates it from ``inactive_from`` (PD-C03), and only the
IMDs of a meter read are discarded (flow 10).
"""

from __future__ import annotations

from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.schema import migrate as migrate_tables

VERSION_TABLE = "mdm_sim_schema_version"

_ADDRESS = """address1 text, address2 text, address3 text, city text, state text,
             postal text, country text"""
_STATUS = "status text NOT NULL CHECK (status IN ('ACTIVE','INACTIVE')), inactive_from {ts}"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # the sequence production ids come from, and the map of external keys onto them
        "CREATE TABLE mdm_key (id {id}, mo text NOT NULL)",
        """CREATE TABLE mdm_cross_reference (
             external_system text NOT NULL, mo text NOT NULL,
             pk1 text NOT NULL, pk2 text NOT NULL DEFAULT '', pk3 text NOT NULL DEFAULT '',
             pk4 text NOT NULL DEFAULT '', pk5 text NOT NULL DEFAULT '',
             production_id text NOT NULL, created_at {ts} NOT NULL,
             PRIMARY KEY (external_system, mo, pk1, pk2, pk3, pk4, pk5))""",
        """CREATE UNIQUE INDEX mdm_cross_reference_production
             ON mdm_cross_reference (mo, production_id, external_system)""",
        # the last entityVersion applied per sync key (PD-C03)
        """CREATE TABLE mdm_applied_version (
             external_system text NOT NULL, mo text NOT NULL, external_key text NOT NULL,
             entity_version bigint NOT NULL, applied_at {ts} NOT NULL,
             PRIMARY KEY (external_system, mo, external_key))""",
        f"""CREATE TABLE mdm_contact (
             id text PRIMARY KEY, contact_type text NOT NULL, name text NOT NULL,
             phone text, email text, language text NOT NULL,
             {_ADDRESS},
             {_STATUS})""",
        f"""CREATE TABLE mdm_service_point (
             id text PRIMARY KEY, sp_type text NOT NULL, disconnect_location text,
             external_premise_id text NOT NULL,
             {_ADDRESS},
             time_zone text NOT NULL, measurement_cycle text NOT NULL, route text NOT NULL,
             route_sequence bigint NOT NULL, install_date_time {{ts}} NOT NULL,
             abolish_date_time {{ts}}, externally_managed boolean NOT NULL,
             {_STATUS})""",
        f"""CREATE TABLE mdm_usage_subscription (
             id text PRIMARY KEY, external_id text NOT NULL, external_account_id text NOT NULL,
             us_type text NOT NULL, division text NOT NULL,
             start_date_time {{ts}} NOT NULL, end_date_time {{ts}},
             main_contact_id text NOT NULL REFERENCES mdm_contact (id),
             summary_billed boolean NOT NULL,
             {_STATUS})""",
        # each usage-group period lasts until the next one starts; the last is open (PD-F24)
        """CREATE TABLE mdm_us_usage_group (
             us_id text NOT NULL REFERENCES mdm_usage_subscription (id), seq integer NOT NULL,
             usage_group text NOT NULL, start_date_time {ts} NOT NULL, end_date_time {ts},
             PRIMARY KEY (us_id, seq))""",
        """CREATE TABLE mdm_us_service_point (
             us_id text NOT NULL REFERENCES mdm_usage_subscription (id), seq integer NOT NULL,
             sp_id text NOT NULL REFERENCES mdm_service_point (id),
             start_date_time {ts} NOT NULL, end_date_time {ts},
             PRIMARY KEY (us_id, seq))""",
        "CREATE INDEX mdm_us_service_point_sp ON mdm_us_service_point (sp_id)",
        # one entry per SA relationship, replaced whole by each message (PD-F25)
        f"""CREATE TABLE mdm_us_market_participant (
             id text PRIMARY KEY, us_id text NOT NULL REFERENCES mdm_usage_subscription (id),
             participant_role text NOT NULL, requires_date_break boolean NOT NULL,
             service_provider text NOT NULL,
             start_date_time {{ts}} NOT NULL, end_date_time {{ts}},
             {_STATUS})""",
        "CREATE INDEX mdm_us_market_participant_us ON mdm_us_market_participant (us_id)",
        f"""CREATE TABLE mdm_dynamic_option (
             id text PRIMARY KEY, dynamic_option_type text NOT NULL,
             start_date_time {{ts}} NOT NULL, end_date_time {{ts}},
             {_STATUS})""",
        """CREATE TABLE mdm_dynamic_option_us (
             option_id text NOT NULL REFERENCES mdm_dynamic_option (id), seq integer NOT NULL,
             us_id text NOT NULL REFERENCES mdm_usage_subscription (id),
             start_date_time {ts} NOT NULL, end_date_time {ts},
             PRIMARY KEY (option_id, seq))""",
        """CREATE TABLE mdm_dynamic_option_value (
             option_id text NOT NULL REFERENCES mdm_dynamic_option (id), seq integer NOT NULL,
             name text NOT NULL, value text NOT NULL, PRIMARY KEY (option_id, seq))""",
        f"""CREATE TABLE mdm_dynamic_option_event (
             id text PRIMARY KEY, option_id text NOT NULL REFERENCES mdm_dynamic_option (id),
             event_type text NOT NULL,
             start_date_time {{ts}} NOT NULL, end_date_time {{ts}} NOT NULL,
             {_STATUS})""",
        """CREATE TABLE mdm_dynamic_option_event_value (
             event_id text NOT NULL REFERENCES mdm_dynamic_option_event (id),
             seq integer NOT NULL, name text NOT NULL, value text NOT NULL,
             PRIMARY KEY (event_id, seq))""",
        f"""CREATE TABLE mdm_device (
             id text PRIMARY KEY, device_type text NOT NULL, manufacturer text NOT NULL,
             model text NOT NULL, badge_number text NOT NULL, serial_number text,
             retire_date text,
             {_STATUS})""",
        # a new configuration's effective date-time ends the device's previous one (PD-F08)
        f"""CREATE TABLE mdm_device_configuration (
             id text PRIMARY KEY, device_id text NOT NULL REFERENCES mdm_device (id),
             device_configuration_type text NOT NULL,
             effective_date_time {{ts}} NOT NULL, end_date_time {{ts}},
             {_STATUS})""",
        "CREATE INDEX mdm_device_configuration_device ON mdm_device_configuration (device_id)",
        # an interval MC exactly when secondsPerInterval is present (PD-F28)
        """CREATE TABLE mdm_measuring_component (
             id text PRIMARY KEY,
             device_configuration_id text NOT NULL REFERENCES mdm_device_configuration (id),
             register_id text NOT NULL, kind text NOT NULL, uom text NOT NULL, tou text,
             sqi text, read_out_type text NOT NULL, service_type text NOT NULL,
             number_of_dials integer NOT NULL, decimal_positions integer NOT NULL,
             register_constant text NOT NULL, reading_kind text NOT NULL,
             contribution text NOT NULL, seconds_per_interval integer,
             status text NOT NULL CHECK (status IN ('ACTIVE','INACTIVE')),
             CHECK (kind IN ('INTERVAL','SCALAR')),
             CHECK ((kind = 'INTERVAL') = (seconds_per_interval IS NOT NULL)))""",
        """CREATE INDEX mdm_measuring_component_configuration
             ON mdm_measuring_component (device_configuration_id)""",
        f"""CREATE TABLE mdm_install_event (
             id text PRIMARY KEY, sp_id text NOT NULL REFERENCES mdm_service_point (id),
             device_configuration_id text NOT NULL REFERENCES mdm_device_configuration (id),
             installation_date_time {{ts}} NOT NULL, removal_date_time {{ts}},
             {_STATUS},
             CHECK (removal_date_time IS NULL OR removal_date_time > installation_date_time))""",
        "CREATE INDEX mdm_install_event_sp ON mdm_install_event (sp_id)",
        # IMDs: a meter read's (flow 10) or an install event's installation and removal reads
        """CREATE TABLE mdm_scalar_measurement (
             id text PRIMARY KEY, mc_id text NOT NULL REFERENCES mdm_measuring_component (id),
             measurement_date_time {ts} NOT NULL, reading text NOT NULL,
             reading_source text NOT NULL, quality_code text NOT NULL, reason text NOT NULL,
             external_id text, meter_read_id text,
             install_event_id text REFERENCES mdm_install_event (id),
             status text NOT NULL,
             CHECK (reason IN ('INSTALLATION','REMOVAL','METER_READ')),
             CHECK (status IN ('ACTIVE','DISCARDED')),
             CHECK ((reason = 'METER_READ') = (meter_read_id IS NOT NULL)),
             CHECK ((reason = 'METER_READ') = (install_event_id IS NULL)))""",
        "CREATE INDEX mdm_scalar_measurement_mc ON mdm_scalar_measurement (mc_id)",
        "CREATE INDEX mdm_scalar_measurement_read ON mdm_scalar_measurement (meter_read_id)",
        """CREATE INDEX mdm_scalar_measurement_event
             ON mdm_scalar_measurement (install_event_id)""",
        # keyed by its code, which both systems share (PD-F19)
        f"""CREATE TABLE mdm_bill_cycle (
             id text PRIMARY KEY, description text NOT NULL, division text,
             {_STATUS})""",
        """CREATE TABLE mdm_bill_cycle_schedule (
             bill_cycle_id text NOT NULL REFERENCES mdm_bill_cycle (id),
             window_start_date text NOT NULL, window_end_date text NOT NULL,
             accounting_date text NOT NULL, estimate_date text NOT NULL,
             freeze_complete boolean NOT NULL,
             PRIMARY KEY (bill_cycle_id, window_start_date))""",
    ),
    # 2: the step claims each flow's open requests in arrival order, the flows in dependency
    # order, from this index: ordering every open request by rank read and sorted them all for
    # each batch (an initial load of n entities: n²/batch rows)
    (
        """CREATE INDEX mdm_sync_request_open_flow ON mdm_sync_request (flow, id)
             WHERE state IN ('PENDING','ERROR_RETRYABLE')""",
    ),
)

# The entity tables, for counts (not the key sequence, the cross-reference or the versions).
ENTITY_TABLES: tuple[str, ...] = (
    "mdm_contact",
    "mdm_service_point",
    "mdm_usage_subscription",
    "mdm_us_usage_group",
    "mdm_us_service_point",
    "mdm_us_market_participant",
    "mdm_dynamic_option",
    "mdm_dynamic_option_us",
    "mdm_dynamic_option_value",
    "mdm_dynamic_option_event",
    "mdm_dynamic_option_event_value",
    "mdm_device",
    "mdm_device_configuration",
    "mdm_measuring_component",
    "mdm_install_event",
    "mdm_scalar_measurement",
    "mdm_bill_cycle",
    "mdm_bill_cycle_schedule",
)


def migrate(store: Store) -> int:
    """Create or upgrade the simulator's tables; returns their version."""
    return migrate_tables(store, MIGRATIONS, VERSION_TABLE)

"""The tables of the MDM simulator's usage side: measurements and usage transactions, in the
runtime's store and versioned apart from the master data (``mdm_usage_schema_version``).

Instants that are compared or looked up exactly (interval ends, a usage period's bounds) are
UTC epoch seconds: exact on both stores, where a timestamp column would be a Julian day on
SQLite. Instants the request sent keep their text with its legal offset, so what MDM answers
carries the offset CCB asked with. Decimals are text: the scale sent is the scale kept. Interval
values are kept one row per MC and UTC day, packed (``interval_days``), the values as bytes
(``interval_amounts``).
"""

from __future__ import annotations

from ccbmdm.runtime.sim.mdm import interval_days
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.schema import Recorded, Step, record_moves
from ccbmdm.runtime.store.schema import migrate as migrate_tables

VERSION_TABLE = "mdm_usage_schema_version"

UT_STATES = (
    "PENDING",
    "CALCULATION_DEFERRED",
    "CALCULATION_IN_PROGRESS",
    "APPROVAL_IN_PROGRESS",
    "SENT",
    "SUBSEQUENT_CORRECTION",
    "ERROR",
    "DISCARDED",
)


def record_usage_transactions(store: Store, tx: Transaction) -> None:
    """A usage transaction's moves, recorded in the runtime's ``transition`` (its history)."""
    record_moves(store, tx, Recorded("mdm_usage_transaction", "usage_transaction"))


def pack_interval_rows(store: Store, tx: Transaction) -> None:
    """The values of ``mdm_interval_value`` (one row per interval) packed into days."""
    interval_days.from_interval_rows(tx, store.dialect, "mdm_interval_value")


def set_aside_text_days(store: Store, tx: Transaction) -> None:
    """Migration 4's day table renamed, its key index too on PostgreSQL (which would otherwise
    name the new table's ``mdm_interval_day_pkey1``)."""
    tx.execute(f"ALTER TABLE {interval_days.TABLE} RENAME TO {interval_days.TEXT_TABLE}")
    if store.dialect == "postgres":
        tx.execute(
            f"ALTER INDEX {interval_days.TABLE}_pkey RENAME TO {interval_days.TEXT_TABLE}_pkey"
        )


def pack_text_days(store: Store, tx: Transaction) -> None:
    """The days of migration 4's table written anew, their values packed as bytes."""
    interval_days.from_text_days(tx, store.dialect, interval_days.TEXT_TABLE)


MIGRATIONS: tuple[tuple[Step, ...], ...] = (
    # 1: measurements
    (
        # one value per interval MC and interval end; quality codes space-separated (PD-D09)
        """CREATE TABLE mdm_interval_value (
             mc_id text NOT NULL, end_at bigint NOT NULL, value text NOT NULL,
             quality_codes text NOT NULL, PRIMARY KEY (mc_id, end_at))""",
        # the version an edit replaced is kept for audit and for the adjustments of flow 17
        """CREATE TABLE mdm_measurement_edit (
             id {id}, mc_id text NOT NULL, kind text NOT NULL, measured_at bigint NOT NULL,
             old_value text, old_quality_codes text, new_value text NOT NULL,
             new_quality_codes text NOT NULL, edited_at {ts} NOT NULL,
             CHECK (kind IN ('INTERVAL','SCALAR')))""",
        "CREATE INDEX mdm_measurement_edit_mc ON mdm_measurement_edit (mc_id, measured_at)",
        # MDM's own measurement cycle data: a default bill cycle other than the MCnn -> Mnn rule,
        # and the scheduled read dates the summary-billing skip looks at (PD-D13, PD-F20)
        """CREATE TABLE mdm_measurement_cycle (
             measurement_cycle text PRIMARY KEY, default_bill_cycle text NOT NULL)""",
        """CREATE TABLE mdm_measurement_cycle_read (
             measurement_cycle text NOT NULL, read_date text NOT NULL,
             PRIMARY KEY (measurement_cycle, read_date))""",
    ),
    # 2: usage transactions (lifecycle.USAGE_TRANSACTION; Calculation is never stored)
    (
        f"""CREATE TABLE mdm_usage_transaction (
             id {{id}}, ut_id text NOT NULL UNIQUE, external_id text NOT NULL,
             flow text NOT NULL, message_id {{uuid}} NOT NULL UNIQUE,
             us_external_id text NOT NULL, previous_usage_id text,
             start_date_time text NOT NULL, end_date_time_from text NOT NULL,
             end_date_time_to text NOT NULL, bill_condition text NOT NULL,
             date_breaks text NOT NULL, bill_cycle text, window_start_date text,
             return_interval_data boolean NOT NULL, automated_retry text NOT NULL,
             state text NOT NULL, reason text, due_at {{ts}}, retry_until {{ts}},
             us_id text, usage_group text, estimate_date_reached boolean,
             period_start bigint, period_end bigint, determinants text,
             response_message_id {{uuid}}, notification_id text,
             used_on_bill boolean NOT NULL DEFAULT FALSE, used_on_bill_at {{ts}},
             superseded boolean NOT NULL DEFAULT FALSE, stale boolean NOT NULL DEFAULT FALSE,
             created_at {{ts}} NOT NULL, sent_at {{ts}},
             CHECK (flow IN ('BATCH_BD','ONLINE_BD')),
             CHECK (automated_retry IN ('D1YS','D1NA')),
             CHECK (state IN ({", ".join(f"'{s}'" for s in UT_STATES)})),
             CHECK (state <> 'PENDING' OR due_at IS NOT NULL),
             CHECK (state NOT IN ('SENT','SUBSEQUENT_CORRECTION') OR determinants IS NOT NULL))""",
        """CREATE INDEX mdm_usage_transaction_due ON mdm_usage_transaction (due_at, id)
             WHERE state IN ('PENDING','ERROR')""",
        "CREATE INDEX mdm_usage_transaction_external ON mdm_usage_transaction (external_id)",
        """CREATE INDEX mdm_usage_transaction_us
             ON mdm_usage_transaction (us_external_id, state)""",
    ),
    # 3: each state a usage transaction enters, with its reason and time (``runtime.history``)
    (record_usage_transactions,),
    # 4: interval values one row per MC and UTC day (``interval_days``), moved from the rows
    # per interval of migration 1, whose table goes; the values' texts joined by spaces
    (
        """CREATE TABLE mdm_interval_day (
             mc_id text NOT NULL, day bigint NOT NULL, ends text NOT NULL, amounts text NOT NULL,
             quality_codes text, PRIMARY KEY (mc_id, day))""",
        pack_interval_rows,
        "DROP TABLE mdm_interval_value",
    ),
    # 5: a day's values packed as bytes (``interval_amounts``) in place of their texts:
    # migration 4's table set aside, made anew, its days moved over, dropped
    (
        set_aside_text_days,
        interval_days.CREATE,
        pack_text_days,
        f"DROP TABLE {interval_days.TEXT_TABLE}",
    ),
)


def migrate(store: Store) -> int:
    """Create or upgrade the usage side's tables; returns their version."""
    return migrate_tables(store, MIGRATIONS, VERSION_TABLE)

"""CCB's own tables in the runtime's store: its master-data records (``ccb_entity``) and its
accounts; billing keeps its tables beside them (``billing.MIGRATIONS``)."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE ccb_entity (
             mo text NOT NULL, pk text NOT NULL, ref text, data {json} NOT NULL,
             PRIMARY KEY (mo, pk))""",
        "CREATE INDEX ccb_entity_ref ON ccb_entity (mo, ref)",
        """CREATE TABLE ccb_account (
             account_id text PRIMARY KEY, person_id text NOT NULL, bill_cycle text NOT NULL,
             bill_cycle_protected boolean NOT NULL DEFAULT FALSE, cis_division text NOT NULL)""",
        "CREATE INDEX ccb_account_bill_cycle ON ccb_account (bill_cycle)",
    ),
    # 2: the records of a foreign key come in key order from the index itself (with (mo, ref)
    # alone, SQLite read every record of the MO in key order rather than sort a few)
    (
        "DROP INDEX ccb_entity_ref",
        "CREATE INDEX ccb_entity_ref ON ccb_entity (mo, ref, pk)",
    ),
)

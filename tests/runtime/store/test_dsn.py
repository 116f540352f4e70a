"""A DSN as people see it: every form of a PostgreSQL password redacted, nothing else changed."""

from __future__ import annotations

import pytest

from ccbmdm.runtime.config import reference_config
from ccbmdm.runtime.store.dsn import is_postgres, redacted, scrubbed
from ccbmdm.runtime.store.postgres import PostgresStore


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
        ("postgres://user:s%40cret@host:5433/db", "postgres://user:***@host:5433/db"),
        ("postgresql://user:se@cret@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user:secret@h1:5432,h2:5433/db?sslmode=require",
            "postgresql://user:***@h1:5432,h2:5433/db?sslmode=require",
        ),
        (
            "postgresql://host/db?user=u&password=secret&sslpassword=key",
            "postgresql://host/db?user=u&password=***&sslpassword=***",
        ),
        ("host=h user=u password=secret dbname=db", "host=h user=u password=*** dbname=db"),
        ("host=h password = 'se cr\\'et' port=5432", "host=h password = *** port=5432"),
        ("dbname=db PASSWORD=secret", "dbname=db PASSWORD=***"),
        # none to hide
        (
            "postgresql://user@host/db?options=-csearch_path%3Ds",
            "postgresql://user@host/db?options=-csearch_path%3Ds",
        ),
        ("host=h dbname=db", "host=h dbname=db"),
        ("/var/lib/ccbmdm/runtime.db", "/var/lib/ccbmdm/runtime.db"),
    ],
)
def test_every_form_of_a_password_is_redacted(dsn: str, shown: str) -> None:
    assert redacted(dsn) == shown


def test_a_password_libpq_reads_elsewhere_is_masked_too() -> None:
    """Both a user-information and a query password: libpq uses the later; both are hidden."""
    assert redacted("postgresql://u:first@h/db?password=second") == (
        "postgresql://u:***@h/db?password=***"
    )


def test_a_driver_message_quoting_the_dsn_is_scrubbed() -> None:
    dsn = "postgresql://user:secret@[::1/db"
    message = f'invalid URI: "{dsn}"; password "secret" refused'
    assert (
        scrubbed(message, dsn)
        == 'invalid URI: "postgresql://user:***@[::1/db"; password "***" refused'
    )
    assert scrubbed("no such file", "/tmp/runtime.db") == "no such file"


def test_postgres_dsns_are_told_from_sqlite_paths() -> None:
    assert is_postgres("postgresql://h/db") and is_postgres("POSTGRES://h/db")
    assert is_postgres("host=h dbname=db") and is_postgres("dbname=db host=h")
    assert not is_postgres("target/runtime.db") and not is_postgres("sqlite:///x.db")


def test_reprs_never_show_the_password() -> None:
    dsn = "postgresql://user:secret@host/db"
    store = PostgresStore.__new__(PostgresStore)  # not connected: only its repr is read
    store.dsn = dsn
    assert repr(store) == "<PostgresStore postgresql://user:***@host/db>"
    config = reference_config(dsn)
    assert "secret" not in repr(config) and "secret" not in str(config)
    assert config.store == dsn  # what the runtime connects with is left whole

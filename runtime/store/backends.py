"""The choice of backend: a DSN names PostgreSQL or a SQLite file; the interface (``base``)
knows neither."""

from __future__ import annotations

from ccbmdm.runtime.store.base import Store, StoreError
from ccbmdm.runtime.store.dsn import is_postgres


def open_store(dsn: str, *, clock_offset_s: float = 0.0) -> Store:
    """A store from a DSN: ``postgresql://…`` for PostgreSQL, anything else a SQLite file path.
    ``clock_offset_s`` moves a SQLite store's clock (a conformance case's frozen start)."""
    if is_postgres(dsn):
        if clock_offset_s:
            raise StoreError("only a SQLite store's clock can be moved")
        from ccbmdm.runtime.store.postgres import PostgresStore

        return PostgresStore(dsn)
    from ccbmdm.runtime.store.sqlite import SqliteStore

    return SqliteStore(dsn.removeprefix("sqlite:///"), clock_offset_s=clock_offset_s)

"""PostgreSQL backend (psycopg 3): ``READ COMMITTED``, claims with ``FOR UPDATE SKIP LOCKED``,
the durability settings checked when the store opens."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ccbmdm.runtime.store.base import Row, Store, StoreError, Transaction, named_to

_REQUIRED_ON = ("fsync", "synchronous_commit", "full_page_writes")


class PostgresTransaction(Transaction):
    now = "now()"

    def __init__(self, connection: psycopg.Connection[dict[str, Any]], budget_s: float) -> None:
        super().__init__(budget_s)
        self.connection = connection

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        cursor = self.connection.execute(named_to("pyformat", sql), dict(params or {}))
        return cursor.rowcount

    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        if not params:
            return 0
        with self.connection.cursor() as cursor:
            cursor.executemany(named_to("pyformat", sql), [dict(p) for p in params])
            return max(cursor.rowcount, 0)

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cursor = self.connection.execute(named_to("pyformat", sql), dict(params or {}))
        return list(cursor.fetchall())

    def _savepoint(self) -> AbstractContextManager[Any]:
        return self.connection.transaction()


class PostgresStore(Store):
    dialect = "postgres"
    now = "now()"
    now_plus = "(now() + make_interval(secs => :seconds))"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = threading.local()
        with self.transaction() as tx:
            settings = {
                row["name"]: row["setting"]
                for row in tx.fetch(
                    "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')"
                )
            }
        off = [name for name in _REQUIRED_ON if settings.get(name) != "on"]
        if off:
            raise StoreError(
                f"PostgreSQL at {dsn} runs with {', '.join(off)} off; the runtime promises durability "
                "only with fsync, synchronous_commit and full_page_writes on"
            )

    def connection(self) -> psycopg.Connection[dict[str, Any]]:
        connection: psycopg.Connection[dict[str, Any]] | None = getattr(
            self._local, "connection", None
        )
        if connection is None or connection.closed or connection.broken:
            try:
                connection = psycopg.connect(self.dsn, row_factory=dict_row, autocommit=True)
            except psycopg.OperationalError as exc:
                raise StoreError(
                    f"cannot connect to PostgreSQL at {self.dsn}: {exc}".strip()
                ) from None
            self._local.connection = connection
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        connection = self.connection()
        asked = begun = time.perf_counter()
        committed = False
        try:
            with connection.transaction():
                begun = time.perf_counter()
                tx = PostgresTransaction(connection, self.write_budget_s)
                yield tx
                tx.flush_later()
            committed = True
        finally:
            self.written(asked, begun, committed=committed)

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def to_datetime(self, value: Any) -> datetime | None:
        return value if value is None or isinstance(value, datetime) else None

    def json_value(self, value: Any) -> Any:
        return value

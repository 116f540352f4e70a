"""PostgreSQL backend (psycopg 3): ``READ COMMITTED``, claims with ``FOR UPDATE SKIP LOCKED``,
the durability settings checked when the store opens."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ccbmdm.runtime.store.base import (
    Row,
    Store,
    StoreError,
    StoreUnavailable,
    Transaction,
    named_to,
)
from ccbmdm.runtime.store.dsn import redacted, scrubbed

log = logging.getLogger("ccbmdm.store")

_REQUIRED_ON = ("fsync", "synchronous_commit", "full_page_writes")


class PostgresTransaction(Transaction):
    now = "now()"

    def __init__(self, connection: psycopg.Connection[dict[str, Any]], where: str) -> None:
        super().__init__()
        self.connection = connection
        self.where = where

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        try:
            cursor = self.connection.execute(named_to("pyformat", sql), dict(params or {}))
        except psycopg.Error as exc:
            raise_if_lost(self.connection, self.where, exc)
            raise
        return cursor.rowcount

    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        if not params:
            return 0
        try:
            with self.connection.cursor() as cursor:
                cursor.executemany(named_to("pyformat", sql), [dict(p) for p in params])
                return max(cursor.rowcount, 0)
        except psycopg.Error as exc:
            raise_if_lost(self.connection, self.where, exc)
            raise

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            cursor = self.connection.execute(named_to("pyformat", sql), dict(params or {}))
            return list(cursor.fetchall())
        except psycopg.Error as exc:
            raise_if_lost(self.connection, self.where, exc)
            raise

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        try:
            with self.connection.transaction():
                yield
        except psycopg.Error as exc:
            raise_if_lost(self.connection, self.where, exc)
            raise


def raise_if_lost(
    connection: psycopg.Connection[dict[str, Any]], where: str, exc: psycopg.Error
) -> None:
    """A failure that cost the connection (the server restarting, the backend terminated, the
    network gone) as ``StoreUnavailable``: nothing of the transaction was committed, and the
    store connects again for the next one. Any other failure is left as it is."""
    if connection.broken:
        reason = " ".join(str(exc).split())
        raise StoreUnavailable(f"lost the connection to {where} ({reason})", where) from exc


class PostgresStore(Store):
    dialect = "postgres"
    now = "now()"
    now_plus = "(now() + make_interval(secs => :seconds))"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.where = f"PostgreSQL at {redacted(dsn)}"
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
                f"{self.where} runs with {', '.join(off)} off; the runtime promises durability "
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
                raise StoreUnavailable(
                    f"cannot connect to {self.where} ({self._reason(exc)}); check that the "
                    "server runs there, and the DSN's host, port, user and password",
                    self.where,
                ) from None
            except psycopg.Error as exc:  # a DSN libpq cannot read
                raise StoreError(
                    f"{redacted(self.dsn)} is not a PostgreSQL DSN libpq can read: "
                    f"{self._reason(exc)}; write it as postgresql://user:password@host:port/db "
                    "(or host=… dbname=… user=…)"
                ) from None
            self._local.connection = connection
        return connection

    def _reason(self, exc: psycopg.Error) -> str:
        """The driver's message on one line, without the DSN's password (libpq quotes a DSN
        it cannot parse)."""
        return scrubbed(" ".join(str(exc).split()), self.dsn)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        block = ExitStack()
        connection, begun = self._begin(block)
        try:
            with block:
                tx = PostgresTransaction(connection, self.where)
                yield tx
                tx.flush_later()
        except psycopg.Error as exc:
            raise_if_lost(connection, self.where, exc)
            raise
        if begun.status is not begun.Status.COMMITTED:
            # psycopg leaves the block without a word when the connection is already gone
            raise StoreUnavailable(
                f"lost the connection to {self.where} before the commit", self.where
            )

    def _begin(
        self, block: ExitStack
    ) -> tuple[psycopg.Connection[dict[str, Any]], psycopg.Transaction]:
        """BEGIN on this thread's connection, its end left to ``block``. A connection lost while
        it was idle (the server restarted, the backend terminated between two transactions) is
        replaced once: nothing of the transaction had been sent, so it goes on, with one
        warning. A replacement refused raises ``StoreUnavailable``."""
        connection = self.connection()
        try:
            return connection, block.enter_context(connection.transaction())
        except psycopg.Error as exc:
            if not connection.broken:
                raise
            lost = self._reason(exc)
        connection = self.connection()
        try:
            begun = block.enter_context(connection.transaction())
        except psycopg.Error as exc:
            raise_if_lost(connection, self.where, exc)
            raise
        log.warning(
            "lost the connection to %s while it was idle (%s); reconnected", self.where, lost
        )
        return connection, begun

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def to_datetime(self, value: Any) -> datetime | None:
        return value if value is None or isinstance(value, datetime) else None

    def json_value(self, value: Any) -> Any:
        return value

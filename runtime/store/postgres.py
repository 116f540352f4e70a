"""PostgreSQL backend (psycopg 3): ``READ COMMITTED``, claims with ``FOR UPDATE SKIP LOCKED``,
the durability settings checked when the store opens."""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
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
    unnested,
)
from ccbmdm.runtime.store.dsn import redacted, scrubbed
from ccbmdm.runtime.store.schema import migrate

log = logging.getLogger("ccbmdm.store")

_REQUIRED_ON = ("fsync", "synchronous_commit", "full_page_writes")
# The server ends the session: admin_shutdown, crash_shutdown, cannot_connect_now,
# idle_session_timeout, idle_in_transaction_session_timeout (class 08 is the connection's own)
_SESSION_ENDED = ("57P01", "57P02", "57P03", "57P05", "25P03")


@functools.lru_cache(maxsize=64)
def _update_over(table: str, assignments: str, names: tuple[str, ...], condition: str) -> str:
    """``update_rows``'s statement over ``{relation}``: the same few statements are made once a
    batch, so each is written once. The rows' values, ``:name`` in the assignments, are the
    relation's columns here."""
    values = re.compile(r"(?<![:\w]):(" + "|".join(map(re.escape, names)) + r")\b")
    assigned = values.sub(r"v.\1", assignments)
    where = f"{table}.id = v.id AND {condition}" if condition else f"{table}.id = v.id"
    return f"UPDATE {table} SET {assigned} FROM {{relation}} WHERE {where}"


class PostgresTransaction(Transaction):
    dialect = "postgres"
    now = "now()"

    def __init__(
        self, connection: psycopg.Connection[dict[str, Any]], where: str, budget_s: float
    ) -> None:
        super().__init__(budget_s)
        self.connection = connection
        self.where = where

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        try:
            cursor = self.connection.execute(named_to("pyformat", sql), dict(params or {}))
        except psycopg.Error as exc:
            if lost(self.connection, exc):
                raise unavailable(self.where, exc) from exc
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
            if lost(self.connection, exc):
                raise unavailable(self.where, exc) from exc
            raise

    def update_rows(
        self,
        table: str,
        assignments: str,
        rows: Sequence[Mapping[str, Any]],
        types: Mapping[str, str],
        condition: str = "",
    ) -> int:
        if not rows:
            return 0
        relation, params = unnested(rows, {"id": "bigint", **types})
        statement = _update_over(table, assignments, tuple(types), condition)
        return self.execute(statement.replace("{relation}", relation), params)

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        try:
            cursor = self.connection.execute(named_to("pyformat", sql), dict(params or {}))
            return list(cursor.fetchall())
        except psycopg.Error as exc:
            if lost(self.connection, exc):
                raise unavailable(self.where, exc) from exc
            raise

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        try:
            with self.connection.transaction():
                yield
        except psycopg.Error as exc:
            if lost(self.connection, exc):
                raise unavailable(self.where, exc) from exc
            raise


def lost(connection: psycopg.Connection[dict[str, Any]], exc: psycopg.Error) -> bool:
    """Whether a failure cost the connection (the server restarting, the backend terminated, the
    network gone): nothing of its transaction was committed. Such a connection is closed, so
    that the next transaction connects anew. libpq may hand over the server's last words
    (57P01 and the like) before it sees the socket close: those count as lost too."""
    sqlstate = exc.sqlstate or ""
    if connection.broken or sqlstate in _SESSION_ENDED or sqlstate.startswith("08"):
        connection.close()
        return True
    return False


def unavailable(where: str, exc: psycopg.Error) -> StoreUnavailable:
    return StoreUnavailable(f"lost the connection to {where} ({one_line(exc)})", where)


def one_line(exc: psycopg.Error) -> str:
    """The driver's message on one line (libpq's span several)."""
    return " ".join(str(exc).split())


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
                    f"cannot connect to {self.where} ({self.described(exc)}); check that the "
                    "server runs there, and the DSN's host, port, user and password",
                    self.where,
                ) from None
            except psycopg.Error as exc:  # a DSN libpq cannot read
                raise StoreError(
                    f"{redacted(self.dsn)} is not a PostgreSQL DSN libpq can read: "
                    f"{self.described(exc)}; write it as postgresql://user:password@host:port/db "
                    "(or host=… dbname=… user=…)"
                ) from None
            self._local.connection = connection
        return connection

    def described(self, exc: psycopg.Error) -> str:
        """The driver's message on one line, without the DSN's password (libpq quotes a DSN
        it cannot parse)."""
        return scrubbed(one_line(exc), self.dsn)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        shared = self.shared()
        if shared is not None:  # inside ``sharing(tx)``
            yield shared
            return
        asked = began = time.perf_counter()
        committed = False
        block = ExitStack()
        try:
            connection, begun = self._begin(block)
            began = time.perf_counter()
            try:
                with block:
                    tx = PostgresTransaction(connection, self.where, self.write_budget_s)
                    yield tx
                    tx.flush_later()
            except psycopg.Error as exc:
                if lost(connection, exc):
                    raise unavailable(self.where, exc) from exc
                raise
            if begun.status is not begun.Status.COMMITTED:
                # psycopg leaves the block without a word when the connection is already gone
                raise StoreUnavailable(
                    f"lost the connection to {self.where} before the commit", self.where
                )
            committed = True
        finally:
            self.written(asked, began, committed=committed)
        tx.committed()

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
            if not lost(connection, exc):
                raise
            reason = one_line(exc)
        connection = self.connection()
        try:
            begun = block.enter_context(connection.transaction())
        except psycopg.Error as exc:
            if lost(connection, exc):
                raise unavailable(self.where, exc) from exc
            raise
        log.warning(
            "lost the connection to %s while it was idle (%s); reconnected", self.where, reason
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

    def migrate(self) -> int:
        return migrate(self)

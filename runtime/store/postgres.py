"""PostgreSQL backend (psycopg 3): ``READ COMMITTED``, claims with ``FOR UPDATE SKIP LOCKED``,
the durability settings checked when the store opens."""

from __future__ import annotations

import functools
import logging
import re
import select
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NamedTuple

import psycopg
from psycopg.rows import dict_row

from ccbmdm.runtime.store.base import (
    Row,
    Store,
    StoreError,
    StoreUnavailable,
    Transaction,
    named_to,
    on_the_row,
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
    where = f"{table}.id = v.id AND {on_the_row(condition)}" if condition else f"{table}.id = v.id"
    return f"UPDATE {table} SET {assigned} FROM {{relation}} WHERE {where}"


class _Unsent(NamedTuple):
    """A statement waiting to go to the server with the next one that waits for it."""

    sql: str
    params: Mapping[str, Any] | None
    counted: Callable[[int], None] | None  # told the rows it changed, once they are known
    control: bool  # BEGIN, a savepoint's: a statement that changes no row
    read: Callable[[list[Row]], None] | None = None  # told the rows a query found (fetch_each)


_BEGIN = _Unsent("BEGIN", None, None, True)
Cursor = psycopg.Cursor[dict[str, Any]]
Connection = psycopg.Connection[dict[str, Any]]


class PostgresTransaction(Transaction):
    """A transaction that waits for the server only for what its caller reads, a statement's
    rows or count (``fetch``, ``execute``), and for the commit. Everything else (BEGIN,
    savepoints, the statements ``send`` is given) goes with the next statement that waits, in
    one round trip (psycopg's pipeline mode): a worker on PostgreSQL spends most of its time
    waiting for round trips. A transaction that never waits sends nothing at all."""

    dialect = "postgres"
    now = "now()"

    def __init__(self, store: PostgresStore, budget_s: float) -> None:
        super().__init__(budget_s)
        self.store = store
        self.where = store.where
        self.connection = store.connection()
        self.round_trips = 0  # how many times the transaction has waited for the server
        self._unsent: list[_Unsent] = [_BEGIN]
        self._depth = 0  # of the savepoints open
        self._failures = 0  # statements the server refused (the transaction then fails)
        if spoke_while_idle(self.connection):
            # most likely its last words before it ended the session: BEGIN alone finds out,
            # and hears them (a pipeline would only hear the connection close)
            self._unsent = []
            self._waited("BEGIN", None, control=True)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        return self._waited(named_to("pyformat", sql), params).rowcount

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        return list(self._waited(named_to("pyformat", sql), params).fetchall())

    def fetch_each(
        self, queries: Sequence[tuple[str, Mapping[str, Any] | None]]
    ) -> list[list[Row]]:
        if not queries:
            return []
        found: list[list[Row]] = []
        *first, (sql, params) = queries
        for query, values in first:
            self._unsent.append(
                _Unsent(named_to("pyformat", query), values, None, False, found.append)
            )
        last = self.fetch(sql, params)  # the round trip that fills ``found``
        return [*found, last]

    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        if not params:
            return 0
        statement, rows = named_to("pyformat", sql), [dict(p) for p in params]

        def run(connection: Connection) -> Cursor:
            cursor = connection.cursor()
            cursor.executemany(statement, rows)
            return cursor

        return max(self._round_trip(run).rowcount, 0)

    def send(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        counted: Callable[[int], None] | None = None,
    ) -> None:
        self._unsent.append(_Unsent(named_to("pyformat", sql), params, counted, False))

    def update_rows(
        self,
        table: str,
        assignments: str,
        rows: Sequence[Mapping[str, Any]],
        types: Mapping[str, str],
        condition: str = "",
    ) -> None:
        if rows:
            relation, params = unnested(rows, {"id": "bigint", **types})
            statement = _update_over(table, assignments, tuple(types), condition)
            self.send(statement.replace("{relation}", relation), params)

    def _waited(self, sql: str, params: Mapping[str, Any] | None, control: bool = False) -> Cursor:
        values = dict(params or {})
        return self._round_trip(
            lambda c: c.execute(sql, values, prepare=False if control else None)
        )

    def _round_trip(self, run: Callable[[Connection], Cursor]) -> Cursor:
        """``run``'s statement in one round trip with the statements not yet sent, whose
        ``counted`` hear their counts after it. The first round trip of a transaction, on a
        connection lost while it was idle, is made again once on a new one: nothing of the
        transaction had reached the server."""
        unsent, self._unsent = self._unsent, []
        first = self.round_trips == 0
        self.round_trips += 1
        try:
            cursor, cursors = self._sent(unsent, run)
        except psycopg.Error as exc:
            if not lost(self.connection, exc):
                self._failures += 1
                raise
            if not first:
                raise unavailable(self.where, exc) from exc
            self.connection = self.store.reconnected(exc)
            try:
                cursor, cursors = self._sent(unsent, run)
            except psycopg.Error as again:
                if lost(self.connection, again):
                    raise unavailable(self.where, again) from again
                self._failures += 1
                raise
        for statement, sent in zip(unsent, cursors, strict=True):
            if statement.counted is not None:
                statement.counted(max(sent.rowcount, 0))
            if statement.read is not None:
                statement.read(list(sent.fetchall()))
        return cursor

    def _sent(
        self, unsent: list[_Unsent], run: Callable[[Connection], Cursor]
    ) -> tuple[Cursor, list[Cursor]]:
        connection = self.connection
        if not unsent:
            return run(connection), []
        with connection.pipeline():
            cursors = [
                connection.execute(s.sql, s.params, prepare=False if s.control else None)
                for s in unsent
            ]
            cursor = run(connection)
        return cursor, cursors

    def commit(self) -> None:
        """COMMIT with the statements not yet sent; nothing when only BEGIN and empty
        savepoints would go."""
        if self.round_trips == 0 and all(statement.control for statement in self._unsent):
            self._unsent = []
            return
        if self.connection.closed or self.connection.broken:
            # whatever the code inside made of the failure, nothing was committed
            raise StoreUnavailable(
                f"lost the connection to {self.where} before the commit", self.where
            )
        if self._waited("COMMIT", None, control=True).statusmessage != "COMMIT":
            raise StoreError(
                f"{self.where} rolled the transaction back instead of committing it: a "
                "statement in it failed, and the failure was caught without a savepoint"
            )

    def rollback(self) -> None:
        """ROLLBACK, when anything of the transaction reached the server. A connection that
        cannot roll back is closed: the next transaction connects anew."""
        self._unsent = []
        if not self.round_trips or self.connection.closed or self.connection.broken:
            return
        self.round_trips += 1
        try:
            self.connection.execute("ROLLBACK", prepare=False)
        except psycopg.Error:
            self.connection.close()

    @contextmanager
    def _savepoint(self, waited: bool) -> Iterator[None]:
        """SAVEPOINT, RELEASE and ROLLBACK TO go with the next statement that waits, and a
        savepoint inside which nothing went to the server costs nothing. A statement sent
        inside it (``send``) is waited for at its end, so that a failure of it is the
        savepoint's, unless not ``waited``."""
        self._depth += 1
        name = f"sp{self._depth}"
        at, trips, failures = len(self._unsent), self.round_trips, self._failures
        self._unsent.append(_Unsent(f"SAVEPOINT {name}", None, None, True))
        try:
            yield
            if self.round_trips == trips and len(self._unsent) == at + 1:
                del self._unsent[at]  # nothing went on inside
            elif self._failures != failures or (
                waited and not all(s.control for s in self._unsent)
            ):
                self._waited(f"RELEASE {name}", None, control=True)
            else:
                self._unsent.append(_Unsent(f"RELEASE {name}", None, None, True))
        except BaseException:
            if not self.connection.closed:
                if self.round_trips == trips:  # the SAVEPOINT has not left: drop it, and all after
                    del self._unsent[at:]
                else:  # what is unsent was given inside: dropped, and the rest rolled back
                    self._unsent = [
                        _Unsent(f"ROLLBACK TO {name}", None, None, True),
                        _Unsent(f"RELEASE {name}", None, None, True),
                    ]
            raise
        finally:
            self._depth -= 1


def spoke_while_idle(connection: Connection) -> bool:
    """Whether the server has written to a connection between two transactions (nothing
    should come then but its last words, or a notice)."""
    return bool(select.select([connection.fileno()], [], [], 0)[0])


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
        if not psycopg.Pipeline.is_supported():  # libpq before 14 (a system one, not the wheel's)
            raise StoreError(
                f"psycopg runs on libpq {psycopg.pq.version() // 10000}, without pipeline mode, which "
                "the PostgreSQL store needs: install psycopg[binary], or libpq 14 or later"
            )
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
                # Compiling a plan to machine code pays off for long analytic queries only; the
                # runtime's short statements paid 35 ms for it whenever a plan's estimate was
                # large (an index read of a table whose statistics predate a bulk load).
                connection.execute("SET jit = off")
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
        tx: PostgresTransaction | None = None
        try:
            tx = PostgresTransaction(self, self.write_budget_s)
            began = time.perf_counter()
            try:
                yield tx
                tx.flush_later()
                tx.commit()  # a sent statement failing there leaves the transaction open
            except BaseException as exc:
                tx.rollback()
                if isinstance(exc, psycopg.Error) and lost(tx.connection, exc):
                    raise unavailable(self.where, exc) from exc
                raise
            committed = True
        finally:
            trips = 0 if tx is None else tx.round_trips
            self.written(asked, began, committed=committed, round_trips=trips)
        tx.committed()

    def reconnected(self, exc: psycopg.Error) -> Connection:
        """A new connection in place of one lost while it was idle (the server restarted,
        the backend terminated between two transactions), with one warning; a replacement
        refused raises ``StoreUnavailable``."""
        connection = self.connection()
        log.warning(
            "lost the connection to %s while it was idle (%s); reconnected",
            self.where,
            one_line(exc),
        )
        return connection

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

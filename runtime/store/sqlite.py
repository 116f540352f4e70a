"""SQLite backend: one file, WAL, ``synchronous=FULL``, ``BEGIN IMMEDIATE`` for every write.

Connections use ``isolation_level=None`` so that nothing begins a transaction implicitly: a
deferred transaction that reads then writes gets SQLITE_BUSY at once, whatever the timeout
(docs/reliability.md §2.3).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ccbmdm.runtime.store.base import Row, Store, StoreError, Transaction, in_background, rows
from ccbmdm.runtime.store.gate import WriterGate
from ccbmdm.runtime.store.schema import migrate

_JULIAN_UNIX_EPOCH = 2440587.5
# ``column [NOT] IN ('a', 'b', 'c')``: a list of three or more string constants
_CONSTANT_LIST = re.compile(
    r"(?<![\w.'\"])(?P<column>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\s+(?P<negated>NOT\s+)?IN\s*"
    r"\(\s*(?P<items>'[^']*'(?:\s*,\s*'[^']*'){2,})\s*\)"
)
_NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs"}


class SqliteTransaction(Transaction):
    dialect = "sqlite"
    now = "julianday('now')"

    def __init__(self, connection: sqlite3.Connection, budget_s: float) -> None:
        super().__init__(budget_s)
        self.connection = connection
        self._depth = 0

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        return self.connection.execute(spelled_out(sql), params or {}).rowcount

    def instant(self, value: datetime | None) -> Any:
        """SQLite keeps timestamps as Julian days (REAL), on the database clock's scale."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a timestamp needs a UTC offset: {value.isoformat()}")
        return value.timestamp() / 86400.0 + _JULIAN_UNIX_EPOCH

    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        return self.connection.executemany(spelled_out(sql), params).rowcount

    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        cursor = self.connection.execute(spelled_out(sql), params or {})
        columns = [d[0] for d in cursor.description or ()]
        return rows(columns, iter(cursor.fetchall()))

    def _savepoint(self, waited: bool) -> _Savepoint:
        return _Savepoint(self)  # each statement runs at once: nothing is left to wait for


class _Savepoint:
    """A savepoint named by its depth, not numbered: the same few statements each time stay in
    the connection's statement cache instead of pushing the others out of it (a batch whose item
    failed opens one per item)."""

    __slots__ = ("name", "transaction")

    def __init__(self, transaction: SqliteTransaction) -> None:
        self.transaction = transaction
        self.name = ""

    def __enter__(self) -> None:
        self.transaction._depth += 1
        self.name = f"sp{self.transaction._depth}"
        self.transaction.connection.execute(f"SAVEPOINT {self.name}")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.transaction._depth -= 1
        connection = self.transaction.connection
        if kind is not None:
            connection.execute(f"ROLLBACK TO {self.name}")
        connection.execute(f"RELEASE {self.name}")


class SqliteStore(Store):
    dialect = "sqlite"
    now = "julianday('now')"
    now_plus = "(julianday('now') + :seconds / 86400.0)"

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        clock_offset_s: float = 0.0,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise StoreError(f"synchronous must be FULL (default) or NORMAL, not {synchronous!r}")
        self.path = path
        self.dsn = path
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        refuse_network_filesystem(Path(path))
        self._local = threading.local()
        self.gate = WriterGate(path)
        if clock_offset_s:
            # A clock that started elsewhere and runs on (a conformance case's): every
            # deadline, lease and retry is computed on it, as on the real one.
            days = clock_offset_s / 86400.0
            self.now = f"(julianday('now') + {days!r})"
            self.now_plus = f"({self.now} + :seconds / 86400.0)"

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections stay in the thread that made them)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None or getattr(self._local, "pid", None) != os.getpid():
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA synchronous={self.synchronous}")
            connection.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            connection.execute("PRAGMA foreign_keys=ON")
            # A checkpoint every 16 MB of WAL instead of 4 MB: the pages every commit rewrites
            # (the outbox's and inbox's index pages) are copied back to the database less often.
            connection.execute("PRAGMA wal_autocheckpoint=4000")
            # 32 MiB of page cache rather than 2: a batch of a few hundred messages dirties more
            # pages than 2 MiB holds, and SQLite would spill them into the WAL mid-transaction
            # and read the indexes it just left again.
            connection.execute("PRAGMA cache_size=-32768")
            connection.execute("PRAGMA temp_store=MEMORY")
            self._local.connection, self._local.pid = connection, os.getpid()
        return connection

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``BEGIN IMMEDIATE``: the write lock from the start. A worker's transaction first
        passes the writer gate; any other holds it until its end (``gate``). Inside
        ``sharing(tx)``, ``tx``."""
        shared = self.shared()
        if shared is not None:
            yield shared
        elif in_background():
            self.gate.pass_through(self.busy_timeout_ms / 1000)
            with self._write() as tx:
                yield tx
        else:
            with self.gate.foreground(), self._write() as tx:
                yield tx

    @contextmanager
    def _write(self) -> Iterator[Transaction]:
        connection = self.connection()
        asked = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        begun = time.perf_counter()
        try:
            tx = SqliteTransaction(connection, self.write_budget_s)
            tx.now = self.now
            yield tx
            tx.flush_later()
        except BaseException:
            connection.execute("ROLLBACK")
            self.written(asked, begun, committed=False)
            raise
        connection.execute("COMMIT")
        self.written(asked, begun, committed=True)
        tx.committed()

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
        self.gate.close()

    def to_datetime(self, value: Any) -> datetime | None:
        if value is None:
            return None
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=float(value) - _JULIAN_UNIX_EPOCH)

    def json_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)

    def migrate(self) -> int:
        return migrate(self)

    def spell_out_schema(self, tx: Transaction) -> None:
        spell_out_stored_schema(tx)


@functools.lru_cache(maxsize=1024)
def spelled_out(sql: str) -> str:
    """``x IN ('a', 'b', 'c')`` written as ``(x = 'a' OR x = 'b' OR x = 'c')`` (and ``NOT IN`` as
    ANDs of ``<>``): the same meaning, NULL included, but SQLite builds a temporary table for a
    list of more than two constants each time a statement runs, and a state list sits in
    nearly every write (the CHECK of a state column, a partial index's condition). DDL goes
    through here too, so that a partial index's condition reads as the queries that use it."""

    def spell(match: re.Match[str]) -> str:
        column, items = match["column"], re.findall(r"'[^']*'", match["items"])
        if match["negated"]:
            return "(" + " AND ".join(f"{column} <> {item}" for item in items) + ")"
        return "(" + " OR ".join(f"{column} = {item}" for item in items) + ")"

    return _CONSTANT_LIST.sub(spell, sql)


def spell_out_stored_schema(tx: Transaction) -> None:
    """Rewrite the stored definitions of the database's tables and indexes as ``spelled_out``
    writes them (a database made before it did): the same meaning and the same stored rows, so
    the definitions are edited in place, as sqlite.org/lang_altertable.html shows for CHECK
    constraints, instead of rebuilding every table."""
    assert isinstance(tx, SqliteTransaction)
    connection = tx.connection
    changed = [
        (spelled_out(sql), kind, name)
        for kind, name, sql in connection.execute(
            "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL"
        ).fetchall()
        if spelled_out(sql) != sql
    ]
    if not changed:
        return
    (version,) = connection.execute("PRAGMA schema_version").fetchone()
    connection.execute("PRAGMA writable_schema=ON")
    try:
        connection.executemany(
            "UPDATE sqlite_schema SET sql = ? WHERE type = ? AND name = ?", changed
        )
        connection.execute(f"PRAGMA schema_version={int(version) + 1}")
    finally:
        connection.execute("PRAGMA writable_schema=OFF")
    problems = [row[0] for row in connection.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise StoreError(f"the schema's definitions could not be rewritten: {problems[:5]}")


def refuse_network_filesystem(path: Path, mounts_file: Path = Path("/proc/mounts")) -> None:
    """WAL needs shared memory on one host: a database on a network filesystem is refused."""
    folder = path.parent.resolve()
    try:
        mounts = mounts_file.read_text().splitlines()
    except OSError:
        return
    best, kind = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and str(folder).startswith(parts[1]) and len(parts[1]) > len(best):
            best, kind = parts[1], parts[2]
    if kind in _NETWORK_FILESYSTEMS:
        raise StoreError(
            f"{path} is on a {kind} network filesystem; SQLite's WAL needs a local disk. "
            "Put the database on a local disk, or use PostgreSQL (--pg DSN)"
        )

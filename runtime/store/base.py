"""The store interface both backends implement."""

from __future__ import annotations

import functools
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime import logs
from ccbmdm.runtime.store.dsn import redacted

T = TypeVar("T")
Row = Mapping[str, Any]
# Writes the rows queued with Transaction.later, all of a transaction's at once
Flush = Callable[["Transaction", list[Any]], None]
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")
_OF_ROWS = "_of_rows"  # the ending of a parameter that is a batch's column (``unnested``)
_FLOATS = frozenset({"float8", "float4", "double precision", "real"})
_BACKGROUND: ContextVar[bool] = ContextVar("background", default=False)
# The transaction a store's ``transaction()`` hands out again, as it is, on this thread
# (``Store.sharing``): (the store, its transaction)
_SHARED: ContextVar[tuple[Store, Transaction] | None] = ContextVar("shared", default=None)
# How long a background write transaction goes on taking items (``Transaction.budgeted``): on
# SQLite, what a source system's save may have to wait for behind each worker.
WRITE_BUDGET_S = 0.25


@contextmanager
def background() -> Iterator[None]:
    """The integration's own work (a worker's round): on a store with one writer at a time,
    its write transactions give way to the others, the source system's saves first."""
    token = _BACKGROUND.set(True)
    try:
        yield
    finally:
        _BACKGROUND.reset(token)


def in_background() -> bool:
    """Whether the write transactions begun here give way to the others (``background``)."""
    return _BACKGROUND.get()


@dataclass(frozen=True)
class WriteSpan:
    """How long one write transaction waited to begin (on SQLite, for the write lock) and then
    ran until its commit or rollback had ended (on SQLite, held the lock); and how many times
    it waited for the database server, its commit included (``round_trips``: PostgreSQL's;
    SQLite runs in the process and never waits for a server)."""

    waited_s: float
    held_s: float
    committed: bool
    round_trips: int = 0


class StoreError(CcbmdmError):
    """The store cannot be opened or used as configured; the message says what to change."""


class StoreUnavailable(StoreError):
    """The database cannot be reached: the connection was refused or lost. Nothing of the
    transaction in hand was committed; the store connects again for the next one. ``where``
    names the database, its password redacted."""

    exit_code = 69  # sysexits' EX_UNAVAILABLE: the same command may work later

    def __init__(self, message: str, where: str) -> None:
        super().__init__(message)
        self.where = where


class Transaction(ABC):
    """One database transaction; SQL uses ``:name`` parameters and the dialect's expressions."""

    now: str  # SQL for the database clock
    dialect: str  # the store's (``Store.dialect``)

    def __init__(self, budget_s: float = math.inf) -> None:
        self._queued: list[tuple[Flush, Any]] = []  # what ``later`` holds until the commit
        self._after: list[Callable[[], object]] = []  # what ``after_commit`` holds
        # a background transaction takes no further item after this (``budgeted``)
        self.deadline = time.perf_counter() + budget_s if in_background() else math.inf

    def budgeted(self, items: Iterable[T], at_least: int = 1) -> Iterator[T]:
        """The items a batch works on in this transaction: the first ``at_least`` always, each
        further one while the transaction's write budget lasts. The items left are untouched,
        for the next batch; a foreground transaction (an operator's, the source's) takes them
        all."""
        for index, item in enumerate(items):
            if index >= at_least and time.perf_counter() >= self.deadline:
                return
            yield item

    @abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement; returns the number of rows it changed."""

    @abstractmethod
    def fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[Row]:
        """Run a query (or a statement with RETURNING) and return its rows as mappings."""

    def fetch_each(
        self, queries: Sequence[tuple[str, Mapping[str, Any] | None]]
    ) -> list[list[Row]]:
        """Each query's rows, in order: reads that do not depend on each other, which
        PostgreSQL answers in one round trip (with the statements not yet sent) and SQLite, in
        the process, one by one."""
        return [self.fetch(sql, params) for sql, params in queries]

    def send(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        counted: Callable[[int], None] | None = None,
    ) -> None:
        """Run a statement whose result nothing here waits for; ``counted``, if given, hears
        the number of rows it changed. PostgreSQL sends it with the next statement that is
        waited for (``execute``, ``fetch``), or the commit, in one round trip; SQLite, in the
        process, runs it at once. Its failure raises from that later call, or at the end of
        the savepoint it was sent under: a statement read later in the same transaction
        (a row it wrote) sees its effect, as the database runs statements in order."""
        changed = self.execute(sql, params)
        if counted is not None:
            counted(changed)

    def instant(self, value: datetime | None) -> Any:
        """A timestamp as a parameter for a timestamp column of this store."""
        return value

    @abstractmethod
    def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        """Run one statement once per parameter set (a batch's rows in one call); returns the
        number of rows they changed together."""

    def update_rows(
        self,
        table: str,
        assignments: str,
        rows: Sequence[Mapping[str, Any]],
        types: Mapping[str, str],
        condition: str = "",
    ) -> None:
        """``UPDATE table SET assignments WHERE id = :id [AND condition]`` for each of ``rows``,
        whose values the assignments name as ``:name`` (``types``: name -> PostgreSQL type),
        nothing waiting for the count (``send``). Executed once a row here (in process, on
        SQLite); on PostgreSQL one statement for the batch (``unnested``), sent. ``condition``
        names the table's columns with the table's name (``inbox.state``), the rows' values
        being columns there too; it is tested on each row found by its id, never used to find
        the rows (on PostgreSQL, ``on_the_row``)."""
        where = f"id = :id AND {condition}" if condition else "id = :id"
        self.execute_many(f"UPDATE {table} SET {assignments} WHERE {where}", rows)

    def fetch_one(self, sql: str, params: Mapping[str, Any] | None = None) -> Row | None:
        rows = self.fetch(sql, params)
        return rows[0] if rows else None

    @contextmanager
    def savepoint(self, *, waited: bool = True) -> Iterator[None]:
        """A nested scope rolled back alone when it raises (a failed item of a batch), with the
        rows queued under it (``later``). What was sent under it (``send``) is waited for at its
        end, so that its failure is the savepoint's; with ``waited`` false, it goes with the next
        statement waited for, and its failure raises from there, outside: for a scope that
        guards against its caller's own exceptions only (a rule broken, a key unresolved), whose
        writes fail only where a defect would, and a savepoint around it takes them back."""
        queued, after = len(self._queued), len(self._after)
        try:
            with self._savepoint(waited):
                yield
        except BaseException:
            del self._queued[queued:]
            del self._after[after:]
            raise

    @abstractmethod
    def _savepoint(self, waited: bool) -> AbstractContextManager[None]:
        """The database's own savepoint; ``waited``: see ``savepoint``."""

    def later(self, flush: Flush, row: Any) -> None:
        """Queue a row that ``flush`` writes just before the commit, with every other row it was
        given in this transaction: one statement for a batch's rows instead of one per row. A
        savepoint rolled back drops the rows queued under it; nothing in the transaction may
        read them before the commit."""
        self._queued.append((flush, row))

    def after_commit(self, action: Callable[[], object]) -> None:
        """Run ``action`` once the transaction has committed (a log line saying what it did):
        never when it rolls back, nor when the savepoint it was given under does."""
        self._after.append(action)

    def committed(self) -> None:
        """Run the ``after_commit`` actions, in the order they came (the backends call it
        after COMMIT), their log lines written together."""
        actions, self._after = self._after, []
        if not actions:
            return
        with logs.together():
            for action in actions:
                action()

    def flush_later(self) -> None:
        """Write the queued rows: each flush once, with its rows in the order they came (the
        backends call it before COMMIT)."""
        while self._queued:
            queued, self._queued = self._queued, []
            groups: dict[Flush, list[Any]] = {}
            for flush, row in queued:
                groups.setdefault(flush, []).append(row)
            for flush, rows in groups.items():
                flush(self, rows)


class Store(ABC):
    """A database holding the runtime's tables; hands out transactions."""

    dialect: str
    #: what ``open_store`` takes to open this store again (a worker process, a second runtime)
    dsn: str
    #: SQL for the database clock, and for the clock plus ``:seconds`` seconds
    now: str
    now_plus: str
    #: how long a background write transaction goes on taking items (``Transaction.budgeted``)
    write_budget_s: float = WRITE_BUDGET_S
    #: called after each write transaction with its span (a debug hook: tests, measurements)
    on_write: Callable[[WriteSpan], None] | None = None

    def written(self, asked: float, begun: float, *, committed: bool, round_trips: int = 0) -> None:
        """A write transaction asked to begin at ``asked`` and began at ``begun``
        (``time.perf_counter``) has just ended, having waited ``round_trips`` times for the
        server: the hook, when there is one, hears of it."""
        if self.on_write is not None:
            held = time.perf_counter() - begun
            self.on_write(WriteSpan(begun - asked, held, committed, round_trips))

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A write transaction: SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``READ COMMITTED``; inside
        ``sharing(tx)``, ``tx`` itself."""

    @contextmanager
    def sharing(self, tx: Transaction) -> Iterator[None]:
        """Inside, this thread's ``transaction()`` of this store is ``tx``, the caller's, as it
        is: what is written there commits with the rest of ``tx`` or not at all, and its
        ``after_commit`` actions wait for that commit. A sender delivering to a receiver in
        process on the same store hands it its own transaction this way (``Node``), so that
        the claim, the receipt and the record of a batch are one commit; a failure in there
        fails the whole of ``tx``."""
        token = _SHARED.set((self, tx))
        try:
            yield
        finally:
            _SHARED.reset(token)

    def shared(self) -> Transaction | None:
        """The transaction ``sharing`` hands out on this thread, if any (the backends'
        ``transaction()`` asks first)."""
        shared = _SHARED.get()
        return shared[1] if shared is not None and shared[0] is self else None

    @abstractmethod
    def close(self) -> None: ...

    def __repr__(self) -> str:  # the DSN's password is never shown, not even in a traceback
        return f"<{type(self).__name__} {redacted(self.dsn)}>"

    @abstractmethod
    def to_datetime(self, value: Any) -> datetime | None:
        """A timestamp column's value as an aware datetime."""

    @abstractmethod
    def json_value(self, value: Any) -> Any:
        """A JSON column's value as Python data."""

    @abstractmethod
    def migrate(self) -> int:
        """Create or upgrade the runtime's schema (``store.schema``); returns its version."""

    def spell_out_schema(self, tx: Transaction) -> None:
        """What a migration leaves to the dialect once its statements ran: SQLite spells out
        its stored definitions' constant lists; nothing by default."""
        return None


def on_the_row(condition: str) -> str:
    """``condition`` written so that it is tested on each row a statement has found by its key,
    and neither offered to the planner as a way to find the rows nor weighed with the
    statistics. A state condition implies the predicate of the partial index of the open rows
    (the outbox's ``outbox_open_key``) and is estimated from the state's frequency: while the
    statistics date from before a large run's sends, no row is open by them, the index looks
    empty, and PostgreSQL walked every open row for each reply matched (9 ms a match with 16,000
    open, where the key finds the row in 0.1 ms), or joined a batch of acknowledgements with all
    the open requests. A CASE is opaque to both: the planner gives it a fixed selectivity and
    finds the rows by their key. It means what the condition means in a WHERE clause (a row
    whose condition is false or NULL does not match), on SQLite too."""
    return f"CASE WHEN {condition} THEN true END"


def listed(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """An ``IN`` list of one named parameter per value (``:name0, :name1, …``) and those
    parameters: a batch's keys read in one statement."""
    params = {f"{name}{n}": value for n, value in enumerate(values)}
    return ", ".join(f":{parameter}" for parameter in params), params


@functools.lru_cache(maxsize=512)
def named_to(style: str, sql: str) -> str:
    """Rewrite ``:name`` parameters into ``%(name)s`` (psycopg) or keep them (sqlite3). A
    batch's column as an array (``:name_of_rows``, ``unnested``) becomes ``%(name_of_rows)b``,
    passed in binary: psycopg's text form quotes each element with a regular expression (and
    writes a bytea's bytes in hex) for the server to parse back, some eight times the cost."""
    if style == "pyformat":
        return _PARAMETER.sub(_pyformat, sql.replace("%", "%%"))
    return sql


def _pyformat(parameter: re.Match[str]) -> str:
    name = parameter.group(1)
    return f"%({name})b" if name.endswith(_OF_ROWS) else f"%({name})s"


def unnested(
    rows: Sequence[Mapping[str, Any]], types: Mapping[str, str]
) -> tuple[str, dict[str, Any]]:
    """PostgreSQL: a batch's rows as the relation ``v``, with a column of each of ``types``
    (name -> SQL type) and their order ``v.n``, and its parameters, one array a column. A
    statement over it does for the batch what ``execute_many`` does a row at a time, each row
    an execution of its own on the server."""
    arrays = ", ".join(f":{name}{_OF_ROWS}::{kind}[]" for name, kind in types.items())
    params = {f"{name}{_OF_ROWS}": _column(rows, name, kind) for name, kind in types.items()}
    return f"unnest({arrays}) WITH ORDINALITY AS v({', '.join(types)}, n)", params


def _column(rows: Sequence[Mapping[str, Any]], name: str, kind: str) -> list[Any]:
    """The rows' values of one column, for an array passed in binary, whose elements are of
    one type: a float column's whole numbers as floats."""
    if kind in _FLOATS:
        return [None if row[name] is None else float(row[name]) for row in rows]
    return [row[name] for row in rows]


def rows(columns: Sequence[str], values: Iterator[Sequence[Any]]) -> list[Row]:
    return [dict(zip(columns, row, strict=True)) for row in values]

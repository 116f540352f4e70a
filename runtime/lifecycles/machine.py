"""A lifecycle bound to the table that stores its rows: moves a row in the caller's transaction.

A move is a guarded update (``WHERE id = :id AND state = :source``), so of two steps that race
for one row only the first moves it; the other learns it from the row count and decides what
that means. The transition is looked up first, so an event the state does not accept raises
IllegalTransition before any SQL runs. ``due_at`` comes from the target state's deadlines on the
database clock, or from columns of the row plus an offset; a final state clears it.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from ccbmdm.runtime.lifecycles.lifecycle import Deadline, Lifecycle, State, Transition
from ccbmdm.runtime.logs import emit
from ccbmdm.runtime.store import Store, StoreUnavailable, Transaction
from ccbmdm.runtime.store.base import Row

log = logging.getLogger("ccbmdm.lifecycle")

_NAME = re.compile(r"^[a-z_]+$")
# the earliest and the latest of several instants, NULL when any is NULL (on both stores)
_EXTREMES = {"sqlite": ("min", "max"), "postgres": ("least", "greatest")}
FLOW_COLUMN = "flow"  # the column a flow-specific deadline is chosen by
T = TypeVar("T")
Item = TypeVar("Item")


class Machine:
    """Moves rows of ``table`` through ``lifecycle``.

    The table has ``id``, ``state``, ``reason`` and ``due_at``, the columns the deadlines name,
    and ``flow`` when a deadline is specific to a flow. Names are code constants; they are
    checked anyway, since they are written into SQL. ``described_by``: columns a move's log
    line carries (``flow``, ``message_id``), read back by the move's own statement.
    """

    def __init__(
        self, store: Store, lifecycle: Lifecycle, table: str, described_by: tuple[str, ...] = ()
    ) -> None:
        columns = [table, FLOW_COLUMN, *described_by]
        for name in lifecycle.states:
            state = lifecycle.state(name)
            columns += [c for d in state.deadlines for c in d.after]
            columns += [state.first_entry] if state.first_entry else []
        bad = [c for c in columns if not _NAME.match(c)]
        if bad:
            raise ValueError(f"not a plain table or column name: {', '.join(map(repr, bad))}")
        if store.now not in store.now_plus:
            raise ValueError(f"the {store.dialect} store's now_plus does not add to its now")
        self.store, self.lifecycle, self.table = store, lifecycle, table
        self._returning = f" RETURNING {', '.join(described_by)}" if described_by else ""
        self._earliest, self._latest = _EXTREMES[store.dialect]

    def move(
        self,
        tx: Transaction,
        row_id: int,
        source: str,
        event: str,
        *then: str,
        reason: str | None = None,
    ) -> bool:
        """Take ``event`` (then each of ``then``, through transitory states) from ``source``.

        True when the row moved; False when it was no longer in ``source`` (another step
        moved it first) and nothing was written. ``reason`` replaces the row's reason; a row
        going to an Error keeps the one it had when none is given, or names the transition.
        The move is logged once the transaction commits (``moved``).
        """
        path = self.lifecycle.walk(source, (event, *then))
        target = path[-1].target
        given = ":reason"
        if self._needs_reason(target):  # an Error always says why: the one given, else the
            # reason it had (a retry failing the same way), else the transition that led there
            given = "COALESCE(:reason, reason, :moved_by)"
        due, params = self.due_at(target)
        stamp = self.lifecycle.state(target).first_entry
        first = f", {stamp} = COALESCE({stamp}, {self.store.now})" if stamp else ""
        sql = (
            f"UPDATE {self.table} SET state = :target, reason = {given}, due_at = {due}{first} "
            "WHERE id = :id AND state = :source"
        )
        params |= {
            "moved_by": f"{path[-1].event} ({path[-1].id})",
            "target": target,
            "reason": None if reason is None else reason[:1000],
            "id": row_id,
            "source": source,
        }
        described: Row = {}
        if self._returning and log.isEnabledFor(level_of(self.lifecycle, target)):
            rows = tx.fetch(sql + self._returning, params)
            changed, described = len(rows), (rows[0] if rows else {})
        else:
            changed = tx.execute(sql, params)
        if changed == 1:
            moved(tx, self.lifecycle, self.table, row_id, path, reason, **described)
        return changed == 1

    def _needs_reason(self, state: str) -> bool:
        """An Error, final or retryable, says why: an exception state, or one named ERROR."""
        return self.lifecycle.kind(state) == "exception" or state.startswith("ERROR")

    def due_at(self, state: str) -> tuple[str, dict[str, Any]]:
        """SQL for the ``due_at`` of a row entering ``state``, for an UPDATE of the table (it
        reads the row's columns), and its parameters: NULL for a final state or one without
        deadlines, else the earliest deadline that applies to the row's flow. NULL also when a
        column a deadline counts from is NULL; the table's CHECK then refuses a non-final row."""
        declared = self.lifecycle.state(state)
        if not declared.deadlines:  # final states have none (Lifecycle checks it)
            return "NULL", {}
        params: dict[str, Any] = {}
        instants = [
            (deadline.flow, self._instant(declared, deadline, f"due_{i}", params))
            for i, deadline in enumerate(declared.deadlines)
        ]
        every = [sql for flow, sql in instants if flow is None]
        flows = list(dict.fromkeys(flow for flow, _ in instants if flow is not None))
        if not flows:
            return self._extreme(self._earliest, every), params
        cases = []
        for i, flow in enumerate(flows):
            params[f"due_flow_{i}"] = flow
            own = [sql for other, sql in instants if other == flow]
            cases.append(f"WHEN :due_flow_{i} THEN {self._extreme(self._earliest, every + own)}")
        otherwise = self._extreme(self._earliest, every) if every else "NULL"
        return f"(CASE {FLOW_COLUMN} {' '.join(cases)} ELSE {otherwise} END)", params

    def due_event(self, tx: Transaction, row_id: int) -> str | None:
        """The event the row's passed deadline fires; None when it is not due, or when its
        deadline leaves the event to the step (a Pending row).

        A deadline counted from columns is evaluated again, and the first declared that has
        passed fires (a retry limit before the retry); otherwise it is the clock deadline,
        which alone can have made the row due (a state has at most one per flow).
        """
        flow = f", {FLOW_COLUMN}" if self._has_flow_deadlines() else ""
        row = tx.fetch_one(
            f"SELECT state{flow}, CASE WHEN due_at <= {self.store.now} THEN 1 ELSE 0 END AS due "
            f"FROM {self.table} WHERE id = :id",
            {"id": row_id},
        )
        if row is None or not row["due"]:
            return None
        declared = self.lifecycle.state(row["state"])
        applying = [d for d in declared.deadlines if d.flow in (None, row.get(FLOW_COLUMN))]
        counted = [d for d in applying if d.after]
        if counted:
            params: dict[str, Any] = {"id": row_id}
            checks = ", ".join(
                f"CASE WHEN {self._instant(declared, d, f'due_{i}', params)} <= {self.store.now} "
                f"THEN 1 ELSE 0 END AS passed_{i}"
                for i, d in enumerate(counted)
            )
            passed = tx.fetch_one(f"SELECT {checks} FROM {self.table} WHERE id = :id", params)
            for i, deadline in enumerate(counted):
                if passed is not None and passed[f"passed_{i}"]:
                    return deadline.event
        clock = [d for d in applying if not d.after]
        return clock[0].event if clock else None

    def _has_flow_deadlines(self) -> bool:
        return any(
            d.flow is not None
            for name in self.lifecycle.states
            for d in self.lifecycle.state(name).deadlines
        )

    def _instant(self, state: State, deadline: Deadline, name: str, params: dict[str, Any]) -> str:
        """SQL for one deadline: the clock, or the latest of its columns, plus its seconds.

        The store's clock-plus-seconds expression is reused with a column in place of the
        clock; a first-entry column is read as it will be once the row has entered."""
        params[name] = float(deadline.seconds)
        plus = self.store.now_plus.replace(":seconds", f":{name}")
        if not deadline.after:
            return plus
        columns = [
            f"COALESCE({c}, {self.store.now})" if c == state.first_entry else c
            for c in deadline.after
        ]
        return plus.replace(self.store.now, self._extreme(self._latest, columns))

    def _extreme(self, function: str, instants: Iterable[str]) -> str:
        listed = list(instants)
        if len(listed) == 1:
            return listed[0]
        joined = ", ".join(listed)
        if self.store.dialect == "sqlite":  # min/max of several arguments: NULL if any is NULL
            return f"{function}({joined})"
        return f"(CASE WHEN num_nulls({joined}) > 0 THEN NULL ELSE {function}({joined}) END)"


def level_of(lifecycle: Lifecycle, state: str) -> int:
    """How loud a move into ``state`` is: error for an Error state, warning for another
    exception state (one that is retried, such as MDM's Error Retryable), info otherwise."""
    if state == "ERROR":
        return logging.ERROR
    return logging.WARNING if lifecycle.kind(state) == "exception" else logging.INFO


def moved(
    tx: Transaction,
    lifecycle: Lifecycle,
    table: str,
    row_id: int,
    path: Sequence[Transition],
    reason: str | None = None,
    **fields: Any,
) -> None:
    """Log a row's move along ``path`` once ``tx`` commits (a move rolled back is never
    logged): event ``lifecycle.moved`` with the lifecycle, the row (``request_type`` is its
    table), the states, the transitions and their events, the reason, and ``fields`` (the
    flow, the message id). Every move of every lifecycle is logged here, and only here."""
    target = path[-1].target
    level = level_of(lifecycle, target)
    if not log.isEnabledFor(level):
        return
    extra = {
        "event": "lifecycle.moved",
        "lifecycle": lifecycle.name,
        "request_type": table,
        "request_id": row_id,
        "from_state": path[0].source,
        "to_state": target,
        "transition": "/".join(dict.fromkeys(step.id for step in path)),
        "trigger": "/".join(step.event for step in path),
        "reason": reason,
        **{key: None if value is None else str(value) for key, value in fields.items()},
    }
    message = f"{lifecycle.name} {row_id}: {target.lower().replace('_', ' ')}"
    tx.after_commit(functools.partial(emit, log, level, message, extra))


class Overtaken(Exception):
    """The row left its state meanwhile: what the step did for it is rolled back."""


def together_or_apart(
    tx: Transaction,
    items: Sequence[Item],
    each: Callable[[Item], T],
    apart: Callable[[list[Item]], list[T]],
) -> tuple[list[T], list[Item]]:
    """A batch's items one after another under one savepoint (``each``), as many as the
    transaction's write budget lets it take (``Transaction.budgeted``); when one of them fails,
    the batch is rolled back and run again by ``apart``, each item under a savepoint of its own,
    so that a defect in one does not stop the others (E4): the items the first pass took, up to
    the one that failed, and as many more as the budget still lets it take. A savepoint per item
    costs two statements and a copy of every page the item changes; a failing item is rare, and
    then what the batch did outside the store (a log line, a memo) may be done twice. Returns
    the outcomes and the items taken; those left are for the next batch. A lost connection is
    no item's defect: it ends the batch at once."""
    taken: list[Item] = []

    def together() -> list[T]:
        outcomes = []
        for item in tx.budgeted(items):
            taken.append(item)
            outcomes.append(each(item))
        return outcomes

    try:
        with tx.savepoint():
            return together(), taken
    except StoreUnavailable:
        raise
    except Exception:
        taken[:] = tx.budgeted(items, len(taken))
        return apart(taken), taken


def move_claim(
    tx: Transaction,
    rows: Sequence[Row],
    move: Callable[[Row], int],
    name: Callable[[Row], str],
    log: logging.Logger,
) -> int:
    """A monitor step's claimed rows moved under one savepoint (``together_or_apart``), and
    when one of them fails, each under a savepoint of its own (``each_apart``): on PostgreSQL a
    savepoint under which statements were sent is waited for at its end, a round trip for the
    claim rather than one a row. Returns how many moved."""
    moved, _ = together_or_apart(
        tx, rows, move, lambda taken: [each_apart(tx, taken, move, name, log)]
    )
    return sum(moved)


def each_apart(
    tx: Transaction,
    rows: Iterable[Row],
    move: Callable[[Row], int],
    name: Callable[[Row], str],
    log: logging.Logger,
) -> int:
    """A monitor step's rows, each moved under a savepoint of its own: one overtaken meanwhile
    is left quietly, and one whose move fails is logged and left for a later step, so that a
    defect in one does not stop the others (E4). A lost connection stops the loop at the first
    row: the others would only fail the same way. ``name`` names a row in ``log``'s lines.
    The rows the transaction's write budget leaves are left for the next step. Returns how
    many moved."""
    moved = 0
    for row in tx.budgeted(rows):
        try:
            with tx.savepoint():
                moved += move(row)
        except Overtaken:
            log.info("%s was moved meanwhile", name(row))
        except StoreUnavailable:
            raise
        except Exception:  # one row's defect must not stop the others
            log.exception("%s could not be moved on", name(row))
    return moved

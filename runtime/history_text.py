"""A request's life as text for a terminal (``ccbmdm show``): the states as a table, each
message with its body, the other nodes' rows, and the next actions as exact commands."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from datetime import datetime

from rich.console import RenderableType
from rich.json import JSON
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ccbmdm.runtime.history import Action, Message, RequestLife, reads_as
from ccbmdm.runtime.store.dsn import redacted


def command(action: Action, store: str) -> str | None:
    """The command line that takes ``action`` on a store named ``store`` (a path or a DSN,
    its password shown ``***``), or None when the action is to wait or nothing."""
    if not action.command:
        return None
    return shlex.join(["ccbmdm", *action.command, "--store", redacted(store)])


def describe(life: RequestLife, store: str) -> Iterator[RenderableType]:
    """What ``ccbmdm show`` prints, in order."""
    yield Text.from_markup(
        f"[bold]{life.ref}[/]  {escape(life.key)}  flow {escape(life.flow)}", overflow="fold"
    )
    state = escape(life.reads_as)
    if life.reads_as != life.state:
        state += f" (stored as {escape(life.state)})"
    yield Text.from_markup(f"state: [bold]{state}[/]" + (" (final)" if life.final else ""))
    if life.reason:
        yield Text(f"reason: {life.reason}")
    if life.unmasked_reason:
        yield Text(f"unmasked: {life.unmasked_reason}")
    if life.due_at is not None and any(action.name == "wait" for action in life.actions):
        yield Text(f"due: {_when(life.due_at)}")
    states = Table("state", "since", "reason", title="states", title_justify="left")
    for step in life.history:
        since = _when(step.at) if step.at is not None else "(not recorded)"
        states.add_row(reads_as(life.kind, step.state), since, step.reason or "")
    yield states
    yield Text.from_markup(f"[bold]messages[/] ({len(life.messages)})")
    for message in life.messages:
        yield from _message(message)
    if life.related or life.related_requests:
        count = len(life.related) + len(life.related_requests)
        yield Text.from_markup(f"[bold]on other nodes[/] ({count})")
        for row in life.related:
            yield Text(
                f"  {row.ref:<12} {row.direction} {row.flow} {row.part}: {row.state}, "
                f"message id {row.message_id}" + (f"; {row.reason}" if row.reason else "")
            )
        for request in life.related_requests:
            yield Text(
                f"  {request.ref:<12} {reads_as(request.kind, request.state)}, "
                f"message id {request.message_id}"
            )
    yield Text.from_markup("[bold]next[/]")
    for action in life.actions:
        yield Text(f"  {action.name}: {action.explanation}")
        line = command(action, store)
        if line:
            yield Text(f"    {line}")


def _message(message: Message) -> Iterator[RenderableType]:
    yield Text.from_markup(
        f"  [bold]{message.ref}[/] {escape(message.direction)} {escape(message.flow)} "
        f"{escape(message.part)}: {escape(message.state)}, attempt {message.attempt}"
        + (f", due {_when(message.due_at)}" if message.due_at else "")
    )
    yield Text(
        f"    message id {message.message_id}"
        + (f", answers {message.correlation_id}" if message.correlation_id else "")
    )
    if message.reason:
        yield Text(f"    reason: {message.reason}")
    if message.body is not None:
        if message.contract is None:
            yield Text(f"    {message.body}")
        else:
            yield Text(f"    {message.contract}:")
            yield Padding(JSON(message.body), (0, 0, 0, 4), expand=False)


def _when(at: datetime | None) -> str:
    return "" if at is None else at.isoformat(sep=" ", timespec="seconds")

"""The command-line reference page: every command of the app, its usage, help and parameters.

The page is read from the command tree the command line runs, so it never drifts from it. The
command line passes its Typer app in: the site does not import ``ccbmdm.cli``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import typer
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from .markdown import inline, table

PAGE = "cli.md"
PARAMETER_TABLE = "parameters"
PARAMETER_COLUMNS = ("Argument or option", "Type", "Default", "Help")

Command = TyperCommand | TyperGroup


@dataclass(frozen=True)
class Entry:
    """One command of the tree, with the context that names it (``ccbmdm docs build``)."""

    name: str
    command: Command
    context: typer.Context
    depth: int  # 0 for the app itself

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


def commands(app: typer.Typer, name: str = "ccbmdm") -> list[Entry]:
    """Every visible command of ``app``, depth first, a group before its commands."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup | TyperCommand)
    return list(_walk(root, name, None, 0))


def _walk(command: Command, name: str, parent: typer.Context | None, depth: int) -> Iterator[Entry]:
    context = typer.Context(command, info_name=name.rsplit(" ", 1)[-1], parent=parent)
    yield Entry(name, command, context, depth)
    if isinstance(command, TyperGroup):
        for sub in command.list_commands(context):
            child = command.get_command(context, sub)
            if isinstance(child, TyperGroup | TyperCommand) and not child.hidden:
                yield from _walk(child, f"{name} {sub}", context, depth + 1)


def page(app: typer.Typer) -> str:
    """The Markdown of the command-line page."""
    entries = commands(app)
    lines = [
        "# Command line",
        "",
        "Every command of `ccbmdm`, its usage, what it does and its arguments and options. "
        "Each command also takes `--help`, which prints the same.",
        "",
    ]
    for entry in entries:
        lines += _section(entry)
    return "\n".join(lines)


def _section(entry: Entry) -> list[str]:
    command, context = entry.command, entry.context
    # The app and its commands are sections of the page; a group's commands are sections of it.
    level = "#" * min(1 + max(entry.depth, 1), 6)
    lines = [
        f"{level} {entry.name} {{ #{entry.anchor} }}",
        "",
        "```text",
        command.get_usage(context),
        "```",
        "",
    ]
    lines += [f"{inline(paragraph)}\n" for paragraph in _paragraphs(command.help or "")]
    rows = [_row(p, context) for p in command.params if not getattr(p, "hidden", False)]
    if rows:
        lines.append(table(PARAMETER_COLUMNS, rows, PARAMETER_TABLE))
    if isinstance(command, TyperGroup):
        subcommands = command.list_commands(context)
        if subcommands:
            listed = ", ".join(f"`{sub}`" for sub in subcommands)
            lines += [f"Commands: {listed}.", ""]
    return lines


def _paragraphs(text: str) -> list[str]:
    """A docstring's paragraphs, each on one line; Click's ``\\b`` markers dropped."""
    blocks = re.split(r"\n\s*\n", text.replace("\b", "").strip())
    return [" ".join(line.strip() for line in block.splitlines()) for block in blocks if block]


def _row(parameter: object, context: typer.Context) -> tuple[str, str, str, str]:
    """Name, type (or choices and range), default and help of one argument or option."""
    assert isinstance(parameter, TyperOption | TyperArgument)
    kind = parameter.display_type(context).removeprefix("<").removesuffix(">")
    help_text = parameter.help or ""
    if isinstance(parameter, TyperOption):
        name = " / ".join(
            ", ".join(opts) for opts in (parameter.opts, parameter.secondary_opts) if opts
        )
        if parameter.is_flag:
            kind = "flag"
        if parameter.multiple:
            kind = f"{kind.removeprefix('list[').removesuffix(']')}, repeatable"
    else:
        name = parameter.metavar or parameter.name or ""
    bounds = [
        f"{word} {value}"
        for word, value in (("at least", parameter.min), ("at most", parameter.max))
        if value is not None
    ]
    if bounds:
        kind = f"{kind.removesuffix(' range')}, {' and '.join(bounds)}"
    if parameter.envvar:
        names = [parameter.envvar] if isinstance(parameter.envvar, str) else parameter.envvar
        help_text += f" Environment variable: {', '.join(names)}."
    return name, kind, _default(parameter), help_text.strip()


def _default(parameter: TyperOption | TyperArgument) -> str:
    if parameter.required:
        return "required"
    default = parameter.default
    if isinstance(parameter, TyperOption) and parameter.is_flag:
        return "on" if default else "off"
    if default is None or callable(default):
        return ""
    if isinstance(default, list | tuple):
        return ", ".join(str(v) for v in default)
    return str(default)

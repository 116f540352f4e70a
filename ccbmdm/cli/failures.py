"""How a command fails: one exit path for every failure a person can act on.

The package raises :class:`~ccbmdm.errors.CcbmdmError` kinds whose messages say what, where and
what to do; ``run`` (in this package's ``__init__``) catches them once. A command adds what only
it knows (a file name, a wrong combination of options) with :func:`fail`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, NoReturn

from rich.markup import escape

from ccbmdm import __version__
from ccbmdm.cli.app import err
from ccbmdm.codegen import report as reports
from ccbmdm.errors import CcbmdmError

if TYPE_CHECKING:
    from ccbmdm.codegen.diagnostics import Finding

# Usage errors (click's own code): a wrong combination of options, a value that cannot be read.
USAGE = 2
# The database cannot be reached (sysexits' EX_UNAVAILABLE): the same command may work later.
UNAVAILABLE = 69

# The --format a command was given, so that findings that end it are written the same way.
chosen_format: ContextVar[reports.Format] = ContextVar("chosen_format", default="text")


class Refused(CcbmdmError):
    """The command line's own refusal: options that do not go together, an input it cannot read."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Failed(Exception):
    """A failure the command has reported already (its findings, its table); carries the code."""

    def __init__(self, code: int = 1) -> None:
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise Refused(message, code)


def say_error(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")


def report(findings: Iterable[Finding], output: reports.Format = "text") -> None:
    """Print findings: as text on standard error, errors last so that they stay in view, with a
    count; as JSON or SARIF on standard output (then always, an empty list too)."""
    ordered = reports.ordered(findings)
    if output == "json":
        sys.stdout.write(json.dumps(reports.as_json(ordered), indent=2) + "\n")
    elif output == "sarif":
        sys.stdout.write(json.dumps(reports.as_sarif(ordered, __version__), indent=2) + "\n")
    elif ordered:
        for finding in ordered:
            style = "red" if finding.severity == "error" else "yellow"
            err.print(escape(str(finding)), style=style)
        err.print(reports.summary(ordered))


def describe_input_error(name: str, exc: Exception) -> str:
    """A message that could not be read, as ``file:line:col: what`` lines."""
    from ccbmdm.runtime.messages.codec import ContractViolation
    from ccbmdm.runtime.messages.xmlsafe import XmlRejected

    if isinstance(exc, XmlRejected):
        where = "".join(f"{n}:" for n in (exc.line, exc.column) if n is not None)
        return f"{name}:{where} XML rejected: {exc.reason}"
    if isinstance(exc, ContractViolation):
        lines = [f"{name}: does not satisfy {exc.contract}, {exc.total} problem(s):"]
        for problem in exc.problems:
            where = ":".join(str(n) for n in (problem.line, problem.column) if n is not None)
            lines.append(f"{name}:{where}: {problem.xpath}: {problem.message}")
        if exc.more:
            lines.append(f"{name}: and {exc.more} more problem(s)")
        return "\n".join(lines)
    return f"{name}: {exc}"

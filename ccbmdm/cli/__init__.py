"""The `ccbmdm` command line.

A command is its options, what it needs (``requires``: the project, a store, a runtime), one
call into the package and the printing of the result. Failures have one exit path, ``run``:
the package's :class:`~ccbmdm.errors.CcbmdmError` kinds are printed as their messages say, with
their exit codes; anything else is a defect, reported as one without a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# Each module adds its commands to the tree, in the order the help lists them.
# isort: off
from ccbmdm.cli import build, messages, conformance, operate, demo, docs, sim, bench  # noqa: F401

# isort: on
from ccbmdm.cli.app import app, err
from ccbmdm.cli.failures import UNAVAILABLE, Failed, chosen_format, report, say_error
from ccbmdm.codegen.diagnostics import FindingsError
from ccbmdm.errors import CcbmdmError

__all__ = ["UNAVAILABLE", "app", "main", "run"]


def run(command: Callable[[], object]) -> int:
    """Run the app and map failures to exit codes, never to a traceback."""
    try:
        command()
    except Failed as exc:
        return exc.code
    except FindingsError as exc:  # the contracts, the flow catalogue or the mappings
        report(exc.findings, chosen_format.get())
        return exc.exit_code
    except CcbmdmError as exc:
        say_error(str(exc))
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("CCBMDM_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}")
        err.print(
            "this is a defect in ccbmdm; rerun with CCBMDM_DEBUG=1 for the traceback and report it"
        )
        return 70
    finally:
        chosen_format.set("text")
    return 0


def main() -> None:
    """Console entry point."""
    # Standalone mode: usage errors print what is missing with a pointer to --help, exit 2.
    sys.exit(run(app))

"""The `ccbmdm` command line.

A command is its options, what it needs (``requires``: the project, a store, a runtime), one
call into the package and the printing of the result. Failures have one exit path, ``run``:
the package's :class:`~ccbmdm.errors.CcbmdmError` kinds are printed as their messages say, with
their exit codes; anything else is a defect, reported as one without a traceback.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
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
    code = run(app)
    _exit_without_teardown(code)
    sys.exit(code)


def _exit_without_teardown(code: int) -> None:
    """End the process once the command is done, without the interpreter's teardown.

    At exit Python frees every module and object one by one: for a short command, which has
    imported the command line, pydantic and a project's generated models, that is a sixth of its
    processor time (docs/benchmarks.md, "bench_startup.py"). What a normal exit does that
    matters is done here first: the exit handlers (logging's flush, temporary folders, child
    processes), then the standard streams. With another thread still running, whose end a
    normal exit waits for, or a stream that cannot be flushed (a closed pipe), this returns and
    the normal exit follows.
    """
    if threading.active_count() > 1:
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)

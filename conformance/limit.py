"""The per-case time limit: a case that hangs is stopped and reported as failed, and the run
goes on with the next case.

In the main thread of a POSIX process the case is interrupted for real by SIGALRM: the
exception is raised wherever the case is, Python code or a regular expression backtracking.
Elsewhere (another thread, or a system without SIGALRM) the case runs in a thread of its own
that is waited for until the limit; it cannot be stopped there and is left running in the
background, which the report says.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import TypeVar

from ccbmdm.conformance.cases import Case
from ccbmdm.conformance.outcome import Outcome

# What a case may take when neither it (time_limit_s in case.yaml) nor --time-limit says.
DEFAULT_TIME_LIMIT_S = 30.0
# How often a case past its limit is interrupted again, until it has stopped.
REPEAT_S = 0.1

T = TypeVar("T")


class TimeLimitExceeded(BaseException):
    """Raised inside a case at its time limit. A BaseException, like KeyboardInterrupt, so that
    no ``except Exception`` on the way swallows it."""


def limit_of(case: Case, run: float | None = None) -> float:
    """The case's own limit when its case.yaml gives one, else the run's (--time-limit), else
    the default."""
    if case.time_limit_s is not None:
        return case.time_limit_s
    return run if run is not None else DEFAULT_TIME_LIMIT_S


def limited(case: Case, seconds: float, call: Callable[[], T]) -> T | Outcome:
    """What ``call`` (running ``case``) gives, or a failed outcome that says the case was
    stopped at its time limit of ``seconds``."""
    started = time.perf_counter()
    try:
        return within(seconds, call)
    except TimeLimitExceeded as exc:
        return replace(
            Outcome(case, time.perf_counter() - started),
            problems=(f"{case.id}: {exc} its time limit of {seconds:g} s",),
        )


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()``, raising TimeLimitExceeded when it takes more than ``seconds``."""
    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        return _interrupted(seconds, call)
    return _waited(seconds, call)


def _interrupted(seconds: float, call: Callable[[], T]) -> T:
    """``call()`` under SIGALRM at ``seconds``, then again every ``REPEAT_S`` until it ends: an
    exception raised by a signal handler while a finalizer runs (``__del__``, a weakref's
    callback) is printed and dropped, so the first interruption may be lost, and a case then
    went on into a regular expression that backtracked for good."""
    running = True

    def stop(_signal: int, _frame: FrameType | None) -> None:
        if running:
            raise TimeLimitExceeded("stopped: still running at")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_S)
    try:
        return call()
    finally:
        running = False  # first: an alarm due meanwhile raises nothing here
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _waited(seconds: float, call: Callable[[], T]) -> T:
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the caller's thread as it is
            failure.append(exc)

    worker = threading.Thread(target=run, name="conformance case", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise TimeLimitExceeded(
            "not stopped (it runs outside the main thread, where it cannot be interrupted; it "
            "goes on in the background): still running at"
        )
    if failure:
        raise failure[0]
    return result[0]

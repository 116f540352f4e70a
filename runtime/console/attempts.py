"""Failed sign-ins at the console, counted per user and per address, so that guessing a password
takes years rather than minutes.

After ``limit`` failures within ``window_s`` for one user, or from one address, sign-ins for
that user or from that address are refused, without checking the password, until the oldest of
those failures is older than the window. A successful sign-in clears its user's and address's
failures. The count lives in the process, as the sessions do: a restart forgets it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

LIMIT = 5
WINDOW_S = 15 * 60
# a bound on the addresses and users remembered, so that a flood of made-up names cannot grow
# the process without end; the least recently failed are forgotten first
KEPT = 10_000


class Attempts:
    """The failed sign-ins of the last window, per user and per address."""

    def __init__(
        self,
        limit: int = LIMIT,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        kept: int = KEPT,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.kept = kept
        self._failures: dict[str, deque[float]] = {}

    def wait_s(self, user: str, address: str) -> float:
        """Seconds until this user may try again from this address; 0 when they may now."""
        now = self.clock()
        return max(self._wait(key, now) for key in _keys(user, address))

    def failed(self, user: str, address: str) -> None:
        """Count a failed sign-in against the user and the address."""
        now = self.clock()
        for key in _keys(user, address):
            times = self._failures.pop(key, None) or deque(maxlen=self.limit)
            times.append(now)
            self._failures[key] = times  # re-inserted: the dict's order is recency of failure
        while len(self._failures) > self.kept:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, user: str, address: str) -> None:
        """Forget the failures of a user and address that have just signed in."""
        for key in _keys(user, address):
            self._failures.pop(key, None)

    def _wait(self, key: str, now: float) -> float:
        times = self._failures.get(key)
        if times is None:
            return 0.0
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0.0
        return times[0] + self.window_s - now if len(times) >= self.limit else 0.0


def _keys(user: str, address: str) -> tuple[str, str]:
    return f"user:{user}", f"address:{address}"

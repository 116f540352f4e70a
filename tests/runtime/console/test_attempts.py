"""Failed sign-ins: after five in fifteen minutes for a user or from an address, the next are
refused until the oldest leaves the window; a success forgets them."""

from __future__ import annotations

from ccbmdm.runtime.console.attempts import Attempts


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_fifth_failure_makes_the_next_attempt_wait_for_the_oldest_to_leave_the_window() -> None:
    clock = Clock()
    attempts = Attempts(limit=5, window_s=900, clock=clock)
    for _ in range(4):
        assert attempts.wait_s("dana", "10.0.0.1") == 0
        attempts.failed("dana", "10.0.0.1")
        clock.now += 10
    assert attempts.wait_s("dana", "10.0.0.1") == 0
    attempts.failed("dana", "10.0.0.1")  # the fifth, at 1,040
    assert attempts.wait_s("dana", "10.0.0.1") == 1_000 + 900 - 1_040
    clock.now = 1_000 + 900  # the first failure leaves the window: one more try
    assert attempts.wait_s("dana", "10.0.0.1") == 0
    attempts.failed("dana", "10.0.0.1")
    assert attempts.wait_s("dana", "10.0.0.1") == 1_010 + 900 - 1_900


def test_a_user_is_held_from_every_address_and_an_address_for_every_user() -> None:
    attempts = Attempts(limit=2, window_s=60, clock=Clock())
    attempts.failed("dana", "10.0.0.1")
    attempts.failed("dana", "10.0.0.2")
    assert attempts.wait_s("dana", "10.0.0.3") > 0  # the user, whatever the address
    assert attempts.wait_s("lee", "10.0.0.1") == 0  # one failure from that address only
    attempts.failed("kim", "10.0.0.1")
    assert attempts.wait_s("lee", "10.0.0.1") > 0  # the address, whatever the user
    assert attempts.wait_s("lee", "10.0.0.4") == 0


def test_a_success_forgets_the_failures_of_its_user_and_address() -> None:
    attempts = Attempts(limit=2, window_s=60, clock=Clock())
    attempts.failed("dana", "10.0.0.1")
    attempts.succeeded("dana", "10.0.0.1")
    attempts.failed("dana", "10.0.0.1")
    assert attempts.wait_s("dana", "10.0.0.1") == 0


def test_made_up_names_cannot_grow_the_count_without_end() -> None:
    attempts = Attempts(limit=1, window_s=60, clock=Clock(), kept=100)
    attempts.failed("dana", "10.0.0.1")
    for n in range(1_000):
        attempts.failed(f"guess-{n}", "10.0.0.9")
    assert len(attempts._failures) <= 100
    assert attempts.wait_s("guess-999", "10.0.0.8") > 0  # the latest are the ones kept
    assert attempts.wait_s("dana", "10.0.0.2") == 0  # the oldest forgotten

"""Faults on the wire (reliability.md R6, E1): answers that never come back, and technical
failures retried with backoff until the attempts are used up.

The whole integration runs in this process, with a transport that injects the faults; what
happened is read back from the store (the transition history and the receiver's record), not
from timings.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Sequence
from types import ModuleType

from ccbmdm.runtime.contracts import ContractRegistry
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.transport import Answer, InProcessTransport, Posting, TransportError
from reliability_world import (
    SETTINGS,
    build_world,
    check,
    epoch,
    install,
    message_id_of,
    quiet,
    run_until,
)


class DroppedAnswers(InProcessTransport):
    """Every message reaches its receiver, but ``rate`` of the answers are lost on the way back
    (the sender sees a timeout). One message's answer is lost at most twice, so each is
    acknowledged within the attempts allowed and the test never depends on luck."""

    def __init__(self, rate: float, seed: int) -> None:
        super().__init__()
        self.rate = rate
        self.rng = random.Random(seed)
        self.dropped: Counter[str] = Counter()

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        answers = super().post_many(sender, partner, postings)
        for index, posting in enumerate(postings):
            message_id = message_id_of(posting.body)
            if self.rng.random() < self.rate and self.dropped[message_id] < 2:
                self.dropped[message_id] += 1
                answers[index] = TransportError("the answer was lost: read timed out")
        return answers


def test_r6_lost_acknowledgements_are_retried_under_the_same_id_and_applied_once(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """R6: receivers store and apply every message, but 10% of their answers are lost; the
    senders retry with the same id and bytes, every request ends Synchronized, and MDM applies
    each message exactly once."""
    install(store)
    transport = DroppedAnswers(0.1, seed=6)
    world = build_world(store, registry, package, transport)
    requests = 500
    for key in range(requests):
        world.source.change(f"{key:010d}", "Silva,Ada")
    run_until(world, lambda: quiet(store), timeout_s=180)

    verdict = check(store)
    assert verdict.violations() == {}, verdict.details
    assert 0 < verdict.raw_redeliveries <= sum(transport.dropped.values())
    with store.transaction() as tx:
        states = Counter(r["state"] for r in tx.fetch("SELECT state FROM sync_request"))
        applied = Counter(str(r["message_id"]) for r in tx.fetch("SELECT message_id FROM applied"))
        # every posting of a message carried its outbox id and bytes: one per attempt
        resent = tx.fetch(
            """SELECT o.attempt, count(s.seq) AS postings, count(DISTINCT s.payload_hash) AS payloads
               FROM outbox o LEFT JOIN seen s ON s.receiver = o.partner AND s.sender = o.node
                                             AND s.message_id = CAST(o.message_id AS text)
               GROUP BY o.id, o.attempt"""
        )
    assert states == {"SYNCHRONIZED": requests}
    assert len(applied) == requests and set(applied.values()) == {1}
    assert all(int(r["postings"]) == int(r["attempt"]) for r in resent)
    assert {int(r["payloads"]) for r in resent} == {1}
    assert any(int(r["attempt"]) > 1 for r in resent)


# --- E1 ----------------------------------------------------------------------------------

UNREACHABLE = "0000099999"  # an entity whose every send fails


class Refusing(InProcessTransport):
    """Refuses ``rate`` of CCB's postings (connection refused: nothing arrives), and every
    posting about the unreachable entity."""

    def __init__(self, rate: float, seed: int) -> None:
        super().__init__()
        self.rate = rate
        self.rng = random.Random(seed)

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        if sender != "ccb":
            return super().post_many(sender, partner, postings)
        refused = [
            UNREACHABLE.encode() in p.body or self.rng.random() < self.rate for p in postings
        ]
        delivered = iter(
            super().post_many(
                sender, partner, [p for p, r in zip(postings, refused, strict=True) if not r]
            )
        )
        return [TransportError("connection refused") if r else next(delivered) for r in refused]


# CI size of E1: base 50 ms, factor 2, cap 800 ms, 5 attempts.
E1_SETTINGS = dataclasses.replace(SETTINGS, max_attempts=5, backoff_cap_s=0.8)
EPSILON_S = 0.002  # the database clock's rounding (SQLite keeps Julian days in a REAL)


def formula(attempt: int) -> float:
    """d = min(cap, base * factor^(n-1)) after the n-th attempt (reliability.md §2.5)."""
    s = E1_SETTINGS
    return min(s.backoff_cap_s, s.backoff_base_s * s.backoff_factor ** (attempt - 1))


def test_e1_technical_failures_back_off_by_the_formula_and_end_in_error(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """E1: 30% of CCB's sends are refused. Every failure sets the retry's due_at within
    [d/2, d] of the formula (the failure's database time against the due_at it set, from the
    history); no retry is claimed before its due_at and none after the last attempt; a message
    that fails every attempt ends in ERROR with its last error and attempt count, and its
    request with it."""
    install(store)
    world = build_world(store, registry, package, Refusing(0.3, seed=1), E1_SETTINGS)
    requests = 500
    for key in range(requests - 1):
        world.source.change(f"{key:010d}", "Novak,Ada")
    world.source.change(UNREACHABLE, "Novak,Ada")
    run_until(world, lambda: quiet(store), timeout_s=180)

    with store.transaction() as tx:
        moves = tx.fetch(
            f"""SELECT row_id, old_state, state, attempt, last_error,
                       {epoch(store, "at")} AS at, {epoch(store, "due_at")} AS due_at,
                       {epoch(store, "old_due_at")} AS old_due_at
                FROM history WHERE tbl = 'outbox' AND node = 'ccb' ORDER BY seq"""
        )
        errors = tx.fetch(
            """SELECT o.attempt, o.last_error, r.state, r.reason, r.pk FROM outbox o
               JOIN sync_request r ON r.id = o.owner_id WHERE o.state = 'ERROR'"""
        )
        attempts = [
            int(r["attempt"]) for r in tx.fetch("SELECT attempt FROM outbox WHERE node = 'ccb'")
        ]
        states = Counter(r["state"] for r in tx.fetch("SELECT state FROM sync_request"))

    failures = [m for m in moves if m["old_state"] == "SENDING" and m["state"] == "RETRY_WAIT"]
    assert len(failures) > 100
    for move in failures:
        d = formula(int(move["attempt"]))
        delay = float(move["due_at"]) - float(move["at"])
        assert d / 2 - EPSILON_S <= delay <= d + EPSILON_S, (dict(move), d)
    assert {int(m["attempt"]) for m in failures} == {1, 2, 3, 4}  # every step of the formula

    # bounded attempt rate: a retry is claimed only once its due_at has come, at most 5 times
    retries = [m for m in moves if m["old_state"] == "RETRY_WAIT" and m["state"] == "SENDING"]
    assert len(retries) == len(failures)
    assert all(float(m["at"]) >= float(m["old_due_at"]) - EPSILON_S for m in retries)
    assert max(attempts) == E1_SETTINGS.max_attempts
    assert sum(attempts) / len(attempts) < 1.6  # about 1 / (1 - 0.3) sends per message

    assert errors, "the unreachable entity's message must end in ERROR"
    assert UNREACHABLE in {str(e["pk"]) for e in errors}
    for error in errors:
        assert int(error["attempt"]) == E1_SETTINGS.max_attempts
        assert error["last_error"] == "technical: connection refused"
        assert (error["state"], error["reason"]) == (
            "ERROR",
            "not delivered, attempts used up: technical: connection refused",
        )
    assert states == {"SYNCHRONIZED": requests - len(errors), "ERROR": len(errors)}


def test_the_checker_counts_each_kind_of_violation(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """The checker is only worth its zeros if it counts what it claims to: a clean run, then
    one planted violation of each invariant."""
    install(store)
    world = build_world(store, registry, package)
    for key, name in [
        ("1", "Silva"),
        ("2", "Silva"),
        ("1", "Tanaka"),
        ("2", "Tanaka"),
        ("1", "Moreau"),
    ]:
        world.source.change(key.zfill(10), f"{name},Ada")
    run_until(world, lambda: quiet(store))
    assert check(store).violations() == {}

    late = f"{store.now_plus}"
    with store.transaction() as tx:
        last = tx.fetch_one("SELECT * FROM applied ORDER BY seq DESC")
        assert last is not None
        copy = "INSERT INTO applied (message_id, key, entity_version, payload_hash, name, effective) VALUES (:m, :k, :v, :h, :n, :e)"
        row = {"k": last["key"], "h": last["payload_hash"], "n": last["name"], "e": False}
        tx.execute(copy, {**row, "m": last["message_id"], "v": last["entity_version"]})  # twice
        tx.execute(copy, {**row, "m": "older", "v": 0})  # reordered
        tx.execute(copy, {**row, "m": "skipping", "v": int(last["entity_version"]) + 2})  # gap
        tx.execute(  # lost: the source changed, nothing captured it
            "UPDATE test_person SET data = replace(data, 'Tanaka', 'Lindqvist') WHERE id = '0000000002'"
        )
        tx.execute(
            f"UPDATE inbox SET state = 'RECEIVED', due_at = {tx.now} WHERE id = (SELECT min(id) FROM inbox)"
        )
        tx.execute("INSERT INTO change_log (key, version, request_id) VALUES ('x', 1, NULL)")
        tx.execute(  # a redelivery no attempt explains
            "INSERT INTO seen (receiver, sender, message_id, payload_hash) SELECT receiver, sender, message_id, payload_hash FROM seen WHERE seq = 1"
        )
        for state, old_state, error, at, old_due in [  # a claim inside the rescued lease
            ("RETRY_WAIT", "SENDING", "deadline passed in SENDING", 0, 10),
            ("SENDING", "RETRY_WAIT", None, 1, 0),
        ]:
            tx.execute(
                f"""INSERT INTO history (tbl, row_id, old_state, state, last_error, at, old_due_at)
                    VALUES ('outbox', 999, :old, :state, :error, {late.replace(":seconds", ":at")},
                            {late.replace(":seconds", ":due")})""",
                {"old": old_state, "state": state, "error": error, "at": at, "due": old_due},
            )
    verdict = check(store, samples=[0, 1, 0])
    assert verdict.violations() == {
        "applied_twice": 1,
        "reordered": 1,
        "unexplained_gaps": 1,
        "lost": 1,
        "stuck": 1,
        "accounting": 1,
        "unexplained_redeliveries": 1,
        "lease_overlap": 1,
        "coalescing_violation": 1,
    }, verdict.details
    assert verdict.raw_redeliveries == 1

"""Faults on the wire (docs/reliability.md R6, E1): answers that never come back, and technical
failures retried with backoff until the attempts are used up and the retry window has passed
(a refused send uses up no attempt).

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
from ccbmdm.runtime.transport import (
    Answer,
    InProcessTransport,
    Posting,
    Response,
    TransportError,
    TransportUnreachable,
)
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

FAILING = "0000099999"  # an entity whose every send the bridge answers with 503


class Refusing(InProcessTransport):
    """Refuses ``rate`` of CCB's postings (connection refused: nothing arrives), and answers
    every posting about the failing entity with 503."""

    def __init__(self, rate: float, seed: int) -> None:
        super().__init__()
        self.rate = rate
        self.rng = random.Random(seed)

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        if sender != "ccb":
            return super().post_many(sender, partner, postings)
        failing = [FAILING.encode() in p.body for p in postings]
        refused = [not f and self.rng.random() < self.rate for f in failing]
        passing = [p for p, f, r in zip(postings, failing, refused, strict=True) if not (f or r)]
        delivered = iter(super().post_many(sender, partner, passing))
        return [
            Response(503, b"unavailable")
            if f
            else TransportUnreachable("connection refused")
            if r
            else next(delivered)
            for f, r in zip(failing, refused, strict=True)
        ]


# CI size of E1: base 50 ms, factor 2, cap 800 ms, 5 attempts, a retry window of 2 s.
E1_SETTINGS = dataclasses.replace(SETTINGS, max_attempts=5, backoff_cap_s=0.8)
EPSILON_S = 0.002  # the database clock's rounding (SQLite keeps Julian days in a REAL)


def formula(attempt: int) -> float:
    """d = min(cap, base * factor^(n-1)) after the n-th attempt (docs/reliability.md §2.5)."""
    s = E1_SETTINGS
    return min(s.backoff_cap_s, s.backoff_base_s * s.backoff_factor ** (attempt - 1))


def test_e1_technical_failures_back_off_by_the_formula_and_end_in_error(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    """E1: 30% of CCB's sends are refused, and one entity's are answered with 503. Every
    failure sets the retry's due_at within [d/2, d] of the formula (the failure's database time
    against the due_at it set, from the history); no retry is claimed before its due_at. A
    refused send uses up no attempt, so every refused message is delivered in the end; the
    message answered with 503 ends in ERROR, with its last error and its request, only once
    its five attempts are used and its retry window has passed since its first send."""
    install(store)
    world = build_world(store, registry, package, Refusing(0.3, seed=1), E1_SETTINGS)
    requests = 500
    for key in range(requests - 1):
        world.source.change(f"{key:010d}", "Novak,Ada")
    world.source.change(FAILING, "Novak,Ada")
    run_until(world, lambda: quiet(store), timeout_s=180)

    with store.transaction() as tx:
        moves = tx.fetch(
            f"""SELECT row_id, old_state, state, attempt, last_error,
                       {epoch(store, "at")} AS at, {epoch(store, "due_at")} AS due_at,
                       {epoch(store, "old_due_at")} AS old_due_at
                FROM history WHERE tbl = 'outbox' AND node = 'ccb' ORDER BY seq"""
        )
        errors = tx.fetch(
            f"""SELECT o.id, o.attempt, o.refused, o.last_error, r.state, r.reason, r.pk,
                       {epoch(store, "o.first_attempt_at")} AS first_attempt_at
                FROM outbox o JOIN sync_request r ON r.id = o.owner_id WHERE o.state = 'ERROR'"""
        )
        sends = tx.fetch("SELECT attempt, refused, state FROM outbox WHERE node = 'ccb'")
        states = Counter(r["state"] for r in tx.fetch("SELECT state FROM sync_request"))

    failures = [m for m in moves if m["old_state"] == "SENDING" and m["state"] == "RETRY_WAIT"]
    assert len(failures) > 100
    for move in failures:
        d = formula(int(move["attempt"]))
        delay = float(move["due_at"]) - float(move["at"])
        assert d / 2 - EPSILON_S <= delay <= d + EPSILON_S, (dict(move), d)
    assert {int(m["attempt"]) for m in failures} >= {1, 2, 3, 4}  # every step of the formula

    # bounded attempt rate: a retry is claimed only once its due_at has come
    retries = [m for m in moves if m["old_state"] == "RETRY_WAIT" and m["state"] == "SENDING"]
    assert len(retries) == len(failures)
    assert all(float(m["at"]) >= float(m["old_due_at"]) - EPSILON_S for m in retries)
    attempts = [int(r["attempt"]) for r in sends]
    assert sum(int(r["refused"]) for r in sends) > 100
    # every message delivered reached the bridge once: its refused sends are not attempts
    assert {int(r["attempt"]) - int(r["refused"]) for r in sends if r["state"] != "ERROR"} == {1}
    assert sum(attempts) / len(attempts) < 1.6  # about 1 / (1 - 0.3) sends per message

    (error,) = errors  # refusals alone never give a message up
    assert str(error["pk"]) == FAILING
    # five attempts at least, and more while its retry window lasted
    assert int(error["refused"]) == 0
    assert int(error["attempt"]) >= E1_SETTINGS.max_attempts
    assert error["last_error"] == "HTTP 503: unavailable"
    assert (error["state"], error["reason"]) == (
        "ERROR",
        "not delivered, attempts used up: HTTP 503: unavailable",
    )
    (given_up,) = [m for m in moves if m["row_id"] == error["id"] and m["state"] == "ERROR"]
    window = float(given_up["at"]) - float(error["first_attempt_at"])
    assert window >= E1_SETTINGS.retry_window_s - EPSILON_S
    assert states == {"SYNCHRONIZED": requests - 1, "ERROR": 1}


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

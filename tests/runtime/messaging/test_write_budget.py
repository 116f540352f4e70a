"""The write budget and the writer gate: a worker's write transaction stops taking items once the
store's write budget is spent (the rest wait for the next batch, received messages given back in
their place), and on SQLite a worker's transaction waits while a foreground one (the source
system's save) waits or runs."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from types import ModuleType

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messaging.delivery import Arrival, DeliverySettings, Inbox, Received
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import WriteSpan, background, in_background
from ccbmdm.runtime.store.sqlite import SqliteStore
from ccbmdm.runtime.worker import Worker
from runtime_world import Integration, StubMdm

BUDGET_S = 0.2
ITEM_S = 0.2  # what each message costs MDM here: the batch's 10 would take 2 s together


class SlowMdm:
    """MDM taking ``ITEM_S`` over each message, in the processing transaction."""

    def __init__(self, stub: StubMdm) -> None:
        self.stub = stub

    def __call__(self, tx: Transaction, received: Received) -> str | None:
        time.sleep(ITEM_S)  # the item's cost, not a wait for a result
        return self.stub(tx, received)


def test_a_workers_write_transaction_takes_items_only_within_the_write_budget(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = Integration(store, registry, package, InProcessTransport(), batch=50)
    world.mdm.handler = SlowMdm(world.stub)
    for index in range(10):
        world.people.change(f"{index:010d}", f"Person,Number {index}")
    store.write_budget_s = BUDGET_S
    spans: list[WriteSpan] = []
    store.on_write = spans.append
    with background():
        world.run(rounds=200)
    store.on_write = None
    assert {state for state, _ in world.requests()} == {"SYNCHRONIZED"}
    # the budget's bound: a transaction takes no item once it is spent, so it runs at most the
    # budget and the one item begun before it ran out (and its commit, well inside a second item)
    assert max(span.held_s for span in spans) <= BUDGET_S + 2 * ITEM_S
    with store.transaction() as tx:
        rows = tx.fetch(
            "SELECT max(attempt) AS attempts, count(*) AS n FROM inbox WHERE node = 'mdm'"
        )
    # every message processed once: those given back counted no attempt
    assert (rows[0]["attempts"], rows[0]["n"]) == (1, 10)


def test_a_foreground_transaction_takes_every_item(store: Store) -> None:
    """An operator's command or the source's save is not a worker's: no budget cuts it short."""
    store.write_budget_s = 0.0
    with store.transaction() as tx:
        assert list(tx.budgeted(range(5))) == [0, 1, 2, 3, 4]
    with background(), store.transaction() as tx:
        assert list(tx.budgeted(range(5))) == [0]  # the first always: a batch moves on
        assert list(tx.budgeted(range(5), at_least=3)) == [0, 1, 2]


def test_a_workers_round_runs_in_the_background() -> None:
    seen: list[bool] = []

    def step() -> int:
        seen.append(in_background())
        return 0

    Worker([step]).drain()
    assert seen == [True] and not in_background()


def test_a_waiting_save_goes_before_a_worker_that_comes_later(tmp_path: Path) -> None:
    """On SQLite, a worker holds the write lock and a save waits for it; a second worker that
    comes meanwhile waits at the gate, and begins only after the save. (SQLite alone lets
    whoever tries first after the commit have the lock; a waiter sleeps longer the longer it
    has waited, so the newcomer usually wins.)"""
    path = str(tmp_path / "gate.db")
    store = SqliteStore(path)
    store.migrate()
    order: list[str] = []
    holding, release = threading.Event(), threading.Event()

    def first_worker() -> None:
        with background(), store.transaction():
            holding.set()
            release.wait(10)
            order.append("first worker")

    def save() -> None:
        with store.transaction():
            order.append("save")

    def second_worker() -> None:
        with background(), store.transaction():
            order.append("second worker")

    threads = [threading.Thread(target=first_worker)]
    threads[0].start()
    assert holding.wait(10)
    threads.append(threading.Thread(target=save))
    threads[1].start()
    wait_until_held_shared(store.gate.path)  # the save is waiting, the gate closed
    threads.append(threading.Thread(target=second_worker))
    threads[2].start()
    threads[2].join(0.2)  # let it try; it waits, at the gate
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first worker", "save", "second worker"]
    store.close()


def wait_until_held_shared(path: str, timeout_s: float = 10.0) -> None:
    """Until someone holds the gate file's lock (an exclusive try fails), within a deadline."""
    descriptor = os.open(path, os.O_RDWR)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            assert time.monotonic() < deadline, "the save never reached the gate"
            time.sleep(0.001)
    finally:
        os.close(descriptor)


def test_messages_given_back_keep_their_place_and_their_attempts(store: Store) -> None:
    """A batch cut short by its budget gives its claimed messages back as they came: the next
    claim takes them first, in their order, at their first attempt."""
    inbox = Inbox(store, "mdm", DeliverySettings())
    ids = [new_message_id() for _ in range(3)]
    arrivals = [Arrival("PERSON_SYNC", "request", id_, None, b"<m/>") for id_ in ids]
    inbox.store_messages("bridge", arrivals[:2])
    with store.transaction() as tx:
        claimed = inbox.claim(tx=tx)
        inbox.give_back(tx, claimed)
    inbox.store_messages("bridge", arrivals[2:])  # came after them
    with store.transaction() as tx:
        again = inbox.claim(tx=tx)
    assert [(m.message_id, m.id) for m in again][:2] == [(m.message_id, m.id) for m in claimed]
    assert [m.message_id for m in again] == ids
    with store.transaction() as tx:
        attempts = [r["attempt"] for r in tx.fetch("SELECT attempt FROM inbox ORDER BY id")]
    assert attempts == [1, 1, 1]  # the claim given back counted none


def test_a_message_received_is_stored_in_the_background(store: Store) -> None:
    """However it came in (over HTTP, in a server's thread), storing a partner's message is the
    integration's work: on SQLite it gives way to the source's saves."""
    inbox = Inbox(store, "mdm", DeliverySettings())
    begun = store.transaction
    backgrounds: list[bool] = []

    def watched() -> AbstractContextManager[Transaction]:
        backgrounds.append(in_background())
        return begun()

    store.transaction = watched  # type: ignore[method-assign]
    inbox.store_messages(
        "bridge", [Arrival("PERSON_SYNC", "request", new_message_id(), None, b"<m/>")]
    )
    assert backgrounds == [True] and not in_background()

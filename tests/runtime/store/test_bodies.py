"""Message bodies kept compressed from a size on (runtime.store.bodies): every reader gets the
bytes that were sent, on SQLite and PostgreSQL, and a body stored plain reads as it was."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbmdm.runtime.history import life
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messaging.delivery import Arrival, DeliverySettings, Inbox, Outbox
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.bodies import (
    COMPRESSED_FROM,
    MARK,
    BodyError,
    original,
    stored,
    stored_rows,
)

# A body above the threshold, as a large message is: the same elements over and over.
LARGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<UsageTransactionResponse xmlns="urn:x">'
    + b"".join(
        b"<periods><quantity>%d.%03d</quantity><quality>ACTUAL</quality></periods>" % (n, n % 997)
        for n in range(200)
    )
    + b"</UsageTransactionResponse>"
)
SMALL = b'<?xml version="1.0" encoding="UTF-8"?>\n<SyncAcknowledgement xmlns="urn:x"/>'


def test_a_small_body_is_kept_as_it_is_and_a_large_one_compressed() -> None:
    assert len(SMALL) < COMPRESSED_FROM <= len(LARGE)
    assert stored(SMALL) is SMALL
    kept = stored(LARGE)
    assert kept.startswith(MARK) and len(kept) < len(LARGE) / 3
    assert original(kept) == LARGE and original(SMALL) == SMALL


def test_a_body_that_would_not_shrink_is_kept_as_it_is() -> None:
    noise = random.Random(7).randbytes(COMPRESSED_FROM).lstrip(b"\x00")  # deflate cannot shorten
    assert stored(noise) == noise and original(noise) == noise


def test_a_body_that_begins_as_a_compressed_one_is_compressed_to_read_back_as_it_was() -> None:
    assert original(stored(MARK)) == MARK
    assert stored_rows([{"payload": MARK}])[0]["payload"] != MARK


def test_rows_are_copied_only_when_one_of_them_is_compressed() -> None:
    small = [{"id": 1, "payload": SMALL}]
    assert stored_rows(small) is small
    mixed = stored_rows([*small, {"id": 2, "payload": LARGE}])
    assert [row["payload"] for row in mixed] == [SMALL, stored(LARGE)]


@given(st.binary(max_size=6000) | st.binary(max_size=100).map(MARK.__add__))
def test_any_body_reads_back_as_it_was_stored(payload: bytes) -> None:
    assert original(stored(payload, threshold=0)) == payload
    assert original(stored(payload)) == payload


@pytest.mark.parametrize("cut", [len(MARK) + 5, -7])
def test_a_damaged_compressed_body_is_an_error_that_says_what_to_do(cut: int) -> None:
    damaged = stored(LARGE)[:cut]
    with pytest.raises(BodyError, match="restore it from a backup"):
        original(damaged)


def test_a_large_message_goes_out_and_in_as_it_was_sent(store: Store) -> None:
    """The sender's outbox and the receiver's inbox keep it compressed; the claim that sends
    it, the claim that processes it and a read by message id give the bytes back."""
    settings = DeliverySettings()
    outbox, inbox = Outbox(store, "ccb", settings), Inbox(store, "bridge", settings)
    message_id = new_message_id()
    with store.transaction() as tx:
        outbox.enqueue(tx, "bridge", "BATCH_BD", "response", message_id, LARGE)
    with store.transaction() as tx:
        (kept,) = tx.fetch("SELECT payload FROM outbox_body")
        assert bytes(kept["payload"]).startswith(MARK)
    (claim,) = outbox.claim()
    assert claim.payload == LARGE
    arrival = Arrival("BATCH_BD", "response", message_id, None, LARGE)
    assert inbox.store_messages("ccb", [arrival]) == [(True, None)]
    with store.transaction() as tx:
        assert inbox.payload(tx, "ccb", message_id) == LARGE
        (kept,) = tx.fetch("SELECT payload FROM inbox_body")
        assert bytes(kept["payload"]).startswith(MARK)
    (received,) = inbox.claim()
    assert received.payload == LARGE


def test_a_body_stored_plain_before_compression_still_reads(store: Store) -> None:
    """A large body written as it is (a row from before compression) is sent as it is."""
    outbox = Outbox(store, "ccb", DeliverySettings())
    message_id = new_message_id()
    with store.transaction() as tx:
        outbox.enqueue(tx, "bridge", "BATCH_BD", "response", message_id, SMALL)
    with store.transaction() as tx:
        tx.execute("UPDATE outbox_body SET payload = :p", {"p": LARGE})
    (claim,) = outbox.claim()
    assert claim.payload == LARGE


def test_show_reads_a_compressed_body_and_names_a_damaged_one(store: Store) -> None:
    outbox = Outbox(store, "ccb", DeliverySettings())
    with store.transaction() as tx:
        outbox.enqueue(tx, "bridge", "BATCH_BD", "response", new_message_id(), LARGE)
    (shown,) = life(store, "outbox:1").messages
    assert shown.body == f"({len(LARGE)} bytes; not decoded without the project's contracts)"
    with store.transaction() as tx:
        tx.execute("UPDATE outbox_body SET payload = :p", {"p": stored(LARGE)[:-9]})
    (shown,) = life(store, "outbox:1").messages
    assert shown.body is not None and "restore it from a backup" in shown.body

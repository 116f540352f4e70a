"""Message bodies kept compressed with the dictionary (runtime.store.bodies): every reader gets
the bytes that were sent, on SQLite and PostgreSQL; a body stored plain, or compressed the way
the store did before, reads as it was; a damaged one is an error that says what to do."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbmdm.runtime.history import life
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messaging.delivery import Arrival, DeliverySettings, Inbox, Outbox
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.bodies import (
    COMPRESSED_FROM,
    DEFLATE_MARK,
    ENVELOPE,
    MARK,
    MARK_PREFIX,
    BodyError,
    original,
    stored,
    stored_rows,
)
from support import REPO, sample

# A body above the 4 kB from which the store compressed before the dictionary: the same
# elements over and over.
LARGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<UsageTransactionResponse xmlns="urn:x">'
    + b"".join(
        b"<periods><quantity>%d.%03d</quantity><quality>ACTUAL</quality></periods>" % (n, n % 997)
        for n in range(200)
    )
    + b"</UsageTransactionResponse>"
)
# A message of the usual size, from the contracts' samples (the dictionary was trained on the
# conformance cases, not on these).
USUAL = sample("ccb/PersonSyncRequest")
TINY = b"<ack/>"
GOLDENS = sorted((REPO / "conformance" / "cases").rglob("*.xml"))

# A message, and two rows that hold it: as the store wrote it before the dictionary
# (DEFLATE_MARK: raw deflate primed with the envelope) and with the dictionary (MARK). Whatever
# changes in how bodies are written, rows like these must still read.
MESSAGE = ENVELOPE.replace(b"<flow></flow>", b"<flow>SP_SYNC</flow>") + (
    b"<servicePoint><id>SP-1</id><type>E-RES</type></servicePoint>"
)
DEFLATED_ROW = bytes.fromhex(
    "007a31b3a17b880507c40747fa390ff9802b4e2d2acb4c4e0dc8cfcc030663668a5d70802e3066800c9b92ca"
    "82543b57dd20d760603483d8a00845520d00"
)
ZSTD_ROW = bytes.fromhex(
    "007a3228b52ffd647500f50200c341069911e81322197964e2470c0f56124f267e3c3299089289200118fc60"
    "20f42b5b81bd53ca2b3f2530d2401cd4628d5ce51246028fea24bbfbdf792649a4432d9cae673d08094e9394"
    "43955215e938ecfa5386e4bb5bd9670498250ff76ddcc1"
)


def deflated(payload: bytes) -> bytes:
    """``payload`` as the store kept a compressed body before the dictionary."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, ENVELOPE)
    return DEFLATE_MARK + compressor.compress(payload) + compressor.flush()


def test_a_message_of_the_usual_size_is_kept_compressed_to_a_fraction() -> None:
    kept = stored(USUAL)
    assert kept.startswith(MARK) and len(kept) < len(USUAL) / 2
    assert original(kept) == USUAL


def test_a_tiny_body_and_one_that_would_not_shrink_are_kept_as_they_are() -> None:
    assert len(TINY) < COMPRESSED_FROM and stored(TINY) is TINY
    noise = random.Random(7).randbytes(COMPRESSED_FROM * 4).lstrip(b"\x00")  # cannot shorten
    assert stored(noise) == noise and original(noise) == noise and original(TINY) == TINY


def test_every_golden_message_reads_back_as_it_was_sent() -> None:
    differ = [path for path in GOLDENS if original(stored(path.read_bytes())) != path.read_bytes()]
    assert len(GOLDENS) > 500 and not differ


def test_rows_compressed_before_and_with_the_dictionary_read_back_exactly() -> None:
    assert original(DEFLATED_ROW) == MESSAGE and original(ZSTD_ROW) == MESSAGE
    assert original(memoryview(deflated(LARGE))) == LARGE


@pytest.mark.parametrize("mark", [MARK, DEFLATE_MARK, MARK_PREFIX, MARK_PREFIX + b"9"])
def test_a_body_that_begins_as_a_compressed_one_is_compressed_to_read_back_as_it_was(
    mark: bytes,
) -> None:
    for payload in (mark, mark + USUAL):
        kept = stored(payload)
        assert kept.startswith(MARK) and original(kept) == payload
        assert stored_rows([{"payload": payload}])[0]["payload"] == kept


def test_rows_are_copied_only_when_one_of_them_is_compressed() -> None:
    tiny = [{"id": 1, "payload": TINY}]
    assert stored_rows(tiny) is tiny
    mixed = stored_rows([*tiny, {"id": 2, "payload": USUAL}])
    assert [row["payload"] for row in mixed] == [TINY, stored(USUAL)]


def bodies() -> st.SearchStrategy[bytes]:
    """Any bytes, and bytes that begin with a mark."""
    marks = st.sampled_from([MARK, DEFLATE_MARK, MARK_PREFIX])
    return st.binary(max_size=6000) | st.tuples(marks, st.binary(max_size=100)).map(
        lambda parts: parts[0] + parts[1]
    )


@given(bodies())
def test_any_body_reads_back_as_it_was_stored(payload: bytes) -> None:
    assert original(stored(payload, threshold=0)) == payload
    assert original(stored(payload)) == payload


@given(st.binary(max_size=6000))
def test_any_body_compressed_before_the_dictionary_reads_back(payload: bytes) -> None:
    assert original(deflated(payload)) == payload


def claiming(size: int, kept: bytes) -> bytes:
    """``kept`` (a row under MARK) with its frame's header saying it holds ``size`` bytes."""
    start = len(MARK) + 4  # the mark, then zstd's magic number, then the frame header
    descriptor = kept[start]
    size_bytes = {0: 0, 1: 2, 2: 4, 3: 8}[descriptor >> 6] or (descriptor >> 5) & 1
    header = bytes([descriptor | 0xC0]) + struct.pack("<Q", size)  # an 8-byte content size
    return kept[:start] + header + kept[start + 1 + size_bytes :]


def damaged_rows() -> dict[str, bytes]:
    """Rows marked compressed whose data was changed: cut, a byte changed, bytes added, a frame
    that claims more bytes than it holds or than any memory does."""
    kept = stored(USUAL)
    middle = len(kept) // 2
    return {
        "cut after its header": kept[: len(MARK) + 5],
        "cut short": kept[:-7],
        "a byte changed": kept[:middle] + bytes([kept[middle] ^ 0x5A]) + kept[middle + 1 :],
        "bytes added": kept + b"more",
        "claims more bytes": claiming(len(USUAL) + 1, kept),
        "claims no bytes": claiming(0, kept),
        "claims an impossible size": claiming(1 << 62, kept),
        "mark alone": MARK,
        "deflate cut after its header": deflated(LARGE)[: len(DEFLATE_MARK) + 5],
        "deflate cut short": deflated(LARGE)[:-7],
    }


def test_a_frame_rewritten_to_claim_its_own_size_still_reads() -> None:
    """The damage above is made by rewriting the frame's header: rewritten to say what it
    holds, it reads (so the errors come from the sizes claimed, not from the rewriting)."""
    assert original(claiming(len(USUAL), stored(USUAL))) == USUAL


@pytest.mark.parametrize("damage", sorted(damaged_rows()))
def test_a_damaged_compressed_body_is_an_error_that_says_what_to_do(damage: str) -> None:
    """Even right after the intact row was read (and is remembered)."""
    assert original(stored(USUAL)) == USUAL and original(stored(LARGE)) == LARGE
    with pytest.raises(BodyError, match="outside the runtime; restore it from a backup"):
        original(damaged_rows()[damage])


@pytest.mark.parametrize("message", [USUAL, LARGE], ids=["usual size", "large"])
def test_a_message_goes_out_and_in_as_it_was_sent(store: Store, message: bytes) -> None:
    """The sender's outbox and the receiver's inbox keep it compressed; the claim that sends
    it, the claim that processes it and a read by message id give the bytes back."""
    settings = DeliverySettings()
    outbox, inbox = Outbox(store, "ccb", settings), Inbox(store, "bridge", settings)
    message_id = new_message_id()
    with store.transaction() as tx:
        outbox.enqueue(tx, "bridge", "BATCH_BD", "response", message_id, message)
    with store.transaction() as tx:
        (kept,) = tx.fetch("SELECT payload FROM outbox_body")
        assert bytes(kept["payload"]) == stored(message) != message
    (claim,) = outbox.claim()
    assert claim.payload == message
    arrival = Arrival("BATCH_BD", "response", message_id, None, message)
    assert inbox.store_messages("ccb", [arrival]) == [(True, None)]
    with store.transaction() as tx:
        assert inbox.payload(tx, "ccb", message_id) == message
        (kept,) = tx.fetch("SELECT payload FROM inbox_body")
        assert bytes(kept["payload"]) == stored(message)
    (received,) = inbox.claim()
    assert received.payload == message


@pytest.mark.parametrize(
    ("row", "message"),
    [(LARGE, LARGE), (DEFLATED_ROW, MESSAGE), (ZSTD_ROW, MESSAGE)],
    ids=["plain", "deflate", "zstd"],
)
def test_a_body_stored_before_still_reads(store: Store, row: bytes, message: bytes) -> None:
    """A body written as it is (a row from before compression, or below its threshold then),
    compressed as before the dictionary, or with it, is sent as it was."""
    outbox = Outbox(store, "ccb", DeliverySettings())
    message_id = new_message_id()
    with store.transaction() as tx:
        outbox.enqueue(tx, "bridge", "BATCH_BD", "response", message_id, TINY)
    with store.transaction() as tx:
        tx.execute("UPDATE outbox_body SET payload = :p", {"p": row})
    (claim,) = outbox.claim()
    assert claim.payload == message


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

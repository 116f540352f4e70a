"""Message bodies as the store keeps them in ``outbox_body`` and ``inbox_body``: a large body
compressed, a small one as it is, and every reader given back the bytes that were sent.

Decisions:

* Only a body of ``COMPRESSED_FROM`` bytes or more is compressed: a message of the usual size
  (a sync request or an acknowledgement, about 0.6 to 1.5 kB) is written and read on every
  delivery, where compressing it (about 10 µs, and 3 µs to read it back) would cost a fifth of
  a request's time for a few hundred bytes saved; a large body (a response carrying interval
  data, a batch of periods) shrinks to a third or less, for a cost that is small beside its
  parsing.
* A compressed body is ``MARK`` followed by raw deflate (zlib, level 1) primed with
  ``ENVELOPE``, the text every message opens with. ``MARK`` begins with a NUL byte, which no
  XML or JSON text in UTF-8 begins with (a UTF-16 text begins with a byte order mark or
  ``\\x00<``): a body stored before compression existed, or below the threshold, reads as it
  is, with no column to say which.
* ``ENVELOPE`` and the format under ``MARK`` never change: rows written with them must stay
  readable. A new format takes a new mark, and reading keeps the old one.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

COMPRESSED_FROM = 4096  # bytes: a body this large or larger is kept compressed
MARK = b"\x00z1"  # a compressed body: raw deflate primed with ENVELOPE follows
ENVELOPE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<messageHeader><messageId></messageId><correlationId></correlationId><flow></flow>"
    b"<sourceSystem>CCB</sourceSystem><targetSystem>MDM</targetSystem>"
    b"<sentDateTime></sentDateTime><schemaVersion>v1</schemaVersion></messageHeader>"
    b"<result><hasError>false</hasError></result>"
)
_WINDOW_BITS = -15  # raw deflate (no zlib header: the mark says what follows), a 32 kB window
# A compressor primed with the envelope, copied for each body: priming one anew costs more
# than compressing a body of a few kilobytes.
_PRIMED = zlib.compressobj(1, zlib.DEFLATED, _WINDOW_BITS, 8, zlib.Z_DEFAULT_STRATEGY, ENVELOPE)


class BodyError(ValueError):
    """A stored body marked compressed that does not decompress."""


def stored(payload: bytes, threshold: int = COMPRESSED_FROM) -> bytes:
    """What the body table keeps for ``payload``: itself below ``threshold`` bytes (or when
    compressing would not make it smaller), else the mark and the compressed bytes. A payload
    that itself begins with the mark is always kept compressed, so that it reads back as it
    was."""
    marked = payload.startswith(MARK)
    if _as_it_is(payload, threshold):
        return payload
    compressor = _PRIMED.copy()
    packed = MARK + compressor.compress(payload) + compressor.flush()
    return packed if len(packed) < len(payload) or marked else payload


def _as_it_is(payload: bytes, threshold: int = COMPRESSED_FROM) -> bool:
    """Whether ``stored`` keeps ``payload`` unchanged without trying to compress it."""
    return len(payload) < threshold and not payload.startswith(MARK)


def original(kept: Any) -> bytes:
    """The bytes that were sent, from what a body table holds (bytes, a memoryview, a
    PostgreSQL bytea): decompressed when marked, else as they are."""
    data = bytes(kept)
    if not data.startswith(MARK):
        return data
    decompressor = zlib.decompressobj(_WINDOW_BITS, zdict=ENVELOPE)
    try:
        payload = decompressor.decompress(data[len(MARK) :]) + decompressor.flush()
    except zlib.error as exc:
        raise BodyError(
            f"a stored message body is marked compressed but does not decompress ({exc}): "
            "the row was changed outside the runtime; restore it from a backup"
        ) from None
    if not decompressor.eof:
        raise BodyError(
            "a stored message body is marked compressed but ends before its compressed data "
            "does: the row was cut short outside the runtime; restore it from a backup"
        )
    return payload


def stored_rows(rows: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """Rows to write with each ``payload`` as ``stored`` keeps it: the same rows when none is
    large enough to compress (a batch of the usual messages is not copied)."""
    if all(_as_it_is(row["payload"]) for row in rows):
        return rows
    return [{**row, "payload": stored(row["payload"])} for row in rows]

"""Message bodies as the store keeps them in ``outbox_body`` and ``inbox_body``: compressed with
a dictionary made of the contracts' own messages, and every reader given back the bytes that
were sent (docs/reliability.md §2.1, how a body is kept).

Decisions:

* Every body of ``COMPRESSED_FROM`` bytes or more is compressed when that makes it smaller:
  zstd at ``LEVEL`` with ``bodies.zdict``, a dictionary trained on the golden messages of the
  reference conformance cases (``body_dictionary`` says how). A message of the usual size (a
  sync request or an acknowledgement, 0.6 to 1.5 kB) has most of its text in the dictionary
  (the envelope, the element names, the code values) and shrinks to about a quarter, for a few
  microseconds each way; without a dictionary it hardly shrinks. A body shorter than
  ``COMPRESSED_FROM`` leaves nothing to gain beside the frame's own bytes.
* A compressed body is ``MARK`` followed by one zstd frame with its content size and checksum
  (a damaged row is an error, never other bytes) and without the dictionary's id (the mark
  names the dictionary). Every mark begins with ``MARK_PREFIX``, whose NUL byte no XML or JSON
  text in UTF-8 begins with (a UTF-16 text begins with a byte order mark or ``\\x00<``): a body
  stored plain reads as it is, with no column to say which.
* ``DEFLATE_MARK`` is the format before ``MARK``: raw deflate (zlib) primed with ``ENVELOPE``,
  for bodies of 4 kB or more. Its rows read back as they did; nothing writes it any more.
* A payload that itself begins with ``MARK_PREFIX`` is always kept compressed, so that it reads
  back as it was, under every mark there is and any mark to come. (Before ``MARK``, only one
  beginning with ``DEFLATE_MARK`` was: a body stored plain then that began with ``MARK`` now
  reads as damaged. No message of the contracts begins with a NUL byte.)
* The dictionary, ``ENVELOPE`` and the format under each mark never change: rows written with
  them must stay readable. A new dictionary or format takes a new mark, and reading keeps the
  old ones. ``LEVEL`` is the writer's alone: a frame reads the same at any level.
* The last bodies compressed and read are remembered both ways (``_REMEMBERED`` of each, the
  table emptied when full): a message delivered in process is stored by its sender and again
  by its receiver, and read back by each, the same bytes each time; a look-up in a table of
  bytes costs a tenth of compressing them.
* Each thread has its own compressor and decompressor: a zstd context must not serve two
  threads at once (a receiver processes messages on a pool of threads), and making one for each
  body would cost several times the compression itself.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping, Sequence
from importlib.resources import files
from typing import Any

import zstandard

COMPRESSED_FROM = 64  # bytes: a body this large or larger is kept compressed when that shrinks it
LEVEL = 3  # zstd's level: 5 makes bodies a tenth smaller for half again the time
MARK_PREFIX = b"\x00z"  # what every mark begins with
MARK = MARK_PREFIX + b"2"  # a compressed body: a zstd frame made with bodies.zdict follows
DEFLATE_MARK = MARK_PREFIX + b"1"  # a body compressed before MARK: raw deflate primed with ENVELOPE
ENVELOPE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<messageHeader><messageId></messageId><correlationId></correlationId><flow></flow>"
    b"<sourceSystem>CCB</sourceSystem><targetSystem>MDM</targetSystem>"
    b"<sentDateTime></sentDateTime><schemaVersion>v1</schemaVersion></messageHeader>"
    b"<result><hasError>false</hasError></result>"
)
_WINDOW_BITS = -15  # raw deflate (no zlib header: the mark says what follows), a 32 kB window
DICTIONARY = files("ccbmdm.runtime.store").joinpath("bodies.zdict").read_bytes()
# Loaded once, its compression tables made once for LEVEL: every thread's contexts share it.
_DICTIONARY = zstandard.ZstdCompressionDict(DICTIONARY, dict_type=zstandard.DICT_TYPE_FULLDICT)
_DICTIONARY.precompute_compress(level=LEVEL)


class _Codecs(threading.local):
    """This thread's zstd contexts, made on its first body."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(
            level=LEVEL, dict_data=_DICTIONARY, write_checksum=True, write_dict_id=False
        )
        self.decompressor = zstandard.ZstdDecompressor(dict_data=_DICTIONARY)


_codecs = _Codecs()
_REMEMBERED = 512  # bodies remembered each way, about a megabyte
_packed: dict[bytes, bytes] = {}  # a payload -> what the body table keeps for it
_unpacked_of: dict[bytes, bytes] = {}  # what a body table keeps -> its payload


def _remember(table: dict[bytes, bytes], key: bytes, value: bytes) -> None:
    if len(table) >= _REMEMBERED:
        table.clear()
    table[key] = value


class BodyError(ValueError):
    """A stored body marked compressed that does not decompress."""


def stored(payload: bytes, threshold: int = COMPRESSED_FROM) -> bytes:
    """What the body table keeps for ``payload``: itself below ``threshold`` bytes (or when
    compressing would not make it smaller), else ``MARK`` and the compressed bytes. A payload
    that itself begins with ``MARK_PREFIX`` is always kept compressed, so that it reads back as
    it was."""
    if _as_it_is(payload, threshold):
        return payload
    kept = _packed.get(payload)
    if kept is None:
        packed = MARK + _codecs.compressor.compress(payload)
        kept = packed if len(packed) < len(payload) or payload.startswith(MARK_PREFIX) else payload
        _remember(_packed, payload, kept)
    return kept


def _as_it_is(payload: bytes, threshold: int = COMPRESSED_FROM) -> bool:
    """Whether ``stored`` keeps ``payload`` unchanged without trying to compress it."""
    return len(payload) < threshold and not payload.startswith(MARK_PREFIX)


def original(kept: Any) -> bytes:
    """The bytes that were sent, from what a body table holds (bytes, a memoryview, a
    PostgreSQL bytea): decompressed when marked, else as they are."""
    data = bytes(kept)
    if data.startswith(MARK):
        payload = _unpacked_of.get(data)
        if payload is None:
            payload = _unpacked(data)
            _remember(_unpacked_of, data, payload)
        return payload
    if data.startswith(DEFLATE_MARK):
        return _inflated(data)
    return data


def _unpacked(data: bytes) -> bytes:
    """The payload of a body stored under ``MARK``."""
    try:
        payload = _codecs.decompressor.decompress(data[len(MARK) :], allow_extra_data=False)
    except (zstandard.ZstdError, MemoryError) as exc:  # a damaged frame may claim any size
        raise _damaged(str(exc) or "its frame claims more bytes than memory holds") from None
    if not payload:  # never stored so (an empty body is kept as it is): a frame claiming 0 bytes
        raise _damaged("its frame claims no bytes")
    return payload


def _inflated(data: bytes) -> bytes:
    """The payload of a body stored under ``DEFLATE_MARK``."""
    decompressor = zlib.decompressobj(_WINDOW_BITS, zdict=ENVELOPE)
    try:
        payload = decompressor.decompress(data[len(DEFLATE_MARK) :]) + decompressor.flush()
    except zlib.error as exc:
        raise _damaged(str(exc)) from None
    if not decompressor.eof:
        raise BodyError(
            "a stored message body is marked compressed but ends before its compressed data "
            "does: the row was cut short outside the runtime; restore it from a backup"
        )
    return payload


def _damaged(detail: str) -> BodyError:
    """The error for a marked body whose compressed data does not decompress."""
    return BodyError(
        f"a stored message body is marked compressed but does not decompress ({detail}): "
        "the row was changed outside the runtime; restore it from a backup"
    )


def stored_rows(rows: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    """Rows to write with each ``payload`` as ``stored`` keeps it: the same rows when every
    body is kept as it is (a batch of the smallest bodies is not copied)."""
    if all(_as_it_is(row["payload"]) for row in rows):
        return rows
    return [{**row, "payload": stored(row["payload"])} for row in rows]

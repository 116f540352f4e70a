"""The message header every contract starts with (docs/flows.md §0): the flow, who sends it to whom,
and when; built here so that every message the framework writes has it the same way."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any, Protocol

SCHEMA_VERSION = "v1"


class Header(Protocol):
    """What the runtime reads of a decoded message's header."""

    @property
    def message_id(self) -> str: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def flow(self) -> str: ...
    @property
    def source_system(self) -> str: ...
    @property
    def target_system(self) -> str: ...


def system_code(node: str) -> str:
    """How a header names a node or the system behind it (its source or target): ``ccb`` is
    ``CCB``."""
    return node.upper()


def message_header(
    flow: str,
    source: str,
    target: str,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
    sent_at: datetime | None = None,
) -> dict[str, Any]:
    """A header sent now (UTC, to the second), under ``message_id`` or a new one; ``sent_at``:
    now by the sender's clock, which a conformance case freezes (the wall clock otherwise)."""
    return {
        "message_id": message_id or new_message_id(),
        "correlation_id": correlation_id,
        "flow": flow,
        "source_system": source,
        "target_system": target,
        "sent_date_time": (sent_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0),
        "schema_version": SCHEMA_VERSION,
    }


def new_message_id(now_ns: int | None = None) -> str:
    """A UUID version 7 (RFC 9562): the milliseconds since 1970 (``now_ns``, the clock by
    default), then 74 random bits. An id made later sorts later, so the rows of a batch go to
    the end of the (partner, message id) indexes instead of to a page of their own each: fewer
    pages written per commit, and no random reads once the tables outgrow the cache."""
    milliseconds = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (
        (milliseconds & (1 << 48) - 1) << 80
        | 0x7 << 76  # version
        | (random_bits >> 62 & 0xFFF) << 64
        | 0b10 << 62  # variant
        | random_bits & (1 << 62) - 1
    )
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"

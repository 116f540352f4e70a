"""The message header every contract starts with (docs/flows.md §0): the flow, who sends it to whom,
and when; built here so that every message the framework writes has it the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from ccbmdm.runtime.delivery import new_message_id

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

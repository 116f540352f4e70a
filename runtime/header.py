"""The message header every contract starts with (flows.md §0): the flow, who sends it to whom,
and when; built here so that every message the framework writes has it the same way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ccbmdm.runtime.delivery import new_message_id

SCHEMA_VERSION = "v1"


def message_header(
    flow: str,
    source: str,
    target: str,
    *,
    message_id: str | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """A header sent now (UTC, to the second), under ``message_id`` or a new one."""
    return {
        "message_id": message_id or new_message_id(),
        "correlation_id": correlation_id,
        "flow": flow,
        "source_system": source,
        "target_system": target,
        "sent_date_time": datetime.now(UTC).replace(microsecond=0),
        "schema_version": SCHEMA_VERSION,
    }

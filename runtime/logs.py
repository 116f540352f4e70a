"""Structured logs: one JSON object a line, with the message id and node of what is being
handled.

Messages carry customers' data, and logs travel further than the store (to log shippers, to
tickets). What keeps personal data out of them is knowledge, not guessing: the contracts mark
the personal fields, and every message about a refused value of one (a codec problem, a model's
validation error, a mapping failure) is built with ``***`` in its place (``messages.personal``); a
log line quotes ids and such messages, never a message body. One fallback remains for text that
comes from outside, such as a partner's fault: an e-mail address, unambiguous in any text, is
masked. Nothing else is guessed, so ordinary words, dates and ids stay as they are.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def mask(text: str) -> str:
    """The text with any e-mail address replaced by ``***@***``."""
    return _EMAIL.sub("***@***", text)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...extras}`` with every string masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = mask(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = mask(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure(level: int = logging.INFO) -> None:
    """Send the runtime's logs to standard error as masked JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("ccbmdm")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

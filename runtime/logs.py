"""Structured logs: one JSON object a line, with the message id and node of what is being
handled, and personal data masked (names, addresses, phone numbers, e-mail addresses).

Messages carry customers' data; logs travel further than the store (to log shippers, to
tickets), so what identifies a person never reaches them in clear.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

# Elements of the contracts that hold a person's name, address or contact details.
PERSONAL_ELEMENTS = (
    "entityName",
    "name",
    "address1",
    "address2",
    "address3",
    "city",
    "postal",
    "phoneNumber",
    "phone",
    "emailAddress",
    "email",
    "webUserId",
    "ipAddress",
)
_ELEMENTS = re.compile(
    r"<(?P<tag>(?:\w+:)?(?:" + "|".join(PERSONAL_ELEMENTS) + r"))>[^<]*</(?P=tag)>"
)
_FIELDS = re.compile(
    r"(?P<key>\b(?:entity_name|name|address[123]|city|postal|phone_number|phone|email_address|email)\b['\"]?\s*[:=]\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s,;}]+)"
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w-])\+?\(?\d[\d ().-]{6,}\d(?:\s*x\d+)?(?![\w-])")
_ID = re.compile(r"^\d{10}$")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


def mask(text: str) -> str:
    """The text with personal data replaced by ``***`` (ten-digit ids are kept: they are keys)."""
    text = _ELEMENTS.sub(lambda m: f"<{m.group('tag')}>***</{m.group('tag')}>", text)
    text = _FIELDS.sub(lambda m: f"{m.group('key')}{_quoted(m.group('value'))}", text)
    text = _EMAIL.sub("***@***", text)
    return _PHONE.sub(lambda m: m.group() if _ID.match(m.group()) else "***", text)


def _quoted(value: str) -> str:
    quote = value[0] if value[:1] in ("'", '"') else ""
    return f"{quote}***{quote}"


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

"""Structured logs: one JSON object a line (or a readable line on a terminal), with the node,
flow, message id, request id and state change of what is being handled.

Messages carry customers' data, and logs travel further than the store (to log shippers, to
tickets). What keeps personal data out of them is knowledge, not guessing: the contracts mark
the personal fields, and every message about a refused value of one (a codec problem, a model's
validation error, a mapping failure) is built with ``***`` in its place (``messages.personal``); a
log line quotes ids and such messages, never a message body. One fallback remains for text that
comes from outside, such as a partner's fault: an e-mail address, unambiguous in any text, is
masked. Nothing else is guessed, so ordinary words, dates and ids stay as they are. Credentials
never reach a log line: a DSN is named through ``store.dsn.redacted`` and an HTTP credential's
representation withholds its secret.

Every line about a message or a request carries ``event``, a stable name for what happened, and
the fields listed in ``FIELDS`` that apply (docs/runtime.md, Logs, lists the events).
"""

from __future__ import annotations

import json
import json.encoder
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal, TextIO, get_args

Level = Literal["debug", "info", "warning", "error"]
Format = Literal["auto", "json", "text"]

# The fields a line may carry besides time, level, logger and message, in the order the text
# format shows them; their names are stable (log queries and alerts are written against them).
FIELDS = (
    "event",
    "node",
    "partner",
    "flow",
    "part",
    "message_id",
    "correlation_id",
    "lifecycle",
    "request_type",
    "request_id",
    "from_state",
    "to_state",
    "transition",
    "trigger",
    "attempt",
    "next_due",
    "failure",
    "status",
    "fault",
    "outcome_message_id",
    "relayed_inbox_id",
    "count",
    "worker",
    "reason",
)

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# What every record has, as a record made without a look up the stack (``emit``) has it.
_BLANK = vars(logging.LogRecord("", 0, "(unknown file)", 0, "", (), None, "(unknown function)"))
_STANDARD = frozenset(_BLANK) | {"message", "asctime"}  # and what formatters add
_KNOWN = frozenset(FIELDS)
_OWN = frozenset({"time", "level", "logger", "error"})  # a line's own keys, never a field's
_ENCODER = json.JSONEncoder(default=str)  # made once: json.dumps with options makes one a call
ROOT = "ccbmdm"


def mask(text: str) -> str:
    """The text with any e-mail address replaced by ``***@***``."""
    return _EMAIL.sub("***@***", text) if "@" in text else text


def emit(logger: logging.Logger, level: int, message: str, *lines: Mapping[str, Any]) -> None:
    """One line at ``level`` for each mapping of fields, as ``logger.log(level, message,
    extra=fields)`` writes it, for a fraction of its cost: the runtime writes a dozen lines a
    request. The record is made without what no line shows and costs most to find out (the
    caller's file and line, a walk up the stack: ``(unknown file)``, as with logging's own
    switch ``logging._srcfile = None``); the fields must not be named as a record's own
    attributes are (``FIELDS`` are not)."""
    if not logger.isEnabledFor(level):
        return
    name, level_name = logger.name, logging.getLevelName(level)
    for fields in lines:
        logger.handle(_record(name, level, level_name, message, fields))


def _record(
    name: str, level: int, level_name: str, message: str, fields: Mapping[str, Any]
) -> logging.LogRecord:
    """A record with the attributes of any other (``_BLANK``'s copied), made in a few steps."""
    record = logging.LogRecord.__new__(logging.LogRecord)
    created = time.time()
    record.__dict__ = {
        **_BLANK,
        "name": name,
        "msg": message,
        "levelno": level,
        "levelname": level_name,
        "created": created,
        "msecs": int((created - int(created)) * 1000) + 0.0,
        "relativeCreated": (created - _STARTED) * 1000,
        "thread": threading.get_ident(),
        "threadName": threading.current_thread().name,
        "process": os.getpid(),
        "processName": _process_name(),
        **fields,
    }
    return record


# when logging was loaded, which a record's relativeCreated counts from
_STARTED = _BLANK["created"] - _BLANK["relativeCreated"] / 1000


def _process_name() -> str:
    """As ``LogRecord`` names the process: multiprocessing's name for it, once imported."""
    processes = sys.modules.get("multiprocessing")
    return "MainProcess" if processes is None else processes.current_process().name


# a record's attribute names -> its fields, each with its text in a line (the separators
# before it included)
_PLANS: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}


def _plan_of(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The names of a record's own fields (``extra=``), in ``FIELDS`` order, any others after
    them (sorted), for records whose attributes are ``names``, each with its key's text in a
    JSON line; worked out once for each set of names (a few dozen in a runtime: one for each
    kind of line). A field named as one of the line's own keys (``time``, ``level``...) is left
    out: a line has each key once."""
    plan = _PLANS.get(names)
    if plan is None:
        present = set(names)
        others = sorted(k for k in present - _STANDARD - _KNOWN - _OWN if not k.startswith("_"))
        keys = [k for k in FIELDS if k in present] + others
        plan = tuple((key, f", {_STRING(key)}: ") for key in keys)
        if len(_PLANS) >= 1024:  # records made with ever new fields: start again
            _PLANS.clear()
        _PLANS[names] = plan
    return plan


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields (``extra=``) but those without a value, in ``FIELDS`` order, any
    others after them; not masked."""
    values = vars(record)
    return {key: value for key, _ in _plan_of(tuple(values)) if (value := values[key]) is not None}


_second: tuple[int, str] = (-1, "")  # the last whole second written, as text


def _time(record: logging.LogRecord) -> str:
    """``2026-12-06T20:23:11.633+00:00``; the lines of one second share its text, made once."""
    global _second
    whole = int(record.created)
    if whole != _second[0]:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{int(record.msecs):03d}+00:00"


def _encoder() -> Callable[[dict[str, Any]], str]:
    """``json.JSONEncoder(default=str).encode``, or for a dict its C encoder made once (the
    encoder makes one a call) and without the check for circular references (a line's
    values are flat)."""
    encode = _ENCODER.encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encode
    encoder = make(
        None, str, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return lambda entry: "".join(encoder(entry, 0))


_encode = _encoder()


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...fields}`` with every string masked."""

    def format(self, record: logging.LogRecord) -> str:
        """The line as ``json`` encodes the entry (ASCII, ``", "`` and ``": "``), joined from
        each value's own encoding: the runtime writes a dozen lines a request, and building
        the entry to encode it costs twice as much."""
        values = vars(record)
        parts = [
            '{"time": "',
            _time(record),
            '", "level": ',
            _STRING(record.levelname),
            ', "logger": ',
            _STRING(record.name),
            ', "message": ',
            _STRING(record.getMessage()),
        ]
        for key, key_text in _plan_of(tuple(values)):
            value = values[key]
            if value is None:
                continue
            kind = type(value)  # the kinds lines carry most, in a step; else as json does
            if kind is str:
                parts += (key_text, _STRING(value))
            elif kind is int:
                parts += (key_text, int.__repr__(value))
            else:
                parts += (key_text, _encode(value))
        if record.exc_info:
            parts += (', "error": ', _STRING(self.formatException(record.exc_info)))
        parts.append("}")
        line = "".join(parts)
        if "@" not in line:  # no string of the line has one: none has an e-mail address
            return line
        # the rare line with an "@": its entry read back from it, masked, encoded anew
        entry = json.loads(line)
        return _encode({k: mask(v) if isinstance(v, str) else v for k, v in entry.items()})


_STRING: Callable[[str], str] = json.encoder.encode_basestring_ascii


class TextFormatter(logging.Formatter):
    """``time LEVEL message [from → to] field=value …`` for a person at a terminal, masked as
    the JSON lines are."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: mask(v) if isinstance(v, str) else v for k, v in _extras(record).items()}
        moved = ""
        if "to_state" in fields:
            source = fields.pop("from_state", None)
            moved = f" [{source or '∅'} → {fields.pop('to_state')}]"
        event = fields.pop("event", None)
        shown = " ".join(f"{key}={_shown(value)}" for key, value in fields.items())
        line = (
            f"{_time(record)[11:23]} {record.levelname:<7} {event or record.name}: "
            f"{mask(record.getMessage())}{moved}{'  ' + shown if shown else ''}"
        )
        if record.exc_info:
            line += "\n" + mask(self.formatException(record.exc_info))
        return line


def _shown(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=\n') else text


class _StandardError(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``sys.stderr`` as it is at each line (a test's capture, a terminal's live
    display), not as it was when logging was configured; it keeps what it was configured
    with, for the worker processes started later."""

    def __init__(self, settings: tuple[Level, Literal["json", "text"]]) -> None:
        logging.Handler.__init__(self)
        self.settings = settings

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    def emit(self, record: logging.LogRecord) -> None:
        """The line, flushed at once, as ``StreamHandler`` writes it, in fewer steps (``handle``
        holds the lock); inside ``together``, kept for its one write."""
        try:
            line = self.format(record)
            held = getattr(_held, "lines", None)
            if held is not None:
                held.append((self, record, line))
                return
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_all(self, held: list[tuple[logging.LogRecord, str]]) -> None:
        """Several lines in one write, flushed, under the handler's lock; a failure is handled
        as ``emit`` handles one, with the first line's record."""
        with self.lock:  # type: ignore[union-attr]
            try:
                stream = sys.stderr
                stream.write("".join(line + "\n" for _, line in held))
                stream.flush()
            except RecursionError:
                raise
            except Exception:
                self.handleError(held[0][0])


# a thread's lines inside ``together``: [(handler, record, line), ...]
_held = threading.local()


@contextmanager
def together() -> Iterator[None]:
    """Lines to standard error emitted inside are written together when it ends, in one write
    a handler: a commit's dozen lines cost one system call rather than a dozen (the backends
    run a transaction's ``after_commit`` actions inside it). Nested, the outer one writes."""
    if getattr(_held, "lines", None) is not None:
        yield
        return
    held: list[tuple[_StandardError, logging.LogRecord, str]] = []
    _held.lines = held
    try:
        yield
    finally:
        _held.lines = None
        by_handler: dict[_StandardError, list[tuple[logging.LogRecord, str]]] = {}
        for handler, record, line in held:
            by_handler.setdefault(handler, []).append((record, line))
        for handler, lines in by_handler.items():
            handler.write_all(lines)


class _Worker(logging.Filter):
    """Marks a worker process's lines with its number (the supervising process's have none)."""

    def __init__(self, number: int) -> None:
        super().__init__()
        self.number = number

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.number
        return True


def resolve(log_format: Format, stream: TextIO | None = None) -> Literal["json", "text"]:
    """``auto``: text on a terminal, JSON lines otherwise (a file, a pipe, a log shipper)."""
    if log_format != "auto":
        return log_format
    target = sys.stderr if stream is None else stream
    isatty = getattr(target, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(
    level: Level = "info", log_format: Format = "auto", worker: int | None = None
) -> None:
    """Send the runtime's logs (the ``ccbmdm`` loggers) to standard error at ``level`` and above,
    as JSON lines or text (``auto``: ``resolve``). A worker process started later is configured
    the same way (``configured``), its lines marked with its ``worker`` number."""
    if level not in get_args(Level):
        raise ValueError(f"log level {level!r}; use one of {', '.join(get_args(Level))}")
    if log_format not in get_args(Format):
        raise ValueError(f"log format {log_format!r}; use one of {', '.join(get_args(Format))}")
    chosen = resolve(log_format)
    handler = _StandardError((level, chosen))
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    if worker is not None:
        handler.addFilter(_Worker(worker))
    root = logging.getLogger(ROOT)
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def configured() -> tuple[Level, Literal["json", "text"]] | None:
    """The level and resolved format the runtime's logs are configured with; None when
    ``configure`` has not been called."""
    handlers = logging.getLogger(ROOT).handlers
    return next((h.settings for h in handlers if isinstance(h, _StandardError)), None)

"""Structured logs: JSON lines, the message id of what is handled, personal data masked."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccbmdm.runtime import logs
from ccbmdm.runtime.logs import JsonFormatter, emit, mask


def test_the_fallback_masks_e_mail_addresses_and_no_ordinary_word() -> None:
    """Personal values are withheld where messages are built (test_personal_data); the log
    fallback masks only what cannot be mistaken: an e-mail address. Words such as "Value",
    dates, times, ids and counts stay as they are."""
    text = (
        "person.entity_name: Value error, *** has 300 characters; name=CONTACT city=*** "
        "at 2026-12-06 11:21:27.123 id 0001234567, 8000 problems, from +1 (617) 555-0142"
    )
    assert mask(text) == text
    assert mask("contact ada.okafor@example.org now") == "contact ***@*** now"


def test_records_are_json_with_extras_and_masked() -> None:
    record = logging.LogRecord(
        "ccbmdm.runtime",
        logging.WARNING,
        __file__,
        1,
        "mapping failed for %s",
        ("ada@example.org",),
        None,
    )
    record.message_id = "5f0c6a3e-8f1d-4c2b-9a77-0e4d2b9c1a01"
    record.node = "bridge"
    record.reason = None  # a field without a value is left out
    record.batch_of = "write to ada@example.org"  # a field of its own: after the listed ones
    entry = json.loads(JsonFormatter().format(record))
    assert list(entry) == ["time", "level", "logger", "message", "node", "message_id", "batch_of"]
    assert entry["batch_of"] == "write to ***@***"
    assert entry["level"] == "WARNING" and entry["logger"] == "ccbmdm.runtime"
    assert entry["message"] == "mapping failed for ***@***"
    assert (entry["message_id"], entry["node"]) == (
        "5f0c6a3e-8f1d-4c2b-9a77-0e4d2b9c1a01",
        "bridge",
    )


_VALUES = st.one_of(
    st.none(),
    st.text(),
    st.integers(),
    st.booleans(),
    st.floats(),
    st.lists(st.text(max_size=3), max_size=3),
)


@given(
    message=st.text(),
    fields=st.dictionaries(
        st.sampled_from(logs.FIELDS) | st.sampled_from(["time", "level", "error", "x"]), _VALUES
    ),
)
def test_a_line_is_json_s_own_encoding_of_its_entry(
    message: str, fields: dict[str, object]
) -> None:
    """The formatter joins each value's encoding rather than encoding a dict: the line is the
    very text ``json`` makes of the entry (same order, separators, escapes, masking), for any
    text, number, flag, list or missing value."""
    record = logs._record("ccbmdm.runtime", logging.INFO, "INFO", "%s", {})
    record.args = (message,)
    vars(record).update(fields)
    line = JsonFormatter().format(record)
    entry = {
        "time": line[10:39],
        "level": "INFO",
        "logger": "ccbmdm.runtime",
        "message": message,
        **logs._extras(record),
    }
    if "@" in json.dumps(entry):
        entry = {k: mask(v) if isinstance(v, str) else v for k, v in entry.items()}
    assert line == json.dumps(entry, default=str)


def test_a_line_emitted_reads_as_one_logged_with_extra(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """``emit``, the runtime's cheap way to write its lines, writes what ``log`` with
    ``extra=`` writes: the same fields in the same order, masked alike, and any other handler
    (here pytest's) gets a record with them."""
    log = logging.getLogger("ccbmdm.delivery")
    fields = {
        "to_state": "RETRY_WAIT",
        "event": "delivery.retry",
        "node": "ccb",
        "reason": "503: write to ada@example.org",
        "correlation_id": None,
        "attempt": 2,
    }
    logs.configure("info", "json")
    log.addHandler(caplog.handler)
    try:
        log.warning("send failed; retrying", extra=fields)
        emit(log, logging.WARNING, "send failed; retrying", fields, fields)
        emit(log, logging.DEBUG, "not wanted", fields)
    finally:
        log.removeHandler(caplog.handler)
    logged, *emitted = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(emitted) == 2
    for line in emitted:
        assert list(line) == list(logged)
        assert {k: v for k, v in line.items() if k != "time"} == {
            k: v for k, v in logged.items() if k != "time"
        }
    assert logged["reason"] == "503: write to ***@***"
    assert [
        (r.levelname, r.getMessage(), vars(r)["event"], vars(r)["attempt"]) for r in caplog.records
    ] == [("WARNING", "send failed; retrying", "delivery.retry", 2)] * 3


def test_lines_emitted_together_are_written_in_order_each_marked_as_one_alone(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A batch of lines (``emit`` with several) is written at once: every line in the order
    given, each passed through the handler's filters as a line written alone is (a worker's
    number), and nothing when the level is off."""
    log = logging.getLogger("ccbmdm.delivery")
    logs.configure("info", "json", worker=3)
    lines = [{"event": "message.received", "attempt": attempt} for attempt in (1, 2, 3)]
    emit(log, logging.INFO, "received", *lines)
    emit(log, logging.INFO, "received", {"event": "message.received", "attempt": 4})
    emit(log, logging.DEBUG, "not wanted", *lines)
    written = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["attempt"], line["worker"], line["message"]) for line in written] == [
        (attempt, 3, "received") for attempt in (1, 2, 3, 4)
    ]


class _Writes(io.StringIO):
    """Standard error that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_emitted_inside_together_reach_standard_error_in_one_write_at_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A commit's lines (``Transaction.committed`` runs its actions inside ``together``) cost
    one write: none is written before the block ends, all are written, in order, when it ends,
    even by an exception, and a nested block leaves the writing to the outer one. Outside, a
    line is written at once."""
    stderr = _Writes()
    monkeypatch.setattr(sys, "stderr", stderr)
    log = logging.getLogger("ccbmdm.delivery")
    logs.configure("info", "json")

    def attempts() -> list[int]:
        return [json.loads(line)["attempt"] for line in stderr.getvalue().splitlines()]

    with pytest.raises(RuntimeError), logs.together():
        emit(log, logging.INFO, "received", {"attempt": 1}, {"attempt": 2})
        with logs.together():
            emit(log, logging.INFO, "received", {"attempt": 3})
        assert (attempts(), stderr.writes) == ([], 0)
        raise RuntimeError("a later action failed")
    assert (attempts(), stderr.writes) == ([1, 2, 3], 1)
    emit(log, logging.INFO, "received", {"attempt": 4})
    assert (attempts(), stderr.writes) == ([1, 2, 3, 4], 2)

"""Structured logs: JSON lines, the message id of what is handled, personal data masked."""

from __future__ import annotations

import json
import logging

from ccbmdm.runtime.logs import JsonFormatter, mask
from support import sample


def test_xml_elements_of_a_person_are_masked() -> None:
    masked = mask(sample("ccb/PersonSyncRequest").decode())
    for personal in (
        "Okafor,Adaeze",
        "48 Harbor View Road",
        "Quincy",
        "02169",
        "adaeze.okafor@example.org",
        "555-0142",
    ):
        assert personal not in masked
    assert "<entityName>***</entityName>" in masked
    assert "<personId>0001234567</personId>" in masked  # keys stay: they find the request


def test_free_text_emails_phones_and_fields_are_masked() -> None:
    text = "contact ada@example.org or +1 (617) 555-0142 x12; entity_name='Okafor,Ada' city=Quincy id 0001234567"
    assert mask(text) == "contact ***@*** or ***; entity_name='***' city=*** id 0001234567"


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
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["logger"] == "ccbmdm.runtime"
    assert entry["message"] == "mapping failed for ***@***"
    assert (entry["message_id"], entry["node"]) == (
        "5f0c6a3e-8f1d-4c2b-9a77-0e4d2b9c1a01",
        "bridge",
    )

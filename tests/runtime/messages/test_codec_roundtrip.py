"""Every message survives decode -> encode -> decode, and what the encoder writes is valid XSD."""

from __future__ import annotations

import uuid
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from lxml import etree

from ccbmdm.runtime.messages.contracts import ContractRegistry
from support import REPO, SAMPLES, contract_of


@cache
def xml_schema(contract: str) -> etree.XMLSchema:
    system, root = contract.split("/")
    return etree.XMLSchema(etree.parse(str(REPO / "contracts" / system / f"{root}.xsd")))


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample_round_trips(registry: ContractRegistry, sample: Path) -> None:
    codec, message = registry.decode(sample.read_bytes())
    assert codec.name == contract_of(sample)
    written = codec.encode(message)
    assert registry.decode_afresh(written, codec.name)[1] == message
    # The encoder's output is valid against the XSD itself, checked by an independent validator.
    assert xml_schema(codec.name).validate(etree.fromstring(written)), xml_schema(
        codec.name
    ).error_log
    # A second trip writes the same bytes: the written form is canonical.
    assert codec.encode(registry.decode_afresh(written)[1]) == written


def test_every_contract_has_a_sample(registry: ContractRegistry) -> None:
    assert {contract_of(sample) for sample in SAMPLES} == set(registry.by_name)
    assert len(registry.by_name) == 56


def test_encode_keeps_decimal_scale_and_offsets(registry: ContractRegistry) -> None:
    sample = REPO / "contracts" / "samples" / "mdm" / "UsageTransactionResponse.xml"
    codec, message = registry.decode(sample.read_bytes())
    written = codec.encode(message).decode()
    source = sample.read_text()
    for fragment in ("<quantity>", "<startDateTime>"):
        first = source.split(fragment, 1)[1].split("<", 1)[0]
        assert f"{fragment}{first}<" in written


def test_encode_writes_decimals_in_plain_notation(registry: ContractRegistry) -> None:
    """A decimal whose str would take an exponent is written out in full, as are the others."""
    sample = REPO / "contracts" / "samples" / "ccb" / "MeterReadHighLowResponse.xml"
    codec, message = registry.decode(sample.read_bytes())
    first, *others = message.registers  # type: ignore[attr-defined]
    register = first.model_copy(
        update={"estimated_reading": Decimal("1.25E+4"), "low_reading": Decimal("-0.000005")}
    )
    changed = message.model_copy(update={"registers": (register, *others)})
    written = codec.encode(changed)
    assert b"<estimatedReading>12500</estimatedReading>" in written
    assert b"<lowReading>-0.000005</lowReading>" in written
    assert registry.decode_afresh(written)[1] == changed


def test_encode_escapes_markup_in_text(registry: ContractRegistry) -> None:
    sample = REPO / "contracts" / "samples" / "ccb" / "PersonSyncRequest.xml"
    codec, message = registry.decode(sample.read_bytes())
    assert message.person is not None  # type: ignore[attr-defined]
    person = message.person.model_copy(update={"entity_name": "O'Neil & <Sons>\r\n"})  # type: ignore[attr-defined]
    changed = message.model_copy(update={"person": person})
    written = codec.encode(changed)
    assert b"O'Neil &amp; &lt;Sons&gt;&#13;\n" in written
    assert registry.decode_afresh(written)[1].person.entity_name == "O'Neil & <Sons>\r\n"  # type: ignore[attr-defined]


def test_a_message_encoded_here_is_received_without_parsing_it_again(
    registry: ContractRegistry,
) -> None:
    """A node of this process receives what another one encoded: the model it came from stands
    for the bytes (a valid model survives the codec unchanged); a receipt is never remembered."""
    sample = REPO / "contracts" / "samples" / "ccb" / "PersonSyncRequest.xml"
    codec, sampled = registry.decode_afresh(sample.read_bytes())
    header = sampled.message_header.model_copy(update={"message_id": str(uuid.uuid4())})  # type: ignore[attr-defined]
    message = sampled.model_copy(update={"message_header": header})
    written = codec.encode(message)
    assert registry.decode(written)[1] is message
    assert registry.decode(written, codec.name)[1] is message
    receipt = registry["common/Receipt"]
    answered = receipt.model.model_validate({"message_id": str(uuid.uuid4())})
    decoded = registry.decode(receipt.encode(answered))[1]
    assert decoded == answered and decoded is not answered

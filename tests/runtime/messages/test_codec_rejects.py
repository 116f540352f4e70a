"""Messages that break their contract are rejected with every problem, its line, column and XPath."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from ccbmdm.runtime.messages.codec import (
    ANY_ATTRIBUTE,
    MAX_REPORTED,
    ContractViolation,
    Irregular,
    Problems,
    check_attributes,
)
from ccbmdm.runtime.messages.contracts import ContractRegistry, UnknownContract
from ccbmdm.runtime.messages.xmlsafe import parse_partner_xml
from support import REPO, SAMPLES, contract_of, sample

PERSON = sample("ccb/PersonSyncRequest").decode()


def problems(
    registry: ContractRegistry, text: str
) -> list[tuple[int | None, int | None, str, str]]:
    with pytest.raises(ContractViolation) as caught:
        registry.decode(text.encode())
    return [(p.line, p.column, p.xpath, p.message) for p in caught.value.problems]


def only_problem(registry: ContractRegistry, text: str) -> tuple[int | None, int | None, str, str]:
    found = problems(registry, text)
    assert len(found) == 1, found
    return found[0]


def test_missing_required_element(registry: ContractRegistry) -> None:
    line, column, xpath, message = only_problem(
        registry, PERSON.replace("    <entityName>Okafor,Adaeze</entityName>\n", "")
    )
    assert (line, column, xpath) == (20, 3, "/PersonSyncRequest/person")
    assert "missing required element <entityName>" in message


def test_bad_enumeration_value(registry: ContractRegistry) -> None:
    line, column, xpath, message = only_problem(
        registry,
        PERSON.replace("<changeType>CHANGE</changeType>", "<changeType>UPSERT</changeType>"),
    )
    assert (line, column, xpath) == (18, 3, "/PersonSyncRequest/changeType")
    assert message == "'UPSERT' is not one of ADD, CHANGE, DELETE"


def test_bad_date_and_date_time_without_offset(registry: ContractRegistry) -> None:
    sa = sample("ccb/ServiceAgreementSyncRequest").decode()
    start = sa.split("<startDate>", 1)[1].split("<", 1)[0]
    first_link = sa.split("<startDateTime>", 1)[1].split("<", 1)[0]
    text = sa.replace(f"<startDate>{start}<", "<startDate>2025-02-30<", 1).replace(
        f"<startDateTime>{first_link}<", "<startDateTime>2025-03-01T00:00:00<", 1
    )
    found = problems(registry, text)
    assert [(xpath, message.split(" ", 1)[1]) for _, _, xpath, message in found] == [
        (
            "/ServiceAgreementSyncRequest/serviceAgreement/startDate",
            "is not a valid date: day is out of range for month",
        ),
        (
            "/ServiceAgreementSyncRequest/serviceAgreement/spLinks[1]/startDateTime",
            "does not match the pattern .*(Z|[+\\-]\\d{2}:\\d{2})",
        ),
    ]
    assert all(line is not None and column is not None for line, column, _, _ in found)


def test_every_problem_is_reported_in_document_order(registry: ContractRegistry) -> None:
    text = (
        PERSON.replace("<initialLoad>false", "<initialLoad>maybe")
        .replace("0001234567</personId>", "123</personId>")
        .replace(
            "<language>ENG</language>", '<language>ENG</language><nickname x="1">Ada</nickname>'
        )
        .replace("<city>Quincy</city>", "<city>Quincy</city><city>Boston</city>")
    )
    found = problems(registry, text)
    assert [(line, xpath) for line, _, xpath, _ in found] == [
        (14, "/PersonSyncRequest/sendDetails/initialLoad"),
        (21, "/PersonSyncRequest/person/personId"),
        (26, "/PersonSyncRequest/person/nickname"),
        (26, "/PersonSyncRequest/person/nickname"),
        (30, "/PersonSyncRequest/person/address/city[2]"),
    ]
    messages = [message for *_, message in found]
    assert "attribute 'x' is not allowed" in messages
    assert "unknown element <nickname>" in messages
    assert "element <city> may occur only once here" in messages


def test_a_hundred_thousand_problems_list_the_first_hundred_and_count_the_rest(
    registry: ContractRegistry,
) -> None:
    # One unknown element a line, each found in the text: 100,000 of them, and 100 listed.
    text = PERSON.replace("<person>\n", "<person>\n" + "    <x/>\n" * 100_000)
    with pytest.raises(ContractViolation) as caught:
        registry.decode(text.encode())
    violation = caught.value
    assert (len(violation.problems), violation.total, violation.more) == (
        MAX_REPORTED,
        100_000,
        100_000 - MAX_REPORTED,
    )
    assert [(p.line, p.column, p.xpath) for p in violation.problems[:: MAX_REPORTED - 1]] == [
        (21, 5, "/PersonSyncRequest/person/x[1]"),
        (20 + MAX_REPORTED, 5, f"/PersonSyncRequest/person/x[{MAX_REPORTED}]"),
    ]
    assert {p.message for p in violation.problems} == {"unknown element <x>"}
    assert str(violation).endswith(f"\n  and {100_000 - MAX_REPORTED} more problem(s)")


def test_the_problems_listed_are_the_first_in_the_document_not_the_first_found(
    registry: ContractRegistry,
) -> None:
    # The missing <entityName> is found after every unknown element before it, yet is at <person>.
    text = PERSON.replace("<person>\n", "<person>\n" + "    <x/>\n" * 150).replace(
        "    <entityName>Okafor,Adaeze</entityName>\n", ""
    )
    found = problems(registry, text)
    assert len(found) == MAX_REPORTED
    assert found[0][:3] == (20, 3, "/PersonSyncRequest/person")
    assert found[0][3].startswith("missing required element <entityName>")
    assert [xpath for _, _, xpath, _ in found[1:]] == [
        f"/PersonSyncRequest/person/x[{n}]" for n in range(1, MAX_REPORTED)
    ]


def test_a_problem_is_placed_at_the_start_of_its_tag_on_any_line(
    registry: ContractRegistry,
) -> None:
    # Past line 65,535, after markup that holds "<" (a comment, a processing instruction), with
    # a ">" in an attribute value, and its start tag over three lines: the parser's line would
    # be the one where the start tag ends.
    before = "  <!-- <x/> --><?pi <x/>?> "
    text = PERSON.replace("<person>\n", "<person>\n" + "\n" * 70_000 + before + "<x\n  a='>'\n/>\n")
    found = problems(registry, text)
    assert [(line, column, message) for line, column, _, message in found] == [
        (70_021, len(before) + 1, "attribute 'a' is not allowed"),
        (70_021, len(before) + 1, "unknown element <x>"),
    ]


def test_columns_are_found_on_a_single_line_message(registry: ContractRegistry) -> None:
    compact = etree.tostring(
        etree.fromstring(PERSON.encode(), etree.XMLParser(remove_blank_text=True))
    )
    text = compact.decode().replace("<language>ENG</language>", "<language></language>")
    _, column, xpath, message = only_problem(registry, text)
    assert xpath == "/PersonSyncRequest/person/language"
    assert column is not None
    assert compact.decode()[column - 1 :].startswith("<language>")
    assert "at least 1 required" in message


def test_mixed_text_and_leaf_with_elements_are_rejected(registry: ContractRegistry) -> None:
    text = PERSON.replace("<person>\n", "<person>stray text\n").replace(
        "<language>ENG</language>", "<language><code>ENG</code></language>"
    )
    messages = {(xpath, message) for _, _, xpath, message in problems(registry, text)}
    assert ("/PersonSyncRequest/person", "text 'stray text' is not allowed here") in messages
    assert ("/PersonSyncRequest/person/language", "must hold a value, not elements") in messages


def test_wrong_namespace_names_the_right_one(registry: ContractRegistry) -> None:
    text = PERSON.replace('xmlns="urn:ccbmdm:ccb:v1"', 'xmlns="urn:ccbmdm:ccb:v2"')
    with pytest.raises(
        UnknownContract,
        match=r"wrong namespace; did you mean \{urn:ccbmdm:ccb:v1\}PersonSyncRequest",
    ):
        registry.decode(text.encode())


def test_unknown_root_is_rejected(registry: ContractRegistry) -> None:
    with pytest.raises(UnknownContract, match="unknown root element"):
        registry.decode(b'<Invoice xmlns="urn:ccbmdm:ccb:v1"/>')


def test_a_contract_given_must_match_the_root(registry: ContractRegistry) -> None:
    with pytest.raises(UnknownContract, match="contract mdm/ContactSyncRequest has"):
        registry.decode(PERSON.encode(), "mdm/ContactSyncRequest")
    with pytest.raises(UnknownContract, match="no contract named 'ccb/Nope'"):
        registry.decode(PERSON.encode(), "ccb/Nope")


def test_xsi_schema_location_on_the_root_is_tolerated(registry: ContractRegistry) -> None:
    text = PERSON.replace(
        'xmlns="urn:ccbmdm:ccb:v1">',
        'xmlns="urn:ccbmdm:ccb:v1" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="urn:ccbmdm:ccb:v1 http://example.invalid/p.xsd">',
    )
    assert registry.decode(text.encode())[0].name == "ccb/PersonSyncRequest"


# ---------------------------------------------------------------- differential check against lxml


@cache
def xml_schema(contract: str) -> etree.XMLSchema:
    system, root = contract.split("/")
    return etree.XMLSchema(etree.parse(str(REPO / "contracts" / system / f"{root}.xsd")))


def mutate(tree: etree._Element, rng: random.Random) -> str:
    """One random damage to a message: drop, repeat or move an element, or change a value."""
    elements = list(tree.iter())[1:]
    target = rng.choice(elements)
    parent = target.getparent()
    assert parent is not None
    action = rng.choice(["drop", "repeat", "swap", "value", "empty", "long"])
    if action == "drop":
        parent.remove(target)
    elif action == "repeat":
        target.addnext(__import__("copy").deepcopy(target))
    elif action == "swap" and target.getnext() is not None:
        following = target.getnext()
        assert following is not None
        following.addnext(target)
    elif len(target) == 0:
        target.text = {
            "value": rng.choice(
                ["x", "-1", "1.1234567", "2025-13-01", "2025-01-01T00:00:00", "TRUE", "99999999999"]
            ),
            "empty": "",
            "long": "9" * 300,
        }.get(action, target.text)
    return action


@pytest.mark.parametrize("sample_path", SAMPLES[::3], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_codec_and_lxml_schema_agree_on_damaged_messages(
    registry: ContractRegistry, sample_path: Path
) -> None:
    contract = contract_of(sample_path)
    rng = random.Random(sample_path.name)
    for _ in range(40):
        tree = etree.fromstring(sample_path.read_bytes(), etree.XMLParser(remove_blank_text=True))
        action = mutate(tree, rng)
        data = etree.tostring(tree)
        lxml_says = xml_schema(contract).validate(tree)
        try:
            registry.decode(data, contract)
            codec_says = True
        except ContractViolation:
            codec_says = False
        assert codec_says == lxml_says, (action, data.decode(), str(xml_schema(contract).error_log))


# ------------------------------------------------- the fast decoders against the checking ones


def decoders(registry: ContractRegistry, contract: str) -> tuple[Callable[..., Any], ...]:
    """The fast and the checking decoder of a contract's root type, from its codec module."""
    codec = registry[contract]
    module = sys.modules[codec.decode.__module__]
    home = codec.model.__module__.rpartition(".")[2]
    suffix = f"{home}_{codec.model.__name__}"
    return getattr(module, f"f_{suffix}"), getattr(module, f"d_{suffix}")


def irregular(tree: etree._Element, rng: random.Random) -> str:
    """Damage the fast decoders give up on: an attribute, text beside elements, an unknown
    element, a nested element in a value, or layout the hardened parser would have dropped."""
    elements = list(tree.iter())
    target = rng.choice(elements)
    action = rng.choice(["attribute", "tail", "text", "unknown", "nested", "blank"])
    if action == "attribute":
        target.set("extra", "1")
    elif action == "tail" and target is not tree:
        target.tail = rng.choice(["stray", " "])
    elif action == "text" and len(target):
        target.text = rng.choice(["stray", "\n  "])
    elif action == "unknown":
        target.append(etree.Element(f"{{{etree.QName(tree).namespace}}}unknownElement"))
    elif action == "nested":
        target.insert(0, etree.Element(target.tag))
    return action


@pytest.mark.parametrize("sample_path", SAMPLES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_fast_decoder_gives_up_or_agrees_with_the_checking_one(
    registry: ContractRegistry, sample_path: Path
) -> None:
    """Whatever the message, the fast decoder either gives up or returns the very model the
    checking decoder builds without a problem; on every valid message it does not give up."""
    contract = contract_of(sample_path)
    fast, checking = decoders(registry, contract)
    rng = random.Random(sample_path.name)
    for turn in range(60):
        tree = etree.fromstring(sample_path.read_bytes(), etree.XMLParser(remove_blank_text=True))
        if turn % 2:
            action = irregular(tree, rng)
            root = tree  # as built, which the hardened parser would not give
        else:
            action = mutate(tree, rng) if turn else "none"
            root = parse_partner_xml(etree.tostring(tree))
        found = Problems()
        check_attributes(root, found)
        checked = checking(root, found)
        if ANY_ATTRIBUTE(root):  # decode never asks the fast decoder about such a message
            assert found
            continue
        try:
            quick = fast(root)
        except (Irregular, ValueError):
            assert found or turn % 2, (action, etree.tostring(root).decode())
            continue
        assert not found, (action, etree.tostring(root).decode())
        assert quick == checked and quick.__dict__ == checked.__dict__, action
        assert quick.model_fields_set == checked.model_fields_set

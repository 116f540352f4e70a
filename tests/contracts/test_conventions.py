"""The contracts follow the conventions of the design (namespaces, roots, documentation, facets).

These checks read the XSDs with lxml only, so they hold the contracts to their conventions even
when the generator is broken.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from lxml import etree

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
XS = "{http://www.w3.org/2001/XMLSchema}"
NAMESPACES = {
    "ccb": "urn:ccbmdm:ccb:v1",
    "mdm": "urn:ccbmdm:mdm:v1",
    "common": "urn:ccbmdm:common:v1",
}
SCHEMA_FILES = sorted(CONTRACTS.glob("*/*.xsd"))
# A message schema has a target namespace; a shared-type schema has none and is included
# ("chameleon") by the message schemas, taking their namespace.
MESSAGE_FILES = [p for p in SCHEMA_FILES if etree.parse(str(p)).getroot().get("targetNamespace")]
SAMPLE_FILES = sorted(CONTRACTS.glob("samples/*/*.xml"))


def _catalogue_contracts() -> set[str]:
    catalogue = yaml.safe_load((CONTRACTS / "flows.yaml").read_text(encoding="utf-8"))
    names: set[str] = set()
    for flow in catalogue["flows"]:
        for part in flow["parts"].values():
            names.update((part["sender"], part["receiver"]))
    return names


@pytest.mark.parametrize("path", MESSAGE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_message_schema_has_one_documented_root_named_as_its_file(path: Path) -> None:
    tree = etree.parse(str(path))
    schema = tree.getroot()
    assert schema.get("targetNamespace") == NAMESPACES[path.parent.name]
    assert schema.get("elementFormDefault") == "qualified"
    roots = schema.findall(f"{XS}element")
    assert [r.get("name") for r in roots] == [path.stem]
    etree.XMLSchema(tree)  # compiles


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_element_and_named_type_is_documented(path: Path) -> None:
    schema = etree.parse(str(path)).getroot()
    undocumented = []
    for node in schema.iter(f"{XS}element", f"{XS}complexType", f"{XS}simpleType", f"{XS}group"):
        if node.get("name") is None:
            continue  # anonymous types are documented by their element; refs by their target
        doc = node.find(f"{XS}annotation/{XS}documentation")
        if doc is None or not (doc.text or "").strip():
            undocumented.append(f"line {node.sourceline}: {node.get('name')}")
    assert not undocumented, "missing xs:documentation:\n" + "\n".join(undocumented)


def test_named_complex_types_end_in_type() -> None:
    bad = []
    for path in SCHEMA_FILES:
        for node in etree.parse(str(path)).getroot().iter(f"{XS}complexType", f"{XS}simpleType"):
            name = node.get("name")
            if name is not None and not name.endswith("Type"):
                bad.append(f"{path.name}:{node.sourceline} {name}")
    assert not bad


def test_roots_are_unique_per_namespace_and_catalogued() -> None:
    roots = Counter((p.parent.name, p.stem) for p in MESSAGE_FILES)
    assert all(count == 1 for count in roots.values())
    on_disk = {f"{system}/{root}" for system, root in roots}
    catalogued = _catalogue_contracts()
    assert catalogued - on_disk == set(), "catalogued but missing"
    assert on_disk - catalogued - {"common/Fault", "common/Receipt"} == set(), "not catalogued"


def test_catalogue_lists_twenty_flows_in_order() -> None:
    catalogue = yaml.safe_load((CONTRACTS / "flows.yaml").read_text(encoding="utf-8"))
    assert [f["number"] for f in catalogue["flows"]] == list(range(1, 21))
    assert [f["number"] for f in catalogue["flows"] if f["optional"]] == [7, 8, 9, 10]
    assert {f["mode"] for f in catalogue["flows"] if f["number"] in (14, 15, 17, 19)} == {"sync"}


@pytest.mark.parametrize("path", MESSAGE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_contract_has_a_sample(path: Path) -> None:
    assert (CONTRACTS / "samples" / path.parent.name / f"{path.stem}.xml").exists()


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_sample_validates_against_its_contract(sample: Path) -> None:
    # A sample is named <Root>.xml or <Root>--<variant>.xml.
    contract = CONTRACTS / sample.parent.name / f"{sample.stem.split('--')[0]}.xsd"
    schema = etree.XMLSchema(etree.parse(str(contract)))
    document = etree.parse(str(sample))
    assert schema.validate(document), str(schema.error_log)


def test_element_names_are_camel_case() -> None:
    camel = re.compile(r"[a-z][A-Za-z0-9]*$")
    bad = []
    for path in SCHEMA_FILES:
        schema = etree.parse(str(path)).getroot()
        for node in schema.iter(f"{XS}element"):
            name = node.get("name")
            if name and node.getparent() is not schema and not camel.match(name):
                bad.append(f"{path.name}:{node.sourceline} {name}")
    assert not bad

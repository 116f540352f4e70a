"""The reader holds contracts to the supported subset and says where they leave it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.xsd_reader import ContractError, read_contracts
from support import REPO

HEAD = (
    '<?xml version="1.0"?>\n'
    '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="urn:ccbmdm:ccb:v1"\n'
    '           targetNamespace="urn:ccbmdm:ccb:v1" elementFormDefault="qualified">\n'
    '  <xs:include schemaLocation="../common/types.xsd"/>\n'
)


def contracts_with(tmp_path: Path, name: str, body: str) -> Path:
    folder = tmp_path / "contracts"
    (folder / "ccb").mkdir(parents=True)
    (folder / "common").mkdir()
    shutil.copy(REPO / "contracts" / "common" / "types.xsd", folder / "common" / "types.xsd")
    (folder / "ccb" / f"{name}.xsd").write_text(HEAD + body + "</xs:schema>\n")
    return folder


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(ContractError) as caught:
        read_contracts(folder)
    return [str(finding) for finding in caught.value.findings]


def test_reference_contracts_read_completely(contract_set: ContractSet) -> None:
    assert len(contract_set.contracts) == 56
    person = contract_set.complex_types[("ccb", "PersonSyncRequest")]
    assert [p.name for p in person.particles] == [
        "messageHeader",
        "sendDetails",
        "changeType",
        "entityVersion",
        "person",
    ]  # the SyncBody group is flattened in place
    ccb_id = contract_set.simple_types[("common", "CcbIdType")]
    assert (ccb_id.primitive, ccb_id.facets.patterns) == ("string", ("[0-9]{10}",))
    quantity = contract_set.simple_types[("common", "QuantityType")]
    assert (quantity.facets.total_digits, quantity.facets.fraction_digits) == (18, 6)
    count = contract_set.simple_types[("common", "CountType")]
    assert (count.primitive, count.facets.min_inclusive) == ("integer", "0")


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        (
            '  <xs:element name="Thing"><xs:complexType><xs:choice>\n'
            '    <xs:element name="a" type="xs:string"/></xs:choice></xs:complexType></xs:element>\n',
            5,
            "xs:choice is outside the supported XSD subset",
        ),
        (
            '  <xs:element name="Thing"><xs:complexType><xs:sequence/>\n'
            '    <xs:attribute name="kind" type="xs:string"/></xs:complexType></xs:element>\n',
            6,
            "xs:attribute is outside the supported XSD subset",
        ),
        (
            '  <xs:element name="Thing"><xs:complexType><xs:sequence>\n'
            '    <xs:element name="a" type="NoSuchType"/></xs:sequence></xs:complexType></xs:element>\n',
            6,
            "no type named NoSuchType",
        ),
        (
            '  <xs:element name="Thing"><xs:complexType><xs:sequence>\n'
            '    <xs:element name="a" type="xs:string" nillable="true"/></xs:sequence></xs:complexType></xs:element>\n',
            6,
            "attribute nillable on xs:element is not supported",
        ),
        (
            '  <xs:element name="Other" type="xs:string"/>\n',
            5,
            "root element Other must be named as its file, Thing",
        ),
        (
            '  <xs:element name="Thing"><xs:complexType><xs:sequence>\n'
            '    <xs:element name="a" type="xs:duration"/></xs:sequence></xs:complexType></xs:element>\n',
            6,
            "built-in type xs:duration is not supported",
        ),
    ],
    ids=["choice", "attribute", "unknown-type", "nillable", "root-name", "unsupported-builtin"],
)
def test_subset_violations_name_file_and_line(
    tmp_path: Path, body: str, line: int, expected: str
) -> None:
    found = problems_of(contracts_with(tmp_path, "Thing", body))
    assert any(p.startswith(f"contracts/ccb/Thing.xsd:{line}:") and expected in p for p in found), (
        found
    )


def test_malformed_schema_gives_line_and_column(tmp_path: Path) -> None:
    found = problems_of(contracts_with(tmp_path, "Thing", '  <xs:element name="Thing">\n'))
    assert found[0] == (
        "contracts/ccb/Thing.xsd:6:13: error[xsd-syntax]: not well-formed XML: "
        "Opening and ending tag mismatch: element line 5 and schema"
    )


def test_namespace_must_match_the_folder(tmp_path: Path) -> None:
    folder = contracts_with(tmp_path, "Thing", '  <xs:element name="Thing" type="CodeType"/>\n')
    moved = folder / "mdm"
    moved.mkdir()
    (folder / "ccb" / "Thing.xsd").rename(moved / "Thing.xsd")
    found = problems_of(folder)
    assert any("does not belong in folder mdm/" in p for p in found), found


MARK = '<xs:annotation><xs:appinfo source="urn:ccbmdm:personal-data"/></xs:annotation>'


def test_personal_data_is_read_from_the_contracts_marks(contract_set: ContractSet) -> None:
    """An element marked personal, every element of a complex type marked personal, and an
    element of such a type: nothing else."""

    def personal(home: str, name: str) -> list[str]:
        particles = contract_set.complex_types[(home, name)].particles  # type: ignore[index]
        return [p.name for p in particles if p.personal]

    assert personal("ccb", "PersonType") == ["entityName", "phoneNumber", "emailAddress", "address"]
    assert personal("mdm", "ContactType") == ["name", "phone", "email", "address"]
    assert personal("common", "AddressType") == [
        "address1",
        "address2",
        "address3",
        "city",
        "state",
        "postal",
        "country",
    ]
    assert personal("common", "SelfServiceHeadType") == ["webUserId", "emailAddress", "ipAddress"]
    assert personal("ccb", "ServicePointType") == ["address"]
    assert personal("ccb", "MeterType") == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '  <xs:element name="Thing"><xs:complexType><xs:sequence>\n'
            '    <xs:element name="a" type="xs:string"><xs:annotation>'
            '<xs:appinfo source="urn:example:other"/></xs:annotation></xs:element>\n'
            "  </xs:sequence></xs:complexType></xs:element>\n",
            'xs:appinfo needs source="urn:ccbmdm:personal-data"',
        ),
        (
            '  <xs:element name="Thing"><xs:complexType><xs:sequence>\n'
            f'    <xs:element name="a" type="AddressType">{MARK}</xs:element>\n'
            "  </xs:sequence></xs:complexType></xs:element>\n",
            "contracts/ccb/Thing.xsd:6:5: error[personal-data]: Thing/a: mark the element's complex "
            "type as personal data, not the element (everything in the type is then personal)",
        ),
        (
            '  <xs:element name="Thing" type="Outer"/>\n'
            f'  <xs:complexType name="Outer">{MARK}<xs:sequence>\n'
            '    <xs:element name="inner" type="Inner"/></xs:sequence></xs:complexType>\n'
            '  <xs:complexType name="Inner"><xs:sequence>\n'
            '    <xs:element name="b" type="xs:string"/></xs:sequence></xs:complexType>\n',
            "contracts/ccb/Thing.xsd:7:5: error[personal-data]: Outer/inner: mark its type Inner as "
            "personal data too: the element is in personal type Outer",
        ),
    ],
)
def test_a_personal_data_mark_out_of_place_is_reported(
    tmp_path: Path, body: str, expected: str
) -> None:
    problems = problems_of(contracts_with(tmp_path, "Thing", body))
    assert any(expected in problem for problem in problems), problems


def test_each_enumeration_value_has_the_documentation_of_its_contract(
    contract_set: ContractSet,
) -> None:
    facets = contract_set.simple_types[("common", "HowToUseType")].facets
    assert [v.value for v in facets.value_docs] == list(facets.enumeration)
    peak = facets.value_docs[facets.enumeration.index("PEAK")]
    assert (
        peak.doc
        == "A demand register: the quantity of its UOM, TOU and SQI is the maximum, never a sum."
    )
    line = (
        (REPO / "contracts" / "common" / "billing.xsd")
        .read_text()
        .splitlines()[peak.origin.line - 1]
    )
    assert (peak.origin.file, line.strip()) == (
        "contracts/common/billing.xsd",
        '<xs:enumeration value="PEAK">',
    )
    undocumented = [
        f"{simple.name} {value.value}"
        for simple in contract_set.simple_types.values()
        for value in simple.facets.value_docs
        if not value.doc
    ]
    assert undocumented == []


ENUMERATED = (
    '  <xs:element name="Thing"><xs:complexType><xs:sequence>\n'
    '    <xs:element name="a" type="Narrow"/></xs:sequence></xs:complexType></xs:element>\n'
    '  <xs:simpleType name="Wide"><xs:restriction base="xs:string">\n'
    '    <xs:enumeration value="ON"><xs:annotation>'
    "<xs:documentation>Switched  on.</xs:documentation></xs:annotation></xs:enumeration>\n"
    '    <xs:enumeration value="OFF"/>\n'
    '    <xs:enumeration value="AUTO"/>\n'
    "  </xs:restriction></xs:simpleType>\n"
    '  <xs:simpleType name="Narrow"><xs:restriction base="Wide">\n'
    '    <xs:enumeration value="ON"/>\n'
    '    <xs:enumeration value="OFF"><xs:annotation>'
    "<xs:documentation>Switched off.</xs:documentation></xs:annotation></xs:enumeration>\n"
    "  </xs:restriction></xs:simpleType>\n"
)


def test_a_value_without_documentation_reads_as_empty_and_a_narrower_type_keeps_meanings(
    tmp_path: Path,
) -> None:
    """The documentation of a value is its own, else the one its base type gives it."""
    contracts = read_contracts(contracts_with(tmp_path, "Thing", ENUMERATED))
    wide = contracts.simple_types[("ccb", "Wide")].facets
    narrow = contracts.simple_types[("ccb", "Narrow")].facets
    assert [(v.value, v.doc, str(v.origin)) for v in wide.value_docs] == [
        ("ON", "Switched on.", "contracts/ccb/Thing.xsd:8"),
        ("OFF", "", "contracts/ccb/Thing.xsd:9"),
        ("AUTO", "", "contracts/ccb/Thing.xsd:10"),
    ]
    assert [(v.value, v.doc, str(v.origin)) for v in narrow.value_docs] == [
        ("ON", "Switched on.", "contracts/ccb/Thing.xsd:13"),
        ("OFF", "Switched off.", "contracts/ccb/Thing.xsd:14"),
    ]


def test_documentation_of_values_takes_no_part_in_facet_equality(tmp_path: Path) -> None:
    """Two types allowing the same values have equal facets, however their values are
    documented: the generated checks depend on the values alone."""
    undocumented = ENUMERATED.replace(
        "<xs:annotation><xs:documentation>Switched off.</xs:documentation></xs:annotation>", ""
    )
    documented = read_contracts(contracts_with(tmp_path / "a", "Thing", ENUMERATED))
    bare = read_contracts(contracts_with(tmp_path / "b", "Thing", undocumented))
    one = documented.simple_types[("ccb", "Narrow")].facets
    other = bare.simple_types[("ccb", "Narrow")].facets
    assert [v.doc for v in one.value_docs] != [v.doc for v in other.value_docs]
    assert one == other and hash(one) == hash(other)

"""The compatibility gate classifies every change of the contracts for senders and receivers."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from case_support import ccbmdm, edit

from ccbmdm.codegen.compat import compare, version_key
from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.project import Project, init_project
from ccbmdm.codegen.xsd_reader import read_contracts
from support import REPO

PERSON = "ccb/PersonSyncRequest.xsd"
TYPES = "common/types.xsd"
PHONE = '<xs:element name="phoneNumber" type="TextType" minOccurs="0">'
LANGUAGE = '<xs:element name="language" type="CodeType">'
EMAIL = '<xs:element name="emailAddress" type="TextType" minOccurs="0">'
_TYPES_TEXT = (REPO / "contracts" / "common" / "types.xsd").read_text()
_DELETE_AT = _TYPES_TEXT.index('      <xs:enumeration value="DELETE">')
DELETE = _TYPES_TEXT[_DELETE_AT : _TYPES_TEXT.index("</xs:enumeration>\n", _DELETE_AT) + 18]
REMOVED = ""  # the whole element whose start tag is the old text
NEW_ELEMENT = '<xs:element name="title" type="CodeType"{occurs}/>\n      ' + LANGUAGE

# id: (file, old text, new text, contract, path, [(kind, breaks senders, breaks receivers)])
EDITS: dict[str, tuple[str, str, str, str, str, list[tuple[str, bool, bool]]]] = {
    "optional element removed": (
        PERSON, PHONE, REMOVED,
        "ccb/PersonSyncRequest", "person.phoneNumber",
        [("element removed", True, False)],
    ),
    "required element removed": (
        PERSON, LANGUAGE, REMOVED,
        "ccb/PersonSyncRequest", "person.language",
        [("element removed", True, True)],
    ),
    "element renamed": (
        PERSON, EMAIL, EMAIL.replace("emailAddress", "email"),
        "ccb/PersonSyncRequest", "person.email",
        [("element renamed", True, True)],
    ),
    "minOccurs raised": (
        PERSON, PHONE, PHONE.replace(' minOccurs="0"', ""),
        "ccb/PersonSyncRequest", "person.phoneNumber",
        [("cardinality narrowed", True, False)],
    ),
    "minOccurs lowered": (
        PERSON, LANGUAGE, LANGUAGE.replace(">", ' minOccurs="0">'),
        "ccb/PersonSyncRequest", "person.language",
        [("cardinality widened", False, True)],
    ),
    "maxOccurs raised": (
        PERSON, PHONE, PHONE.replace(">", ' maxOccurs="3">'),
        "ccb/PersonSyncRequest", "person.phoneNumber",
        [("cardinality widened", False, True)],
    ),
    "maxLength lowered": (
        TYPES, '<xs:maxLength value="254"/>', '<xs:maxLength value="200"/>',
        "ccb/PersonSyncRequest", "person.entityName",
        [("facet narrowed", True, False)],
    ),
    "maxLength raised": (
        TYPES, '<xs:maxLength value="254"/>', '<xs:maxLength value="300"/>',
        "ccb/PersonSyncRequest", "person.address.city",
        [("facet widened", False, True)],
    ),
    "pattern changed": (
        TYPES, '<xs:pattern value="[0-9]{10}"/>', '<xs:pattern value="[0-9]{12}"/>',
        "ccb/PersonSyncRequest", "person.personId",
        [("facet changed", True, True)],
    ),
    "pattern added": (
        TYPES, '<xs:maxLength value="254"/>', '<xs:maxLength value="254"/><xs:pattern value="\\S.*"/>',
        "ccb/PersonSyncRequest", "person.entityName",
        [("facet narrowed", True, False)],
    ),
    "totalDigits lowered": (
        TYPES, '<xs:totalDigits value="18"/>', '<xs:totalDigits value="15"/>',
        "ccb/CorrectedReadNotification", "corrections.newValue",
        [("facet narrowed", True, False)],
    ),
    "fractionDigits raised": (
        TYPES, '<xs:fractionDigits value="6"/>', '<xs:fractionDigits value="8"/>',
        "ccb/CorrectedReadNotification", "corrections.newValue",
        [("facet widened", False, True)],
    ),
    "lower bound raised": (
        TYPES, '<xs:restriction base="xs:long"><xs:minInclusive value="1"/>',
        '<xs:restriction base="xs:long"><xs:minInclusive value="2"/>',
        "ccb/PersonSyncRequest", "entityVersion",
        [("facet narrowed", True, False)],
    ),
    "lower bound lowered": (
        TYPES, '<xs:restriction base="xs:long"><xs:minInclusive value="1"/>',
        '<xs:restriction base="xs:long"><xs:minInclusive value="0"/>',
        "ccb/PersonSyncRequest", "entityVersion",
        [("facet widened", False, True)],
    ),
    "upper bound lowered": (
        TYPES, '<xs:maxInclusive value="86400"/>', '<xs:maxInclusive value="3600"/>',
        "ccb/BillDeterminantsResponse", "intervalData.secondsPerInterval",
        [("facet narrowed", True, False)],
    ),
    "upper bound dropped": (
        TYPES, '<xs:maxInclusive value="86400"/>', "",
        "ccb/BillDeterminantsResponse", "intervalData.secondsPerInterval",
        [("facet widened", False, True)],
    ),
    "enumeration value removed": (
        TYPES, DELETE, "",
        "ccb/PersonSyncRequest", "changeType",
        [("enumeration value removed", True, False)],
    ),
    "enumeration value added": (
        TYPES, DELETE, DELETE + '      <xs:enumeration value="MERGE"/>\n',
        "ccb/PersonSyncRequest", "changeType",
        [("enumeration value added", False, True)],
    ),
    "required element added": (
        PERSON, LANGUAGE, NEW_ELEMENT.format(occurs=""),
        "ccb/PersonSyncRequest", "person.title",
        [("required element added", True, True)],
    ),
    "optional element added": (
        PERSON, LANGUAGE, NEW_ELEMENT.format(occurs=' minOccurs="0"'),
        "ccb/PersonSyncRequest", "person.title",
        [("optional element added", False, True)],
    ),
    "element takes a narrower type": (
        PERSON, '<xs:element name="entityName" type="TextType">',
        '<xs:element name="entityName" type="CodeType">',
        "ccb/PersonSyncRequest", "person.entityName",
        [("facet narrowed", True, False), ("facet narrowed", True, False)],
    ),
    "primitive changed": (
        PERSON, '<xs:element name="personOrBusiness" type="CodeType">',
        '<xs:element name="personOrBusiness" type="xs:boolean">',
        "ccb/PersonSyncRequest", "person.personOrBusiness",
        [("type changed", True, True)],
    ),
    "simple element made complex": (
        PERSON, '<xs:element name="personOrBusiness" type="CodeType">',
        '<xs:element name="personOrBusiness" type="AddressType">',
        "ccb/PersonSyncRequest", "person.personOrBusiness",
        [("type changed", True, True)],
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def reference() -> ContractSet:
    return read_contracts(REPO / "contracts")


def edited(tmp_path: Path, file: str, old: str, new: str) -> ContractSet:
    folder = tmp_path / "contracts"
    shutil.copytree(REPO / "contracts", folder)
    if new == REMOVED and old.startswith("<xs:element"):
        text = (folder / file).read_text()
        start = text.index(old)
        end = text.index("</xs:element>", start) + len("</xs:element>")
        old = text[start:end]
    edit(folder / file, old, new)
    return read_contracts(folder)


@pytest.mark.parametrize("name", sorted(EDITS))
def test_each_kind_of_change_is_classified_for_senders_and_receivers(
    name: str, reference: ContractSet, tmp_path: Path
) -> None:
    file, old, new, contract, path, expected = EDITS[name]
    diffs = {d.name: d for d in compare(reference, edited(tmp_path, file, old, new))}
    found = [
        (c.kind, c.breaks_senders, c.breaks_receivers)
        for c in diffs[contract].changes
        if c.path == path
    ]
    assert found == expected


def test_a_local_change_is_reported_once_where_it_was_made(
    reference: ContractSet, tmp_path: Path
) -> None:
    new = edited(tmp_path, PERSON, PHONE, PHONE.replace(' minOccurs="0"', ""))
    [diff] = compare(reference, new)
    [change] = diff.changes
    assert diff.name == "ccb/PersonSyncRequest" and not diff.version_raised
    assert change.path == "person.phoneNumber"
    assert change.detail == "minOccurs 0 -> 1"
    line = 1 + (REPO / "contracts" / PERSON).read_text().splitlines().index(f"      {PHONE}")
    assert str(change.where) == f"contracts/{PERSON}:{line}"
    assert diff.blocking == (change,)


def test_a_shared_type_change_is_reported_in_every_message_at_every_path(
    reference: ContractSet, tmp_path: Path
) -> None:
    new = edited(
        tmp_path, TYPES, '<xs:pattern value="[0-9]{10}"/>', '<xs:pattern value="[0-9]{12}"/>'
    )
    diffs = {d.name: d for d in compare(reference, new)}
    person = [c.path for c in diffs["ccb/PersonSyncRequest"].changes]
    assert person == ["person.personId"]
    assert "mdm/ContactSyncRequest" not in diffs  # MDM's contact has no CCB id of that type
    assert all(
        c.where.file == "contracts/common/types.xsd" for d in diffs.values() for c in d.changes
    )


def test_element_order_matters(reference: ContractSet, tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    shutil.copytree(REPO / "contracts", folder)
    text = (folder / PERSON).read_text()
    phone_at, email_at, language_at = (
        text.index(f'<xs:element name="{n}"') for n in ("phoneNumber", "emailAddress", "language")
    )
    phone, email = text[phone_at:email_at], text[email_at:language_at]
    (folder / PERSON).write_text(text.replace(phone + email, email + phone))
    [diff] = compare(reference, read_contracts(folder))
    [change] = diff.changes
    assert (change.kind, change.path, change.breaks_senders, change.breaks_receivers) == (
        "element order changed",
        "person",
        True,
        True,
    )
    assert "phoneNumber, emailAddress" in change.detail.split(";")[0]


def test_documentation_alone_is_no_change(reference: ContractSet, tmp_path: Path) -> None:
    new = edited(tmp_path, PERSON, "<xs:documentation>E-mail address.", "<xs:documentation>Mail.")
    assert compare(reference, new) == []


def test_a_type_renamed_with_the_same_facets_is_no_change(
    reference: ContractSet, tmp_path: Path
) -> None:
    name_type = (
        '<xs:simpleType name="NameType">'
        '<xs:restriction base="xs:string"><xs:maxLength value="254"/></xs:restriction>'
        "</xs:simpleType>\n</xs:schema>"
    )
    folder = tmp_path / "contracts"
    shutil.copytree(REPO / "contracts", folder)
    edit(folder / PERSON, "</xs:schema>", name_type)
    edit(folder / PERSON, 'name="entityName" type="TextType"', 'name="entityName" type="NameType"')
    assert compare(reference, read_contracts(folder)) == []


def test_contracts_removed_added_and_renamed(reference: ContractSet, tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    shutil.copytree(REPO / "contracts", folder)
    (folder / "ccb" / "SyncRequestUpdate.xsd").unlink()
    text = (folder / PERSON).read_text().replace("PersonSyncRequest", "PartySyncRequest")
    (folder / PERSON).unlink()
    (folder / "ccb" / "PartySyncRequest.xsd").write_text(text)
    receipt = (folder / "common" / "Receipt.xsd").read_text()
    (folder / "common" / "Notice.xsd").write_text(
        receipt.replace('name="Receipt"', 'name="Notice"').replace("ReceiptType", "NoticeType")
    )
    diffs = {d.name: d for d in compare(reference, read_contracts(folder))}
    summary = {
        name: [(c.kind, c.breaks_senders, c.breaks_receivers) for c in d.changes]
        for name, d in diffs.items()
    }
    assert summary == {
        "ccb/SyncRequestUpdate": [("contract removed", True, True)],
        "ccb/PartySyncRequest": [("root renamed", True, True)],
        "common/Notice": [("contract added", False, False)],
    }
    assert diffs["ccb/PartySyncRequest"].changes[0].detail == (
        "PersonSyncRequest renamed to PartySyncRequest"
    )
    assert diffs["ccb/SyncRequestUpdate"].blocking  # nothing can own up to a removal
    assert not diffs["common/Notice"].blocking


def test_a_namespace_change_breaks_both_sides(reference: ContractSet) -> None:
    moved = dataclasses.replace(reference.contracts["ccb/PersonSyncRequest"], namespace="urn:x")
    new = ContractSet(
        reference.simple_types,
        reference.complex_types,
        {**reference.contracts, moved.name: moved},
    )
    [diff] = compare(reference, new)
    assert [(c.kind, c.detail, c.breaking) for c in diff.changes] == [
        ("namespace changed", "urn:ccbmdm:ccb:v1 -> urn:x", True)
    ]


def test_a_raised_version_owns_up_to_breaking_changes(
    reference: ContractSet, tmp_path: Path
) -> None:
    folder = tmp_path / "contracts"
    shutil.copytree(REPO / "contracts", folder)
    edit(folder / PERSON, LANGUAGE, LANGUAGE.replace(">", ' minOccurs="0">'))
    edit(
        folder / PERSON,
        'elementFormDefault="qualified"',
        'elementFormDefault="qualified" version="1.1"',
    )
    [diff] = compare(reference, read_contracts(folder))
    assert diff.new is not None and diff.new.version == "1.1"
    assert diff.version_raised and diff.blocking == ()
    assert [c.breaking for c in diff.changes] == [True]


@pytest.mark.parametrize(
    ("old", "new", "raised"),
    [
        ("", "1.1", True),
        ("", "2", True),
        ("1.1", "1.1", False),
        ("v1.2", "1.10", True),
        ("2", "1.9", False),
        ("1", "", False),
        ("", "draft", False),
    ],
)
def test_versions_compare_as_numbers(old: str, new: str, raised: bool) -> None:
    assert (version_key(new) > version_key(old)) is raised


# ------------------------------------------------------------------------------ command line


def project_pair(tmp_path: Path) -> tuple[Project, Project]:
    return init_project(tmp_path / "reference"), init_project(tmp_path / "current")


def compat(
    capsys: pytest.CaptureFixture[str], project: Project, *args: str
) -> tuple[int, str, str]:
    return ccbmdm(capsys, "compat", *args, "--project-dir", str(project.root))


def test_against_a_folder_lists_the_mappings_and_cases_a_breaking_change_touches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, current = project_pair(tmp_path)
    # The mapping reads the renamed element, so it no longer compiles against the new
    # contracts: the gate takes its lineage over the reference contracts.
    edit(current.contracts / PERSON, 'name="entityName"', 'name="fullName"')
    code, out, err = compat(capsys, current, "--against", str(reference.root))
    assert code == 1
    cases = sorted(  # those that run the request's mapping, and the flow's own cases
        case.parent.name
        for case in (current.cases / "person-sync").glob("*/case.yaml")
        if {"part: request", "kind: flow"} & set(case.read_text().splitlines())
    )
    lines = out.splitlines()
    assert lines[0] == "ccb/PersonSyncRequest (version 1 -> 1)"
    assert lines[1].endswith(
        ": breaking for senders and receivers: element renamed: person.fullName: "
        "entityName renamed to fullName"
    )
    assert lines[2] == "    mappings: mappings/person-sync.request.yaml"
    assert lines[3] == "    cases: " + ", ".join(f"person-sync/{c}" for c in cases)
    assert "1 breaking change(s) in contracts whose version was not raised" in err


def test_exit_codes_follow_the_version_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, current = project_pair(tmp_path)
    assert compat(capsys, current, "--against", str(reference.root))[0] == 0
    edit(current.contracts / PERSON, PHONE, PHONE.replace(">", ' maxOccurs="3">'))
    code, out, _ = compat(capsys, current, "--against", str(reference.contracts))
    assert code == 1 and "cardinality widened: person.phoneNumber" in out
    edit(
        current.contracts / PERSON,
        'elementFormDefault="qualified"',
        'elementFormDefault="qualified" version="1.1"',
    )
    code, out, err = compat(capsys, current, "--against", str(reference.root), "--format", "json")
    assert code == 0, err
    [change] = json.loads(out)
    assert change == {
        "contract": "ccb/PersonSyncRequest",
        "file": f"contracts/{PERSON}",
        "line": change["line"],
        "kind": "cardinality widened",
        "path": "person.phoneNumber",
        "detail": "maxOccurs 1 -> 3",
        "senders": "compatible",
        "receivers": "breaking",
        "version_raised": True,
        "blocking": False,
        "mappings": ["mappings/person-sync.request.yaml"],
        "cases": change["cases"],
    }
    assert change["cases"] and all(c.startswith("person-sync/") for c in change["cases"])


def test_against_a_git_revision_of_a_project_in_a_subfolder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repository = tmp_path / "repository"
    project = init_project(repository / "integration")

    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", *args],
            cwd=repository,
            check=True,
            capture_output=True,
        )

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    edit(project.contracts / TYPES, DELETE, "")
    git("commit", "-q", "-am", "second")
    code, out, _ = compat(capsys, project, "--against", "HEAD~1")
    assert code == 1
    assert (
        "contracts/common/types.xsd:" in out
        and ": breaking for senders, compatible for receivers: enumeration value removed: "
        "changeType: 'DELETE' (ChangeTypeType)"
        in out
    )
    assert compat(capsys, project, "--against", "main")[0] == 0


def test_an_unknown_reference_says_what_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = init_project(tmp_path / "project")
    code, out, err = compat(capsys, project, "--against", "no-such-revision")
    assert (code, out) == (1, "")
    assert err.startswith("error: no-such-revision: no such folder, nor a git revision of ")
    assert "pass a folder or a revision such as main or HEAD~1" in err
    assert "Traceback" not in err


def test_unreadable_reference_contracts_are_named_as_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, current = project_pair(tmp_path)
    edit(reference.contracts / PERSON, "<xs:sequence>", "<xs:sequence><xs:choice/>")
    code, out, err = compat(capsys, current, "--against", str(reference.root))
    assert (code, out) == (1, "")
    assert err.startswith(f"error: the contracts of {reference.root} cannot be read:\n")
    assert f"contracts/{PERSON}:" in err and "Traceback" not in err

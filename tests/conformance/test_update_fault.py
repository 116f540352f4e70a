"""--update of an expected-fault case: the code and rule the mapping fails with now are written
into case.yaml in place, every other byte kept; a mapping that now gives a message is said and
left."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ccbmdm.cli import app, run
from ccbmdm.codegen.project import Project, init_project

CASE = "person-sync/unknown-country"
RULE = "mappings/person-sync.request.yaml#/ContactSyncRequest/contact/address/country"
WHERE = "mappings/person-sync.request.yaml:26:20"  # the country rule, as differences name it


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return init_project(tmp_path_factory.mktemp("reference") / "project")


@pytest.fixture
def project(reference: Project, tmp_path: Path) -> Project:
    root = tmp_path / "project"
    shutil.copytree(reference.root, root)
    return Project.load(root)


def conformance(
    capsys: pytest.CaptureFixture[str], project: Project, *args: str
) -> tuple[int, list[str]]:
    code = run(lambda: app(["conformance", "--project-dir", str(project.root), *args]))
    captured = capsys.readouterr()
    return code, (captured.out + captured.err).splitlines()


def test_a_changed_fault_is_written_back_and_the_rest_kept_byte_for_byte(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    case_file = project.cases / CASE / "case.yaml"
    # What the author wrote: a comment, a quoted rule and Windows line ends, all to be kept.
    written = (
        case_file.read_text(encoding="utf-8")
        .replace("  code: 1101\n", "  code: 1101   # the country is not in the table\n")
        .replace(f"  rule: {RULE}\n", f'  rule: "{RULE}"\n')
        .replace("\n", "\r\n")
    ).encode()
    stale = written.replace(b"code: 1101", b"code: 1102").replace(
        b"address/country", b"address/city"
    )
    case_file.write_bytes(stale)

    code, lines = conformance(capsys, project, "--case", CASE, "--update")

    assert code == 0, lines
    at = lines.index(f"[1/1] {CASE} updated")
    assert lines[at + 1 : at + 3] == [
        f"    fault/code: expected 1102, actual 1101  (written by {WHERE})",
        f"    fault/rule: expected {RULE.replace('country', 'city')}, "
        f"actual {RULE}  (written by {WHERE})",
    ]
    assert case_file.read_bytes() == written
    code, lines = conformance(capsys, project, "--case", CASE)
    assert code == 0, lines
    assert f"[1/1] {CASE} passed" in lines


def test_an_unchanged_fault_leaves_the_file_alone(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    case_file = project.cases / CASE / "case.yaml"
    before = case_file.read_bytes()
    code, lines = conformance(capsys, project, "--case", CASE, "--update")
    assert code == 0, lines
    assert f"[1/1] {CASE} unchanged" in lines
    assert case_file.read_bytes() == before


def test_a_mapping_that_now_gives_a_message_is_said_and_left(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    case_file = project.cases / CASE / "case.yaml"
    with case_file.open("a", encoding="utf-8") as extended:
        extended.write(
            'tables:\n  OUCCB2_OUMDM2_Country:\n    - {ccbCountry: "XXA", mdmCountry: "XA"}\n'
        )
    before = case_file.read_bytes()
    code, lines = conformance(capsys, project, "--case", CASE, "--update")
    assert code == 1
    at = lines.index(f"[1/1] {CASE} FAILED")
    assert lines[at + 1] == (
        f"    {CASE}: expected fault 90000/1101 at {RULE}; the mapping now gives a message: "
        "case.yaml is left as it is (give the case an expected message, or fix the mapping)"
    )
    assert case_file.read_bytes() == before

"""ccbmdm conformance --coverage: the rules and target fields no selected case exercises, per
mapping, with each rule's file:line:col; --fail-under gates on rule coverage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.cli import app, run
from ccbmdm.codegen.project import Project, init_project
from ccbmdm.conformance.compare import present_fields

REQUEST = "mappings/person-sync.request.yaml"
HEADER = "mappings/fragments/sync-request-header.yaml"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project made by `ccbmdm init` (it copies the reference cases), compiled once."""
    return init_project(tmp_path_factory.mktemp("coverage") / "project")


def conformance(
    capsys: pytest.CaptureFixture[str], project: Project, *args: str
) -> tuple[int, str, str]:
    code = run(lambda: app(["conformance", "--project-dir", str(project.root), *args]))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def coverage(capsys: pytest.CaptureFixture[str], project: Project, *args: str) -> dict[str, Any]:
    code, out, _ = conformance(capsys, project, "--coverage", "--format", "json", *args)
    assert code == 0, out
    document: dict[str, Any] = json.loads(out)["coverage"]
    return document


def mapping(document: dict[str, Any], part: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in document["mappings"] if m["part"] == part]
    assert len(found) == 1
    return found[0]


def test_the_rules_a_case_leaves_unexercised_are_named_at_their_site(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    document = coverage(capsys, project, "--case", "person-sync/person-change")
    request = next(m for m in document["mappings"] if m["file"] == REQUEST)
    assert request["cases"] == 1
    # The person has one address line and one external key: the other rules wrote nothing.
    assert request["uncovered_rules"] == [
        {"rule": f"{HEADER}:13:3", "fields": ["externalPkValue2"]},
        {"rule": f"{HEADER}:14:3", "fields": ["externalPkValue3"]},
        {"rule": f"{HEADER}:15:3", "fields": ["externalPkValue4"]},
        {"rule": f"{HEADER}:16:3", "fields": ["externalPkValue5"]},
        {"rule": f"{REQUEST}:22:11", "fields": ["contact.address.address3"]},
    ]
    assert request["uncovered_fields"] == [
        "contact.address.address3",
        "externalPkValue2",
        "externalPkValue3",
        "externalPkValue4",
        "externalPkValue5",
    ]
    assert request["rules"] == {"covered": 21, "total": 26}
    assert request["fields"] == {"covered": 21, "total": 26}
    assert request["rule_percent"] == 80.8


def test_a_mapping_no_case_runs_is_zero_percent(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    document = coverage(capsys, project, "--flow", "person-sync", "--case", "person-change")
    assert [(m["flow"], m["part"]) for m in document["mappings"]] == [
        ("PERSON_SYNC", "ack"),
        ("PERSON_SYNC", "request"),
    ]
    ack = mapping(document, "ack")
    assert ack["cases"] == 0
    assert ack["rule_percent"] == 0.0 and ack["field_percent"] == 0.0
    assert len(ack["uncovered_rules"]) == ack["rules"]["total"] == 10
    assert document["total"] == {
        "rules": {"covered": 21, "total": 36},
        "fields": {"covered": 21, "total": 36},
        "rule_percent": 58.3,
        "field_percent": 58.3,
    }
    # Without --flow every mapping of the project is listed, those of other flows at 0 %.
    everything = coverage(capsys, project, "--case", "person-change")
    others = [m for m in everything["mappings"] if m["flow"] != "PERSON_SYNC"]
    assert others and all(m["rule_percent"] == 0.0 and m["cases"] == 0 for m in others)


def test_a_fault_case_exercises_the_rule_it_fails_at(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    document = coverage(capsys, project, "--case", "person-sync/unknown-country")
    request = next(m for m in document["mappings"] if m["file"] == REQUEST)
    assert request["rules"] == {"covered": 1, "total": 26}
    assert "contact.address.country" not in request["uncovered_fields"]
    assert f"{REQUEST}:26:11" not in [r["rule"] for r in request["uncovered_rules"]]


def test_the_text_report_lists_each_unexercised_rule_and_a_table(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    code, out, _ = conformance(
        capsys, project, "--coverage", "--flow", "person-sync", "--case", "person-change"
    )
    assert code == 0
    assert f"{REQUEST} (PERSON_SYNC request, 1 case(s)):" in out
    assert f"    rule {REQUEST}:22:11 not exercised (contact.address.address3)" in out
    assert "mappings/person-sync.ack.yaml (PERSON_SYNC ack, no case):" in out
    assert "│ PERSON_SYNC request │     1 │ 21/26 │  21/26 │    80.8 │     80.8 │" in out
    assert "│ total               │     1 │ 21/36 │  21/36 │    58.3 │     58.3 │" in out


@pytest.mark.parametrize(("threshold", "code"), [("58", 0), ("58.4", 1)])
def test_fail_under_gates_on_rule_coverage(
    capsys: pytest.CaptureFixture[str], project: Project, threshold: str, code: int
) -> None:
    found, out, err = conformance(
        capsys,
        project,
        "--coverage",
        "--fail-under",
        threshold,
        "--flow",
        "person-sync",
        "--case",
        "person-change",
    )
    assert found == code, out + err
    if code:
        assert f"rule coverage 58.3 % is below --fail-under {threshold} %" in err


def test_fail_under_needs_coverage(capsys: pytest.CaptureFixture[str], project: Project) -> None:
    code, _, err = conformance(capsys, project, "--fail-under", "50")
    assert code == 2
    assert "--fail-under needs --coverage" in err


def test_a_failing_case_still_fails_the_run_with_coverage(
    capsys: pytest.CaptureFixture[str], project: Project, tmp_path: Path
) -> None:
    broken = tmp_path / "project"
    shutil.copytree(project.root, broken)
    golden = broken / "cases/person-sync/person-change/expected.xml"
    text = golden.read_text(encoding="utf-8")
    golden.write_text(text.replace("<city>", "<city>X", 1), encoding="utf-8")
    junit = tmp_path / "junit.xml"
    code, out, _ = conformance(
        capsys,
        Project.load(broken),
        "--coverage",
        "--case",
        "person-change",
        "--junit",
        str(junit),
    )
    assert code == 1
    assert "FAILED" in out and "coverage" in out
    assert 'failures="1"' in junit.read_text(encoding="utf-8")


def test_present_fields_skip_absent_values_and_empty_repetitions() -> None:
    tree = {
        "header": {"id": "1", "note": None},
        "items": [{"id": "a", "tag": None}, {"id": None, "tag": "t"}],
        "empty": [],
        "gone": None,
    }
    assert present_fields(tree) == {
        "header",
        "header.id",
        "items",
        "items[]",
        "items[].id",
        "items[].tag",
    }


def test_update_with_coverage_counts_what_the_cases_wrote(
    capsys: pytest.CaptureFixture[str], project: Project, tmp_path: Path
) -> None:
    copy = tmp_path / "project"
    shutil.copytree(project.root, copy)
    document = coverage(capsys, Project.load(copy), "--update", "--case", "person-change")
    request = next(m for m in document["mappings"] if m["file"] == REQUEST)
    assert request["rules"] == {"covered": 21, "total": 26}

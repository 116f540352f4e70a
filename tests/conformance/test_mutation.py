"""ccbmdm conformance --mutate: mutants of the mapping rules run against the cases; a mutant a
case covers is killed, one no case covers is reported at its rule's file:line:col; the
allow-list lets a reviewed survivor pass and reports a stale or malformed entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from case_support import copied

from ccbmdm.cli import app, run
from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.project import Project, init_project
from ccbmdm.conformance.mutants import OPERATORS, TableSwap, altered
from ccbmdm.conformance.mutation import Mutator
from ccbmdm.conformance.runner import Kit
from ccbmdm.runtime.messages.mapping import CodeTable

REQUEST = "mappings/person-sync.request.yaml"
ALLOWED = "cases/mutants-allowed.yaml"
# The one case the small project keeps: a changed person, without a third address line.
KEPT = ("person-sync/person-change",)
MUTATE = ("conformance", "--mutate", "--flow", "person-sync")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A project made by `ccbmdm init` with a single PERSON_SYNC request case, compiled once."""
    project = init_project(tmp_path_factory.mktemp("mutation") / "project")
    for case in sorted(project.cases.glob("*/*/case.yaml")):
        if f"{case.parent.parent.name}/{case.parent.name}" not in KEPT:
            shutil.rmtree(case.parent)
    (project.cases / "mutants-allowed.yaml").unlink()  # `ccbmdm init` ships an empty one
    Kit(project)  # compiles it
    return project


@pytest.fixture
def project(small: Project, tmp_path: Path) -> Project:
    return copied(small, tmp_path)


def mutate(capsys: pytest.CaptureFixture[str], project: Project, *args: str) -> tuple[int, str]:
    code = run(lambda: app([*MUTATE, "--project-dir", str(project.root), *args]))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def report(capsys: pytest.CaptureFixture[str], project: Project) -> dict[str, Any]:
    """The JSON report of the run."""
    code = run(lambda: app([*MUTATE, "--project-dir", str(project.root), "--format", "json"]))
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert code == (1 if any(m["status"] == "survived" for m in document["mutants"]) else 0)
    return document


def verdicts(capsys: pytest.CaptureFixture[str], project: Project) -> dict[str, dict[str, Any]]:
    """Each mutant's verdict by its id."""
    return {m["id"]: m for m in report(capsys, project)["mutants"]}


def test_a_mutant_a_case_covers_is_killed(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    found = verdicts(capsys, project)
    phone = found[f"{REQUEST}#contact.phone drop-rule"]
    assert phone["status"] == "killed"
    assert phone["killed_by"] == (
        'person-sync/person-change: /contact/phone: expected "(617) 555-0142 x12", actual (absent)'
    )
    assert phone["rule"] == f"{REQUEST}:14:7"
    swap = found[f"{REQUEST}#contact.contactType swap-values"]
    assert swap["change"] == (
        "OUCCB2_OUMDM2_ContactType.contactType values swapped (PERSON->BUSINESS, BUSINESS->PERSON)"
    )
    assert swap["status"] == "killed"


def test_a_mutant_no_case_covers_is_reported_at_its_rule(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    code, output = mutate(capsys, project)
    assert code == 1
    lines = output.splitlines()
    survivor = (
        f"SURVIVED {REQUEST}:22:11 contact.address.address3 ({REQUEST}) drop-rule: rule removed"
    )
    assert survivor in lines
    assert lines[lines.index(survivor) + 1].strip() == "no mapping case exercises this rule"
    # The ack has no case left: its mutants survive, each said so.
    assert "no mapping case runs this mapping" in output
    assert "│ total" in output
    assert " mutant(s) in " in output


def test_an_allow_list_naming_every_survivor_passes_the_run(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    found = verdicts(capsys, project)
    survivors = [m for m in found.values() if m["status"] == "survived"]
    assert survivors
    write_allowed(project, survivors)
    code, output = mutate(capsys, project)
    assert code == 0, output
    assert "SURVIVED" not in output
    assert f"allowed {REQUEST}:22:11 contact.address.address3" in output
    assert "allowed: reviewed in the test: no message can tell" in output
    document = report(capsys, project)
    assert document["operators"]["drop-rule"]["allowed"] > 0
    assert document["operators"]["drop-rule"]["survived"] == 0


def test_a_stale_entry_of_the_allow_list_is_a_finding_at_its_line(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    found = verdicts(capsys, project)
    survivors = [m for m in found.values() if m["status"] == "survived"]
    killed = found[f"{REQUEST}#contact.phone drop-rule"]
    gone = {**killed, "target": "contact.fax"}
    write_allowed(project, [*survivors, killed, gone])
    code, output = mutate(capsys, project)
    assert code == 1
    line = 2 + 5 * len(survivors)  # each entry takes five lines after `allowed:`
    assert (
        f"{ALLOWED}:{line}:5: error[allow-list]: stale entry: the mutant contact.phone drop-rule "
        "is killed now (remove the entry)"
    ) in output
    assert (
        f"{ALLOWED}:{line + 5}:5: error[allow-list]: stale entry: no mutant "
        "contact.fax drop-rule: rule removed"
    ) in output


def test_a_malformed_allow_list_is_a_finding_at_its_line(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    (project.root / ALLOWED).write_text(
        "allowed:\n"
        f"  - mapping: {REQUEST}\n"
        "    target: contact.phone\n"
        "    operator: delete-rule\n"
        "    change: rule removed\n"
        "    reason: a reason long enough\n",
        encoding="utf-8",
    )
    code, output = mutate(capsys, project)
    assert code == 1
    assert f"{ALLOWED}:4:15: error[schema]: allowed.0.operator: 'delete-rule' is not one" in output


def test_mutate_refuses_a_case_selection(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    code, output = mutate(capsys, project, "--case", "person-change")
    assert code == 2
    assert "--mutate runs every case of the selected flows" in output


def test_mutation_needs_every_case_to_pass_first(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    golden = project.cases / "person-sync/person-change/expected.xml"
    golden.write_text(
        golden.read_text(encoding="utf-8").replace("<city>", "<city>X", 1), encoding="utf-8"
    )
    code, output = mutate(capsys, project)
    assert code == 1
    assert "1 case(s) fail on the mappings as they are (person-sync/person-change)" in output


def test_mutants_are_the_same_on_every_run_and_never_written(small: Project) -> None:
    target = sorted(str(p) for p in small.target.rglob("*"))
    first = Mutator(Kit(small)).mutants()
    second = Mutator(Kit(small)).mutants()
    assert [m.id for m in first] == [m.id for m in second]
    assert len({m.id for m in first}) == len(first)
    assert {m.operator for m in first} == set(OPERATORS)
    assert sorted(str(p) for p in small.target.rglob("*")) == target


def test_a_required_element_is_never_dropped_and_a_fragment_rule_is_named_at_its_file(
    small: Project,
) -> None:
    found = {m.id: m for m in Mutator(Kit(small)).mutants({"PERSON_SYNC"})}
    assert f"{REQUEST}#contact.contactType drop-rule" not in found  # required
    pk2 = found[f"{REQUEST}#externalPkValue2 other-source"]
    assert pk2.rule == Pos("mappings/fragments/sync-request-header.yaml", 13, 3)
    assert pk2.change == "reads sendDetails.pkValue3 instead of sendDetails.pkValue2"


def test_a_condition_is_negated_and_the_constant_it_compares_with_altered(
    capsys: pytest.CaptureFixture[str], project: Project
) -> None:
    mapping = project.root / REQUEST
    text = mapping.read_text(encoding="utf-8")
    written = "phone: {path: phoneNumber, when: {equals: [personOrBusiness, P]}}"
    mapping.write_text(text.replace("phone: phoneNumber", written, 1), encoding="utf-8")
    found = verdicts(capsys, project)
    negated = found[f"{REQUEST}#contact.phone negate-condition"]
    assert (negated["change"], negated["status"]) == ("when negated", "killed")
    altered_ = found[f"{REQUEST}#contact.phone alter-constant"]
    assert altered_["change"] == "when: personOrBusiness 'P' -> 'Q'"
    assert altered_["status"] == "killed"


def test_a_constant_is_altered_within_its_type() -> None:
    assert altered("ACTIVE", None) == "ACTIVF"
    assert altered("-", None) == "-X"
    assert altered(7, None) == 8
    assert altered(True, None) is False


def write_allowed(project: Project, mutants: list[dict[str, Any]]) -> None:
    lines = ["allowed:"]
    for mutant in mutants:
        lines += [
            f"  - mapping: {mutant['mapping']}",
            f"    target: {json.dumps(mutant['target'])}",
            f"    operator: {mutant['operator']}",
            f"    change: {json.dumps(mutant['change'])}",
            '    reason: "reviewed in the test: no message can tell"',
        ]
    (project.root / ALLOWED).write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_swapped_code_table_swaps_a_cases_own_rows_alike() -> None:
    table = CodeTable(
        "T", ("k",), ("v",), "fail", {("a",): {"k": "a", "v": "X"}, ("b",): {"k": "b", "v": "Y"}}
    )
    swap = TableSwap("T", "T~v~swapped", "v", (("X", "Y"), ("Y", "X")))
    mutated = swap.applied(table)
    assert mutated.name == "T~v~swapped"
    assert mutated.rows == {("a",): {"k": "a", "v": "Y"}, ("b",): {"k": "b", "v": "X"}}
    assert swap.row({"k": "c", "v": "X"}) == {"k": "c", "v": "Y"}
    assert swap.row({"k": "d", "v": "Z"}) == {"k": "d", "v": "Z"}


def test_the_reference_project_kills_every_mutant_and_exercises_every_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from support import REPO

    root = str(REPO)
    code = run(lambda: app(["conformance", "--mutate", "--project-dir", root, "--format", "json"]))
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    statuses = [m["status"] for m in document["mutants"]]
    assert len(statuses) > 600 and "survived" not in statuses
    code = run(
        lambda: app(["conformance", "--project-dir", root, "--coverage", "--fail-under", "100"])
    )
    assert code == 0, capsys.readouterr().out

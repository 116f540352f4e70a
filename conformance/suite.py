"""A run of the kit: which cases are selected, and the reports of their outcomes
(per-flow summary, JSON, JUnit XML for CI)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.project import Project
from ccbmdm.conformance.cases import CASE_FILE, Case, discover, flow_code, read_case
from ccbmdm.conformance.outcome import Outcome
from ccbmdm.errors import CcbmdmError


class BadSelection(CcbmdmError):
    """A -k expression that cannot be read."""


@dataclass(frozen=True)
class Selection:
    """Which cases to run: by flow, by case name and by a -k expression over the case id. A
    repeated --flow or --case selects the union of its values; the kinds narrow each other."""

    flows: tuple[str, ...] = ()  # flow codes or their folder names; none: every flow
    cases: tuple[str, ...] = ()  # case folder names or ids; none: every case
    keyword: str | None = None

    def __call__(self, case_id: str) -> bool:
        flow, name = case_id.split("/", 1)
        if self.flows and flow_code(flow) not in {flow_code(f) for f in self.flows}:
            return False
        if self.cases and not {name, case_id} & set(self.cases):
            return False
        return self.keyword is None or matches(self.keyword, case_id)


def load(project: Project, selection: Selection) -> tuple[list[Case], list[Finding]]:
    """The selected cases of the project, and a finding for each malformed one."""
    cases: list[Case] = []
    findings: list[Finding] = []
    for folder in discover(project):
        if not selection(f"{folder.parent.name}/{folder.name}"):
            continue
        try:
            cases.append(read_case(folder, project.root))
        except Finding as finding:
            findings.append(finding)
    return cases, findings


_TOKEN = re.compile(r"\(|\)|[^\s()]+")


def matches(expression: str, case_id: str) -> bool:
    """pytest's -k: words matched as substrings of the case id, with and, or, not and
    parentheses."""
    tokens: list[str] = _TOKEN.findall(expression)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise BadSelection(f"-k {expression!r}: ends too early")
        position += 1
        return tokens[position - 1]

    def any_of() -> bool:
        value = all_of()
        while peek() == "or":
            take()
            value = all_of() or value
        return value

    def all_of() -> bool:
        value = negation()
        while peek() == "and":
            take()
            value = negation() and value
        return value

    def negation() -> bool:
        if peek() == "not":
            take()
            return not negation()
        token = take()
        if token == "(":
            value = any_of()
            if take() != ")":
                raise BadSelection(f"-k {expression!r}: a parenthesis is not closed")
            return value
        if token in (")", "and", "or"):
            raise BadSelection(f"-k {expression!r}: unexpected {token!r}")
        return token in case_id

    value = any_of()
    if position != len(tokens):
        raise BadSelection(f"-k {expression!r}: unexpected {tokens[position]!r}")
    return value


@dataclass(frozen=True)
class FlowSummary:
    flow: str
    cases: int
    passed: int
    seconds: float

    @property
    def failed(self) -> int:
        return self.cases - self.passed


def summary(outcomes: Iterable[Outcome]) -> list[FlowSummary]:
    """Per flow: how many cases, how many passed, and the time they took."""
    flows: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        flows.setdefault(outcome.case.flow, []).append(outcome)
    return [
        FlowSummary(
            flow,
            len(found),
            sum(1 for o in found if o.passed),
            sum(o.seconds for o in found),
        )
        for flow, found in sorted(flows.items())
    ]


def as_json(outcomes: Iterable[Outcome], findings: Iterable[Finding]) -> dict[str, Any]:
    return {
        "cases": [
            {
                "case": o.case.id,
                "flow": o.case.flow,
                "part": o.case.part,
                "passed": o.passed,
                "seconds": round(o.seconds, 4),
                "differences": [
                    {"path": d.path, "expected": d.expected, "actual": d.actual, "rule": d.rule}
                    for d in o.differences
                ],
                "problems": list(o.problems),
            }
            for o in outcomes
        ],
        "findings": [str(f) for f in findings],
    }


def write_junit(path: Path, outcomes: list[Outcome], findings: list[Finding]) -> None:
    """A JUnit XML report: one test suite per flow, one test case per case; a malformed case
    is an error of the suite ``cases``."""
    root = ElementTree.Element("testsuites", name="ccbmdm conformance")
    for flow in summary(outcomes):
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=flow.flow,
            tests=str(flow.cases),
            failures=str(flow.failed),
            time=f"{flow.seconds:.3f}",
        )
        for outcome in (o for o in outcomes if o.case.flow == flow.flow):
            test = ElementTree.SubElement(
                suite,
                "testcase",
                classname=outcome.case.flow,
                name=outcome.case.id,
                time=f"{outcome.seconds:.3f}",
            )
            if not outcome.passed:
                failure = ElementTree.SubElement(
                    test, "failure", message=f"{outcome.case.id} differs from its golden"
                )
                failure.text = "\n".join(failure_lines(outcome))
    if findings:
        suite = ElementTree.SubElement(
            root, "testsuite", name="cases", tests=str(len(findings)), errors=str(len(findings))
        )
        for finding in findings:
            test = ElementTree.SubElement(
                suite, "testcase", classname="cases", name=str(finding.pos)
            )
            ElementTree.SubElement(test, "error", message=str(finding))
    path.parent.mkdir(parents=True, exist_ok=True)
    ElementTree.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def failure_lines(outcome: Outcome) -> list[str]:
    """What a failed case prints: its problems, then each difference on its own line."""
    return [*outcome.problems, *(str(d) for d in outcome.differences)]


def failure_findings(outcomes: Iterable[Outcome]) -> list[Finding]:
    """Each failing case as findings at its case.yaml (for SARIF): one per difference from its
    golden, naming the mapping rule that writes the field, and one per problem."""
    found: list[Finding] = []
    for outcome in outcomes:
        where = outcome.case.at(CASE_FILE)  # the file's first line: the case as a whole
        for difference in outcome.differences:
            message = f"expected {difference.expected}, actual {difference.actual}"
            hint = f"written by {difference.rule}" if difference.rule else ""
            found.append(Finding(where, "case-failed", message, hint, path=difference.path))
        for problem in outcome.problems:
            found.append(Finding(where, "case-failed", problem))
    return found

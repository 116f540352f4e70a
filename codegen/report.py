"""Findings as the command line writes them: text for people, JSON for scripts, SARIF 2.1.0 for
code scanning (GitHub annotates the lines of a pull request with it).

The three say the same: each finding's file, line, column, severity, rule, contract path,
message and hint; SARIF adds every registered rule's explanation (`diagnostics.RULES`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import Any, Literal
from urllib.parse import quote

from ccbmdm.codegen.diagnostics import RULES, Finding, Pos

Format = Literal["text", "json", "sarif"]
FORMATS: tuple[Format, ...] = ("text", "json", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {"error": "error", "warning": "warning", "note": "note"}


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Warnings before errors (so that errors stay in view), each group by file and position."""
    return sorted(
        findings,
        key=lambda f: (f.severity == "error", f.pos.file, f.pos.line, f.pos.column, f.rule),
    )


def failing(findings: Iterable[Finding], strict: bool = False) -> bool:
    """Whether the findings fail a run: any error, or under ``strict`` any warning too."""
    return any(f.severity == "error" or (strict and f.severity == "warning") for f in findings)


def summary(findings: Iterable[Finding]) -> str:
    listed = list(findings)
    errors = sum(1 for f in listed if f.severity == "error")
    return f"{errors} error(s), {len(listed) - errors} warning(s)"


def as_json(findings: Iterable[Finding]) -> list[dict[str, Any]]:
    """The findings as a list of flat records."""
    return [
        {
            "file": f.pos.file,
            "line": f.pos.line,
            "column": f.pos.column,
            "severity": f.severity,
            "rule": f.rule,
            "path": f.path,
            "message": f.message,
            "hint": f.hint,
        }
        for f in ordered(findings)
    ]


def as_sarif(findings: Iterable[Finding], version: str) -> dict[str, Any]:
    """The findings as a SARIF 2.1.0 log of one run, with every registered rule; file paths are
    relative to the project root (``%SRCROOT%``), as code scanning expects."""
    index = {rule_id: number for number, rule_id in enumerate(RULES)}
    rules = [
        {
            "id": rule.id,
            "name": "".join(word.capitalize() for word in rule.id.split("-")),
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": rule.explanation},
            "help": {"text": rule.explanation},
            "defaultConfiguration": {"level": _LEVEL[rule.severity]},
            "properties": {"category": rule.stage},
        }
        for rule in RULES.values()
    ]
    results = []
    for finding in ordered(findings):
        path = f"{finding.path}: " if finding.path else ""
        hint = f" ({finding.hint})" if finding.hint else ""
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "level": _LEVEL[finding.severity],
            "message": {"text": f"{path}{finding.message}{hint}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": _artifact(finding.pos.file),
                        "region": {
                            "startLine": max(finding.pos.line, 1),
                            "startColumn": max(finding.pos.column, 1),
                        },
                    }
                }
            ],
        }
        if finding.rule in index:
            result["ruleIndex"] = index[finding.rule]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "ccbmdm",
                        "version": version,
                        "rules": rules,
                    }
                },
                "columnKind": "unicodeCodePoints",
                "results": results,
            }
        ],
    }


def _artifact(file: str) -> dict[str, str]:
    """Where a file is: relative to the project root, or (a message given by its absolute
    path to `ccbmdm validate`) a file URI."""
    if PurePath(file).is_absolute():
        return {"uri": Path(file).as_uri()}
    return {"uri": quote(file.replace("\\", "/")), "uriBaseId": "%SRCROOT%"}


def message_findings(name: str, exc: Exception) -> list[Finding]:
    """Why `ccbmdm validate` rejects a message, as findings in the message file ``name``: each
    contract violation at its line, column and XPath."""
    # imported here: the codecs pull in lxml and pydantic, which `--help` never needs
    from ccbmdm.runtime.messages.codec import ContractViolation
    from ccbmdm.runtime.messages.xmlsafe import XmlRejected

    if isinstance(exc, XmlRejected):
        where = Pos(name, exc.line or 1, exc.column or 1)
        return [Finding(where, "invalid-message", f"XML rejected: {exc.reason}")]
    if isinstance(exc, ContractViolation):
        found = [
            Finding(
                Pos(name, problem.line or 1, problem.column or 1),
                "invalid-message",
                problem.message,
                path=problem.xpath,
            )
            for problem in exc.problems
        ]
        if exc.more:
            last = found[-1].pos if found else Pos(name, 1, 1)
            message = f"and {exc.more} more problem(s) against {exc.contract}"
            found.append(Finding(last, "invalid-message", message))
        return found
    return [Finding(Pos(name, 1, 1), "invalid-message", str(exc))]

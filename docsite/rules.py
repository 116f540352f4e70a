"""The rules page: every rule `ccbmdm check` reports under, from the registry
(`codegen.diagnostics.RULES`), so the page never lists a rule the checks do not know.

Each rule has an anchor of its id, so a finding's `error[rule]` can be looked up by name.
"""

from __future__ import annotations

from itertools import groupby

from ccbmdm.codegen.diagnostics import RULES

from .markdown import inline

PAGE = "rules.md"


def page() -> str:
    """The page: a table of contents by stage, then each rule's severity and meaning."""
    lines = [
        "# Rules",
        "",
        "Every finding of `ccbmdm check`, `compile`, `validate` and `conformance` names its rule:",
        "`file:line:col: error[rule]: path: message (hint)`. With `--format sarif` the same",
        "explanations travel with the findings to code scanning.",
        "",
    ]
    for stage, rules in groupby(RULES.values(), key=lambda rule: rule.stage):
        lines += [f"## {stage}", ""]
        for rule in rules:
            lines += [
                f"### {rule.id}",
                "",
                f"*{rule.severity}*: {inline(rule.summary)}.",
                "",
                inline(rule.explanation),
                "",
            ]
    return "\n".join(lines)

"""The site's Rules page is the registry of rules: every rule, under its stage, with what it
means."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import RULES
from ccbmdm.docsite import rules


def test_the_rules_page_lists_every_registered_rule_in_order() -> None:
    lines = rules.page().splitlines()
    assert [line.removeprefix("### ") for line in lines if line.startswith("### ")] == list(RULES)
    stages = [line.removeprefix("## ") for line in lines if line.startswith("## ")]
    assert stages == list(dict.fromkeys(rule.stage for rule in RULES.values()))


def test_each_rule_says_its_severity_and_meaning() -> None:
    lines = rules.page().splitlines()
    at = lines.index("### target-cycle")
    assert lines[at + 2] == "*error*: target: rules depend on each other in a circle."
    assert lines[at + 4].startswith("A target: rule copies an element written by another rule")

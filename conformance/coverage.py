"""Which mapping rules and target fields the selected cases exercise, per mapping.

Coverage is derived from the cases' outputs through the lineage the compiler writes
(``target/lineage.json``): a case exercises a target field when that field is present in the
message its mapping gave, and a rule when a field it writes is present. A fault case
exercises the rule it failed at. A rule whose ``when`` was false, or that wrote nothing because
its source was absent, is not exercised by that case: a case that shows the field is absent
proves nothing about the rule that would write it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from ccbmdm.conformance.runner import Outcome


@dataclass
class MappingCoverage:
    """One mapping (flow and part): its rules and fields, and which of them a case exercised."""

    file: str
    flow: str
    part: str
    fields: dict[str, str | None]  # target field -> the rule (file:line:col) that writes it
    cases: int = 0
    covered_fields: set[str] = field(default_factory=set)

    @property
    def rules(self) -> list[str]:
        return sorted({rule for rule in self.fields.values() if rule}, key=_site_order)

    @property
    def covered_rules(self) -> set[str]:
        return {
            rule for target, rule in self.fields.items() if rule and target in self.covered_fields
        }

    @property
    def uncovered_rules(self) -> list[str]:
        covered = self.covered_rules
        return [rule for rule in self.rules if rule not in covered]

    @property
    def exercised_fields(self) -> int:
        return len(self.covered_fields & set(self.fields))

    @property
    def uncovered_fields(self) -> list[str]:
        return [target for target in sorted(self.fields) if target not in self.covered_fields]

    @property
    def rule_percent(self) -> float:
        return percent(len(self.covered_rules), len(self.rules))

    @property
    def field_percent(self) -> float:
        return percent(self.exercised_fields, len(self.fields))


def percent(covered: int, total: int) -> float:
    """Covered as a share of total; nothing to cover is fully covered."""
    return 100.0 * covered / total if total else 100.0


def _site_order(rule: str) -> tuple[str, int, int]:
    file, line, column = rule.rsplit(":", 2)
    return file, int(line), int(column)


def measure(
    lineage: dict[str, Any], outcomes: Iterable[Outcome], flows: Collection[str] = ()
) -> list[MappingCoverage]:
    """Coverage of each mapping in the lineage (of those flows when ``flows`` names some) by
    the outcomes; a mapping no outcome ran is listed with nothing covered."""
    mappings = {
        (entry["flow"], entry["part"]): MappingCoverage(
            file,
            entry["flow"],
            entry["part"],
            {target: f.get("rule") for target, f in entry.get("fields", {}).items()},
        )
        for file, entry in lineage.items()
        if not flows or entry["flow"] in flows
    }
    for outcome in outcomes:
        # A flow case exercises each mapping the bridge ran in its trail.
        for flow_, part, exercised_ in outcome.mapped:
            found = mappings.get((flow_, part))
            if found is not None:
                found.covered_fields |= exercised_ & set(found.fields)
        mapping = mappings.get((outcome.case.flow, outcome.case.part))
        if mapping is None:
            continue
        mapping.cases += 1
        exercised = set(outcome.exercised)
        if outcome.fault_target is not None:
            exercised |= {
                t for t in mapping.fields if _xpath(t) == outcome.fault_target.split("/", 2)[-1]
            }
        mapping.covered_fields |= exercised & set(mapping.fields)
    return [mappings[key] for key in sorted(mappings)]


def _xpath(target: str) -> str:
    """A lineage target as a rule site's XPath names it below the root element:
    ``items[].id`` is ``items/id`` (the site's ``/Root/items/id``)."""
    return target.replace("[]", "").replace(".", "/")


@dataclass(frozen=True)
class Totals:
    rules: int
    covered_rules: int
    fields: int
    covered_fields: int

    @property
    def rule_percent(self) -> float:
        return percent(self.covered_rules, self.rules)

    @property
    def field_percent(self) -> float:
        return percent(self.covered_fields, self.fields)


def totals(mappings: Iterable[MappingCoverage]) -> Totals:
    """Rules and fields over all mappings; a fragment's rule counts once per mapping using it."""
    found = list(mappings)
    return Totals(
        sum(len(m.rules) for m in found),
        sum(len(m.covered_rules) for m in found),
        sum(len(m.fields) for m in found),
        sum(m.exercised_fields for m in found),
    )


def as_json(mappings: list[MappingCoverage]) -> dict[str, Any]:
    total = totals(mappings)
    return {
        "mappings": [
            {
                "file": m.file,
                "flow": m.flow,
                "part": m.part,
                "cases": m.cases,
                "rules": {"covered": len(m.covered_rules), "total": len(m.rules)},
                "fields": {"covered": m.exercised_fields, "total": len(m.fields)},
                "rule_percent": round(m.rule_percent, 1),
                "field_percent": round(m.field_percent, 1),
                "uncovered_rules": [
                    {"rule": rule, "fields": sorted(t for t, r in m.fields.items() if r == rule)}
                    for rule in m.uncovered_rules
                ],
                "uncovered_fields": m.uncovered_fields,
            }
            for m in mappings
        ],
        "total": {
            "rules": {"covered": total.covered_rules, "total": total.rules},
            "fields": {"covered": total.covered_fields, "total": total.fields},
            "rule_percent": round(total.rule_percent, 1),
            "field_percent": round(total.field_percent, 1),
        },
    }

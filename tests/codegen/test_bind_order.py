"""The order stage: a structure's elements in the target's order, moved only where a
``{target: ...}`` rule reads a sibling that must be computed first."""

from __future__ import annotations

import typing

import pytest
from codegen.factories import (
    CONTACT,
    binder,
    const,
    copy,
    each,
    findings,
    fn,
    from_path,
    map_rule,
    messages,
    nested,
    rules,
    table,
    target,
    xref,
)

from ccbmdm.codegen.mapping.bind.order import order, target_refs
from ccbmdm.codegen.mapping.syntax import Rule

PARTICLES = {p.name: p for p in CONTACT.particles}


def test_elements_are_computed_in_the_targets_order_not_the_mappings() -> None:
    b = binder()
    written = rules({"note": const("n"), "kind": const("k"), "contactId": from_path("id")})
    assert order(b, written, PARTICLES) == ["contactId", "kind", "note"]
    assert b.findings == []


def test_a_sibling_read_through_target_is_computed_first() -> None:
    b = binder()
    written = rules({"contactId": target("note"), "note": from_path("id")})
    assert order(b, written, PARTICLES) == ["note", "contactId"]


def test_a_rule_needing_itself_is_a_target_cycle() -> None:
    b = binder()
    written = rules({"contactId": target("note"), "note": fn("concat", target("contactId"))})
    assert order(b, written, PARTICLES) == ["note", "contactId"]
    assert findings(b) == [("target-cycle", 2, "")]
    assert messages(b) == ["<contactId> depends on itself through target rules"]


CASES: list[tuple[Rule, set[str]]] = [
    (target("note"), {"note"}),
    (target("/contactId"), set()),
    (target("address.city"), {"address"}),
    (fn("concat", target("note"), target("kind"), from_path("id")), {"note", "kind"}),
    (table("Kinds", target("kind")), {"kind"}),
    (xref("ServicePoint", target("note")), {"note"}),
    (from_path("id"), set()),
    (const("x"), set()),
    (map_rule("kind", {"P": "X"}), set()),
    (nested("address", {"city": target("note")}), set()),
    (each("items", {"code": target("note")}), set()),
    (copy("address"), set()),
]


@pytest.mark.parametrize(("rule", "refs"), CASES)
def test_the_siblings_a_rule_reads_through_target(rule: Rule, refs: set[str]) -> None:
    assert target_refs(rule) == refs


def test_the_cases_cover_every_kind_of_rule() -> None:
    assert {type(rule) for rule, _ in CASES} == set(typing.get_args(Rule))

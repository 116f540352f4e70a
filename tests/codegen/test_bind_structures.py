"""The structures stage: a function per target structure, the mapping's root with its fragments,
nested ``rules:``/``from:`` structures and ``each:`` lists, and where their findings are
reported."""

from __future__ import annotations

from codegen.factories import (
    binder,
    bound,
    const,
    each,
    equals,
    findings,
    from_path,
    messages,
    nested,
    present,
    root,
    rules,
)

from ccbmdm.codegen.mapping.bind.structures import structure

ID = {"contactId": from_path("id")}


def test_the_root_is_one_function_building_the_target_from_the_source() -> None:
    b = bound({**ID, "note": const("hello")})
    assert b.findings == []
    (function,) = b.functions
    assert function.startswith("def _b0(s: ccb.Person, r: Any, ctx: Context) -> mdm.Contact:\n")
    assert "    v1 = s.id\n" in function
    assert "'contact_id': v1," in function
    assert "'phones': ()," in function and "'address': None," in function
    assert b.lineage["note"].rule is not None and b.lineage["note"].rule.line == 3


def test_a_rule_for_an_element_the_target_lacks_is_reported() -> None:
    b = bound({**ID, "nickname": const("x")})
    assert findings(b) == [("unknown-target", 3, "")]
    assert messages(b) == ["<nickname> is not an element of Contact"]


def test_a_required_element_without_a_rule_is_reported_at_the_structure() -> None:
    b = bound({"note": const("x")})
    assert findings(b) == [("unmapped-required", 1, "/contactSync")]
    assert messages(b) == ["required element <contactId> of /contactSync is not mapped"]


def test_an_unknown_fragment_may_write_the_roots_required_elements() -> None:
    b = bound({}, use=("header",))
    assert findings(b) == [("unknown-fragment", 1, "")]
    assert not b.complete
    b = bound({}, use=("header",), broken=frozenset({"header"}))
    assert b.findings == [] and not b.complete


def test_a_fragments_rules_join_the_roots_and_a_target_written_twice_is_reported() -> None:
    fragment = rules({"note": const("from the fragment"), "kind": const("k")}, 40)
    b = bound({**ID, "note": const("mine")}, fragments={"header": fragment}, use=("header",))
    assert findings(b) == [("duplicate-target", 3, "")]
    assert messages(b) == ["<note> is also written by fragment header"]
    assert b.lineage["kind"].rule is not None and b.lineage["kind"].rule.line == 41


def test_an_unknown_contract_stops_the_mapping() -> None:
    b = bound(ID, source="ccb/PersonSinc")
    assert findings(b) == [("unknown-contract", 1, "")]
    assert b.findings[0].hint == "did you mean ccb/PersonSync?"
    assert not b.complete and b.functions == []


def test_a_nested_structure_is_a_function_of_its_own() -> None:
    b = bound({**ID, "address": nested("address", {"city": from_path("city")})})
    assert b.findings == []
    inner, outer = b.functions
    assert inner.startswith("def _b4(s: ccb.Address, r: Any, ctx: Context) -> mdm.Address:")
    assert "    v5 = s.city\n" in inner
    assert "    v3 = s.address\n    v2 = _b4(v3, r, ctx) if v3 is not None else None\n" in outer
    assert set(b.lineage) == {"contactId", "address", "address.city"}
    assert b.reads == {"id", "address.city"}


def test_a_required_element_of_a_nested_structure_is_reported_at_it() -> None:
    b = bound({**ID, "address": nested("address", {"postal": from_path("postal")}, line=10)})
    assert findings(b) == [("unmapped-required", 10, "/contactSync/address")]


def test_each_builds_a_list_only_for_a_repeated_element() -> None:
    b = bound({**ID, "address": each("items", {"city": from_path("code")})})
    assert findings(b) == [("list-into-single", 10, "/contactSync/address")]
    assert messages(b) == ["each: builds a list, but <address> occurs once"]
    assert b.findings[0].hint == "use from: instead"


def test_each_reads_a_structure() -> None:
    b = bound({**ID, "lines": each("phones", {"code": const("c")})})
    assert findings(b) == [("type-mismatch", 10, "/contactSync/lines")]
    assert messages(b) == ["each: needs repeated structures; <phones> is a value"]


def test_each_calls_the_items_function_for_every_item_that_passes_where() -> None:
    rule = each("items", {"code": from_path("code")}, where=equals("code", "P", line=20))
    b = bound({**ID, "lines": rule})
    assert b.findings == []
    item, outer = b.functions
    assert item.startswith("def _b4(s: ccb.Item, r: Any, ctx: Context) -> mdm.Line:")
    loop = outer[outer.index("    v3 = [") : outer.index("    return")]
    assert loop == (
        "    v3 = [x0 for x0 in s.items]\n"
        "    v2 = []\n"
        "    for i, x6 in enumerate(v3):\n"
        "        v7 = x6.code\n"
        "        if not (v7 == _K8):\n"
        "            continue\n"
        "        try:\n"
        "            v2.append(_b4(x6, r, ctx))\n"
        "        except RuleFailure as failure:\n"
        "            failure.positions.append(i)\n"
        "            raise\n"
        "    v2 = tuple(v2)\n"
    )
    assert b.constants == ["_K8 = 'P'"]


def test_a_wrong_where_is_reported_at_the_list_it_filters() -> None:
    rule = each("items", {"code": from_path("code")}, where=present("nothing", line=20))
    b = bound({**ID, "lines": rule})
    assert findings(b) == [("unknown-source-path", 20, "/contactSync/lines")]


def test_a_structure_rule_for_a_repeated_element_needs_each() -> None:
    b = bound({**ID, "lines": nested(None, {"code": const("c")})})
    assert findings(b) == [("list-into-single", 10, "/contactSync/lines")]
    assert messages(b) == ["<lines> repeats: build it with each:"]


def test_a_value_rule_cannot_build_a_structure() -> None:
    b = bound({**ID, "address": from_path("id", line=10)})
    assert findings(b) == [("type-mismatch", 10, "/contactSync/address")]
    assert messages(b) == ["<address> is a structure: build it with rules:, from:, each: or copy:"]


def test_a_structure_rule_cannot_write_a_value() -> None:
    b = bound({**ID, "note": nested("address", {"city": from_path("city")})})
    assert findings(b) == [("type-mismatch", 10, "/contactSync/note")]
    assert messages(b) == ["<note> takes a value, not a structure"]


def test_from_a_repeated_source_into_one_structure_is_reported() -> None:
    b = bound({**ID, "address": nested("items", {"city": from_path("code")})})
    assert findings(b) == [("list-into-single", 10, "/contactSync/address")]
    assert messages(b) == ["<items> repeats but <address> occurs once"]


def test_a_conditional_structure_is_built_only_when_its_condition_holds() -> None:
    rule = nested(None, {"city": from_path("id")}, when=present("address"))
    b = bound({**ID, "address": rule})
    assert b.findings == []
    assert (
        "    v3 = s.address\n    v2 = _b4(s, r, ctx) if v3 is not None else None\n"
        in (b.functions[-1])
    )


def test_the_target_is_restored_after_a_nested_structure() -> None:
    b = binder()
    scope = root(b)
    b.target_path, b.lineage_target = "/contactSync/outer", "outer"
    structure(b, scope, rules({**ID, "note": const(1)}), b.mapping.pos, "_b9")
    assert (b.target_path, b.lineage_target) == ("/contactSync/outer", "outer")
    assert set(b.lineage) == {"contactId", "note"}

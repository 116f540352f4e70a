"""One kind of rule at a time: the value each computes, and each finding it can raise, with the
element it was writing."""

from __future__ import annotations

import typing

from codegen.factories import (
    DECIMAL,
    KINDS,
    STRING,
    at,
    binder,
    bound,
    code_table,
    const,
    copy,
    findings,
    fn,
    from_path,
    map_rule,
    messages,
    root,
    table,
    target,
    writer,
    xref,
)

from ccbmdm.codegen.mapping.bind import rules
from ccbmdm.codegen.mapping.bind.rules.copy import copier
from ccbmdm.codegen.mapping.syntax import Value

ID = {"contactId": from_path("id")}


def note(rule: Value) -> list[tuple[str, int, str]]:
    """The findings of a mapping writing ``rule`` (on line 10) into <note>."""
    return findings(bound({**ID, "note": rule}, tables={"Kinds": KINDS}))


def test_every_kind_of_value_rule_is_dispatched() -> None:
    b = binder(tables={"Kinds": KINDS})
    scope = root(b)
    scope.built["contactId"] = ("v0", b.contracts.complex_types[("mdm", "Contact")].particles[0])
    examples: list[Value] = [
        from_path("id"),
        const("x"),
        table("Kinds", from_path("kind")),
        map_rule("kind", {"P": "p", "B": "b"}),
        fn("concat", from_path("id")),
        xref("ServicePoint", from_path("id")),
        target("contactId"),
    ]
    assert {type(rule) for rule in examples} == set(typing.get_args(Value))
    for rule in examples:
        assert rules.value(b, writer(b), scope, rule, STRING, 0) is not None, rule
    assert b.findings == []


# ---------------------------------------------------------------- path and const


def test_a_path_rule_reads_the_source_and_records_it() -> None:
    b = bound({**ID, "note": from_path("name")})
    assert b.findings == []
    assert b.lineage["note"].sources == {"name"}
    assert b.reads == {"id", "name"}


def test_a_path_to_a_structure_is_not_a_value() -> None:
    assert note(from_path("address")) == [("type-mismatch", 10, "/contactSync/note")]


def test_a_constant_is_checked_against_the_target() -> None:
    b = bound({**ID, "label": const("ABCD", line=10)})
    assert findings(b) == [("facet-violation", 10, "/contactSync/label")]
    assert messages(b) == ["constant 'ABCD': 'ABCD'... has 4 characters; at most 3 allowed"]
    assert b.lineage["label"].constants == ["ABCD"]


# ---------------------------------------------------------------- table


def test_a_table_lookup_is_keyed_by_the_sources_text() -> None:
    b = bound({**ID, "kind": table("Kinds", from_path("kind"))}, tables={"Kinds": KINDS})
    assert b.findings == []
    assert (
        "    v2 = s.kind\n    v3 = ctx.tables.lookup(1, 'Kinds', (v2,), 'mdm')\n"
        in (b.functions[-1])
    )
    assert b.tables_used == {"Kinds"} and b.lineage["kind"].tables == {"Kinds"}


def test_an_unknown_table_is_reported_with_the_closest_name() -> None:
    assert note(table("Kind", from_path("kind"))) == [("unknown-table", 10, "/contactSync/note")]
    b = bound({**ID, "note": table("Kind", from_path("kind"))}, tables={"Kinds": KINDS})
    assert b.findings[0].hint == "did you mean Kinds?"


def test_a_table_that_failed_to_load_counts_as_used_and_says_nothing() -> None:
    b = bound({**ID, "note": table("Broken", from_path("kind"))}, broken=frozenset({"Broken"}))
    assert b.findings == [] and b.tables_used == {"Broken"}


def test_a_table_needs_as_many_keys_as_it_has_key_columns() -> None:
    assert note(table("Kinds", from_path("kind"), from_path("id"))) == [
        ("table-key", 10, "/contactSync/note")
    ]


def test_a_table_of_several_value_columns_needs_column() -> None:
    wide = code_table("Wide", {("P",): {"a": "1", "b": "2"}}, values=("a", "b"))
    b = bound({**ID, "note": table("Wide", from_path("kind"))}, tables={"Wide": wide})
    assert findings(b) == [("table-column", 10, "/contactSync/note")]
    assert messages(b) == ["Wide has value columns a, b; name one with column:"]


def test_a_cell_the_target_cannot_take_is_reported() -> None:
    b = bound({**ID, "label": table("Kinds", from_path("kind"))}, tables={"Kinds": KINDS})
    assert findings(b) == [("facet-violation", 10, "/contactSync/label")]
    assert messages(b)[0].startswith("Kinds.mdm holds 'BUSINESS', which the target cannot take")


def test_a_reversed_table_needs_one_key_and_one_value_column() -> None:
    wide = code_table("Wide", {("P",): {"a": "1", "b": "2"}}, values=("a", "b"))
    rule = table("Wide", from_path("kind"), reverse=True)
    b = bound({**ID, "note": rule}, tables={"Wide": wide})
    assert findings(b) == [("reverse", 10, "/contactSync/note")]


def test_a_reversed_table_needs_unique_values() -> None:
    twice = code_table("Twice", {("P",): {"mdm": "X"}, ("B",): {"mdm": "X"}})
    b = bound(
        {**ID, "note": table("Twice", from_path("id"), reverse=True)}, tables={"Twice": twice}
    )
    assert findings(b) == [("reverse-not-unique", 10, "/contactSync/note")]
    assert messages(b) == ["Twice is used in reverse but its column mdm repeats X"]
    assert "    v3 = ctx.tables.reverse(1, 'Twice', v2)\n" in b.functions[-1]


def test_a_pass_through_table_should_cover_every_code_of_its_key() -> None:
    partial = code_table("Partial", {("P",): {"mdm": "PERSON"}}, miss="pass_through")
    b = bound({**ID, "note": table("Partial", from_path("kind"))}, tables={"Partial": partial})
    assert findings(b) == [("table-coverage", 10, "/contactSync/note")]
    assert messages(b) == ["Partial has no row for B of <kind>"]


def test_a_key_must_be_one_value() -> None:
    assert note(table("Kinds", from_path("phones"))) == [
        ("list-into-single", 10, "/contactSync/note")
    ]


# ---------------------------------------------------------------- map


def test_a_map_reads_its_cases_from_a_module_constant() -> None:
    b = bound({**ID, "note": map_rule("kind", {"P": "person", "B": "business"})})
    assert b.findings == []
    assert b.constants[-1] == "_M5 = {'P': _K3, 'B': _K4}"
    assert "no case of the map rule matches the value" in b.functions[-1]


def test_a_map_without_a_default_should_cover_every_code_of_its_source() -> None:
    assert note(map_rule("kind", {"P": "person"})) == [("map-coverage", 10, "/contactSync/note")]
    assert note(map_rule("kind", {"P": "person"}, default="other")) == []


# ---------------------------------------------------------------- fn


def test_a_function_is_called_with_its_checked_arguments() -> None:
    b = bound({**ID, "total": fn("multiply", from_path("amount"), from_path("count"))})
    assert findings(b) == [("type-mismatch", 10, "/contactSync/total")]
    assert messages(b) == ["multiply takes a decimal here, not a integer"]
    b = bound({**ID, "total": fn("multiply", from_path("amount"), from_path("amount"))})
    assert b.findings == [] and b.lineage["total"].functions == {"multiply"}
    assert (
        "    try:\n"
        "        v4 = fn.multiply(v2, v3)\n"
        "    except ValueError as error:\n"
        "        raise RuleFailure(1, (v2, v3,), lexical.quoting(error), 1003) from None\n"
    ) in b.functions[-1]


def test_an_unknown_function_is_reported() -> None:
    assert note(fn("concatenate", from_path("id"))) == [
        ("unknown-function", 10, "/contactSync/note")
    ]


def test_a_function_takes_as_many_arguments_as_its_signature() -> None:
    b = bound({**ID, "note": fn("to_utc")})
    assert findings(b) == [("arity", 10, "/contactSync/note")]
    assert messages(b) == ["to_utc takes 1 argument(s); 0 given"]
    assert b.findings[0].hint == "its signature: to_utc(instant: dateTime) -> dateTime"


def test_a_list_where_a_function_takes_one_value_is_reported() -> None:
    assert note(fn("concat", from_path("phones"))) == [
        ("list-into-single", 10, "/contactSync/note")
    ]


def test_an_optional_argument_skips_the_call() -> None:
    b = bound({**ID, "note": fn("concat", from_path("name"))})
    assert b.findings == []
    assert "        v3 = None if v2 is None else fn.concat(v2)\n" in b.functions[-1]


# ---------------------------------------------------------------- xref and target


def test_a_cross_reference_resolves_its_key_at_run_time() -> None:
    b = bound({**ID, "note": xref("ServicePoint", from_path("id"))})
    assert b.findings == []
    assert (
        "        v3 = None if v2 is None else str(ctx.resolve(1, 'ServicePoint', v2))\n"
    ) in b.functions[-1]
    assert note(xref("ServicePoint", from_path("phones"))) == [
        ("list-into-single", 10, "/contactSync/note")
    ]


def test_a_target_rule_reads_an_element_computed_before_it() -> None:
    b = bound({**ID, "note": target("contactId")})
    assert b.findings == []
    assert "    v2 = v1\n" in b.functions[-1]


def test_a_target_rule_names_an_element_of_this_structure() -> None:
    assert note(target("kind")) == [("target-path", 10, "/contactSync/note")]
    assert note(target("/contactId")) == [("target-path", 10, "/contactSync/note")]
    assert note(target("contactId.more")) == [("target-path", 10, "/contactSync/note")]


# ---------------------------------------------------------------- copy


def test_a_copy_between_models_of_the_same_shape_is_a_generated_copier() -> None:
    b = bound({**ID, "address": copy("address")})
    assert b.findings == []
    copier = b.functions[0]
    assert copier.startswith("def _copy_ccb_Address_to_mdm_Address(m: ccb.Address) -> mdm.Address:")
    assert "'city': m.city," in copier
    assert b.reads == {"id", "address.city", "address.postal"}


def test_a_copy_between_different_shapes_is_reported() -> None:
    b = bound({**ID, "lines": copy("items")})
    assert findings(b) == [("copy-shape", 10, "/contactSync/lines")]
    assert messages(b) == ["copy: <qty> has a different type (XsInteger into XsDecimal)"]
    b = bound({**ID, "address": copy("/address")})
    assert b.findings == []


def test_a_copier_needs_every_required_element_of_the_target() -> None:
    b = binder()
    assert copier(b, ("ccb", "Address"), ("mdm", "Line"), at(7)) == "_copy_ccb_Address_to_mdm_Line"
    assert findings(b) == [("copy-shape", 7, "")]
    assert messages(b) == ["copy: Address has no <code>, which Line requires"]
    assert "'qty': None," in b.functions[0]
    assert copier(b, ("ccb", "Address"), ("ccb", "Address"), at(7)) is None


def test_a_copy_keeps_repetition() -> None:
    b = bound({**ID, "address": copy("items")})
    assert findings(b) == [("list-into-single", 10, "/contactSync/address")]
    assert messages(b) == ["<items> and <address> differ in repetition"]


def test_a_constant_is_read_as_the_expected_type() -> None:
    b = binder()
    result = rules.value(b, writer(b), root(b), const("1.50"), DECIMAL, 0)
    assert result is not None and result.simple == DECIMAL
    assert b.constants == ["_K1 = lexical.parse_decimal('1.50')"]

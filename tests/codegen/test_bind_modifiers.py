"""The modifiers stage (``when:``, ``on_empty:``, ``pick:``, ``default:``) and the conditions
``when:`` and ``where:`` test, each applied to one rule on a writer of its own."""

from __future__ import annotations

from codegen.factories import (
    STRING,
    binder,
    both,
    bound,
    equals,
    findings,
    from_path,
    messages,
    nested,
    path,
    present,
    root,
    writer,
)

from ccbmdm.codegen.mapping.bind.conditions import condition
from ccbmdm.codegen.mapping.bind.modifiers import value
from ccbmdm.codegen.mapping.syntax import Combine, Truthy

ID = {"contactId": from_path("id")}


def test_a_rule_without_modifiers_is_its_value() -> None:
    b = binder()
    w = writer(b)
    result = value(b, w, root(b), from_path("id"), STRING, 0)
    assert result is not None and w.lines == [f"{result.var} = s.id"]
    assert not result.optional


def test_when_leaves_the_value_absent_unless_the_condition_holds() -> None:
    b = binder()
    w = writer(b)
    result = value(b, w, root(b), from_path("id", when=present("name")), STRING, 0)
    assert result is not None and result.optional
    assert w.lines == [
        "v1 = s.name",
        "if v1 is not None:",
        "    v3 = s.id",
        "    v2 = v3",
        "else:",
        "    v2 = None",
    ]
    assert result.var == "v2"


def test_on_empty_omit_turns_empty_text_into_absence() -> None:
    b = binder()
    w = writer(b)
    result = value(b, w, root(b), from_path("id", on_empty="omit"), STRING, 0)
    assert result is not None and result.optional
    assert w.lines[-1] == "v1 = None if v1 == '' else v1"


def test_pick_takes_one_of_several_values() -> None:
    b = binder()
    w = writer(b)
    result = value(b, w, root(b), from_path("phones", pick="last"), STRING, 0)
    assert result is not None and not result.many and result.optional
    assert w.lines[-1] == "v1 = v1[-1] if v1 else None"


def test_pick_only_fails_at_run_time_on_several_values() -> None:
    b = binder()
    w = writer(b)
    value(b, w, root(b), from_path("phones", pick="only"), STRING, 4)
    assert w.lines[1:3] == [
        "if len(v1) > 1:",
        "    raise RuleFailure(4, len(v1), 'pick: only, but the source has several values', 1003)",
    ]
    assert w.lines[-1] == "v1 = v1[0] if v1 else None"


def test_pick_on_a_path_that_reaches_one_value_is_reported() -> None:
    b = bound({**ID, "note": from_path("id", line=9, pick="first")})
    assert findings(b) == [("pick", 9, "/contactSync/note")]
    assert messages(b) == [
        "pick: applies to a path that reaches several values; this one reaches one"
    ]


def test_a_default_fills_an_absent_value() -> None:
    b = binder()
    w = writer(b)
    result = value(b, w, root(b), from_path("name", default="nobody"), STRING, 0)
    assert result is not None and not result.optional
    assert w.lines[-1] == "v1 = _K2 if v1 is None else v1"
    assert b.constants == ["_K2 = 'nobody'"]


def test_a_default_the_target_cannot_take_is_reported() -> None:
    b = bound({**ID, "label": from_path("name", line=9, default="toolong")})
    assert findings(b) == [("facet-violation", 9, "/contactSync/label")]
    assert messages(b)[0].startswith("constant 'toolong': ")


def test_a_structure_rule_where_a_value_is_expected_is_reported() -> None:
    b = binder()
    assert value(b, writer(b), root(b), nested(None, {}, line=8), STRING, 0) is None
    assert findings(b) == [("type-mismatch", 8, "")]
    assert messages(b) == ["a structure rule where a value is expected"]


# ---------------------------------------------------------------- conditions


def test_present_and_its_negation() -> None:
    b = binder()
    w = writer(b)
    assert condition(b, w, root(b), present("name"), "s") == "v1 is not None"
    assert condition(b, w, root(b), present("phones", negate=True), "s") == "not (bool(v2))"
    assert b.reads == {"name", "phones[]"}


def test_a_truthy_text_is_non_empty_and_a_number_present() -> None:
    b = binder()
    w = writer(b)
    assert condition(b, w, root(b), Truthy(path("id")), "s") == "bool(v1)"
    assert condition(b, w, root(b), Truthy(path("amount")), "s") == "v2 is not None"


def test_a_comparison_reads_constants_of_the_sources_type() -> None:
    b = binder()
    w = writer(b)
    assert condition(b, w, root(b), equals("kind", "P"), "s") == "v1 == _K2"
    assert condition(b, w, root(b), equals("kind", "P", "B"), "s") == "v3 in (_K4, _K5,)"
    assert b.constants == ["_K2 = 'P'", "_K4 = 'P'", "_K5 = 'B'"]


def test_a_comparison_with_a_value_the_source_cannot_take_is_reported() -> None:
    b = binder()
    condition(b, writer(b), root(b), equals("kind", "X", line=12), "s")
    assert findings(b) == [("facet-violation", 12, "")]
    assert messages(b) == ["constant 'X': 'X' is not one of P, B"]


def test_a_comparison_of_several_values_is_reported() -> None:
    b = binder()
    assert condition(b, writer(b), root(b), equals("phones", "1", line=12), "s") == "False"
    assert findings(b) == [("type-mismatch", 12, "")]
    assert messages(b) == ["<phones> must be one value to compare"]


def test_a_condition_on_an_unknown_path_is_false_after_its_finding() -> None:
    b = binder()
    assert condition(b, writer(b), root(b), present("nobody", line=12), "s") == "False"
    assert findings(b) == [("unknown-source-path", 12, "")]


def test_combined_conditions() -> None:
    b = binder()
    w = writer(b)
    all_of = both(present("name"), present("born"))
    assert condition(b, w, root(b), all_of, "s") == "(v1 is not None and v2 is not None)"
    assert condition(b, w, root(b), Combine("not", (present("name"),)), "s") == (
        "not (v3 is not None)"
    )
    assert condition(b, w, root(b), Combine("any", ()), "s") == "(True)"


def test_an_items_condition_reads_relative_paths_from_the_item() -> None:
    b = binder()
    w = writer(b)
    assert condition(b, w, root(b), present("name"), "x9") == "v1 is not None"
    assert w.lines == ["v1 = x9.name"]
    assert condition(b, w, root(b), present("/name"), "x9") == "v2 is not None"
    assert w.lines[-1] == "v2 = r.name"

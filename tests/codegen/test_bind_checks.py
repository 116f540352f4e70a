"""The checks of what a rule writes against its target element: type, cardinality, the run-time
checks the compiler cannot prove, required elements, and the coverage of a source's codes."""

from __future__ import annotations

from codegen.factories import (
    CONTACT,
    KINDS,
    SHORT,
    STRING,
    at,
    binder,
    bound,
    code_table,
    const,
    findings,
    from_path,
    map_rule,
    messages,
    nested,
    present,
    root,
    rules,
    target,
    writer,
)

from ccbmdm.codegen.ir import Origin, Particle
from ccbmdm.codegen.mapping.bind import Binder, checks
from ccbmdm.codegen.mapping.bind.model import Val

ID = {"contactId": from_path("id")}


def body(of: Binder) -> str:
    """The statements of the root function from the first rule's on."""
    function = of.functions[-1]
    return function[function.index("    v1 = s.id\n") : function.index("    return")]


# ---------------------------------------------------------------- a structure's elements


def test_unknown_targets_are_reported_with_the_closest_element() -> None:
    b = binder()
    checks.unknown_targets(b, rules({"contactID": const(1), "note": const(2)}), CONTACT)
    assert findings(b) == [("unknown-target", 2, "")]
    assert b.findings[0].hint == "did you mean contactId?"


def test_unmapped_required_elements_are_reported_at_the_structure() -> None:
    b = binder()
    checks.unmapped_required(b, root(b), rules({"note": const(2)}), CONTACT, at(5))
    assert findings(b) == [("unmapped-required", 5, "")]
    checks.unmapped_required(b, root(b), rules(ID), CONTACT, at(5))
    assert len(b.findings) == 1


# ---------------------------------------------------------------- a value against its element


def test_an_integer_widens_to_a_decimal() -> None:
    b = bound({**ID, "total": from_path("count")})
    assert b.findings == []
    assert "    v2 = s.count\n    v2 = None if v2 is None else Decimal(v2)\n" in body(b)


def test_a_value_of_another_primitive_is_reported_with_a_conversion() -> None:
    b = bound({**ID, "total": from_path("id")})
    assert findings(b) == [("type-mismatch", 10, "/contactSync/total")]
    assert messages(b) == [
        "<total> takes a decimal (XsDecimal), but the rule gives a string (XsString)"
    ]
    assert b.findings[0].hint == "text is not a number; map a decimal source"


def test_several_values_into_one_element_need_pick() -> None:
    b = bound({**ID, "note": from_path("phones")})
    assert findings(b) == [("list-into-single", 10, "/contactSync/note")]
    assert b.findings[0].hint == "add pick: first, last or only"


def test_a_structure_into_a_value_is_reported() -> None:
    address = nested("address", {"city": from_path("city")}, line=20)
    b = bound({**ID, "address": address, "note": target("address", line=30)})
    assert findings(b) == [("type-mismatch", 30, "/contactSync/note")]
    assert messages(b) == ["<note> takes a string, not a structure"]


def test_a_value_looser_than_its_element_is_checked_at_run_time() -> None:
    b = binder()
    w = writer(b)
    checks.check_facets(w, 3, Val("v1", STRING, False, False), STRING, SHORT)
    assert w.lines == [
        "try:",
        "    if v1 is not None:",
        "        v1 = c.check_Short(v1)",
        "except ValueError as error:",
        "    raise RuleFailure(3, v1, lexical.quoting(error), 1003) from None",
    ]
    w = writer(b)
    checks.check_facets(w, 3, Val("v1", SHORT, False, False), SHORT, STRING)
    assert w.lines == []


def test_one_value_into_a_repeated_element_is_a_tuple_of_checked_length() -> None:
    b = bound({**ID, "phones": from_path("id")})
    assert b.findings == []
    assert body(b) == (
        "    v1 = s.id\n"
        "    v2 = s.id\n"
        "    v2 = () if v2 is None else (v2,)\n"
        "    if len(v2) < 0 or len(v2) > 3:\n"
        "        raise RuleFailure(1, len(v2), '<phones> needs between 0 and 3 values', 1003)\n"
    )


def test_a_required_element_from_an_optional_source_fails_at_run_time_when_absent() -> None:
    b = bound({"contactId": from_path("name")})
    assert b.findings == []
    assert (
        "raise RuleFailure(0, None, 'required element <contactId> has no value: its source is "
        "absent', 1003)"
    ) in b.functions[-1]


def test_a_required_element_cannot_be_written_only_when_a_condition_holds() -> None:
    b = bound({"contactId": from_path("id", line=4, when=present("name"))})
    assert findings(b) == [("conditional-required", 4, "/contactSync/contactId")]
    assert bound({"contactId": from_path("id", when=present("name"), default="-")}).findings == []


def test_an_any_element_takes_only_elements_of_other_namespaces() -> None:
    b = binder()
    wildcard = Particle("any", "extension", None, 0, None, "", Origin("t.xsd", 1))
    checks.any_element(b, const(1, line=6), wildcard, Val("v1", STRING, False, False))
    assert findings(b) == [("type-mismatch", 6, "")]
    assert messages(b) == [
        "<extension> takes elements of other namespaces; map it from such a list"
    ]
    checks.any_element(b, const(1), wildcard, Val("v1", None, True, False, wildcard))
    assert len(b.findings) == 1


def test_a_required_structure_from_an_absent_source_fails_at_run_time() -> None:
    b = binder()
    w = writer(b)
    particle = CONTACT.particles[0]
    checks.required_source(b, w, from_path("name"), root(b), particle, "v9")
    assert w.lines == [
        "if v9 is None:",
        "    raise RuleFailure(0, None, 'required element <contactId> has no source', 1003)",
    ]
    assert b.sites[0].target == "/contactSync/contactId"
    assert b.sites[0].personal  # <name> is personal data: its value never reaches a message


# ---------------------------------------------------------------- coverage of a source's codes


def test_only_a_pass_through_table_over_an_enumeration_needs_every_code() -> None:
    b = binder()
    partial = code_table("Partial", {("P",): {"mdm": "X"}}, miss="pass_through")
    checks.table_coverage(b, root(b), from_path("kind", line=8), KINDS)
    checks.table_coverage(b, root(b), from_path("id", line=8), partial)
    assert b.findings == []
    checks.table_coverage(b, root(b), from_path("kind", line=8), partial)
    assert findings(b) == [("table-coverage", 8, "")]
    assert b.findings[0].hint == "add rows, or declare miss: fail or default"


def test_a_map_over_an_enumeration_needs_every_code_or_a_default() -> None:
    b = binder()
    kind = b.contracts.simple_types[("common", "Kind")]
    checks.map_coverage(b, map_rule("kind", {"P": 1, "B": 2}), kind, {"P": "_K1", "B": "_K2"})
    checks.map_coverage(b, map_rule("id", {}), STRING, {})
    assert b.findings == []
    checks.map_coverage(b, map_rule("kind", {"P": 1}, line=9), kind, {"P": "_K1"})
    assert findings(b) == [("map-coverage", 9, "")]
    assert messages(b) == ["no case for B of <kind>"]

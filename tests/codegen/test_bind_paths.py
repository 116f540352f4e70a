"""The paths stage: source paths bound to the source contract, and read from the typed model."""

from __future__ import annotations

from codegen.factories import binder, contract_set, findings, messages, path, root, writer

from ccbmdm.codegen.mapping.bind.paths import (
    elements,
    emit_path,
    leaves,
    reads_personal,
    resolve,
    structure_source,
)


def test_a_relative_path_walks_the_elements_from_the_current_node() -> None:
    b = binder()
    resolved = resolve(b, root(b), path("address.city"))
    assert resolved is not None
    assert [p.name for p in resolved.particles] == ["address", "city"]
    assert (resolved.start, resolved.xpath, resolved.dotted) == (
        "s",
        "/personSync/address/city",
        "address.city",
    )
    assert b.findings == []


def test_a_repeated_step_is_marked_in_the_dotted_path() -> None:
    b = binder()
    resolved = resolve(b, root(b), path("items.code"))
    assert resolved is not None and resolved.dotted == "items[].code"


def test_an_absolute_path_starts_at_the_message_root() -> None:
    b = binder()
    scope = root(b)
    scope.source, scope.source_xpath = ("ccb", "Address"), "/personSync/address"
    resolved = resolve(b, scope, path("/id"))
    assert resolved is not None
    assert (resolved.start, resolved.xpath) == ("r", "/personSync/id")


def test_a_step_naming_no_element_is_reported_with_the_closest_name() -> None:
    b = binder()
    assert resolve(b, root(b), path("adress.city", line=7)) is None
    assert findings(b) == [("unknown-source-path", 7, "")]
    assert messages(b) == ["Person (<the current node>) has no element <adress>"]
    assert b.findings[0].hint == "did you mean address?"


def test_an_unknown_step_below_the_root_names_the_path_before_it() -> None:
    b = binder()
    assert resolve(b, root(b), path("address.town")) is None
    assert messages(b) == ["Address (<address>) has no element <town>"]
    b = binder()
    assert resolve(b, root(b), path("/nobody")) is None
    assert messages(b) == ["Person (the message root) has no element <nobody>"]


def test_a_step_past_a_value_is_reported() -> None:
    b = binder()
    assert resolve(b, root(b), path("id.more", line=4)) is None
    assert findings(b) == [("unknown-source-path", 4, "")]
    assert messages(b) == ["<id> is a value; it has no <more>"]


def test_a_structure_rule_reading_a_value_is_reported_with_its_verb() -> None:
    b = binder()
    found = structure_source(b, root(b), path("address"), path("address").pos, "from:")
    assert found is not None and found[1] == ("ccb", "Address")
    assert structure_source(b, root(b), path("id", line=6), path("id", 6).pos, "each:") is None
    assert findings(b) == [("type-mismatch", 6, "")]
    assert messages(b) == ["each: needs repeated structures; <id> is a value"]


def test_a_required_path_is_read_directly() -> None:
    b = binder()
    w = writer(b)
    resolved = resolve(b, root(b), path("id"))
    assert resolved is not None
    value = emit_path(b, w, resolved)
    assert w.lines == [f"{value.var} = s.id"]
    assert (value.many, value.optional, value.simple) == (
        False,
        False,
        b.contracts.simple_types[("common", "xs:string")],
    )


def test_a_path_through_an_optional_step_is_guarded() -> None:
    b = binder()
    w = writer(b)
    resolved = resolve(b, root(b), path("address.city"))
    assert resolved is not None
    value = emit_path(b, w, resolved)
    var = value.var
    assert w.lines == [f"{var} = s.address", f"{var} = None if {var} is None else {var}.city"]
    assert value.optional and not value.many


def test_a_path_through_a_repeated_step_reads_every_value() -> None:
    b = binder()
    w = writer(b)
    resolved = resolve(b, root(b), path("items.qty"))
    assert resolved is not None
    value = emit_path(b, w, resolved)
    assert w.lines == [f"{value.var} = [x1 for x0 in s.items for x1 in (x0.qty,)]"]
    assert value.many and not value.optional


def test_personal_data_is_found_along_the_path() -> None:
    b = binder()
    assert reads_personal(b, root(b), path("name"))
    assert not reads_personal(b, root(b), path("id"))
    assert not reads_personal(b, root(b), path("nobody"))


def test_leaves_and_elements_list_the_contract_paths() -> None:
    contracts = contract_set()
    assert leaves(contracts, ("ccb", "Address"), "address") == ["address.city", "address.postal"]
    assert "items[].qty" in leaves(contracts, ("ccb", "Person"))
    found = elements(contracts, ("ccb", "Person"))
    assert found["items"].kind == "complex" and found["items.qty"].name == "qty"

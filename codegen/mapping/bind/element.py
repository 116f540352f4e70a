"""One target element: the value its rule computes, converted and checked against the element,
or the structure it builds."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.ir import Particle
from ccbmdm.codegen.mapping.bind import checks, structures
from ccbmdm.codegen.mapping.bind.model import Scope
from ccbmdm.codegen.mapping.bind.sites import site
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import CopyRule, EachRule, Rule, StructRule
from ccbmdm.codegen.mapping.writer import Writer


def assign(
    binder: Binding, w: Writer, scope: Scope, rule: Rule, particle: Particle, pos: Pos
) -> str:
    """Emit the statements computing one target element; returns the variable holding it."""
    if particle.kind == "complex" or isinstance(rule, StructRule | EachRule | CopyRule):
        return structures.assign(binder, w, scope, rule, particle, pos)
    target = binder.contracts.simple_types[particle.type_key] if particle.type_key else None
    at = site(binder, rule, scope, particle)
    value = binder.value(w, scope, rule, target, at)
    if value is None:
        return "None"
    if particle.kind == "any":
        checks.any_element(binder, rule, particle, value)
        return value.var
    assert target is not None
    if not checks.converts(binder, w, rule, particle, value, target):
        return "None"
    assert value.simple is not None
    checks.check_facets(w, at, value, value.simple, target)
    checks.occurrences(binder, w, rule, at, value, particle)
    return value.var

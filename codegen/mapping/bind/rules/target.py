"""A target rule (``target:``): an element of the structure being built, computed before it."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import did_you_mean
from ccbmdm.codegen.mapping.bind.model import Scope, Val
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import TargetRule
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.codegen.naming import field_name


def value(binder: Binding, w: Writer, scope: Scope, rule: TargetRule) -> Val | None:
    head, *rest = rule.path.steps
    if rule.path.absolute or head not in scope.built:
        binder.fail(
            rule.path.pos,
            "target-path",
            f"<{rule.path}> is not an element of this structure computed before this rule",
            did_you_mean(head, list(scope.built)),
        )
        return None
    var, particle = scope.built[head]
    optional = particle.min_occurs == 0
    result = w.fresh()
    w.line(f"{result} = {var}")
    for step in rest:
        if particle.kind != "complex" or particle.type_key is None:
            binder.fail(rule.path.pos, "target-path", f"<{head}> is a value; it has no <{step}>")
            return None
        inner = {p.name: p for p in binder.contracts.complex_types[particle.type_key].particles}
        if step not in inner:
            binder.fail(
                rule.path.pos,
                "target-path",
                f"no <{step}> in the target structure",
                did_you_mean(step, list(inner)),
            )
            return None
        particle = inner[step]
        w.line(f"{result} = None if {result} is None else {result}.{field_name(step)}")
        optional = optional or particle.min_occurs == 0
    simple = (
        binder.contracts.simple_types.get(particle.type_key)
        if particle.kind == "simple" and particle.type_key
        else None
    )
    return Val(result, simple, particle.repeats, optional, particle)

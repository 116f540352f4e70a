"""The order a structure's elements are computed in: the target's own order, except that an
element a ``{target: ...}`` rule reads is computed before the rule that reads it."""

from __future__ import annotations

from typing import assert_never

from ccbmdm.codegen.ir import Particle
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import (
    ConstRule,
    CopyRule,
    EachRule,
    FnRule,
    MapRule,
    PathRule,
    Rule,
    Rules,
    StructRule,
    TableRule,
    TargetRule,
    XrefRule,
)


def order(binder: Binding, rules: Rules, particles: dict[str, Particle]) -> list[str]:
    """Target order, moved where a {target: ...} rule needs a sibling computed first; a rule
    that needs itself is reported and computed where it stands."""
    keys = [p for p in particles if p in rules.entries]
    needs = {k: target_refs(rules.entries[k]) & set(keys) for k in keys}
    done: list[str] = []
    visiting: set[str] = set()

    def visit(key: str) -> None:
        if key in done:
            return
        if key in visiting:
            binder.fail(
                rules.key_pos[key],
                "target-cycle",
                f"<{key}> depends on itself through target rules",
            )
            return
        visiting.add(key)
        for other in sorted(needs[key], key=keys.index):
            visit(other)
        visiting.discard(key)
        done.append(key)

    for key in keys:
        visit(key)
    return done


def target_refs(rule: Rule) -> set[str]:
    """The sibling target elements a rule reads through ``{target: ...}``."""
    match rule:
        case TargetRule():
            return set() if rule.path.absolute else {rule.path.steps[0]}
        case FnRule():
            return set[str]().union(*(target_refs(a) for a in rule.args))
        case TableRule():
            return set[str]().union(*(target_refs(k) for k in rule.keys))
        case XrefRule():
            return target_refs(rule.key)
        case PathRule() | ConstRule() | MapRule() | StructRule() | EachRule() | CopyRule():
            return set()
        case _:
            assert_never(rule)

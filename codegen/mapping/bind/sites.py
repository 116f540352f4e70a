"""Rule sites: each rule that can fail at run time, with the target it writes and the source it
reads, so a failure names the rule's line and never a personal value."""

from __future__ import annotations

from typing import assert_never

from ccbmdm.codegen.ir import Particle
from ccbmdm.codegen.mapping.bind.model import Scope
from ccbmdm.codegen.mapping.bind.paths import reads_personal
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import (
    ConstRule,
    CopyRule,
    EachRule,
    FnRule,
    MapRule,
    Path,
    PathRule,
    Rule,
    StructRule,
    TableRule,
    TargetRule,
    XrefRule,
)
from ccbmdm.runtime.messages.mapping import RuleSite


def site(binder: Binding, rule: Rule, scope: Scope, particle: Particle) -> int:
    """Record the site of a rule writing ``particle``; returns its index in the module's table."""
    source = scope.source_xpath
    path = primary_path(rule)
    if path is not None:
        resolved_base = binder.root_xpath if path.absolute else scope.source_xpath
        source = resolved_base + "".join(f"/{step}" for step in path.steps)
    pos = rule.pos
    binder.sites.append(
        RuleSite(
            pos.file,
            pos.line,
            pos.column,
            f"{scope.target_xpath}/{particle.name}".replace("[]", ""),
            source,
            particle.personal or (path is not None and reads_personal(binder, scope, path)),
        )
    )
    return len(binder.sites) - 1


def primary_path(rule: Rule) -> Path | None:
    """The source path a rule is about: its own, or its first argument's or key's."""
    match rule:
        case PathRule() | MapRule():
            return rule.path
        case StructRule() | EachRule() | CopyRule():
            return rule.source
        case TableRule():
            return primary_path(rule.keys[0]) if rule.keys else None
        case FnRule():
            return next((p for p in map(primary_path, rule.args) if p is not None), None)
        case XrefRule():
            return primary_path(rule.key)
        case ConstRule() | TargetRule():
            return None
        case _:
            assert_never(rule)

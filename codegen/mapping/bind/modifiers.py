"""A value rule with its modifiers, applied in the order they read: ``when:`` (absent unless the
condition holds), ``on_empty: omit``, ``pick:`` (one value of several), ``default:``."""

from __future__ import annotations

from ccbmdm.codegen.ir import SimpleType
from ccbmdm.codegen.mapping.bind import rules
from ccbmdm.codegen.mapping.bind.conditions import condition
from ccbmdm.codegen.mapping.bind.emit import constant
from ccbmdm.codegen.mapping.bind.model import Scope, Val
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import CopyRule, EachRule, Literal_, Rule, StructRule, Value
from ccbmdm.codegen.mapping.writer import Writer


def value(
    binder: Binding,
    w: Writer,
    scope: Scope,
    rule: Value | Rule,
    expected: SimpleType | None,
    site: int,
) -> Val | None:
    """Emit a value rule with its modifiers; None after reporting a finding."""
    if isinstance(rule, StructRule | EachRule | CopyRule):
        binder.fail(rule.pos, "type-mismatch", "a structure rule where a value is expected")
        return None
    result = _when(binder, w, scope, rule, expected, site)
    if result is None:
        return None
    mods = rule.mods
    if mods.on_empty == "omit":
        w.line(f"{result.var} = None if {result.var} == '' else {result.var}")
        result = Val(result.var, result.simple, result.many, True, result.particle)
    if mods.pick is not None:
        result = _pick(binder, w, rule, result, mods.pick, site)
    if mods.default is not None:
        result = _default(binder, w, rule, result, expected, mods.default)
    return result


def _when(
    binder: Binding, w: Writer, scope: Scope, rule: Value, expected: SimpleType | None, site: int
) -> Val | None:
    """The rule's value, absent (None, or no values) when its ``when:`` does not hold."""
    if rule.mods.when is None:
        return rules.value(binder, w, scope, rule, expected, site)
    inner = w.child()
    holds = condition(binder, inner, scope, rule.mods.when, "s")
    w.extend(inner)
    var = w.fresh()
    branch = w.child()
    result = rules.value(binder, branch, scope, rule, expected, site)
    if result is None:
        return None
    with w.block(f"if {holds}:"):
        w.extend(branch)
        w.line(f"{var} = {result.var}")
    with w.block("else:"):
        w.line(f"{var} = {'[]' if result.many else 'None'}")
    return Val(var, result.simple, result.many, True, result.particle)


def _pick(binder: Binding, w: Writer, rule: Value, result: Val, pick: str, site: int) -> Val:
    """One value of the several a path reaches: the first, the last, or the only one."""
    if not result.many:
        binder.fail(
            rule.pos,
            "pick",
            "pick: applies to a path that reaches several values; this one reaches one",
        )
        return result
    if pick == "only":
        with w.block(f"if len({result.var}) > 1:"):
            w.line(
                f"raise RuleFailure({site}, len({result.var}), 'pick: only, but the source has several values', 1003)"
            )
    index = "-1" if pick == "last" else "0"
    w.line(f"{result.var} = {result.var}[{index}] if {result.var} else None")
    return Val(result.var, result.simple, False, True, result.particle)


def _default(
    binder: Binding,
    w: Writer,
    rule: Value,
    result: Val,
    expected: SimpleType | None,
    default: Literal_,
) -> Val:
    """The default written in the rule when the value is absent."""
    simple = expected or result.simple
    if simple is None:
        return result
    fallback = constant(binder, rule.pos, simple, default)
    w.line(f"{result.var} = {fallback} if {result.var} is None else {result.var}")
    return Val(result.var, result.simple, result.many, False, result.particle)

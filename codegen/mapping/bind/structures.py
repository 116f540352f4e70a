"""Structures: one generated function per target structure, built element by element in order,
and the rules that build a structure — ``rules:`` on the current node, ``from:`` another node,
``each:`` item of a list (filtered by ``where:``), ``copy:`` of a same-shaped one."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.ir import ComplexType, Home, Particle
from ccbmdm.codegen.mapping.bind import checks
from ccbmdm.codegen.mapping.bind.conditions import condition
from ccbmdm.codegen.mapping.bind.emit import declarations, model
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Resolved, Scope
from ccbmdm.codegen.mapping.bind.order import order
from ccbmdm.codegen.mapping.bind.paths import emit_path, structure_source
from ccbmdm.codegen.mapping.bind.rules import copy
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import Condition, CopyRule, EachRule, Rule, Rules, StructRule
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.codegen.naming import field_name

ROOT = "_b0"  # the function building the message's root


def structure(binder: Binding, scope: Scope, rules: Rules, pos: Pos, name: str) -> None:
    """Emit ``name(s, r, ctx)`` building the target type of ``scope`` from its source node.

    The structure's fields are the current target only while it is compiled: the element
    that holds it is the target again afterwards, so that what its rule still checks (an
    ``each:``'s ``where:``) is reported and recorded at that element, not at the structure's
    last field."""
    with binder.located():
        target = binder.contracts.complex_types[scope.target]
        particles = {p.name: p for p in target.particles}
        checks.unknown_targets(binder, rules, target)
        binder.target_path = scope.target_xpath.replace("[]", "")
        if binder.complete or name != ROOT:
            checks.unmapped_required(binder, scope, rules, target, pos)
        w = Writer(binder.counter)
        for key in order(binder, rules, particles):
            _element(binder, w, scope, rules, key, particles[key])
        binder.functions.append(_function(name, scope, target, w))


def _element(
    binder: Binding, w: Writer, scope: Scope, rules: Rules, key: str, particle: Particle
) -> None:
    """Emit one element of the structure, the current target while it is compiled."""
    binder.lineage_target = f"{scope.target_dotted}{'.' if scope.target_dotted else ''}{key}"
    binder.target_path = f"{scope.target_xpath}/{key}".replace("[]", "")
    entry = binder.lineage.setdefault(binder.lineage_target, LineageEntry())
    entry.rule = entry.rule or rules.key_pos[key]
    var = binder.assign(w, scope, rules.entries[key], particle, rules.key_pos[key])
    scope.built[key] = (var, particle)


def _function(name: str, scope: Scope, target: ComplexType, w: Writer) -> str:
    """The source of a structure's function: its statements, then the model built from them."""
    source_cls = model(scope.source)
    target_cls = model(scope.target)
    body = "\n".join("    " + line for line in [*declarations(w.lines), *w.lines])
    fields = "".join(
        f"            {field_name(p.name)!r}: {scope.built[p.name][0] if p.name in scope.built else ('()' if p.repeats else 'None')},\n"
        for p in target.particles
    )
    return (
        f"def {name}(s: {source_cls}, r: Any, ctx: Context) -> {target_cls}:\n"
        f"{body}\n"
        f"    return build(\n        {target_cls},\n        {{\n{fields}        }},\n    )\n"
    )


def assign(
    binder: Binding, w: Writer, scope: Scope, rule: Rule, particle: Particle, pos: Pos
) -> str:
    """Emit a structure element (or report the rule that cannot build one); returns the
    variable holding it."""
    if particle.kind != "complex" or particle.type_key is None:
        binder.fail(rule.pos, "type-mismatch", f"<{particle.name}> takes a value, not a structure")
        return "None"
    # Named before the rule is looked at: the generated names follow from it.
    var = w.fresh()
    match rule:
        case EachRule():
            return _each(binder, w, scope, rule, particle, var)
        case CopyRule():
            return copy.value(binder, w, scope, rule, particle)
        case StructRule() if not particle.repeats:
            return _nested(binder, w, scope, rule, particle, var)
        case _ if particle.repeats:
            binder.fail(
                rule.pos, "list-into-single", f"<{particle.name}> repeats: build it with each:"
            )
        case _:
            binder.fail(
                rule.pos,
                "type-mismatch",
                f"<{particle.name}> is a structure: build it with rules:, from:, each: or copy:",
            )
    return "None"


def _child(
    scope: Scope,
    particle: Particle,
    source: tuple[Resolved, tuple[Home, str]] | None,
    suffix: str = "",
) -> Scope:
    """The scope of a nested structure's function: read from the current node, or from a
    source structure (each of its items, with ``suffix`` "[]")."""
    assert particle.type_key is not None
    source_key, source_xpath, source_dotted = (
        (scope.source, scope.source_xpath, scope.source_dotted)
        if source is None
        else (source[1], source[0].xpath + ("[{}]" if suffix else ""), source[0].dotted)
    )
    return Scope(
        source_key,
        source_xpath,
        source_dotted,  # with [] already when a step repeats
        particle.type_key,
        f"{scope.target_xpath}/{particle.name}{suffix}",
        f"{scope.target_dotted}{'.' if scope.target_dotted else ''}{particle.name}{suffix}",
    )


def _each(
    binder: Binding, w: Writer, scope: Scope, rule: EachRule, particle: Particle, var: str
) -> str:
    """A repeated structure, one item per source item that passes ``where:``."""
    if not particle.repeats:
        binder.fail(
            rule.pos,
            "list-into-single",
            f"each: builds a list, but <{particle.name}> occurs once",
            "use from: instead",
        )
        return "None"
    found = structure_source(binder, scope, rule.source, rule.source.pos, "each:")
    if found is None:
        return "None"
    items = emit_path(binder, w, found[0])
    function = f"_b{binder.next()}"
    child = _child(scope, particle, found, "[]")
    structure(binder, child, rule.rules, rule.pos, function)
    sequence = items.var if items.many else f"(() if {items.var} is None else ({items.var},))"
    item = w.fresh("x")
    w.line(f"{var} = []")
    with w.block(f"for i, {item} in enumerate({sequence}):"):
        if rule.where is not None:
            _where(binder, w, child, rule.where, item)
        with w.block("try:"):
            w.line(f"{var}.append({function}({item}, r, ctx))")
        with w.block("except RuleFailure as failure:"):
            w.line("failure.positions.append(i)")
            w.line("raise")
    w.line(f"{var} = tuple({var})")
    return var


def _where(binder: Binding, w: Writer, child: Scope, where: Condition, item: str) -> None:
    """Skip the items a ``where:`` rejects; its paths are read from the item."""
    inner = w.child()
    item_scope = Scope(child.source, child.source_xpath, child.source_dotted, child.target, "", "")
    test = condition(binder, inner, item_scope, where, item)
    w.extend(inner)
    with w.block(f"if not ({test}):"):
        w.line("continue")


def _nested(
    binder: Binding, w: Writer, scope: Scope, rule: StructRule, particle: Particle, var: str
) -> str:
    """A structure built from the current node or a ``from:`` node, when its ``when:`` holds."""
    guard = None
    if rule.when is not None:
        inner = w.child()
        guard = condition(binder, inner, scope, rule.when, "s")
        w.extend(inner)
    node, optional, found = "s", False, None
    if rule.source is not None:
        found = structure_source(binder, scope, rule.source, rule.source.pos, "from:")
        if found is None:
            return "None"
        value = emit_path(binder, w, found[0])
        if value.many:
            binder.fail(
                rule.source.pos,
                "list-into-single",
                f"<{rule.source}> repeats but <{particle.name}> occurs once",
                "use each: on a repeated target",
            )
            return "None"
        node, optional = value.var, value.optional
    function = f"_b{binder.next()}"
    structure(binder, _child(scope, particle, found), rule.rules, rule.pos, function)
    call = f"{function}({node}, r, ctx)"
    conditions = [c for c in (guard, f"{node} is not None" if optional else None) if c]
    w.line(
        f"{var} = {call} if {' and '.join(conditions)} else None"
        if conditions
        else f"{var} = {call}"
    )
    if particle.min_occurs > 0 and conditions:
        checks.required_source(binder, w, rule, scope, particle, var)
    return var

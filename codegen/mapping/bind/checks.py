"""The checks of what a rule writes against the target contract: elements that are not there or
not mapped, a value's type and cardinality against its element, the run-time checks the compiler
cannot prove, and whether a code table or a map covers every value its source can take."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import Pos, did_you_mean
from ccbmdm.codegen.ir import ComplexType, Particle, SimpleType
from ccbmdm.codegen.mapping.bind.emit import (
    MODULES,
    conversion_hint,
    mismatch,
    require_count,
    type_label,
    wrap_value_errors,
)
from ccbmdm.codegen.mapping.bind.model import Scope, Val
from ccbmdm.codegen.mapping.bind.paths import resolve
from ccbmdm.codegen.mapping.bind.sites import site
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.facets import subsumes
from ccbmdm.codegen.mapping.syntax import MapRule, PathRule, Rule, Rules, Value
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.codegen.render import simple_name
from ccbmdm.runtime.messages.mapping import CodeTable

# ---------------------------------------------------------------- a structure's elements


def unknown_targets(binder: Binding, rules: Rules, target: ComplexType) -> None:
    """A rule for an element the target structure does not have."""
    names = [p.name for p in target.particles]
    for key in rules.entries:
        if key not in names:
            binder.fail(
                rules.key_pos[key],
                "unknown-target",
                f"<{key}> is not an element of {type_label(target)}",
                did_you_mean(key, names),
            )


def unmapped_required(
    binder: Binding, scope: Scope, rules: Rules, target: ComplexType, pos: Pos
) -> None:
    """A required element of the target structure that no rule writes."""
    for particle in target.particles:
        if particle.min_occurs > 0 and particle.name not in rules.entries:
            binder.fail(
                pos,
                "unmapped-required",
                f"required element <{particle.name}> of {scope.target_xpath} is not mapped",
                "add a rule for it",
            )


# ---------------------------------------------------------------- a value against its element


def any_element(binder: Binding, rule: Rule, particle: Particle, value: Val) -> None:
    """An ``xs:any`` element takes only a list of such elements."""
    if value.particle is None or value.particle.kind != "any":
        binder.fail(
            rule.pos,
            "type-mismatch",
            f"<{particle.name}> takes elements of other namespaces; map it from such a list",
        )


def converts(
    binder: Binding, w: Writer, rule: Rule, particle: Particle, value: Val, target: SimpleType
) -> bool:
    """Whether the value fits the element's primitive type and cardinality (an integer widens
    to a decimal); False after reporting why not."""
    if value.simple is None:
        binder.fail(
            rule.pos,
            "type-mismatch",
            f"<{particle.name}> takes a {target.primitive}, not a structure",
        )
        return False
    var = value.var
    if value.simple.primitive != target.primitive:
        if (value.simple.primitive, target.primitive) != ("integer", "decimal"):
            binder.fail(
                rule.pos,
                "type-mismatch",
                mismatch(value.simple, target, particle.name),
                conversion_hint(value.simple, target),
            )
            return False
        w.line(
            f"{var} = None if {var} is None else Decimal({var})"
            if not value.many
            else f"{var} = [Decimal(x) for x in {var}]"
        )
    if value.many and not particle.repeats:
        binder.fail(
            rule.pos,
            "list-into-single",
            f"the source repeats but <{particle.name}> takes one value",
            "add pick: first, last or only",
        )
        return False
    return True


def check_facets(w: Writer, site: int, value: Val, source: SimpleType, target: SimpleType) -> None:
    """The run-time check of a value whose type is looser than the element's."""
    if subsumes(target, source):
        return
    var = value.var
    check = f"{MODULES[target.home]}.check_{simple_name(target)}"
    if value.many:
        w.line(f"{var} = [{check}(x) for x in {var}]")
    else:
        with w.block(f"if {var} is not None:"):
            w.line(f"{var} = {check}({var})")
    wrap_value_errors(w, site, var)


def occurrences(
    binder: Binding, w: Writer, rule: Rule, site: int, value: Val, particle: Particle
) -> None:
    """A repeated element as a tuple with its count checked; a required one never absent (a
    condition cannot leave it out)."""
    var = value.var
    if particle.repeats:
        if value.many:
            w.line(f"{var} = tuple({var})")
        else:
            w.line(f"{var} = () if {var} is None else ({var},)")
        if particle.min_occurs > 0 or particle.max_occurs is not None:
            require_count(w, site, var, particle)
        return
    if particle.min_occurs > 0 and (value.optional or has_when(rule)):
        if has_when(rule):
            binder.fail(
                rule.pos,
                "conditional-required",
                f"<{particle.name}> is required; it cannot be written only when a condition holds",
            )
        with w.block(f"if {var} is None:"):
            w.line(
                f"raise RuleFailure({site}, None, {f'required element <{particle.name}> has no value: its source is absent'!r}, 1003)"
            )


def has_when(rule: Rule) -> bool:
    """A condition that can leave the element absent (a default fills it in otherwise)."""
    mods = getattr(rule, "mods", None)
    return mods is not None and mods.when is not None and mods.default is None


def required_source(
    binder: Binding, w: Writer, rule: Rule, scope: Scope, particle: Particle, var: str
) -> None:
    """A run-time failure when a required structure's source turns out absent."""
    at = site(binder, rule, scope, particle)
    message = f"required element <{particle.name}> has no source"
    with w.block(f"if {var} is None:"):
        w.line(f"raise RuleFailure({at}, None, {message!r}, 1003)")


# ---------------------------------------------------------------- coverage of a source's values


def table_coverage(binder: Binding, scope: Scope, key_rule: Value, table: CodeTable) -> None:
    """A pass-through table keyed by an enumerated source should have a row for every value."""
    if table.miss != "pass_through" or not isinstance(key_rule, PathRule) or len(table.keys) != 1:
        return
    resolved = resolve(binder, scope, key_rule.path)
    if resolved is None or resolved.particles[-1].type_key is None:
        return
    simple = binder.contracts.simple_types.get(resolved.particles[-1].type_key)
    if simple is None or not simple.facets.enumeration:
        return
    missing = [v for v in simple.facets.enumeration if (v,) not in table.rows]
    if missing:
        binder.fail(
            key_rule.pos,
            "table-coverage",
            f"{table.name} has no row for {', '.join(missing)} of <{key_rule.path}>",
            "add rows, or declare miss: fail or default",
        )


def map_coverage(
    binder: Binding, rule: MapRule, simple: SimpleType | None, cases: dict[str, str]
) -> None:
    """A map without a default over an enumerated source should have a case for every value."""
    if simple is None or not simple.facets.enumeration or rule.mods.default is not None:
        return
    missing = [v for v in simple.facets.enumeration if v not in cases]
    if missing:
        binder.fail(
            rule.pos,
            "map-coverage",
            f"no case for {', '.join(missing)} of <{rule.path}>",
            "add cases or a default",
        )

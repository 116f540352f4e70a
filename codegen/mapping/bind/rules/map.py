"""A map rule (``map:``): the source value's case, from cases written in the mapping."""

from __future__ import annotations

from ccbmdm.codegen.ir import SimpleType
from ccbmdm.codegen.mapping.bind.checks import map_coverage
from ccbmdm.codegen.mapping.bind.emit import FORMAT, constant, plain
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Scope, Val
from ccbmdm.codegen.mapping.bind.paths import emit_path, resolve
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import MapRule
from ccbmdm.codegen.mapping.writer import Writer


def value(
    binder: Binding,
    w: Writer,
    scope: Scope,
    rule: MapRule,
    expected: SimpleType | None,
    site: int,
    entry: LineageEntry,
) -> Val | None:
    resolved = resolve(binder, scope, rule.path)
    if resolved is None:
        return None
    entry.sources.add(resolved.dotted)
    binder.reads.add(resolved.dotted)
    source = emit_path(binder, w, resolved)
    result = expected or plain("string")
    cases = {}
    for key, literal in rule.cases:
        cases[key] = constant(binder, rule.pos, result, literal)
    last = resolved.particles[-1]
    simple = binder.contracts.simple_types.get(last.type_key) if last.type_key else None
    map_coverage(binder, rule, simple, cases)
    table = f"_M{binder.next()}"
    binder.constants.append(f"{table} = {{{', '.join(f'{k!r}: {v}' for k, v in cases.items())}}}")
    text = FORMAT[simple.primitive if simple else "string"].format(source.var)
    var = w.fresh()
    w.line(f"{var} = None if {source.var} is None else {table}.get({text})")
    if rule.mods.default is None:
        with w.block(f"if {var} is None and {source.var} is not None:"):
            w.line(
                f"raise RuleFailure({site}, {source.var}, 'no case of the map rule matches the value', 1101)"
            )
    return Val(var, result, False, source.optional)

"""Conditions (``when:``, ``where:``): each a Python expression over the source node, with the
statements reading the paths it tests."""

from __future__ import annotations

from typing import assert_never

from ccbmdm.codegen.mapping.bind.emit import constant
from ccbmdm.codegen.mapping.bind.model import Resolved, Scope, Val
from ccbmdm.codegen.mapping.bind.paths import emit_path, resolve
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import Combine, Compare, Condition, Present, Truthy
from ccbmdm.codegen.mapping.writer import Writer


def condition(binder: Binding, w: Writer, scope: Scope, cond: Condition, node: str) -> str:
    """Emit what a condition needs and return its Python expression; relative paths are read
    from ``node`` (the structure's source, or the item an ``each:`` is at)."""
    if isinstance(cond, Combine):
        parts = [condition(binder, w, scope, part, node) for part in cond.parts]
        if cond.op == "not":
            return f"not ({parts[0]})"
        return "(" + f" {'and' if cond.op == 'all' else 'or'} ".join(parts or ["True"]) + ")"
    path = cond.path
    resolved = resolve(binder, scope, path)
    if resolved is None:
        return "False"
    if not path.absolute and node != "s":
        resolved = Resolved(resolved.particles, node, resolved.xpath, resolved.dotted)
    binder.reads.add(resolved.dotted)
    value = emit_path(binder, w, resolved)
    match cond:
        case Present():
            test = f"bool({value.var})" if value.many else f"{value.var} is not None"
            return f"not ({test})" if cond.negate else test
        case Truthy():
            return _truthy(value)
        case Compare():
            return _compare(binder, cond, value)
        case _:
            assert_never(cond)


def _truthy(value: Val) -> str:
    if value.many or (value.simple is not None and value.simple.primitive in ("string", "boolean")):
        return f"bool({value.var})"
    return f"{value.var} is not None"


def _compare(binder: Binding, condition: Compare, value: Val) -> str:
    path = condition.path
    if value.simple is None or value.many:
        binder.fail(path.pos, "type-mismatch", f"<{path}> must be one value to compare")
        return "False"
    constants = [constant(binder, path.pos, value.simple, v) for v in condition.values]
    if condition.op == "in":
        return f"{value.var} in ({', '.join(constants)},)"
    return f"{value.var} {'==' if condition.op == 'equals' else '!='} {constants[0]}"

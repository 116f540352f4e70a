"""One module per kind of value rule, and the dispatch over the kinds: a kind added to the
syntax tree and not handled here fails the type check."""

from __future__ import annotations

from typing import assert_never

from ccbmdm.codegen.ir import SimpleType
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Scope, Val
from ccbmdm.codegen.mapping.bind.rules import const, fn, path, table, target, xref
from ccbmdm.codegen.mapping.bind.rules import map as map_
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import (
    ConstRule,
    FnRule,
    MapRule,
    PathRule,
    TableRule,
    TargetRule,
    Value,
    XrefRule,
)
from ccbmdm.codegen.mapping.writer import Writer


def value(
    binder: Binding, w: Writer, scope: Scope, rule: Value, expected: SimpleType | None, site: int
) -> Val | None:
    """Emit the value of a rule before its modifiers; None after reporting a finding."""
    entry = binder.lineage.setdefault(binder.lineage_target, LineageEntry())
    match rule:
        case PathRule():
            return path.value(binder, w, scope, rule, entry)
        case ConstRule():
            return const.value(binder, rule, expected, entry)
        case TableRule():
            return table.value(binder, w, scope, rule, expected, site, entry)
        case MapRule():
            return map_.value(binder, w, scope, rule, expected, site, entry)
        case FnRule():
            return fn.value(binder, w, scope, rule, site, entry)
        case XrefRule():
            return xref.value(binder, w, scope, rule, expected, site)
        case TargetRule():
            return target.value(binder, w, scope, rule)
        case _:
            assert_never(rule)

"""A constant rule (``const:``): the literal, read as the target's type and checked now."""

from __future__ import annotations

from ccbmdm.codegen.ir import SimpleType
from ccbmdm.codegen.mapping.bind.emit import constant, plain
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Val
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.facets import lexical_of
from ccbmdm.codegen.mapping.syntax import ConstRule


def value(
    binder: Binding, rule: ConstRule, expected: SimpleType | None, entry: LineageEntry
) -> Val:
    simple = expected or plain("string")
    entry.constants.append(lexical_of(rule.value))
    return Val(constant(binder, rule.pos, simple, rule.value), simple, False, False)

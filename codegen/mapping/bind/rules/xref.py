"""A cross-reference rule (``xref:``): the identifier the other system gave the same object,
resolved at run time through the context."""

from __future__ import annotations

from ccbmdm.codegen.ir import SimpleType
from ccbmdm.codegen.mapping.bind.emit import parser, plain, wrap_value_errors
from ccbmdm.codegen.mapping.bind.model import Scope, Val
from ccbmdm.codegen.mapping.bind.rules.keys import text_argument
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import XrefRule
from ccbmdm.codegen.mapping.writer import Writer


def value(
    binder: Binding,
    w: Writer,
    scope: Scope,
    rule: XrefRule,
    expected: SimpleType | None,
    site: int,
) -> Val | None:
    argument = text_argument(binder, w, scope, rule.key, site)
    if argument is None:
        return None
    key = argument[0]
    var = w.fresh()
    result = expected or plain("string")
    w.line(
        f"{var} = None if {key} is None else {parser(result)}(ctx.resolve({site}, {rule.mo!r}, {key}))"
    )
    wrap_value_errors(w, site, var, key)
    return Val(var, result, False, True)

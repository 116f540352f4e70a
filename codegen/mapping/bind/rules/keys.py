"""A key, as a code table or a cross-reference takes it: one value, in its lexical form."""

from __future__ import annotations

from ccbmdm.codegen.mapping.bind.emit import FORMAT
from ccbmdm.codegen.mapping.bind.model import Scope
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import Value
from ccbmdm.codegen.mapping.writer import Writer


def text_argument(
    binder: Binding, w: Writer, scope: Scope, rule: Value, site: int
) -> tuple[str, bool] | None:
    """A value as the lexical string a table or cross-reference is keyed by, and whether
    it may be absent."""
    value = binder.value(w, scope, rule, None, site)
    if value is None or value.simple is None:
        return None
    if value.many:
        binder.fail(rule.pos, "list-into-single", "a key must be one value", "add pick: first")
        return None
    text = FORMAT[value.simple.primitive].format(value.var)
    if text == value.var:
        return value.var, value.optional
    var = w.fresh()
    w.line(
        f"{var} = None if {value.var} is None else {text}" if value.optional else f"{var} = {text}"
    )
    return var, value.optional

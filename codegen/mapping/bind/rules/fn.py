"""A function rule (``fn:``): a built-in or project function called on values checked against
its signature."""

from __future__ import annotations

from ccbmdm.codegen.mapping.bind.emit import conversion_hint, plain, wrap_value_errors
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Scope, Val
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.functions import PYTHON_TYPES, Function, unknown_hint
from ccbmdm.codegen.mapping.syntax import FnRule, Value
from ccbmdm.codegen.mapping.writer import Writer


def value(
    binder: Binding, w: Writer, scope: Scope, rule: FnRule, site: int, entry: LineageEntry
) -> Val | None:
    known = binder.known_functions.get(rule.name)
    if known is None:
        binder.fail(
            rule.pos,
            "unknown-function",
            f"no function named {rule.name}",
            unknown_hint(rule.name, list(binder.known_functions)),
        )
        return None
    entry.functions.add(rule.name)
    params = _params(binder, rule, known)
    if params is None:
        return None
    arguments: list[str] = []
    guards: list[str] = []
    for param, argument in zip(params, rule.args, strict=True):
        passed = _argument(binder, w, scope, rule, param, argument, site)
        if passed is None:
            return None
        arguments.append(passed[0])
        guards += passed[1:]
    return _call(w, rule, known, arguments, guards, site)


def _params(binder: Binding, rule: FnRule, known: Function) -> list[str] | None:
    """The parameter of each argument, a trailing ``*`` one repeated; None after reporting a
    count that does not fit."""
    signature = known.signature
    params = list(signature.params)
    if params and params[-1].endswith("*"):
        params = params[:-1] + [params[-1][:-1]] * max(1, len(rule.args) - len(params) + 1)
    if len(params) != len(rule.args):
        binder.fail(
            rule.pos,
            "arity",
            f"{rule.name} takes {len(signature.params)} argument(s); {len(rule.args)} given",
            f"its signature: {known}",
        )
        return None
    return params


def _argument(
    binder: Binding, w: Writer, scope: Scope, rule: FnRule, param: str, argument: Value, site: int
) -> tuple[str, ...] | None:
    """The expression passing one argument, then the test that skips the call when the argument
    is absent and the parameter does not take an absent value; None after reporting a value
    that does not fit the parameter."""
    wanted = param.rstrip("?").removesuffix("[]")
    value = binder.value(w, scope, argument, plain(wanted), site)
    if value is None or value.simple is None:
        return None
    if value.simple.primitive != wanted:
        binder.fail(
            argument.pos,
            "type-mismatch",
            f"{rule.name} takes a {wanted} here, not a {value.simple.primitive}",
            conversion_hint(value.simple, plain(wanted)),
        )
        return None
    if value.many != param.endswith("[]"):
        binder.fail(
            argument.pos,
            "list-into-single",
            f"{rule.name} takes {'a list' if param.endswith('[]') else 'one value'} here",
        )
        return None
    passed = f"tuple({value.var})" if value.many else value.var
    if value.optional and not param.endswith("?"):
        return passed, f"{value.var} is None"
    return (passed,)


def _call(
    w: Writer,
    rule: FnRule,
    known: Function,
    arguments: list[str],
    guards: list[str],
    site: int,
) -> Val:
    """Emit the call, skipped (None) when a guarded argument is absent."""
    signature = known.signature
    var = w.fresh()
    call_arguments = ", ".join(["ctx", *arguments] if signature.context else arguments)
    result = signature.result.rstrip("?")
    if known.builtin:
        call = f"fn.{known.function.__name__}({call_arguments})"
    else:  # registered by the loader for this package (runtime/messages/functions.py)
        via = "call_project_optional" if signature.result.endswith("?") else "call_project"
        project_arguments = ", ".join(
            [PYTHON_TYPES[result], "__name__", repr(rule.name), *arguments]
        )
        call = f"fn.{via}({project_arguments})"
    w.line(f"{var} = None if {' or '.join(guards)} else {call}" if guards else f"{var} = {call}")
    wrap_value_errors(w, site, var, f"({', '.join(arguments)},)")
    return Val(var, plain(result), False, bool(guards) or signature.result.endswith("?"))

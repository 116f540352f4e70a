"""Schema violations in the mapping language's own words.

jsonschema speaks of instances and subschemas (``{'tabel': …} is not of type 'string'``); a
writer of mappings, cases or allowed-mutant lists needs to hear which key is unknown, which is
missing and what was probably meant. Of a choice (a rule has a dozen forms), the form the writer
meant is the one whose keys overlap most with the keys written.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

# How the definitions of the mapping language are named in messages; others by their own name.
_THINGS = {
    "mapping": "a mapping file",
    "fragment": "a fragment file",
    "table": "a code table",
    "rule": "a rule",
    "argument": "a rule",
    "condition": "a condition",
    "modifiers": "a rule",
}
_TYPES = {
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "nothing",
}
# Of the problems of one form, those that best say what to change come first.
_PREFERRED = ("additionalProperties", "enum", "type", "required")


@dataclass(frozen=True)
class Violation:
    """One problem: where (the instance path, and the key concerned if any) and what."""

    path: tuple[str | int, ...]
    key: str | None
    message: str
    hint: str = ""


def explain(
    errors: Sequence[jsonschema.ValidationError], schema: dict[str, Any]
) -> Violation | None:
    """The violation that best explains ``errors`` of an instance of ``schema``, or None."""
    if not errors:
        return None
    best = jsonschema.exceptions.best_match(errors)
    while best.validator in ("oneOf", "anyOf") and best.context:
        meant = _meant(best, schema)
        if meant is None:
            return _no_form(best, schema)
        best = meant
    return _words(best, schema)


def suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else ""


def _resolve(form: Any, schema: dict[str, Any]) -> Any:
    """A ``$ref`` to one of the schema's definitions, followed (local references only)."""
    seen = 0
    while isinstance(form, dict) and isinstance(form.get("$ref"), str) and seen < 10:
        ref: str = form["$ref"]
        if not ref.startswith("#/$defs/"):
            break
        form = schema.get("$defs", {}).get(ref.removeprefix("#/$defs/"), form)
        seen += 1
    return form


def _fits(form: Any, instance: Any, schema: dict[str, Any]) -> float:
    """How well ``instance`` looks like the choice's ``form``: -1 when its type is another,
    else the keys it shares with the form (a misspelt key counts half)."""
    form = _resolve(form, schema)
    if not isinstance(form, dict):
        return 0
    choice: list[Any] = form.get("oneOf") or form.get("anyOf") or []
    if choice:
        return max(_fits(f, instance, schema) for f in choice)
    wanted = form.get("type")
    if wanted is not None:
        types = wanted if isinstance(wanted, list) else [wanted]
        if not any(_is(instance, t) for t in types):
            return -1
    if not isinstance(instance, dict):
        return 0
    allowed = list(form.get("properties", {}))
    shared = sum(1 for key in instance if key in allowed)
    near = sum(1 for key in instance if key not in allowed and suggest(key, allowed))
    required = form.get("required", [])
    return shared + near / 2 + (0.25 if required and required[0] in instance else 0)


def _is(instance: Any, type_name: str) -> bool:
    checks: dict[str, Any] = {
        "string": lambda v: isinstance(v, str),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    check = checks.get(type_name)
    return bool(check(instance)) if check else True


def _meant(
    choice: jsonschema.ValidationError, schema: dict[str, Any]
) -> jsonschema.ValidationError | None:
    """Of the errors of a choice, one from the form the writer meant (None when the value has
    the type of no form at all)."""
    forms = choice.schema.get(str(choice.validator), []) if isinstance(choice.schema, dict) else []
    by_form: dict[int, list[jsonschema.ValidationError]] = {}
    for error in choice.context or []:
        index = error.relative_schema_path[0] if error.relative_schema_path else 0
        by_form.setdefault(int(index), []).append(error)
    scored = [
        (_fits(forms[index], choice.instance, schema) if index < len(forms) else 0, -index, index)
        for index in by_form
    ]
    score, _, index = max(scored)
    if score < 0:
        return None
    return max(by_form[index], key=_rank)


def _rank(error: jsonschema.ValidationError) -> tuple[int, int]:
    validator = str(error.validator)
    preference = len(_PREFERRED) - _PREFERRED.index(validator) if validator in _PREFERRED else 0
    return len(error.absolute_path), preference


def _thing(error: jsonschema.ValidationError, schema: dict[str, Any]) -> str:
    """What the erring value is: a rule, a condition, a code table…"""
    defs = schema.get("$defs", {})
    for name, definition in defs.items():
        if definition is error.schema:
            return _THINGS.get(name, f"a {name.replace('_', ' ')}")
    for name, definition in defs.items():
        if isinstance(definition, dict) and any(
            f is error.schema for f in definition.get("oneOf", [])
        ):
            return _THINGS.get(name, f"a {name.replace('_', ' ')}")
    if not error.absolute_path:
        kind = _root_kind(schema)
        return _THINGS.get(kind, "the file") if kind else "the file"
    return _where(error)


def _root_kind(schema: dict[str, Any]) -> str | None:
    forms = schema.get("oneOf", [])
    if len(forms) == 1 and isinstance(forms[0], dict):
        ref = forms[0].get("$ref", "")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return ref.removeprefix("#/$defs/")
    return None


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "the file"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    return repr(value)


def _words(error: jsonschema.ValidationError, schema: dict[str, Any]) -> Violation:
    path = tuple(error.absolute_path)
    validator, instance = str(error.validator), error.instance
    subschema = error.schema if isinstance(error.schema, dict) else {}
    if validator == "additionalProperties" and isinstance(instance, dict):
        allowed = list(subschema.get("properties", {}))
        unknown = [key for key in instance if key not in allowed]
        if unknown:
            thing = _thing(error, schema)
            key = unknown[0]
            names = ", ".join(unknown)
            return Violation(
                path,
                key,
                f"unknown key{'s' if len(unknown) > 1 else ''} {names} in {thing}",
                suggest(key, [k for k in allowed if k not in instance])
                or f"expected {', '.join(allowed)}",
            )
    if validator == "required" and isinstance(instance, dict):
        missing = [key for key in subschema.get("required", []) if key not in instance]
        thing = _thing(error, schema)
        return Violation(
            path,
            None,
            f"{thing} needs {', '.join(missing) or 'more keys'}",
            f"it has {', '.join(map(str, instance)) or 'no keys'}",
        )
    if validator == "enum":
        options = [str(o) for o in subschema.get("enum", [])]
        return Violation(
            path,
            None,
            f"{_where(error)}: {_shown(instance)} is not one of {', '.join(options)}",
            suggest(str(instance), options),
        )
    if validator == "type":
        wanted = subschema.get("type")
        types = wanted if isinstance(wanted, list) else [wanted]
        return Violation(
            path,
            None,
            f"{_where(error)}: expected {' or '.join(_TYPES.get(str(t), str(t)) for t in types)}, "
            f"got {_type_of(instance)}",
        )
    if validator == "pattern":
        form = subschema.get("pattern")
        return Violation(
            path, None, f"{_where(error)}: {_shown(instance)} does not have the form {form}"
        )
    return Violation(path, None, f"{_where(error)}: {error.message}")


def _no_form(choice: jsonschema.ValidationError, schema: dict[str, Any]) -> Violation:
    """A value whose type is that of none of a choice's forms (a list where a rule goes)."""
    forms = choice.schema.get(str(choice.validator), []) if isinstance(choice.schema, dict) else []
    types: list[str] = []
    for form in forms:
        resolved = _resolve(form, schema)
        wanted = resolved.get("type") if isinstance(resolved, dict) else None
        for name in wanted if isinstance(wanted, list) else [wanted]:
            shown = _TYPES.get(str(name), str(name)) if name else None
            if shown and shown not in types:
                types.append(shown)
    return Violation(
        tuple(choice.absolute_path),
        None,
        f"{_where(choice)}: expected {' or '.join(types) or 'another value'}, "
        f"got {_type_of(choice.instance)}",
    )


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "nothing"
    return f"the number {value}"

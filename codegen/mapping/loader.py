"""Stage 1: read mapping files with positions, validate them with the language's JSON Schema
and build the syntax tree. Every later message can point at a line and column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path as FilePath
from typing import Any

import jsonschema
import yaml

# Re-exported, for code that imports the finding types from the loader.
from ccbmdm.codegen.diagnostics import Finding as Finding
from ccbmdm.codegen.diagnostics import Pos as Pos
from ccbmdm.codegen.mapping.syntax import (
    Combine,
    Compare,
    Condition,
    ConstRule,
    CopyRule,
    EachRule,
    FnRule,
    Literal_,
    Mapping,
    MapRule,
    Modifiers,
    Path,
    PathRule,
    Present,
    Rule,
    Rules,
    StructRule,
    TableRule,
    TargetRule,
    Truthy,
    Value,
    XrefRule,
)
from ccbmdm.codegen.mapping.violations import explain

SCHEMA_FILE = "mapping.schema.json"


# ---------------------------------------------------------------- YAML with positions


class LDict(dict[str, Any]):
    pos: Pos
    key_pos: dict[str, Pos]


class LList(list[Any]):
    pos: Pos


class LStr(str):
    pos: Pos


class LScalar:
    """A non-string scalar with its position (numbers and booleans)."""

    def __init__(self, value: int | float | bool | None, pos: Pos) -> None:
        self.value = value
        self.pos = pos


def _located(node: yaml.Node, file: str) -> Any:
    pos = Pos(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result = LDict()
        result.pos, result.key_pos = pos, {}
        for key_node, value_node in node.value:
            key = str(_constructed(key_node))
            result.key_pos[key] = Pos(
                file, key_node.start_mark.line + 1, key_node.start_mark.column + 1
            )
            if key in result:
                raise Finding(result.key_pos[key], "schema", f"key {key!r} appears twice")
            result[key] = _located(value_node, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        items = LList(_located(item, file) for item in node.value)
        items.pos = pos
        return items
    value = _constructed(node)
    if isinstance(value, str):
        text = LStr(value)
        text.pos = pos
        return text
    return LScalar(value, pos)


def _constructed(node: yaml.Node) -> Any:
    """The value of a composed node, as yaml.safe_load gives it (an empty node is None)."""
    return yaml.SafeLoader("").construct_document(node)


def plain(data: Any) -> Any:
    """The located data as plain JSON-like values (for the schema validator, say)."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    if isinstance(data, LScalar):
        return data.value
    return str(data)


def _pos_of(data: Any, path: Iterator[str | int], fallback: Pos) -> Pos:
    here = fallback
    for step in path:
        if isinstance(data, LDict) and isinstance(step, str) and step in data:
            here = data.key_pos.get(step, here)
            data = data[step]
        elif isinstance(data, list) and isinstance(step, int) and step < len(data):
            data = data[step]
        else:
            break
        here = getattr(data, "pos", here)
    return here


def position(data: LDict, *steps: str | int) -> Pos:
    """Where the value at ``steps`` in located data is (the nearest one's that exists)."""
    return _pos_of(data, iter(steps), data.pos)


@cache
def file_validator(schema_path: FilePath) -> jsonschema.protocols.Validator:
    """The validator of the JSON Schema in ``schema_path`` (a case file's, say)."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


@cache
def schema_validator(schema_path: FilePath, kind: str) -> jsonschema.protocols.Validator:
    """The validator of one kind of file (mapping, fragment, table): the schema's definition of
    that kind, so that errors speak of it rather than of the three-way choice at the top."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    schema = {**schema, "oneOf": [{"$ref": f"#/$defs/{kind}"}]}
    validator: jsonschema.protocols.Validator = jsonschema.validators.validator_for(schema)(schema)
    return validator


def _kind(data: dict[str, Any]) -> str:
    for key in ("flow", "fragment", "table"):
        if key in data:
            return {"flow": "mapping"}.get(key, key)
    return "mapping"


def read_located(path: FilePath, display: str, schema_path: FilePath) -> LDict:
    """Parse a YAML file with positions and validate it against the language's schema."""
    data = compose_located(path, display, "a mapping file")
    validate_located(
        data, schema_validator(schema_path, _kind(data)), "see mappings/mapping.schema.json"
    )
    return data


def compose_located(path: FilePath, display: str, what: str) -> LDict:
    """Parse a YAML file that holds a mapping (``what`` names it) with the position of each
    node, so that every later message can point at a line and column."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        pos = Pos(display, mark.line + 1, mark.column + 1) if mark else Pos(display, 1, 1)
        raise Finding(pos, "yaml", f"not valid YAML: {exc.problem}") from None
    except OSError as exc:
        raise Finding(Pos(display, 1, 1), "yaml", f"cannot read: {exc.strerror}") from None
    if node is None:
        raise Finding(Pos(display, 1, 1), "schema", "the file is empty")
    data = _located(node, display)
    if not isinstance(data, LDict):
        raise Finding(data.pos, "schema", f"{what} holds a YAML mapping")
    return data


def validate_located(data: LDict, validator: jsonschema.protocols.Validator, hint: str) -> None:
    """Raise the schema violation that best explains what is wrong, in the words of the file's
    language, at its line and column (``hint`` says where the language is described)."""
    errors = sorted(validator.iter_errors(plain(data)), key=lambda e: list(e.absolute_path))
    schema = validator.schema if isinstance(validator.schema, dict) else {}
    violation = explain(errors, schema)
    if violation is None:
        return
    where = _pos_of(data, iter(violation.path), data.pos)
    if violation.key is not None:
        node = _at(data, violation.path)
        if isinstance(node, LDict):
            where = node.key_pos.get(violation.key, where)
    raise Finding(where, "schema", violation.message, violation.hint or hint)


def _at(data: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        try:
            data = data[step]
        except (KeyError, IndexError, TypeError):
            return None
    return data


# ---------------------------------------------------------------- syntax tree


def _path(text: LStr) -> Path:
    absolute = text.startswith("/")
    return Path(tuple(text.lstrip("/").split(".")), absolute, text.pos)


def _literal(value: Any) -> Literal_:
    if isinstance(value, LScalar):
        assert value.value is not None
        return value.value
    return str(value)


def _condition(data: Any) -> Condition:
    if isinstance(data, LStr):
        return Truthy(_path(data))
    ((op, arg),) = data.items()
    if op in ("present", "absent"):
        return Present(_path(arg), negate=op == "absent")
    if op in ("equals", "not_equals"):
        return Compare(_path(arg[0]), (_literal(arg[1]),), op)
    if op == "in":
        return Compare(_path(arg[0]), tuple(_literal(v) for v in arg[1]), "in")
    parts = (arg,) if op == "not" else tuple(arg)
    return Combine(op, tuple(_condition(p) for p in parts))


def _modifiers(data: LDict) -> Modifiers:
    return Modifiers(
        when=_condition(data["when"]) if "when" in data else None,
        default=_literal(data["default"]) if "default" in data else None,
        on_empty=str(data.get("on_empty", "keep")),  # type: ignore[arg-type]
        pick=str(data["pick"]) if "pick" in data else None,  # type: ignore[arg-type]
    )


def _value(data: Any) -> Value:
    if isinstance(data, LStr):
        return PathRule(data.pos, _path(data), Modifiers())
    rule = _rule(data)
    if isinstance(rule, StructRule | EachRule | CopyRule):
        raise Finding(data.pos, "schema", "an argument must produce a value, not a structure")
    return rule


def _rule(data: Any) -> Rule:
    if isinstance(data, LStr):
        return PathRule(data.pos, _path(data), Modifiers())
    pos, mods = data.pos, _modifiers(data)
    return _value_rule(data, pos, mods) or _structure_rule(data, pos, mods)


def _value_rule(data: LDict, pos: Pos, mods: Modifiers) -> Value | None:
    """The value rule its key names; None for a structure rule."""
    if "path" in data:
        return PathRule(pos, _path(data["path"]), mods)
    if "const" in data:
        return ConstRule(pos, _literal(data["const"]), mods)
    if "table" in data:
        keys = data["key"] if isinstance(data["key"], list) else [data["key"]]
        return TableRule(
            pos,
            str(data["table"]),
            tuple(_value(k) for k in keys),
            str(data["column"]) if "column" in data else None,
            bool(data["reverse"].value) if "reverse" in data else False,
            mods,
        )
    if "map" in data:
        cases = tuple((str(k), _literal(v)) for k, v in data["cases"].items())
        return MapRule(pos, _path(data["map"]), cases, mods)
    if "fn" in data:
        return FnRule(pos, str(data["fn"]), tuple(_value(a) for a in data.get("args", [])), mods)
    if "xref" in data:
        return XrefRule(pos, str(data["xref"]), _value(data["key"]), mods)
    if "target" in data:
        return TargetRule(pos, _path(data["target"]), mods)
    return None


def _structure_rule(data: LDict, pos: Pos, mods: Modifiers) -> Rule:
    if "each" in data:
        where = _condition(data["where"]) if "where" in data else None
        return EachRule(pos, _path(data["each"]), where, rules_of(data["rules"]))
    if "copy" in data:
        return CopyRule(pos, _path(data["copy"]), mods.when)
    source = _path(data["from"]) if "from" in data else None
    return StructRule(pos, source, rules_of(data["rules"]), mods.when)


def rules_of(data: LDict) -> Rules:
    """Rules of one structure; dotted keys become nested structures built from the same node."""
    rules = Rules()
    for key, value in data.items():
        head, _, rest = key.partition(".")
        key_pos = data.key_pos[key]
        if not rest:
            if head in rules.entries:
                raise Finding(
                    key_pos,
                    "duplicate-target",
                    f"two rules write <{head}>",
                    f"the other is at line {rules.key_pos[head].line}",
                )
            rules.entries[head] = _rule(value)
            rules.key_pos[head] = key_pos
            continue
        nested = rules.entries.get(head)
        if nested is None:
            nested = StructRule(key_pos, None, Rules())
            rules.entries[head], rules.key_pos[head] = nested, key_pos
        if not isinstance(nested, StructRule) or nested.source is not None:
            raise Finding(
                key_pos,
                "duplicate-target",
                f"<{head}> is written by another rule too",
                f"at line {rules.key_pos[head].line}",
            )
        inner = LDict({rest: value})
        inner.pos, inner.key_pos = key_pos, {rest: key_pos}
        for inner_key, inner_rule in rules_of(inner).entries.items():
            if inner_key in nested.rules.entries:
                raise Finding(key_pos, "duplicate-target", f"two rules write <{head}.{inner_key}>")
            nested.rules.entries[inner_key] = inner_rule
            nested.rules.key_pos[inner_key] = key_pos
    return rules


def load_mapping(path: FilePath, display: str, schema_path: FilePath) -> Mapping:
    data = read_located(path, display, schema_path)
    if "flow" not in data:
        raise Finding(
            data.pos, "schema", "a mapping file needs flow, part, source, target and rules"
        )
    return Mapping(
        file=display,
        flow=str(data["flow"]),
        part=str(data["part"]),
        source=str(data["source"]),
        target=str(data["target"]),
        use=tuple(str(u) for u in data.get("use", [])),
        rules=rules_of(data["rules"]),
        pos=data.pos,
        source_pos=data["source"].pos,
        target_pos=data["target"].pos,
        unread=tuple(_path(p) for p in data.get("unread", [])),
    )


def load_fragment(path: FilePath, display: str, schema_path: FilePath) -> tuple[str, Rules, Pos]:
    data = read_located(path, display, schema_path)
    if "fragment" not in data:
        raise Finding(data.pos, "schema", "a fragment file needs fragment and rules")
    return str(data["fragment"]), rules_of(data["rules"]), data.pos


def table_positions(path: FilePath, display: str, schema_path: FilePath) -> LDict:
    """A code table's located data (the compiler checks cells and reports their positions)."""
    data = read_located(path, display, schema_path)
    if "table" not in data:
        raise Finding(
            data.pos, "schema", "a code table file needs table, keys, values, miss and rows"
        )
    return data

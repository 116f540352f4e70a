"""Compare an expected and an actual message as typed models, and say what differs where.

Both messages are decoded into the contract's models, turned into trees keyed by the
contract's XML names, normalised (see normalise.py) and compared with deepdiff: values by value
(a decimal 1.0 equals 1.000; a date-time by its instant and its offset), repeated elements
position by position. Each difference names the
contract path, the expected and the actual value and, through the lineage the compiler writes,
the mapping rule (``file:line:col``) that wrote the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from deepdiff import DeepDiff
from pydantic import BaseModel

from ccbmdm.codegen.ir import ContractSet, Home
from ccbmdm.codegen.naming import field_name
from ccbmdm.conformance.normalise import normalise

ABSENT = "(absent)"


@dataclass(frozen=True)
class Difference:
    """One field where the actual message is not the golden."""

    path: str  # the contract path, XPath-like: /contact/address/city, /items/item[2]
    expected: str
    actual: str
    rule: str | None  # file:line:col of the mapping rule that writes the field, when known

    def __str__(self) -> str:
        by = f"  (written by {self.rule})" if self.rule else ""
        return f"{self.path}: expected {self.expected}, actual {self.actual}{by}"


def message_tree(
    message: BaseModel, contracts: ContractSet, type_key: tuple[Home, str] | None
) -> dict[str, Any]:
    """A message as nested dicts keyed by XML names; repeated elements as lists."""
    particles = {}
    if type_key is not None and type_key in contracts.complex_types:
        particles = {
            (field_name(p.name) if p.kind != "any" else p.name): p
            for p in contracts.complex_types[type_key].particles
        }
    tree: dict[str, Any] = {}
    for attribute in type(message).model_fields:
        particle = particles.get(attribute)
        name = particle.name if particle is not None else attribute
        child_key = particle.type_key if particle is not None else None
        tree[name] = _value(getattr(message, attribute), contracts, child_key)
    return tree


def _value(value: Any, contracts: ContractSet, type_key: tuple[Home, str] | None) -> Any:
    if isinstance(value, BaseModel):
        return message_tree(value, contracts, type_key)
    if isinstance(value, tuple | list):
        return [_value(item, contracts, type_key) for item in value]
    if isinstance(value, datetime | time) and value.utcoffset() is not None:
        # Python holds the same instant at two offsets equal, but a mapping that writes a
        # zone's legal offset must be held to it: the offset is part of the value.
        return value.isoformat()
    return value


def present_fields(tree: dict[str, Any], prefix: str = "") -> set[str]:
    """The lineage targets (``contact.address.city``, ``items[].id``) a message tree holds:
    a field is present when it has a value, a repeated one when it has at least one."""
    found: set[str] = set()
    for name, value in tree.items():
        dotted = f"{prefix}{name}"
        if value is None or value == [] or value == ():
            continue
        found.add(dotted)
        if isinstance(value, list | tuple):
            found.add(f"{dotted}[]")
            for item in value:
                if isinstance(item, dict):
                    found |= present_fields(item, f"{dotted}[].")
        elif isinstance(value, dict):
            found |= present_fields(value, f"{dotted}.")
    return found


def differences(
    expected: dict[str, Any], actual: dict[str, Any], rules: dict[str, str]
) -> list[Difference]:
    """Every difference between two message trees, in contract-path order.

    ``rules`` maps a lineage target (``contact.address.city``, ``items[].id``) to the rule
    that writes it; a field without its own entry is credited to its nearest ancestor's.
    """
    diff = DeepDiff(normalise(expected), normalise(actual), view="tree", zip_ordered_iterables=True)
    found = [
        Difference(
            _xpath(steps := level.path(output_format="list")),
            shown(level.t1),
            shown(level.t2),
            _rule(steps, rules),
        )
        for levels in diff.values()
        for level in levels
    ]
    return sorted(found, key=lambda d: d.path)


def _xpath(steps: list[str | int]) -> str:
    text = ""
    for step in steps:
        text += f"[{step + 1}]" if isinstance(step, int) else f"/{step}"
    return text


def _rule(steps: list[str | int], rules: dict[str, str]) -> str | None:
    names: list[str] = []
    for step in steps:
        if isinstance(step, int):
            if names:
                names[-1] += "[]"
        else:
            names.append(step)
    while names:
        dotted = ".".join(names)
        rule = rules.get(dotted) or rules.get(dotted.removesuffix("[]"))
        if rule:
            return rule
        names.pop()
    return None


def shown(value: Any) -> str:
    """A value as the report prints it: text quoted, numbers as written, times in ISO 8601."""
    if value is None or type(value).__name__ == "NotPresent":
        return ABSENT
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | time):
        return f'"{value.isoformat()}"'
    return json.dumps(value, default=_plain, ensure_ascii=False)


def _plain(value: Any) -> str:
    """A value inside a whole element (an added repetition, say) that JSON cannot write."""
    return value.isoformat() if isinstance(value, date | time) else str(value)

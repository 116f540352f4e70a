"""The flow catalogue, `contracts/flows.yaml`: every flow, its parts and their contracts.

Loaded into typed records and checked against the contracts that exist, so a misspelt contract
name or a missing field is reported with the flow it belongs to instead of surfacing later in
the bridge or the mapping compiler.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

System = Literal["ccb", "mdm"]
PART_NAMES = ("request", "response", "ack", "notification")
# The parts that answer another message, sent by the flow's receiver back to its initiator.
REPLY_PARTS = ("ack", "response")
_FLOW_KEYS = {
    "number",
    "code",
    "name",
    "initiator",
    "receiver",
    "mode",
    "optional",
    "error_policy",
    "ordering_key",
    "reply_timeout",
    "parts",
}


# The keys whose values must have a shape before they can be checked further.
_SHAPES: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("number", "a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    ("code", "a flow code such as SA_SYNC", lambda v: isinstance(v, str) and v.isupper()),
    ("name", "a name", lambda v: isinstance(v, str)),
    ("optional", "true or false", lambda v: isinstance(v, bool)),
    ("reply_timeout", "a duration", lambda v: isinstance(v, str | int)),
    ("parts", "a mapping of part names", lambda v: isinstance(v, dict)),
)


class CatalogueError(Exception):
    """The catalogue is malformed; lists every problem with the flow it concerns."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"the flow catalogue has {len(problems)} problem(s):\n"
            + "\n".join(f"  {p}" for p in problems)
        )


@dataclass(frozen=True)
class Part:
    """One message of a flow: what the sender emits and what the receiver takes in (contract
    names), and which system sends it and which receives it."""

    name: str
    sender: str
    receiver: str
    sent_by: System
    received_by: System

    @property
    def reply(self) -> bool:
        """Whether the part answers another message (and carries its id as correlationId)."""
        return self.name in REPLY_PARTS


@dataclass(frozen=True)
class Flow:
    number: int
    code: str
    name: str
    initiator: System
    receiver: System
    mode: Literal["sync", "async"]
    optional: bool
    error_policy: Literal["hold", "supersede"]
    ordering_key: Literal["sync_key", "none"]
    reply_timeout: str
    parts: tuple[Part, ...]

    @property
    def kebab(self) -> str:
        """The flow code as URLs and mapping files spell it: ``SA_SYNC`` -> ``sa-sync``."""
        return self.code.lower().replace("_", "-")

    def part(self, name: str) -> Part:
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"flow {self.code} has no part {name!r}")


def load_catalogue(
    path: Path, contracts: Collection[str] | None = None, display: str | None = None
) -> tuple[Flow, ...]:
    """Read and check the catalogue; ``contracts`` (names) are those a part may name.

    Each problem starts with its place, ``display:line:column`` (``display`` names the file,
    by default its path), the flow's entry in the list.
    """
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else f"{shown}:1:1"
        raise CatalogueError(path, [f"{where}: not valid YAML: {exc.problem}"]) from None
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(path, [f"{shown}:1:1: cannot read the catalogue: {exc}"]) from None
    problems: list[str] = []
    flows = []
    entries = data.get("flows") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise CatalogueError(path, [f"{shown}:1:1: expected a mapping with a list under `flows`"])
    places = [f"{shown}:{line}:{column}" for line, column in _entry_places(node)]
    first: dict[str, str] = {}
    for index, entry in enumerate(entries):
        place = places[index] if index < len(places) else f"{shown}:1:1"
        found: list[str] = []
        flow = _flow(entry, f"flow #{index + 1}", contracts, found)
        problems += [f"{place}: {problem}" for problem in found]
        if flow is None:
            continue
        if flow.code in first:
            also = first[flow.code]
            problems.append(f"{place}: flow {flow.code} is listed twice (also at {also})")
            continue
        first[flow.code] = place
        flows.append(flow)
    if problems:
        raise CatalogueError(path, problems)
    return tuple(flows)


def _entry_places(node: yaml.Node | None) -> list[tuple[int, int]]:
    """Line and column (1-based) of each entry of the list under ``flows``."""
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if key.value == "flows" and isinstance(value, yaml.SequenceNode):
            return [(n.start_mark.line + 1, n.start_mark.column + 1) for n in value.value]
    return []


def _flow(
    entry: Any, where: str, contracts: Collection[str] | None, problems: list[str]
) -> Flow | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a mapping")
        return None
    where = f"flow {entry.get('code', where)}"
    missing = sorted(_FLOW_KEYS - entry.keys(), key=str)
    unknown = sorted(entry.keys() - _FLOW_KEYS, key=str)
    if missing or unknown:
        problems += [f"{where}: missing `{key}`" for key in missing]
        problems += [f"{where}: unknown key `{key}`" for key in unknown]
        return None
    wrong = [
        f"{where}: `{key}` must be {what}, not {entry[key]!r}"
        for key, what, fits in _SHAPES
        if not fits(entry[key])
    ]
    if wrong:
        problems += wrong
        return None
    choices = {
        "initiator": ("ccb", "mdm"),
        "receiver": ("ccb", "mdm"),
        "mode": ("sync", "async"),
        "error_policy": ("hold", "supersede"),
        "ordering_key": ("sync_key", "none"),
    }
    for key, allowed in choices.items():
        if entry[key] not in allowed:
            problems.append(
                f"{where}: `{key}` is {entry[key]!r}; expected one of {', '.join(allowed)}"
            )
    parts = []
    raw_parts = entry["parts"] if isinstance(entry["parts"], dict) else {}
    if not raw_parts:
        problems.append(f"{where}: `parts` must map part names to sender and receiver contracts")
    for name, part in raw_parts.items():
        if name not in PART_NAMES:
            problems.append(f"{where}: part {name!r} is not one of {', '.join(PART_NAMES)}")
        if (
            not isinstance(part, dict)
            or set(part) != {"sender", "receiver"}
            or not all(isinstance(v, str) for v in part.values())
        ):
            problems.append(
                f"{where}: part {name} needs exactly `sender` and `receiver`, each a contract name"
            )
            continue
        # The initiator sends a request or notification, the other system answers it.
        systems = (entry["initiator"], entry["receiver"])
        sent_by, received_by = systems[::-1] if name in REPLY_PARTS else systems
        for role, system in (("sender", sent_by), ("receiver", received_by)):
            if contracts is not None and part[role] not in contracts:
                problems.append(f"{where}: part {name} {role} {part[role]!r} is not a contract")
            elif not str(part[role]).startswith(f"{system}/"):
                problems.append(
                    f"{where}: part {name} is sent by {sent_by} to {received_by}, so its {role} "
                    f"must be a contract of {system}, not {part[role]!r}"
                )
        parts.append(Part(name, part["sender"], part["receiver"], sent_by, received_by))
    return Flow(
        number=entry["number"],
        code=entry["code"],
        name=entry["name"],
        initiator=entry["initiator"],
        receiver=entry["receiver"],
        mode=entry["mode"],
        optional=bool(entry["optional"]),
        error_policy=entry["error_policy"],
        ordering_key=entry["ordering_key"],
        reply_timeout=str(entry["reply_timeout"]),
        parts=tuple(parts),
    )

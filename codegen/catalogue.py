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

from ccbmdm.codegen.diagnostics import Finding, FindingsError, did_you_mean
from ccbmdm.codegen.mapping.loader import LDict, compose_located, plain, position

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


# The keys whose values must have a shape before they can be checked further: a list where a
# name goes would otherwise fail as a value of no known kind.
_SHAPES: tuple[tuple[str, str, Callable[[Any], bool]], ...] = (
    ("number", "a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    ("code", "a flow code such as SA_SYNC", lambda v: isinstance(v, str) and v.isupper()),
    ("name", "a name", lambda v: isinstance(v, str)),
    ("optional", "true or false", lambda v: isinstance(v, bool)),
    ("reply_timeout", "a duration", lambda v: isinstance(v, str | int)),
    ("parts", "a mapping of part names", lambda v: isinstance(v, dict)),
)


class CatalogueError(FindingsError):
    """The catalogue is malformed; lists every problem at its line, with the flow it concerns."""


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
    """Read and check the catalogue; ``contracts`` (names) are those a part may name, and
    ``display`` is how findings name the file (its path as given by default)."""
    try:
        located = compose_located(path, display or str(path), "the flow catalogue")
    except Finding as finding:
        raise CatalogueError([finding]) from None
    findings: list[Finding] = []
    entries = located.get("flows")
    if not isinstance(entries, list):
        where = position(located, "flows")
        raise CatalogueError(
            [Finding(where, "catalogue", "expected a mapping with a list under `flows`")]
        )
    flows = []
    for index, entry in enumerate(entries):
        check = _Check(located, ("flows", index), f"flow #{index + 1}", findings)
        flow = check.flow(entry, contracts)
        if flow is not None:
            flows.append(flow)
    codes: set[str] = set()
    for index, entry in enumerate(entries):
        code = str(entry.get("code")) if isinstance(entry, dict) else ""
        if code in codes:
            where = position(located, "flows", index, "code")
            message = "the flow code is listed twice"
            findings.append(Finding(where, "duplicate-flow", message, path=f"flow {code}"))
        codes.add(code)
    if findings:
        raise CatalogueError(findings)
    return tuple(flows)


@dataclass
class _Check:
    """The checks of one flow entry, each finding at the line of the key concerned."""

    located: LDict
    at: tuple[str | int, ...]
    name: str
    findings: list[Finding]

    def fail(self, steps: tuple[str | int, ...], rule: str, message: str, hint: str = "") -> None:
        where = position(self.located, *self.at, *steps)
        self.findings.append(Finding(where, rule, message, hint, path=self.name))

    def flow(self, located_entry: Any, contracts: Collection[str] | None) -> Flow | None:
        if not isinstance(located_entry, dict):
            self.fail((), "catalogue", "expected a mapping")
            return None
        entry = plain(located_entry)
        self.name = f"flow {entry.get('code', self.name)}"
        missing = sorted(_FLOW_KEYS - entry.keys())
        unknown = sorted(entry.keys() - _FLOW_KEYS)
        for key in missing:
            self.fail((), "catalogue", f"missing `{key}`")
        for key in unknown:
            self.fail((key,), "catalogue", f"unknown key `{key}`", did_you_mean(key, _FLOW_KEYS))
        if missing or unknown:
            return None
        misshapen = [(key, what) for key, what, fits in _SHAPES if not fits(entry[key])]
        for key, what in misshapen:
            self.fail((key,), "catalogue", f"`{key}` must be {what}, not {entry[key]!r}")
        if misshapen:
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
                self.fail(
                    (key,),
                    "catalogue",
                    f"`{key}` is {entry[key]!r}; expected one of {', '.join(allowed)}",
                )
        parts = []
        raw_parts = entry["parts"] if isinstance(entry["parts"], dict) else {}
        if not raw_parts:
            self.fail(
                ("parts",),
                "catalogue",
                "`parts` must map part names to sender and receiver contracts",
            )
        for name, part in raw_parts.items():
            if name not in PART_NAMES:
                self.fail(
                    ("parts", name),
                    "catalogue",
                    f"part {name!r} is not one of {', '.join(PART_NAMES)}",
                    did_you_mean(name, PART_NAMES),
                )
            if (
                not isinstance(part, dict)
                or set(part) != {"sender", "receiver"}
                or not all(isinstance(contract, str) for contract in part.values())
            ):
                self.fail(
                    ("parts", name),
                    "catalogue",
                    f"part {name} needs exactly `sender` and `receiver`, each a contract",
                )
                continue
            # The initiator sends a request or notification, the other system answers it.
            systems = (entry["initiator"], entry["receiver"])
            sent_by, received_by = systems[::-1] if name in REPLY_PARTS else systems
            for role, system in (("sender", sent_by), ("receiver", received_by)):
                if contracts is not None and part[role] not in contracts:
                    self.fail(
                        ("parts", name, role),
                        "catalogue-contract",
                        f"part {name} {role} {part[role]!r} is not a contract",
                        did_you_mean(str(part[role]), contracts),
                    )
                elif not str(part[role]).startswith(f"{system}/"):
                    self.fail(
                        ("parts", name, role),
                        "catalogue-contract",
                        f"part {name} is sent by {sent_by} to {received_by}, so its {role} "
                        f"must be a contract of {system}, not {part[role]!r}",
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

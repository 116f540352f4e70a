"""Conformance cases as data: find them in the project's cases folder and read their case.yaml.

A case lives in ``<cases>/<flow-kebab>/<name>/``: its ``case.yaml`` says what it shows and what
it needs, the messages sit beside it as files. Reading a case never raises on bad input: a
malformed case is a Finding at ``file:line:col`` with a hint, like a malformed mapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ccbmdm.codegen.diagnostics import Finding, Pos
from ccbmdm.codegen.mapping.loader import (
    LDict,
    LScalar,
    LStr,
    compose_located,
    file_validator,
    validate_located,
)
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages.lexical import configured_datetime

CASE_FILE = "case.yaml"
SCHEMA_FILE = Path(__file__).with_name("case.schema.json")
HINT = "see docs/conformance.md, Writing a mapping case"


@dataclass(frozen=True)
class ExpectedFault:
    """The fault a case expects: its framework code and the rule that fails
    (``<mapping file>#<target element path>``)."""

    code: int
    rule: str


class _InFolder:
    """A case in its folder of the project: where its keys and files are written."""

    root: Path  # the project's folder: findings name files relative to it
    folder: Path
    positions: dict[str, Pos]  # of each key of case.yaml

    def at(self, key: str) -> Pos:
        """Where ``key`` is written in case.yaml (its first line when it is not)."""
        return self.positions.get(key) or Pos(self.display(self.folder / CASE_FILE), 1, 1)

    def display(self, path: Path) -> str:
        """A case's file as findings name it: relative to the project's folder."""
        return str(path.relative_to(self.root))


@dataclass(frozen=True)
class MappingCase(_InFolder):
    """One input message through one part of a flow's mapping, with what must come out."""

    id: str  # <flow-kebab>/<name>: the test id
    root: Path  # the project's folder: findings name files relative to it
    folder: Path
    flow: str  # the flow code, such as PERSON_SYNC
    part: str
    description: str
    input: Path
    expected: Path | None
    fault: ExpectedFault | None
    clock: datetime | None
    time_zone: str | None
    tables: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    xref: dict[str, dict[str, str]] = field(default_factory=dict)
    time_limit_s: float | None = None  # what the case may take; None: the run's limit
    positions: dict[str, Pos] = field(default_factory=dict)


def flow_code(folder: str) -> str:
    """The flow code of a flow's folder name: ``person-sync`` -> ``PERSON_SYNC``."""
    return folder.upper().replace("-", "_")


def discover(project: Project) -> list[Path]:
    """Every case folder of the project, in path order."""
    if not project.cases.is_dir():
        return []
    return sorted(path.parent for path in project.cases.glob(f"*/*/{CASE_FILE}"))


@dataclass(frozen=True)
class Step:
    """One action of a flow case's ``given`` or ``when``, with its arguments as YAML gave them."""

    action: str
    arguments: dict[str, Any]
    pos: Pos


@dataclass(frozen=True)
class FlowCase(_InFolder):
    """A scenario through the runtime between the reference simulators: its starting state,
    its business events, and the golden trail and end state they must give."""

    id: str
    root: Path
    folder: Path
    flow: str
    description: str
    clock: datetime
    given: tuple[Step, ...]
    when: tuple[Step, ...]
    time_limit_s: float | None = None
    positions: dict[str, Pos] = field(default_factory=dict)
    part: str = "flow"  # (a flow case runs every part of its flow)


Case = MappingCase | FlowCase


def read_case(folder: Path, root: Path) -> Case:
    """Read and check one case.yaml of the project in ``root``; raise a Finding where it is
    wrong."""
    display = str((folder / CASE_FILE).relative_to(root))
    data = compose_located(folder / CASE_FILE, display, "a case file")
    validate_located(data, file_validator(SCHEMA_FILE), HINT)
    # Where each key's value is written: a finding points at the value that is wrong.
    positions = {key: getattr(value, "pos", data.key_pos[key]) for key, value in data.items()}
    if str(data["kind"]) == "flow":
        return _flow_case(folder, root, data, positions)

    def file(key: str) -> Path | None:
        name = data.get(key)
        if name is None:
            return None
        path = folder / str(name)
        if not path.is_file():
            raise Finding(name.pos, "case", f"{key}: no file {name} beside case.yaml", HINT)
        return path

    clock = _clock(data["clock"]) if "clock" in data else None
    fault = None
    if "fault" in data:
        fault = ExpectedFault(int(str(_plain(data["fault"]["code"]))), str(data["fault"]["rule"]))
    input_ = file("input")
    assert input_ is not None  # required by the schema
    return MappingCase(
        id=f"{folder.parent.name}/{folder.name}",
        root=root,
        folder=folder,
        flow=flow_code(folder.parent.name),
        part=str(data["part"]),
        description=str(data["description"]),
        input=input_,
        expected=file("expected"),
        fault=fault,
        clock=clock,
        time_zone=str(data["time_zone"]) if "time_zone" in data else None,
        tables={
            str(name): [{str(k): str(_plain(v)) for k, v in row.items()} for row in rows]
            for name, rows in _mapping(data.get("tables")).items()
        },
        xref={
            str(mo): {str(k): str(v) for k, v in keys.items()}
            for mo, keys in _mapping(data.get("xref")).items()
        },
        time_limit_s=_time_limit(data),
        positions={
            **positions,
            **{f"tables.{k}": p for k, p in _key_pos(data.get("tables")).items()},
        },
    )


def _flow_case(folder: Path, root: Path, data: LDict, positions: dict[str, Pos]) -> FlowCase:
    from ccbmdm.conformance.scenario import ACTIONS

    def steps(key: str) -> tuple[Step, ...]:
        found = []
        for item in data.get(key) or ():
            ((action, arguments),) = item.items()
            if action not in ACTIONS:
                raise Finding(
                    item.key_pos[action],
                    "case",
                    f"{key}: no action {action}",
                    "actions: "
                    + ", ".join(ACTIONS)
                    + " (docs/conformance.md, Writing a flow case)",
                )
            found.append(Step(str(action), native(arguments or {}), item.key_pos[action]))
        return tuple(found)

    return FlowCase(
        id=f"{folder.parent.name}/{folder.name}",
        root=root,
        folder=folder,
        flow=flow_code(folder.parent.name),
        description=str(data["description"]),
        clock=_clock(data["clock"]),
        given=steps("given"),
        when=steps("when"),
        time_limit_s=_time_limit(data),
        positions=positions,
    )


def _time_limit(data: LDict) -> float | None:
    return float(str(_plain(data["time_limit_s"]))) if "time_limit_s" in data else None


def native(data: object) -> Any:
    """Located YAML as plain Python values (dates and date-times as YAML read them)."""
    if isinstance(data, dict):
        return {str(k): native(v) for k, v in data.items()}
    if isinstance(data, list):
        return [native(v) for v in data]
    if isinstance(data, LScalar):
        return data.value
    return str(data)


def _clock(value: LStr | LScalar) -> datetime:
    # (LScalar declares the scalars of mappings; YAML makes a timestamp of an unquoted clock.)
    written: object = value.value if isinstance(value, LScalar) else str(value)
    try:
        return configured_datetime(written)
    except ValueError as exc:
        raise Finding(value.pos, "case", f"clock: {exc}", HINT) from None


def _mapping(data: object) -> LDict:
    return data if isinstance(data, LDict) else LDict()


def _key_pos(data: object) -> dict[str, Pos]:
    return dict(data.key_pos) if isinstance(data, LDict) else {}


def _plain(value: object) -> object:
    if isinstance(value, LScalar):
        # A YAML boolean is written as XML writes it.
        return str(value.value).lower() if isinstance(value.value, bool) else value.value
    return value

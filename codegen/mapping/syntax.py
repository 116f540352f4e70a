"""The mapping language's syntax tree: what a mapping file says, with where it says it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Literal_ = str | int | float | bool


@dataclass(frozen=True)
class Pos:
    """A position in a mapping file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Path:
    """A source path: XML names; ``absolute`` when it starts at the message root."""

    steps: tuple[str, ...]
    absolute: bool
    pos: Pos

    def __str__(self) -> str:
        return ("/" if self.absolute else "") + ".".join(self.steps)


# ---------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Truthy:
    path: Path


@dataclass(frozen=True)
class Present:
    path: Path
    negate: bool = False


@dataclass(frozen=True)
class Compare:
    path: Path
    values: tuple[Literal_, ...]
    op: Literal["equals", "not_equals", "in"]


@dataclass(frozen=True)
class Combine:
    op: Literal["all", "any", "not"]
    parts: tuple[Condition, ...]


Condition = Truthy | Present | Compare | Combine


# ---------------------------------------------------------------- rules


@dataclass(frozen=True)
class Modifiers:
    when: Condition | None = None
    default: Literal_ | None = None
    on_empty: Literal["omit", "keep"] = "keep"
    pick: Literal["first", "last", "only"] | None = None


@dataclass(frozen=True)
class PathRule:
    pos: Pos
    path: Path
    mods: Modifiers


@dataclass(frozen=True)
class ConstRule:
    pos: Pos
    value: Literal_
    mods: Modifiers


@dataclass(frozen=True)
class TableRule:
    pos: Pos
    table: str
    keys: tuple[Value, ...]
    column: str | None
    reverse: bool
    mods: Modifiers


@dataclass(frozen=True)
class MapRule:
    pos: Pos
    path: Path
    cases: tuple[tuple[str, Literal_], ...]
    mods: Modifiers


@dataclass(frozen=True)
class FnRule:
    pos: Pos
    name: str
    args: tuple[Value, ...]
    mods: Modifiers


@dataclass(frozen=True)
class XrefRule:
    pos: Pos
    mo: str
    key: Value
    mods: Modifiers


@dataclass(frozen=True)
class TargetRule:
    pos: Pos
    path: Path
    mods: Modifiers


Value = PathRule | ConstRule | TableRule | MapRule | FnRule | XrefRule | TargetRule


@dataclass(frozen=True)
class StructRule:
    """A nested structure: built from ``source`` (or the current node), with its own rules."""

    pos: Pos
    source: Path | None
    rules: Rules
    when: Condition | None = None


@dataclass(frozen=True)
class EachRule:
    pos: Pos
    source: Path
    where: Condition | None
    rules: Rules


@dataclass(frozen=True)
class CopyRule:
    pos: Pos
    source: Path
    when: Condition | None = None


Rule = Value | StructRule | EachRule | CopyRule


@dataclass
class Rules:
    """Target element (XML name) -> rule, for one structure; ``key_pos`` locates each key."""

    entries: dict[str, Rule] = field(default_factory=dict)
    key_pos: dict[str, Pos] = field(default_factory=dict)


@dataclass(frozen=True)
class Mapping:
    file: str
    flow: str
    part: str
    source: str
    target: str
    use: tuple[str, ...]
    rules: Rules
    pos: Pos
    source_pos: Pos
    target_pos: Pos
    # Source elements no rule reads on purpose: `unread` leaves them out of its warnings.
    unread: tuple[Path, ...] = ()

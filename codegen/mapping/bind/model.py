"""What the binder's stages hand each other: computed values, the structure being built, the
source path a rule reads, and the lineage of each target field."""

from __future__ import annotations

from dataclasses import dataclass, field

from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.ir import Home, Particle, SimpleType


@dataclass(frozen=True)
class Val:
    """A computed value: the variable holding it and what it is."""

    var: str
    simple: SimpleType | None  # None: a structure or an xs:any element list
    many: bool
    optional: bool
    particle: Particle | None = None  # the source particle, for copies and pass-through


@dataclass
class Scope:
    """Where a structure function stands: its source node and the target it builds."""

    source: tuple[Home, str]
    source_xpath: str
    source_dotted: str
    target: tuple[Home, str]
    target_xpath: str
    target_dotted: str
    built: dict[str, tuple[str, Particle]] = field(default_factory=dict)  # target name -> var


@dataclass(frozen=True)
class Resolved:
    """A source path bound to the contract: its particles, the variable it starts from
    (``s`` the current node, ``r`` the message root) and where it ends."""

    particles: tuple[Particle, ...]
    start: str
    xpath: str
    dotted: str


@dataclass
class LineageEntry:
    """What one target field is computed from."""

    sources: set[str] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    constants: list[str] = field(default_factory=list)
    rule: Pos | None = None  # where the rule that writes the field is written

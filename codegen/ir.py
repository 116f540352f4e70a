"""The intermediate representation of a contract set: what every later stage reads.

The reader fills it from the XSDs; the renderer turns it into models and codecs. It holds only
what the supported XSD subset can say (sequences of elements, restricted simple types), so each
generated line can be traced to one node here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Primitive = Literal["string", "decimal", "integer", "boolean", "date", "dateTime"]
Home = Literal["common", "ccb", "mdm"]


@dataclass(frozen=True)
class Origin:
    """Where a node was declared, for messages that point at the contract."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class ValueDoc:
    """What one enumeration value means, as the contract documents it, and where."""

    value: str
    doc: str  # "" when the contract leaves the value undocumented
    origin: Origin


@dataclass(frozen=True)
class Facets:
    """The facets of a simple type, accumulated along its restriction chain."""

    enumeration: tuple[str, ...] = ()
    # One per enumeration value, in the same order. Documentation only: it takes no part in
    # equality or hashing, so two types allowing the same values have equal facets, and the
    # generated code, which reads only the constraints, never depends on it.
    value_docs: tuple[ValueDoc, ...] = field(default=(), compare=False)
    patterns: tuple[str, ...] = ()
    length: int | None = None
    min_length: int | None = None
    max_length: int | None = None
    total_digits: int | None = None
    fraction_digits: int | None = None
    min_inclusive: str | None = None
    max_inclusive: str | None = None


@dataclass(frozen=True)
class SimpleType:
    """A named simple type (or an XSD built-in), with its primitive and every facet."""

    name: str
    home: Home
    primitive: Primitive
    facets: Facets
    doc: str
    origin: Origin | None  # None for XSD built-ins


@dataclass(frozen=True)
class Particle:
    """One element of a sequence, or the wildcard of an ``xs:any``."""

    kind: Literal["simple", "complex", "any"]
    name: str  # the XML local name; for "any", the model field name
    type_key: tuple[Home, str] | None  # the simple or complex type; None for "any"
    min_occurs: int
    max_occurs: int | None  # None: unbounded
    doc: str
    origin: Origin
    # Holds personal data (a name, an address, contact details, a person's identifier): marked
    # on the element, on the complex type that declares it, or on its own complex type. Its
    # values never reach a stored reason, a log line or a fault.
    personal: bool = False

    @property
    def repeats(self) -> bool:
        return self.max_occurs is None or self.max_occurs > 1


@dataclass(frozen=True)
class ComplexType:
    """A complex type: an ordered sequence of particles."""

    name: str
    home: Home
    particles: tuple[Particle, ...]
    doc: str
    origin: Origin
    personal: bool = False  # every element in it holds personal data


@dataclass(frozen=True)
class Contract:
    """A message: the root element of one XSD file."""

    name: str  # <system>/<root>
    system: Home
    namespace: str
    root: str
    type_key: tuple[Home, str]
    doc: str
    file: str
    # The contract's own version, the ``version`` attribute of its xs:schema ("" when absent:
    # the first, v1 of its namespace); raised to admit a breaking change (docs/contracts.md).
    version: str = ""


@dataclass
class ContractSet:
    """Every type and contract of a project, keyed by (home, name)."""

    simple_types: dict[tuple[Home, str], SimpleType] = field(default_factory=dict)
    complex_types: dict[tuple[Home, str], ComplexType] = field(default_factory=dict)
    contracts: dict[str, Contract] = field(default_factory=dict)

    def complex_types_of(self, home: Home) -> list[ComplexType]:
        return [t for (h, _), t in sorted(self.complex_types.items()) if h == home]

    def simple_types_of(self, home: Home) -> list[SimpleType]:
        return [t for (h, _), t in sorted(self.simple_types.items()) if h == home]

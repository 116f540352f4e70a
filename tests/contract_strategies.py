"""Hypothesis strategies that build valid instances of any contract, from the generator's IR.

Each simple type's strategy honours its facets (patterns, lengths, enumerations, digits and
bounds); each complex type's builds the generated model through its constructor, so pydantic's
own validation of the facets is exercised on the way.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from types import ModuleType
from typing import Any

from hypothesis import strategies as st

from ccbmdm.codegen.ir import ContractSet, Home, Particle, SimpleType
from ccbmdm.codegen.naming import field_name

# Characters XML 1.0 text can carry, less carriage return (kept by the codec as &#13; but
# normalised away by any XML parser when written raw, which the XSD cross-check relies on).
XML_TEXT = st.characters(
    codec="utf-8",
    exclude_categories=("Cs", "Cc"),
    include_characters="\t\n",
)
OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
)


def simple_strategy(simple: SimpleType) -> st.SearchStrategy[Any]:
    facets = simple.facets
    if simple.primitive == "string":
        if facets.enumeration:
            return st.sampled_from(facets.enumeration)
        low = facets.length if facets.length is not None else facets.min_length or 0
        high = facets.length if facets.length is not None else facets.max_length
        if facets.patterns:
            strategy: st.SearchStrategy[str] = st.from_regex(
                facets.patterns[0], fullmatch=True, alphabet=XML_TEXT
            )
            extra = [re.compile(p) for p in facets.patterns[1:]]
            return strategy.filter(
                lambda v: (
                    all(p.fullmatch(v) for p in extra)
                    and len(v) >= low
                    and (high is None or len(v) <= high)
                )
            )
        return st.text(XML_TEXT, min_size=low, max_size=min(high if high is not None else 40, 40))
    if simple.primitive == "decimal":
        places = facets.fraction_digits if facets.fraction_digits is not None else 6
        total = facets.total_digits or 18
        bound = Decimal(10) ** (total - places) - 1
        smallest = max(-bound, Decimal(facets.min_inclusive)) if facets.min_inclusive else -bound
        largest = min(bound, Decimal(facets.max_inclusive)) if facets.max_inclusive else bound
        return st.integers(0, places).flatmap(
            lambda p: st.decimals(
                smallest, largest, places=p, allow_nan=False, allow_infinity=False
            )
        )
    if simple.primitive == "integer":
        low_int = int(facets.min_inclusive) if facets.min_inclusive else -(2**40)
        high_int = int(facets.max_inclusive) if facets.max_inclusive else 2**40
        return st.integers(low_int, high_int)
    if simple.primitive == "boolean":
        return st.booleans()
    if simple.primitive == "date":
        return st.dates()
    return st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1), timezones=OFFSETS
    )


FOREIGN = st.builds(
    lambda name, text: f'<x:{name} xmlns:x="urn:example:utility:ext">{text}</x:{name}>',
    st.sampled_from(["channel", "segment", "flag"]),
    st.text("abcXYZ 0123", max_size=12),
)


class ContractStrategies:
    """Strategies for every type of one compiled contract set."""

    def __init__(self, contracts: ContractSet, package: ModuleType) -> None:
        self.contracts = contracts
        self.modules: dict[Home, ModuleType] = {
            home: getattr(package, home) for home in ("common", "ccb", "mdm")
        }
        self._cache: dict[tuple[Home, str], st.SearchStrategy[Any]] = {}

    def message(self, name: str) -> st.SearchStrategy[Any]:
        return self.complex(self.contracts.contracts[name].type_key)

    def complex(self, key: tuple[Home, str]) -> st.SearchStrategy[Any]:
        if key not in self._cache:
            self._cache[key] = st.deferred(lambda: self._build(key))
        return self._cache[key]

    def _build(self, key: tuple[Home, str]) -> st.SearchStrategy[Any]:
        complex_type = self.contracts.complex_types[key]
        model = getattr(self.modules[key[0]], key[1])
        fields = {field_name(p.name): self._particle(p) for p in complex_type.particles}
        return st.fixed_dictionaries(fields).map(lambda values: model(**values))

    def _particle(self, particle: Particle) -> st.SearchStrategy[Any]:
        if particle.kind == "any":
            value: st.SearchStrategy[Any] = FOREIGN
        elif particle.kind == "simple":
            assert particle.type_key is not None
            value = simple_strategy(self.contracts.simple_types[particle.type_key])
        else:
            assert particle.type_key is not None
            value = self.complex(particle.type_key)
        if particle.repeats:
            high = min(particle.max_occurs or 3, 3)
            return st.lists(
                value, min_size=particle.min_occurs, max_size=max(high, particle.min_occurs)
            ).map(tuple)
        if particle.min_occurs == 0:
            return st.none() | value
        return value

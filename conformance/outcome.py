"""What running one case found, and how a message is written as a golden: shared by the mapping
cases' runner (``runner``) and the flow cases' (``flow_runner``)."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from ccbmdm.conformance.cases import Case
from ccbmdm.conformance.compare import Difference


@dataclass(frozen=True)
class Outcome:
    """What running one case found: nothing (it passed), differences, or problems."""

    case: Case
    seconds: float
    differences: tuple[Difference, ...] = ()
    problems: tuple[str, ...] = ()  # a broken case, or a fault where a message was expected
    actual: bytes | None = None  # the actual target message, pretty-printed
    notes: tuple[str, ...] = ()  # what --update did beyond the differences
    exercised: frozenset[str] = frozenset()  # the lineage targets present in the actual message
    fault_target: str | None = None  # the target XPath of the rule the mapping failed at
    # a flow case's trail: (flow, part, the lineage targets present) per message the bridge
    # mapped
    mapped: tuple[tuple[str, str, frozenset[str]], ...] = ()

    @property
    def passed(self) -> bool:
        return not self.differences and not self.problems


def pretty(xml: bytes) -> bytes:
    """A message indented, one element a line: how goldens are written."""
    root = etree.fromstring(xml)
    etree.indent(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8") + b"\n"

"""What one pass over a mapping collects, shared by every stage: the findings, the generated
functions and constants, the rule sites, the lineage and the source paths read, with the target
element being compiled; and the two steps the stages recurse through (an element of a structure,
a value of a rule), which the binder provides."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager

from ccbmdm.codegen.diagnostics import Finding, Pos, Severity
from ccbmdm.codegen.ir import ContractSet, Home, Particle, SimpleType
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Scope, Val
from ccbmdm.codegen.mapping.functions import BUILT_INS, Function
from ccbmdm.codegen.mapping.syntax import Mapping, Rule, Rules, Value
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.runtime.messages.mapping import CodeTable, RuleSite


class Binding(ABC):
    """The state of one mapping's compilation."""

    def __init__(
        self,
        contracts: ContractSet,
        tables: dict[str, CodeTable],
        mapping: Mapping,
        fragments: dict[str, Rules],
        functions: dict[str, Function] | None = None,
        broken: frozenset[str] = frozenset(),
    ) -> None:
        self.contracts = contracts
        self.known_functions = BUILT_INS if functions is None else functions
        self.tables = tables
        self.mapping = mapping
        self.fragments = fragments
        # Tables and fragments that exist but failed to load: their own findings say why, so
        # a mapping that uses one says nothing of its absence.
        self.broken = broken
        # False when some rules were not looked at (their tables unknown to the compiler).
        self.complete = True
        self.findings: list[Finding] = []
        self.functions: list[str] = []
        self.constants: list[str] = []
        self.sites: list[RuleSite] = []
        self.lineage: dict[str, LineageEntry] = {}
        self.reads: set[str] = set()
        self.tables_used: set[str] = set()
        self.counter = [0]  # shared by every writer: generated names are unique in the module
        self.lineage_target = ""  # dotted path of the target element being compiled
        self.target_path = ""  # XPath of the target element being compiled, for findings
        self.root_source: tuple[Home, str] = ("common", "")  # the source contract's root type
        self.root_xpath = ""

    @abstractmethod
    def assign(self, w: Writer, scope: Scope, rule: Rule, particle: Particle, pos: Pos) -> str:
        """One element of a structure; returns the variable holding it."""

    @abstractmethod
    def value(
        self, w: Writer, scope: Scope, rule: Value | Rule, expected: SimpleType | None, site: int
    ) -> Val | None:
        """A value rule with its modifiers, also a key's or an argument's."""

    def fail(
        self, pos: Pos, rule: str, message: str, hint: str = "", severity: Severity | None = None
    ) -> None:
        """Report a finding at the target element being compiled."""
        self.findings.append(Finding(pos, rule, message, hint, severity, self.target_path))

    @contextmanager
    def located(self) -> Iterator[None]:
        """The target element being compiled is restored on leaving a nested structure."""
        saved = self.target_path, self.lineage_target
        try:
            yield
        finally:
            self.target_path, self.lineage_target = saved

    def next(self) -> int:
        """A number unique in the module, for generated function and constant names."""
        self.counter[0] += 1
        return self.counter[0]

"""Stages 2-5 for one mapping: bind rules to the contracts, resolve paths, check types, facets
and code tables, record lineage, and emit the transformer's Python source.

Each rule becomes a few statements in a function per target structure; the statements read the
typed source model directly, so a compiled transformer does what a hand-written one would. What
the compiler cannot prove (a value that may be absent for a required element, a value whose type
is looser than the target's) gets a run-time check that fails with the rule's position.

The binder holds what one pass over a mapping collects and lists its steps; each step is a
module of this package, and the steps that recurse (a structure's elements, a rule's arguments)
call back through it:

- ``structures``: a function per target structure, its elements in ``order``;
- ``element``: one element, its value checked against it (``checks``);
- ``modifiers``: a value rule with ``when:``, ``on_empty:``, ``pick:``, ``default:``;
- ``rules``: one module per kind of value rule (``conditions`` and ``paths`` beneath them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ccbmdm.codegen.diagnostics import Finding, Pos, Severity, did_you_mean
from ccbmdm.codegen.ir import Contract, ContractSet, Home, Particle, SimpleType
from ccbmdm.codegen.mapping.bind import element, modifiers, structures
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Scope, Val
from ccbmdm.codegen.mapping.functions import BUILT_INS, Function
from ccbmdm.codegen.mapping.syntax import Mapping, Rule, Rules, Value
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.runtime.messages.mapping import CodeTable, RuleSite


class Binder:
    """Compiles one mapping into transformer source, findings and lineage."""

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

    # ---------------------------------------------------------------- the pass

    def bind(self) -> None:
        """Compile the mapping: its root structure, with the rules of its fragments."""
        source, target = (
            self._contract(self.mapping.source_pos, self.mapping.source),
            self._contract(self.mapping.target_pos, self.mapping.target),
        )
        if source is None or target is None:
            self.complete = False
            return
        rules = self._with_fragments()
        self.structure(self.root_scope(source, target), rules, self.mapping.pos, structures.ROOT)

    def root_scope(self, source: Contract, target: Contract) -> Scope:
        """The scope of the message roots, where absolute source paths start."""
        self.root_source = source.type_key
        self.root_xpath = f"/{source.root}"
        return Scope(source.type_key, f"/{source.root}", "", target.type_key, f"/{target.root}", "")

    def structure(self, scope: Scope, rules: Rules, pos: Pos, name: str) -> None:
        """A target structure, as a function of its own (``structures``)."""
        structures.structure(self, scope, rules, pos, name)

    def assign(self, w: Writer, scope: Scope, rule: Rule, particle: Particle, pos: Pos) -> str:
        """One element of a structure; returns the variable holding it (``element``)."""
        return element.assign(self, w, scope, rule, particle, pos)

    def value(
        self, w: Writer, scope: Scope, rule: Value | Rule, expected: SimpleType | None, site: int
    ) -> Val | None:
        """A value rule with its modifiers, also a key's or an argument's (``modifiers``)."""
        return modifiers.value(self, w, scope, rule, expected, site)

    # ---------------------------------------------------------------- bookkeeping

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

    def _contract(self, pos: Pos, name: str) -> Contract | None:
        contract = self.contracts.contracts.get(name)
        if contract is None:
            self.fail(
                pos,
                "unknown-contract",
                f"no contract named {name}",
                did_you_mean(name, list(self.contracts.contracts)),
            )
        return contract

    def _with_fragments(self) -> Rules:
        """The mapping's rules and those of the fragments it uses; a target written twice is
        reported at the mapping's rule."""
        mapping = self.mapping
        rules = Rules(dict(mapping.rules.entries), dict(mapping.rules.key_pos))
        for name in mapping.use:
            fragment = self.fragments.get(name)
            if fragment is None:
                # What the fragment writes is unknown: the root's required elements may be
                # among it, so they are not reported missing.
                self.complete = False
                if name not in self.broken:
                    self.fail(
                        mapping.pos,
                        "unknown-fragment",
                        f"no fragment named {name}",
                        did_you_mean(name, list(self.fragments)),
                    )
                continue
            for key, rule in fragment.entries.items():
                if key in rules.entries:
                    self.fail(
                        rules.key_pos[key],
                        "duplicate-target",
                        f"<{key}> is also written by fragment {name}",
                    )
                    continue
                rules.entries[key], rules.key_pos[key] = rule, fragment.key_pos[key]
        return rules

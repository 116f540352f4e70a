"""Stages 2-5 for one mapping: bind rules to the contracts, resolve paths, check types, facets
and code tables, record lineage, and emit the transformer's Python source.

Each rule becomes a few statements in a function per target structure; the statements read the
typed source model directly, so a compiled transformer does what a hand-written one would. What
the compiler cannot prove (a value that may be absent for a required element, a value whose type
is looser than the target's) gets a run-time check that fails with the rule's position.

The binder lists the steps of its single pass; each is a module of this package, and what they
collect is its ``state``. The steps that recurse (a structure's elements, a rule's arguments)
call back through it:

- ``structures``: a function per target structure, its elements in ``order``;
- ``element``: one element, its value checked against it (``checks``);
- ``modifiers``: a value rule with ``when:``, ``on_empty:``, ``pick:``, ``default:``;
- ``rules``: one module per kind of value rule (``conditions`` and ``paths`` beneath them).
"""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import Pos, did_you_mean
from ccbmdm.codegen.ir import Contract, Particle, SimpleType
from ccbmdm.codegen.mapping.bind import element, modifiers, structures
from ccbmdm.codegen.mapping.bind.model import Scope, Val
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import Rule, Rules, Value
from ccbmdm.codegen.mapping.writer import Writer


class Binder(Binding):
    """Compiles one mapping into transformer source, findings and lineage."""

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

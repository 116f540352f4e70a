"""Stages 2-5 for one mapping: bind rules to the contracts, resolve paths, check types, facets
and code tables, record lineage, and emit the transformer's Python source.

Each rule becomes a few statements in a function per target structure; the statements read the
typed source model directly, so a compiled transformer does what a hand-written one would. What
the compiler cannot prove (a value that may be absent for a required element, a value whose type
is looser than the target's) gets a run-time check that fails with the rule's position.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ccbmdm.codegen.diagnostics import Finding, Pos, Severity, did_you_mean
from ccbmdm.codegen.ir import ComplexType, ContractSet, Facets, Home, Particle, SimpleType
from ccbmdm.codegen.mapping.facets import facet_problem, lexical_of, subsumes
from ccbmdm.codegen.mapping.functions import BUILT_INS, PYTHON_TYPES, Function, unknown_hint
from ccbmdm.codegen.mapping.syntax import (
    Combine,
    Condition,
    ConstRule,
    CopyRule,
    EachRule,
    FnRule,
    Literal_,
    Mapping,
    MapRule,
    Path,
    PathRule,
    Present,
    Rule,
    Rules,
    StructRule,
    TableRule,
    TargetRule,
    Truthy,
    Value,
    XrefRule,
)
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.codegen.naming import field_name
from ccbmdm.runtime.messages.mapping import CodeTable, RuleSite

MODULES: dict[Home, str] = {"common": "c", "ccb": "ccb", "mdm": "mdm"}
_FORMAT = {
    "string": "{}",
    "decimal": "lexical.format_decimal({})",
    "integer": "str({})",
    "boolean": "lexical.format_boolean({})",
    "date": "lexical.format_date({})",
    "dateTime": "lexical.format_datetime({})",
}
_PARSE = {
    "decimal": "lexical.parse_decimal",
    "integer": "lexical.parse_integer",
    "boolean": "lexical.parse_boolean",
    "date": "lexical.parse_date",
    "dateTime": "lexical.parse_datetime",
}


def plain(primitive: str) -> SimpleType:
    """A facet-free simple type of a primitive (function results, table keys)."""
    return SimpleType(f"xs:{primitive}", "common", primitive, Facets(), "", None)  # type: ignore[arg-type]


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


@dataclass
class LineageEntry:
    sources: set[str] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    constants: list[str] = field(default_factory=list)
    rule: Pos | None = None  # where the rule that writes the field is written


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
        self._counter = [0]
        self._lineage_target: str = ""
        self._target_path = ""  # XPath of the target element being compiled, for findings

    # ---------------------------------------------------------------- entry

    def bind(self) -> None:
        mapping = self.mapping
        source = self.contracts.contracts.get(mapping.source)
        target = self.contracts.contracts.get(mapping.target)
        for name, contract, pos in (
            (mapping.source, source, mapping.source_pos),
            (mapping.target, target, mapping.target_pos),
        ):
            if contract is None:
                self.fail(
                    pos,
                    "unknown-contract",
                    f"no contract named {name}",
                    did_you_mean(name, list(self.contracts.contracts)),
                )
        if source is None or target is None:
            self.complete = False
            return
        rules = Rules(dict(mapping.rules.entries), dict(mapping.rules.key_pos))
        for name in mapping.use:
            fragment = self.fragments.get(name)
            if fragment is None:
                # What the fragment writes is unknown: the root's required elements may be
                # among it, so they are not reported missing.
                self.complete = False
                if name in self.broken:
                    continue
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
        scope = Scope(
            source.type_key, f"/{source.root}", "", target.type_key, f"/{target.root}", ""
        )
        self.root_source = source.type_key
        self.root_xpath = f"/{source.root}"
        self.structure(scope, rules, mapping.pos, "_b0")

    def fail(
        self, pos: Pos, rule: str, message: str, hint: str = "", severity: Severity | None = None
    ) -> None:
        self.findings.append(Finding(pos, rule, message, hint, severity, self._target_path))

    # ---------------------------------------------------------------- structures

    def structure(self, scope: Scope, rules: Rules, pos: Pos, name: str) -> None:
        """Emit ``name(s, r, ctx)`` building the target type of ``scope`` from its source node.

        The structure's fields are the current target only while it is compiled: the element
        that holds it is the target again afterwards, so that what its rule still checks (an
        ``each:``'s ``where:``) is reported and recorded at that element, not at the structure's
        last field."""
        saved = self._target_path, self._lineage_target
        try:
            self._structure(scope, rules, pos, name)
        finally:
            self._target_path, self._lineage_target = saved

    def _structure(self, scope: Scope, rules: Rules, pos: Pos, name: str) -> None:
        target = self.contracts.complex_types[scope.target]
        particles = {p.name: p for p in target.particles}
        for key in rules.entries:
            if key not in particles:
                self.fail(
                    rules.key_pos[key],
                    "unknown-target",
                    f"<{key}> is not an element of {_type_label(target)}",
                    did_you_mean(key, list(particles)),
                )
        self._target_path = scope.target_xpath.replace("[]", "")
        for particle in target.particles:
            if (
                particle.min_occurs > 0
                and particle.name not in rules.entries
                and (self.complete or name != "_b0")
            ):
                self.fail(
                    pos,
                    "unmapped-required",
                    f"required element <{particle.name}> of {scope.target_xpath} is not mapped",
                    "add a rule for it",
                )
        w = Writer(self._counter)
        order = self._order(rules, particles)
        for key in order:
            particle = particles[key]
            self._lineage_target = f"{scope.target_dotted}{'.' if scope.target_dotted else ''}{key}"
            self._target_path = f"{scope.target_xpath}/{key}".replace("[]", "")
            entry = self.lineage.setdefault(self._lineage_target, LineageEntry())
            entry.rule = entry.rule or rules.key_pos[key]
            var = self.assign(w, scope, rules.entries[key], particle, rules.key_pos[key])
            scope.built[key] = (var, particle)
        source_cls = _model(scope.source)
        target_cls = _model(scope.target)
        body = "\n".join("    " + line for line in [*_declarations(w.lines), *w.lines])
        fields = "".join(
            f"            {field_name(p.name)!r}: {scope.built[p.name][0] if p.name in scope.built else ('()' if p.repeats else 'None')},\n"
            for p in target.particles
        )
        self.functions.append(
            f"def {name}(s: {source_cls}, r: Any, ctx: Context) -> {target_cls}:\n"
            f"{body}\n"
            f"    return build(\n        {target_cls},\n        {{\n{fields}        }},\n    )\n"
        )

    def _order(self, rules: Rules, particles: dict[str, Particle]) -> list[str]:
        """Target order, moved where a {target: ...} rule needs a sibling computed first."""
        keys = [p for p in particles if p in rules.entries]
        needs = {k: _target_refs(rules.entries[k]) & set(keys) for k in keys}
        done: list[str] = []
        visiting: set[str] = set()

        def visit(key: str) -> None:
            if key in done:
                return
            if key in visiting:
                self.fail(
                    rules.key_pos[key],
                    "target-cycle",
                    f"<{key}> depends on itself through target rules",
                )
                return
            visiting.add(key)
            for other in sorted(needs[key], key=keys.index):
                visit(other)
            visiting.discard(key)
            done.append(key)

        for key in keys:
            visit(key)
        return done

    # ---------------------------------------------------------------- one target element

    def assign(self, w: Writer, scope: Scope, rule: Rule, particle: Particle, pos: Pos) -> str:
        """Emit the statements computing one target element; returns the variable holding it."""
        if particle.kind == "complex" or isinstance(rule, StructRule | EachRule | CopyRule):
            return self._assign_structure(w, scope, rule, particle, pos)
        target_simple = (
            self.contracts.simple_types[particle.type_key] if particle.type_key else None
        )
        site = self.site(rule, scope, particle)
        value = self.value(w, scope, rule, target_simple, site)
        if value is None:
            return "None"
        if particle.kind == "any":
            if value.particle is None or value.particle.kind != "any":
                self.fail(
                    rule.pos,
                    "type-mismatch",
                    f"<{particle.name}> takes elements of other namespaces; map it from such a list",
                )
            return value.var
        assert target_simple is not None
        if value.simple is None:
            self.fail(
                rule.pos,
                "type-mismatch",
                f"<{particle.name}> takes a {target_simple.primitive}, not a structure",
            )
            return "None"
        var = value.var
        if value.simple.primitive != target_simple.primitive:
            if (value.simple.primitive, target_simple.primitive) == ("integer", "decimal"):
                w.line(
                    f"{var} = None if {var} is None else Decimal({var})"
                    if not value.many
                    else f"{var} = [Decimal(x) for x in {var}]"
                )
            else:
                self.fail(
                    rule.pos,
                    "type-mismatch",
                    _mismatch(value.simple, target_simple, particle.name),
                    _conversion_hint(value.simple, target_simple),
                )
                return "None"
        if value.many and not particle.repeats:
            self.fail(
                rule.pos,
                "list-into-single",
                f"the source repeats but <{particle.name}> takes one value",
                "add pick: first, last or only",
            )
            return "None"
        if not subsumes(target_simple, value.simple):
            check = f"{MODULES[target_simple.home]}.check_{_simple_name(target_simple)}"
            if value.many:
                w.line(f"{var} = [{check}(x) for x in {var}]")
            else:
                with w.block(f"if {var} is not None:"):
                    w.line(f"{var} = {check}({var})")
            self._wrap_value_errors(w, site, var)
        if particle.repeats:
            if value.many:
                w.line(f"{var} = tuple({var})")
            else:
                w.line(f"{var} = () if {var} is None else ({var},)")
            if particle.min_occurs > 0 or particle.max_occurs is not None:
                self._require_count(w, site, var, particle)
        elif particle.min_occurs > 0 and (value.optional or _has_when(rule)):
            if _has_when(rule):
                self.fail(
                    rule.pos,
                    "conditional-required",
                    f"<{particle.name}> is required; it cannot be written only when a condition holds",
                )
            with w.block(f"if {var} is None:"):
                w.line(
                    f"raise RuleFailure({site}, None, {f'required element <{particle.name}> has no value: its source is absent'!r}, 1003)"
                )
        return var

    def _wrap_value_errors(self, w: Writer, site: int, var: str, shown: str | None = None) -> None:
        """Turn the ValueError of the statement just emitted into a located failure reporting
        ``shown`` (default: ``var``, which must then be bound before the statement)."""
        last = w.lines[-1]
        indent = last[: len(last) - len(last.lstrip())]
        check_lines = [w.lines.pop()]
        if w.lines and w.lines[-1].lstrip().startswith(f"if {var} is not None"):
            check_lines.insert(0, w.lines.pop())
            indent = check_lines[0][: len(check_lines[0]) - len(check_lines[0].lstrip())]
        w.lines.append(f"{indent}try:")
        w.lines.extend("    " + line for line in check_lines)
        w.lines.append(f"{indent}except ValueError as error:")
        w.lines.append(
            f"{indent}    raise RuleFailure({site}, {shown or var}, lexical.quoting(error), 1003) from None"
        )

    def _require_count(self, w: Writer, site: int, var: str, particle: Particle) -> None:
        low, high = particle.min_occurs, particle.max_occurs
        test = f"len({var}) < {low}" + (f" or len({var}) > {high}" if high is not None else "")
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        message = f"<{particle.name}> needs {bound} values"
        with w.block(f"if {test}:"):
            w.line(f"raise RuleFailure({site}, len({var}), {message!r}, 1003)")

    def _assign_structure(
        self, w: Writer, scope: Scope, rule: Rule, particle: Particle, pos: Pos
    ) -> str:
        if particle.kind != "complex" or particle.type_key is None:
            self.fail(
                rule.pos, "type-mismatch", f"<{particle.name}> takes a value, not a structure"
            )
            return "None"
        target_key = particle.type_key
        var = w.fresh()
        child_target_xpath = f"{scope.target_xpath}/{particle.name}"
        child_dotted = f"{scope.target_dotted}{'.' if scope.target_dotted else ''}{particle.name}"
        if isinstance(rule, EachRule):
            if not particle.repeats:
                self.fail(
                    rule.pos,
                    "list-into-single",
                    f"each: builds a list, but <{particle.name}> occurs once",
                    "use from: instead",
                )
                return "None"
            found = self._structure_source(scope, rule.source, rule.source.pos, "each:")
            if found is None:
                return "None"
            resolved, source_key = found
            items = self.emit_path(w, resolved)
            function = f"_b{self._next()}"
            item_xpath = resolved.xpath + "[{}]"
            child = Scope(
                source_key,
                item_xpath,
                resolved.dotted,  # with [] already when the step repeats
                target_key,
                child_target_xpath + "[]",
                child_dotted + "[]",
            )
            self.structure(child, rule.rules, rule.pos, function)
            sequence = (
                items.var if items.many else f"(() if {items.var} is None else ({items.var},))"
            )
            item = w.fresh("x")
            w.line(f"{var} = []")
            with w.block(f"for i, {item} in enumerate({sequence}):"):
                if rule.where is not None:
                    inner = w.child()
                    item_scope = Scope(
                        source_key,
                        item_xpath,
                        resolved.dotted,
                        target_key,
                        "",
                        "",
                    )
                    condition = self.condition(inner, item_scope, rule.where, item)
                    w.extend(inner)
                    with w.block(f"if not ({condition}):"):
                        w.line("continue")
                with w.block("try:"):
                    w.line(f"{var}.append({function}({item}, r, ctx))")
                with w.block("except RuleFailure as failure:"):
                    w.line("failure.positions.append(i)")
                    w.line("raise")
            w.line(f"{var} = tuple({var})")
            return var
        if particle.repeats and not isinstance(rule, CopyRule):
            self.fail(
                rule.pos, "list-into-single", f"<{particle.name}> repeats: build it with each:"
            )
            return "None"
        if isinstance(rule, CopyRule):
            return self._copy(w, scope, rule, particle)
        if not isinstance(rule, StructRule):
            self.fail(
                rule.pos,
                "type-mismatch",
                f"<{particle.name}> is a structure: build it with rules:, from:, each: or copy:",
            )
            return "None"
        guard = None
        if rule.when is not None:
            inner = w.child()
            guard = self.condition(inner, scope, rule.when, "s")
            w.extend(inner)
        if rule.source is None:
            node, source_key, source_xpath, source_dotted, optional = (
                "s",
                scope.source,
                scope.source_xpath,
                scope.source_dotted,
                False,
            )
        else:
            found = self._structure_source(scope, rule.source, rule.source.pos, "from:")
            if found is None:
                return "None"
            resolved, node_key = found
            value = self.emit_path(w, resolved)
            if value.many:
                self.fail(
                    rule.source.pos,
                    "list-into-single",
                    f"<{rule.source}> repeats but <{particle.name}> occurs once",
                    "use each: on a repeated target",
                )
                return "None"
            node, source_key, source_xpath, source_dotted, optional = (
                value.var,
                node_key,
                resolved.xpath,
                resolved.dotted,
                value.optional,
            )
        function = f"_b{self._next()}"
        child = Scope(
            source_key, source_xpath, source_dotted, target_key, child_target_xpath, child_dotted
        )
        self.structure(child, rule.rules, rule.pos, function)
        call = f"{function}({node}, r, ctx)"
        conditions = [c for c in (guard, f"{node} is not None" if optional else None) if c]
        w.line(
            f"{var} = {call} if {' and '.join(conditions)} else None"
            if conditions
            else f"{var} = {call}"
        )
        if particle.min_occurs > 0 and conditions:
            self._require_source(w, rule, scope, particle, var)
        return var

    def _copy(self, w: Writer, scope: Scope, rule: CopyRule, particle: Particle) -> str:
        found = self._structure_source(scope, rule.source, rule.pos, "copy:")
        if found is None or particle.type_key is None:
            return "None"
        resolved, source_key = found
        last = resolved.particles[-1]
        value = self.emit_path(w, resolved)
        self._read_subtree(resolved.dotted, source_key)
        if last.repeats != particle.repeats:
            self.fail(
                rule.pos,
                "list-into-single",
                f"<{rule.source}> and <{particle.name}> differ in repetition",
            )
            return "None"
        converter = self._copier(source_key, particle.type_key, rule.pos)
        var = value.var
        if particle.repeats:
            w.line(
                f"{var} = tuple({converter}(x) for x in {var})"
                if converter
                else f"{var} = tuple({var})"
            )
        elif converter:
            w.line(f"{var} = None if {var} is None else {converter}({var})")
        if particle.min_occurs > 0 and value.optional and not particle.repeats:
            self._require_source(w, rule, scope, particle, var)
        return var

    def _structure_source(
        self, scope: Scope, path: Path, pos: Pos, verb: str
    ) -> tuple[Resolved, tuple[Home, str]] | None:
        """The source structure a from:, each: or copy: reads; None after reporting a value."""
        resolved = self.resolve(scope, path)
        if resolved is None:
            return None
        last = resolved.particles[-1]
        if last.kind != "complex" or last.type_key is None:
            wanted = "repeated structures" if verb == "each:" else "a structure"
            self.fail(pos, "type-mismatch", f"{verb} needs {wanted}; <{path}> is a value")
            return None
        return resolved, last.type_key

    def _require_source(
        self, w: Writer, rule: Rule, scope: Scope, particle: Particle, var: str
    ) -> None:
        """A run-time failure when a required structure's source turns out absent."""
        site = self.site(rule, scope, particle)
        message = f"required element <{particle.name}> has no source"
        with w.block(f"if {var} is None:"):
            w.line(f"raise RuleFailure({site}, None, {message!r}, 1003)")

    def _copier(self, source: tuple[Home, str], target: tuple[Home, str], pos: Pos) -> str | None:
        """A function copying one structure into another of the same shape; None when the two
        are the same model (the value is shared as it is, models being immutable)."""
        if source == target:
            return None
        name = f"_copy_{source[0]}_{source[1]}_to_{target[0]}_{target[1]}"
        if any(f.startswith(f"def {name}(") for f in self.functions):
            return name
        source_type = self.contracts.complex_types[source]
        target_type = self.contracts.complex_types[target]
        available = {p.name: p for p in source_type.particles}
        lines = []
        for part in target_type.particles:
            other = available.get(part.name)
            attr = field_name(part.name)
            if other is None:
                if part.min_occurs > 0:
                    self.fail(
                        pos,
                        "copy-shape",
                        f"copy: {_type_label(source_type)} has no <{part.name}>, which {_type_label(target_type)} requires",
                    )
                lines.append(f"{attr!r}: {'()' if part.repeats else 'None'}")
                continue
            if other.kind != part.kind or other.repeats != part.repeats:
                self.fail(pos, "copy-shape", f"copy: <{part.name}> differs in kind or repetition")
                continue
            if part.kind == "complex":
                assert other.type_key is not None and part.type_key is not None
                inner = self._copier(other.type_key, part.type_key, pos)
                if inner is None:
                    lines.append(f"{attr!r}: m.{attr}")
                elif part.repeats:
                    lines.append(f"{attr!r}: tuple({inner}(x) for x in m.{attr})")
                else:
                    lines.append(f"{attr!r}: None if m.{attr} is None else {inner}(m.{attr})")
                continue
            if part.kind == "simple":
                assert other.type_key is not None and part.type_key is not None
                mine, theirs = (
                    self.contracts.simple_types[part.type_key],
                    self.contracts.simple_types[other.type_key],
                )
                if mine.primitive != theirs.primitive or not subsumes(mine, theirs):
                    self.fail(
                        pos,
                        "copy-shape",
                        f"copy: <{part.name}> has a different type ({_simple_name(theirs)} into {_simple_name(mine)})",
                    )
            lines.append(f"{attr!r}: m.{attr}")
        fields = "".join(f"            {line},\n" for line in lines)
        self.functions.append(
            f"def {name}(m: {_model(source)}) -> {_model(target)}:\n"
            f"    return build(\n        {_model(target)},\n        {{\n{fields}        }},\n    )\n"
        )
        return name

    # ---------------------------------------------------------------- values

    def value(
        self, w: Writer, scope: Scope, rule: Value | Rule, expected: SimpleType | None, site: int
    ) -> Val | None:
        """Emit a value rule with its modifiers; None after reporting a finding."""
        if isinstance(rule, StructRule | EachRule | CopyRule):
            self.fail(rule.pos, "type-mismatch", "a structure rule where a value is expected")
            return None
        mods = rule.mods
        if mods.when is None:
            result = self._base(w, scope, rule, expected, site)
        else:
            inner = w.child()
            condition = self.condition(inner, scope, mods.when, "s")
            w.extend(inner)
            var = w.fresh()
            branch = w.child()
            result = self._base(branch, scope, rule, expected, site)
            if result is None:
                return None
            with w.block(f"if {condition}:"):
                w.extend(branch)
                w.line(f"{var} = {result.var}")
            with w.block("else:"):
                w.line(f"{var} = {'[]' if result.many else 'None'}")
            result = Val(var, result.simple, result.many, True, result.particle)
        if result is None:
            return None
        if mods.on_empty == "omit":
            w.line(f"{result.var} = None if {result.var} == '' else {result.var}")
            result = Val(result.var, result.simple, result.many, True, result.particle)
        if mods.pick is not None:
            if not result.many:
                self.fail(
                    rule.pos,
                    "pick",
                    "pick: applies to a path that reaches several values; this one reaches one",
                )
            else:
                if mods.pick == "only":
                    with w.block(f"if len({result.var}) > 1:"):
                        w.line(
                            f"raise RuleFailure({site}, len({result.var}), 'pick: only, but the source has several values', 1003)"
                        )
                index = "-1" if mods.pick == "last" else "0"
                w.line(f"{result.var} = {result.var}[{index}] if {result.var} else None")
                result = Val(result.var, result.simple, False, True, result.particle)
        if mods.default is not None:
            simple = expected or result.simple
            if simple is not None:
                constant = self.constant(rule.pos, simple, mods.default)
                w.line(f"{result.var} = {constant} if {result.var} is None else {result.var}")
                result = Val(result.var, result.simple, result.many, False, result.particle)
        return result

    def _base(
        self, w: Writer, scope: Scope, rule: Value, expected: SimpleType | None, site: int
    ) -> Val | None:
        entry = self.lineage.setdefault(self._lineage_target, LineageEntry())
        if isinstance(rule, PathRule):
            resolved = self.resolve(scope, rule.path)
            if resolved is None:
                return None
            entry.sources.add(resolved.dotted)
            last = resolved.particles[-1]
            if last.kind == "complex":
                self.fail(
                    rule.pos,
                    "type-mismatch",
                    f"<{rule.path}> is a structure; map its elements, or use copy:",
                )
                return None
            self.reads.add(resolved.dotted)
            return self.emit_path(w, resolved)
        if isinstance(rule, ConstRule):
            simple = expected or plain("string")
            entry.constants.append(lexical_of(rule.value))
            return Val(self.constant(rule.pos, simple, rule.value), simple, False, False)
        if isinstance(rule, TableRule):
            return self._table(w, scope, rule, expected, site, entry)
        if isinstance(rule, MapRule):
            return self._map(w, scope, rule, expected, site, entry)
        if isinstance(rule, FnRule):
            return self._function(w, scope, rule, site, entry)
        if isinstance(rule, XrefRule):
            argument = self._text_argument(w, scope, rule.key, site)
            if argument is None:
                return None
            key = argument[0]
            var = w.fresh()
            result = expected or plain("string")
            w.line(
                f"{var} = None if {key} is None else {self._parse(result)}(ctx.resolve({site}, {rule.mo!r}, {key}))"
            )
            self._wrap_value_errors(w, site, var, key)
            return Val(var, result, False, True)
        return self._target(w, scope, rule)

    def _text_argument(
        self, w: Writer, scope: Scope, rule: Value, site: int
    ) -> tuple[str, bool] | None:
        """A value as the lexical string a table or cross-reference is keyed by, and whether
        it may be absent."""
        value = self.value(w, scope, rule, None, site)
        if value is None or value.simple is None:
            return None
        if value.many:
            self.fail(rule.pos, "list-into-single", "a key must be one value", "add pick: first")
            return None
        text = _FORMAT[value.simple.primitive].format(value.var)
        if text == value.var:
            return value.var, value.optional
        var = w.fresh()
        w.line(
            f"{var} = None if {value.var} is None else {text}"
            if value.optional
            else f"{var} = {text}"
        )
        return var, value.optional

    def _table(
        self,
        w: Writer,
        scope: Scope,
        rule: TableRule,
        expected: SimpleType | None,
        site: int,
        entry: LineageEntry,
    ) -> Val | None:
        table = self.tables.get(rule.table)
        if table is None and rule.table in self.broken:
            self.tables_used.add(rule.table)
            return None
        if table is None:
            self.fail(
                rule.pos,
                "unknown-table",
                f"no code table named {rule.table}",
                did_you_mean(rule.table, list(self.tables)),
            )
            return None
        self.tables_used.add(table.name)
        entry.tables.add(table.name)
        result = expected or plain("string")
        if rule.reverse:
            if len(table.keys) != 1 or len(table.values) != 1:
                self.fail(
                    rule.pos,
                    "reverse",
                    f"{table.name} has {len(table.keys)} key and {len(table.values)} value columns; a reversed table needs one of each",
                )
                return None
            values = [row[table.values[0]] for row in table.rows.values()]
            duplicates = sorted({v for v in values if values.count(v) > 1})
            if duplicates:
                self.fail(
                    rule.pos,
                    "reverse-not-unique",
                    f"{table.name} is used in reverse but its column {table.values[0]} repeats {', '.join(duplicates)}",
                )
            column, cells = table.keys[0], [key[0] for key in table.rows]
        else:
            if len(rule.keys) != len(table.keys):
                self.fail(
                    rule.pos,
                    "table-key",
                    f"{table.name} is keyed by {len(table.keys)} column(s) ({', '.join(table.keys)}); the rule gives {len(rule.keys)}",
                )
                return None
            column = rule.column or (table.values[0] if len(table.values) == 1 else "")
            if column not in table.values:
                self.fail(
                    rule.pos,
                    "table-column",
                    f"{table.name} has value columns {', '.join(table.values)}; name one with column:",
                    did_you_mean(column, list(table.values)),
                )
                return None
            cells = [row[column] for row in table.rows.values()]
            if table.default is not None:
                cells.append(table.default[column])
        if expected is not None:
            for cell in sorted(set(cells)):
                problem = facet_problem(expected, cell)
                if problem:
                    self.fail(
                        rule.pos,
                        "facet-violation",
                        f"{table.name}.{column} holds {cell!r}, which the target cannot take: {problem}",
                    )
                    break
        keys: list[str] = []
        optional_keys: set[str] = set()
        for key_rule in rule.keys[: 1 if rule.reverse else None]:
            argument = self._text_argument(w, scope, key_rule, site)
            if argument is None:
                return None
            key, optional = argument
            keys.append(key)
            if optional:
                optional_keys.add(key)
            self._check_coverage(scope, key_rule, table)
        var = w.fresh()
        if rule.reverse:
            call = f"ctx.tables.reverse({site}, {table.name!r}, {keys[0]})"
        else:
            call = f"ctx.tables.lookup({site}, {table.name!r}, ({', '.join(keys)},), {column!r})"
        parse = self._parse(result)
        lookup = call if parse == "str" else f"{parse}({call})"
        missing = " or ".join(f"{k} is None" for k in keys if k in optional_keys)
        w.line(f"{var} = None if {missing} else {lookup}" if missing else f"{var} = {lookup}")
        if parse != "str":
            self._wrap_value_errors(w, site, var, keys[0])
        return Val(var, result, False, any(k in optional_keys for k in keys))

    def _check_coverage(self, scope: Scope, key_rule: Value, table: CodeTable) -> None:
        if (
            table.miss != "pass_through"
            or not isinstance(key_rule, PathRule)
            or len(table.keys) != 1
        ):
            return
        resolved = self.resolve(scope, key_rule.path)
        if resolved is None or resolved.particles[-1].type_key is None:
            return
        simple = self.contracts.simple_types.get(resolved.particles[-1].type_key)
        if simple is None or not simple.facets.enumeration:
            return
        missing = [v for v in simple.facets.enumeration if (v,) not in table.rows]
        if missing:
            self.fail(
                key_rule.pos,
                "table-coverage",
                f"{table.name} has no row for {', '.join(missing)} of <{key_rule.path}>",
                "add rows, or declare miss: fail or default",
            )

    def _map(
        self,
        w: Writer,
        scope: Scope,
        rule: MapRule,
        expected: SimpleType | None,
        site: int,
        entry: LineageEntry,
    ) -> Val | None:
        resolved = self.resolve(scope, rule.path)
        if resolved is None:
            return None
        entry.sources.add(resolved.dotted)
        self.reads.add(resolved.dotted)
        source = self.emit_path(w, resolved)
        result = expected or plain("string")
        cases = {}
        for key, literal in rule.cases:
            cases[key] = self.constant(rule.pos, result, literal)
        last = resolved.particles[-1]
        simple = self.contracts.simple_types.get(last.type_key) if last.type_key else None
        if simple is not None and simple.facets.enumeration and rule.mods.default is None:
            missing = [v for v in simple.facets.enumeration if v not in cases]
            if missing:
                self.fail(
                    rule.pos,
                    "map-coverage",
                    f"no case for {', '.join(missing)} of <{rule.path}>",
                    "add cases or a default",
                )
        table = f"_M{self._next()}"
        self.constants.append(f"{table} = {{{', '.join(f'{k!r}: {v}' for k, v in cases.items())}}}")
        text = _FORMAT[simple.primitive if simple else "string"].format(source.var)
        var = w.fresh()
        w.line(f"{var} = None if {source.var} is None else {table}.get({text})")
        if rule.mods.default is None:
            with w.block(f"if {var} is None and {source.var} is not None:"):
                w.line(
                    f"raise RuleFailure({site}, {source.var}, 'no case of the map rule matches the value', 1101)"
                )
        return Val(var, result, False, source.optional)

    def _function(
        self, w: Writer, scope: Scope, rule: FnRule, site: int, entry: LineageEntry
    ) -> Val | None:
        known = self.known_functions.get(rule.name)
        if known is None:
            self.fail(
                rule.pos,
                "unknown-function",
                f"no function named {rule.name}",
                unknown_hint(rule.name, list(self.known_functions)),
            )
            return None
        entry.functions.add(rule.name)
        signature = known.signature
        params = list(signature.params)
        if params and params[-1].endswith("*"):
            params = params[:-1] + [params[-1][:-1]] * max(1, len(rule.args) - len(params) + 1)
        if len(params) != len(rule.args):
            self.fail(
                rule.pos,
                "arity",
                f"{rule.name} takes {len(signature.params)} argument(s); {len(rule.args)} given",
                f"its signature: {known}",
            )
            return None
        arguments, guards = [], []
        for param, argument in zip(params, rule.args, strict=True):
            wanted = param.rstrip("?").removesuffix("[]")
            value = self.value(w, scope, argument, plain(wanted), site)
            if value is None or value.simple is None:
                return None
            if value.simple.primitive != wanted:
                self.fail(
                    argument.pos,
                    "type-mismatch",
                    f"{rule.name} takes a {wanted} here, not a {value.simple.primitive}",
                    _conversion_hint(value.simple, plain(wanted)),
                )
                return None
            if value.many != param.endswith("[]"):
                self.fail(
                    argument.pos,
                    "list-into-single",
                    f"{rule.name} takes {'a list' if param.endswith('[]') else 'one value'} here",
                )
                return None
            arguments.append(f"tuple({value.var})" if value.many else value.var)
            if value.optional and not param.endswith("?"):
                guards.append(f"{value.var} is None")
        var = w.fresh()
        call_arguments = ", ".join(["ctx", *arguments] if signature.context else arguments)
        result = signature.result.rstrip("?")
        if known.builtin:
            call = f"fn.{known.function.__name__}({call_arguments})"
        else:  # registered by the loader for this package (runtime/messages/functions.py)
            via = "call_project_optional" if signature.result.endswith("?") else "call_project"
            project_arguments = ", ".join(
                [PYTHON_TYPES[result], "__name__", repr(rule.name), *arguments]
            )
            call = f"fn.{via}({project_arguments})"
        w.line(
            f"{var} = None if {' or '.join(guards)} else {call}" if guards else f"{var} = {call}"
        )
        self._wrap_value_errors(w, site, var, f"({', '.join(arguments)},)")
        return Val(var, plain(result), False, bool(guards) or signature.result.endswith("?"))

    def _target(self, w: Writer, scope: Scope, rule: TargetRule) -> Val | None:
        head, *rest = rule.path.steps
        if rule.path.absolute or head not in scope.built:
            self.fail(
                rule.path.pos,
                "target-path",
                f"<{rule.path}> is not an element of this structure computed before this rule",
                did_you_mean(head, list(scope.built)),
            )
            return None
        var, particle = scope.built[head]
        optional = particle.min_occurs == 0
        result = w.fresh()
        w.line(f"{result} = {var}")
        for step in rest:
            if particle.kind != "complex" or particle.type_key is None:
                self.fail(rule.path.pos, "target-path", f"<{head}> is a value; it has no <{step}>")
                return None
            inner = {p.name: p for p in self.contracts.complex_types[particle.type_key].particles}
            if step not in inner:
                self.fail(
                    rule.path.pos,
                    "target-path",
                    f"no <{step}> in the target structure",
                    did_you_mean(step, list(inner)),
                )
                return None
            particle = inner[step]
            w.line(f"{result} = None if {result} is None else {result}.{field_name(step)}")
            optional = optional or particle.min_occurs == 0
        simple = (
            self.contracts.simple_types.get(particle.type_key)
            if particle.kind == "simple" and particle.type_key
            else None
        )
        return Val(result, simple, particle.repeats, optional, particle)

    def constant(self, pos: Pos, simple: SimpleType, literal: Literal_) -> str:
        """A module-level constant of the literal read as ``simple``, checked now."""
        text = lexical_of(literal)
        problem = facet_problem(simple, text)
        if problem:
            self.fail(pos, "facet-violation", f"constant {text!r}: {problem}")
        name = f"_K{self._next()}"
        parse = _PARSE.get(simple.primitive)
        self.constants.append(f"{name} = {parse}({text!r})" if parse else f"{name} = {text!r}")
        return name

    def _parse(self, simple: SimpleType) -> str:
        if (
            simple.name.startswith("xs:")
            and not simple.facets.patterns
            and simple.primitive == "string"
        ):
            return "str"
        if simple.name.startswith("xs:"):
            return _PARSE.get(simple.primitive, "str")
        return f"{MODULES[simple.home]}.parse_{_simple_name(simple)}"

    # ---------------------------------------------------------------- paths and conditions

    def resolve(self, scope: Scope, path: Path) -> Resolved | None:
        key = self.root_source if path.absolute else scope.source
        xpath = self.root_xpath if path.absolute else scope.source_xpath
        dotted = "" if path.absolute else scope.source_dotted
        particles: list[Particle] = []
        for index, step in enumerate(path.steps):
            complex_type = self.contracts.complex_types[key]
            found = {p.name: p for p in complex_type.particles}.get(step)
            if found is None:
                names = [p.name for p in complex_type.particles]
                where = (
                    "the message root"
                    if not particles and path.absolute
                    else f"<{'.'.join(path.steps[:index]) or 'the current node'}>"
                )
                self.fail(
                    path.pos,
                    "unknown-source-path",
                    f"{_type_label(complex_type)} ({where}) has no element <{step}>",
                    did_you_mean(step, names),
                )
                return None
            particles.append(found)
            xpath += f"/{step}"
            dotted += f"{'.' if dotted else ''}{step}{'[]' if found.repeats else ''}"
            if found.kind != "complex" or found.type_key is None:
                if index < len(path.steps) - 1:
                    self.fail(
                        path.pos,
                        "unknown-source-path",
                        f"<{step}> is a value; it has no <{path.steps[index + 1]}>",
                    )
                    return None
                break
            key = found.type_key
        return Resolved(tuple(particles), "r" if path.absolute else "s", xpath, dotted)

    def emit_path(self, w: Writer, resolved: Resolved) -> Val:
        var = w.fresh()
        particles = resolved.particles
        many = any(p.repeats for p in particles)
        optional = any(p.min_occurs == 0 for p in particles)
        last = particles[-1]
        simple = (
            self.contracts.simple_types.get(last.type_key)
            if last.kind == "simple" and last.type_key
            else None
        )
        if many:
            current, clauses = resolved.start, []
            for index, particle in enumerate(particles):
                item = f"x{index}"
                attr = f"{current}.{field_name(particle.name)}"
                if particle.repeats:
                    clauses.append(f"for {item} in {attr}")
                elif particle.min_occurs == 0:
                    clauses.append(f"for {item} in ({attr},) if {item} is not None")
                else:
                    clauses.append(f"for {item} in ({attr},)")
                current = item
            w.line(f"{var} = [{current} {' '.join(clauses)}]")
            return Val(var, simple, True, False, last)
        expression = resolved.start
        guarded = False
        for particle in particles:
            if guarded:
                w.line(f"{var} = None if {var} is None else {var}.{field_name(particle.name)}")
            else:
                expression += f".{field_name(particle.name)}"
                if particle.min_occurs == 0:
                    w.line(f"{var} = {expression}")
                    guarded = True
        if not guarded:
            w.line(f"{var} = {expression}")
        return Val(var, simple, False, optional, last)

    def condition(self, w: Writer, scope: Scope, condition: Condition, node: str) -> str:
        """Emit what a condition needs and return its Python expression."""
        if isinstance(condition, Combine):
            parts = [self.condition(w, scope, part, node) for part in condition.parts]
            if condition.op == "not":
                return f"not ({parts[0]})"
            return (
                "(" + f" {'and' if condition.op == 'all' else 'or'} ".join(parts or ["True"]) + ")"
            )
        path = condition.path
        resolved = self.resolve(scope, path)
        if resolved is None:
            return "False"
        if not path.absolute and node != "s":
            resolved = Resolved(resolved.particles, node, resolved.xpath, resolved.dotted)
        self.reads.add(resolved.dotted)
        value = self.emit_path(w, resolved)
        if isinstance(condition, Present):
            test = f"bool({value.var})" if value.many else f"{value.var} is not None"
            return f"not ({test})" if condition.negate else test
        if isinstance(condition, Truthy):
            if value.many or (
                value.simple is not None and value.simple.primitive in ("string", "boolean")
            ):
                return f"bool({value.var})"
            return f"{value.var} is not None"
        if value.simple is None or value.many:
            self.fail(path.pos, "type-mismatch", f"<{path}> must be one value to compare")
            return "False"
        constants = [self.constant(path.pos, value.simple, v) for v in condition.values]
        if condition.op == "in":
            return f"{value.var} in ({', '.join(constants)},)"
        return f"{value.var} {'==' if condition.op == 'equals' else '!='} {constants[0]}"

    # ---------------------------------------------------------------- bookkeeping

    def site(self, rule: Rule, scope: Scope, particle: Particle) -> int:
        source = scope.source_xpath
        path = _primary_path(rule)
        if path is not None:
            resolved_base = self.root_xpath if path.absolute else scope.source_xpath
            source = resolved_base + "".join(f"/{step}" for step in path.steps)
        pos = rule.pos
        self.sites.append(
            RuleSite(
                pos.file,
                pos.line,
                pos.column,
                f"{scope.target_xpath}/{particle.name}".replace("[]", ""),
                source,
                particle.personal or (path is not None and self._reads_personal(scope, path)),
            )
        )
        return len(self.sites) - 1

    def _reads_personal(self, scope: Scope, path: Path) -> bool:
        """Whether a source path reaches personal data (a path that does not resolve was
        reported where it was read)."""
        key = self.root_source if path.absolute else scope.source
        for step in path.steps:
            complex_type = self.contracts.complex_types.get(key)
            found = (
                None
                if complex_type is None
                else {p.name: p for p in complex_type.particles}.get(step)
            )
            if found is None:
                return False
            if found.personal:
                return True
            if found.type_key is None or found.kind != "complex":
                return False
            key = found.type_key
        return False

    def _read_subtree(self, dotted: str, key: tuple[Home, str]) -> None:
        for leaf in leaves(self.contracts, key, dotted):
            self.reads.add(leaf)

    def _next(self) -> int:
        self._counter[0] += 1
        return self._counter[0]


@dataclass(frozen=True)
class Resolved:
    particles: tuple[Particle, ...]
    start: str
    xpath: str
    dotted: str


def _declarations(lines: list[str]) -> list[str]:
    """``name: Any`` for every variable of a generated body: a variable holds a value, then the
    same value checked or wrapped, so one precise type per name would not fit; the function's
    own signature stays precise."""
    names = sorted(
        {m for line in lines for m in _VARIABLE.findall(line)}, key=lambda n: (n[0], int(n[1:]))
    )
    return [f"{name}: Any" for name in names]


_VARIABLE = re.compile(r"\b([vx]\d+)\b(?= =| in )")


def leaves(contracts: ContractSet, key: tuple[Home, str], prefix: str = "") -> list[str]:
    """Every value element under a type, as dotted paths with [] after repeated steps."""
    found = []
    for particle in contracts.complex_types[key].particles:
        path = f"{prefix}{'.' if prefix else ''}{particle.name}{'[]' if particle.repeats else ''}"
        if particle.kind == "complex" and particle.type_key is not None:
            found += leaves(contracts, particle.type_key, path)
        else:
            found.append(path)
    return found


def elements(
    contracts: ContractSet, key: tuple[Home, str], prefix: str = ""
) -> dict[str, Particle]:
    """Every element under a type, structures and values, by dotted path (no [] markers: the
    paths a mapping writes)."""
    found: dict[str, Particle] = {}
    for particle in contracts.complex_types[key].particles:
        path = f"{prefix}{'.' if prefix else ''}{particle.name}"
        found[path] = particle
        if particle.kind == "complex" and particle.type_key is not None:
            found.update(elements(contracts, particle.type_key, path))
    return found


def _primary_path(rule: Rule) -> Path | None:
    if isinstance(rule, PathRule | MapRule):
        return rule.path
    if isinstance(rule, StructRule | EachRule | CopyRule):
        return rule.source
    if isinstance(rule, TableRule):
        return _primary_path(rule.keys[0]) if rule.keys else None
    if isinstance(rule, FnRule):
        for argument in rule.args:
            found = _primary_path(argument)
            if found is not None:
                return found
    if isinstance(rule, XrefRule):
        return _primary_path(rule.key)
    return None


def _target_refs(rule: Rule) -> set[str]:
    if isinstance(rule, TargetRule) and not rule.path.absolute:
        return {rule.path.steps[0]}
    if isinstance(rule, FnRule):
        return set().union(*(_target_refs(a) for a in rule.args)) if rule.args else set()
    if isinstance(rule, TableRule):
        return set().union(*(_target_refs(k) for k in rule.keys)) if rule.keys else set()
    if isinstance(rule, XrefRule):
        return _target_refs(rule.key)
    return set()


def _has_when(rule: Rule) -> bool:
    """A condition that can leave the element absent (a default fills it in otherwise)."""
    mods = getattr(rule, "mods", None)
    return mods is not None and mods.when is not None and mods.default is None


def _model(key: tuple[Home, str]) -> str:
    return f"{MODULES[key[0]]}.{key[1]}"


def _simple_name(simple: SimpleType) -> str:
    from ccbmdm.codegen.render import simple_name

    return simple_name(simple)


def _type_label(complex_type: ComplexType) -> str:
    return complex_type.name


def _mismatch(source: SimpleType, target: SimpleType, name: str) -> str:
    return f"<{name}> takes a {target.primitive} ({_simple_name(target)}), but the rule gives a {source.primitive} ({_simple_name(source)})"


def _conversion_hint(source: SimpleType, target: SimpleType) -> str:
    pair = (source.primitive, target.primitive)
    if pair == ("date", "dateTime"):
        return "convert it, e.g. {fn: start_of_day, args: [date, timeZone]}"
    if pair == ("dateTime", "date"):
        return "convert it, e.g. {fn: date_of, args: [dateTime, timeZone]}"
    if pair == ("string", "decimal"):
        return "text is not a number; map a decimal source"
    return ""

"""Mutants of a mapping: each one a single small change of one rule, made on the syntax tree the
compiler binds (before rendering), so that a mutant is compiled exactly as the mapping would be.

The operators are the mistakes a mapping writer makes: a rule left out, two code-table values
mixed up, a constant mistyped, a condition the wrong way round, two arguments of a function in
the wrong order, a neighbouring source element read instead of the right one. A mutant is named
by its mapping file, the target element its rule writes, its operator and the change, which do
not depend on the run: the same mappings give the same mutants in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping as Mapping_
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.ir import ContractSet, Home, Particle, SimpleType
from ccbmdm.codegen.mapping.bind import plain
from ccbmdm.codegen.mapping.facets import facet_problem, lexical_of
from ccbmdm.codegen.mapping.functions import BUILT_INS, Function
from ccbmdm.codegen.mapping.syntax import (
    Combine,
    Compare,
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
    Rule,
    Rules,
    StructRule,
    TableRule,
    Value,
    XrefRule,
)
from ccbmdm.runtime.messages.mapping import CodeTable

DROP = "drop-rule"
SWAP_VALUES = "swap-values"
ALTER_CONSTANT = "alter-constant"
NEGATE = "negate-condition"
SWAP_ARGUMENTS = "swap-arguments"
OTHER_SOURCE = "other-source"
OPERATORS = (DROP, SWAP_VALUES, ALTER_CONSTANT, NEGATE, SWAP_ARGUMENTS, OTHER_SOURCE)


CellsLike = Mapping_[str, str]


@dataclass(frozen=True)
class TableSwap:
    """A code table whose values in one column are exchanged, under a name of its own so that
    only the mutated rule reads it."""

    table: str  # the project's table
    name: str  # the mutant's copy, which the mutated rule reads
    column: str
    values: tuple[tuple[str, str], ...]  # each value -> the one that takes its place

    def applied(self, table: CodeTable) -> CodeTable:
        """``table`` (the project's, or with a case's rows) with the values exchanged."""
        swap = dict(self.values)
        rows = {key: self._row(row, swap) for key, row in table.rows.items()}
        default = None if table.default is None else self._row(table.default, swap)
        return replace(table, name=self.name, rows=rows, default=default)

    def row(self, row: CellsLike) -> dict[str, str]:
        """A case's extra row of the project's table, as the mutant's copy holds it."""
        return self._row(row, dict(self.values))

    def _row(self, row: CellsLike, swap: dict[str, str]) -> dict[str, str]:
        cells = dict(row)
        if self.column in cells:
            cells[self.column] = swap.get(cells[self.column], cells[self.column])
        return cells


@dataclass(frozen=True)
class Mutant:
    """One rule of one mapping changed once."""

    id: str  # <mapping file>#<target> <operator>[ #n]: stable from run to run
    mapping: str  # the mapping file whose transformer is mutated
    flow: str
    part: str
    target: str  # the target element the rule writes, dotted, [] after a repeated step
    operator: str
    change: str  # what the mutant changes, in a few words
    rule: Pos  # where the rule is written (a fragment's file for a fragment's rule)
    at: Pos  # where the changed part of the rule is written
    keys: tuple[str, ...]  # the target elements from the root down to the rule
    replacement: Rule | None  # None: the rule is dropped
    table: TableSwap | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """What names the mutant in an allow-list (``Allowance.key``)."""
        return self.mapping, self.target, self.operator, self.change


def merged(mapping: Mapping, fragments: dict[str, Rules]) -> Mapping:
    """The mapping with the rules of its fragments written in, as the binder merges them, so
    that a fragment's rule is mutated in one mapping only."""
    rules = Rules(dict(mapping.rules.entries), dict(mapping.rules.key_pos))
    for fragment in (fragments[name] for name in mapping.use if name in fragments):
        for key, rule in fragment.entries.items():
            if key not in rules.entries:
                rules.entries[key], rules.key_pos[key] = rule, fragment.key_pos[key]
    return replace(mapping, use=(), rules=rules)


def applied(mapping: Mapping, mutant: Mutant) -> Mapping:
    """The (merged) mapping with the mutant's change made."""
    return replace(mapping, rules=_replaced(mapping.rules, mutant.keys, mutant.replacement))


def _replaced(rules: Rules, keys: tuple[str, ...], rule: Rule | None) -> Rules:
    head, rest = keys[0], keys[1:]
    entries, key_pos = dict(rules.entries), dict(rules.key_pos)
    if rest:
        parent = entries[head]
        assert isinstance(parent, StructRule | EachRule)
        entries[head] = replace(parent, rules=_replaced(parent.rules, rest, rule))
    elif rule is None:
        del entries[head], key_pos[head]
    else:
        entries[head] = rule
    return Rules(entries, key_pos)


def mutants(
    mapping: Mapping,
    contracts: ContractSet,
    tables: dict[str, CodeTable],
    functions: dict[str, Function] | None = None,
) -> list[Mutant]:
    """Every mutant of a merged mapping, in the order its rules are written; ``functions`` are
    those it may call (default: the built-ins)."""
    return list(_Generator(mapping, contracts, tables, functions).run())


@dataclass(frozen=True)
class _Change:
    """A value rule changed once, with the code table the change needs."""

    value: Value
    operator: str
    change: str
    at: Pos
    table: TableSwap | None = None


class _Generator:
    def __init__(
        self,
        mapping: Mapping,
        contracts: ContractSet,
        tables: dict[str, CodeTable],
        functions: dict[str, Function] | None,
    ) -> None:
        self.functions = BUILT_INS if functions is None else functions
        self.mapping = mapping
        self.contracts = contracts
        self.tables = tables
        self.root = contracts.contracts[mapping.source].type_key
        self.seen: dict[str, int] = {}  # mutants so far of each target and operator

    def run(self) -> Iterator[Mutant]:
        target = self.contracts.contracts[self.mapping.target].type_key
        yield from self._structure(self.mapping.rules, target, self.root, (), "")

    def _structure(
        self,
        rules: Rules,
        target: tuple[Home, str],
        source: tuple[Home, str] | None,
        keys: tuple[str, ...],
        dotted: str,
    ) -> Iterator[Mutant]:
        particles = {p.name: p for p in self.contracts.complex_types[target].particles}
        for key, rule in rules.entries.items():
            particle = particles.get(key)
            if particle is None:
                continue
            here = (*keys, key)
            written = f"{dotted}{'.' if dotted else ''}{key}{'[]' if particle.repeats else ''}"
            pos = rules.key_pos[key]

            def mutant(
                replacement: Rule | None,
                operator: str,
                change: str,
                at: Pos,
                table: TableSwap | None = None,
                here: tuple[str, ...] = here,
                written: str = written,
                pos: Pos = pos,
            ) -> Mutant:
                return self._mutant(here, written, pos, replacement, operator, change, at, table)

            if particle.min_occurs == 0:
                yield mutant(None, DROP, "rule removed", pos)
            if isinstance(rule, StructRule | EachRule):
                inner = source
                if rule.source is not None:
                    reached = self._resolve(source, rule.source)
                    inner = reached[-1].type_key if reached else None
                moved = self._other_source(source, rule.source) if rule.source else None
                if moved is not None:
                    change = f"reads {moved} instead of {rule.source}"
                    yield mutant(replace(rule, source=moved), OTHER_SOURCE, change, moved.pos)
                if isinstance(rule, StructRule) and rule.when is not None:
                    for condition, operator, change in self._condition(rule.when, source, "when"):
                        yield mutant(replace(rule, when=condition), operator, change, pos)
                if isinstance(rule, EachRule) and rule.where is not None:
                    # where: reads each item of the repeated source
                    for condition, operator, change in self._condition(rule.where, inner, "where"):
                        yield mutant(replace(rule, where=condition), operator, change, pos)
                if particle.type_key is not None and particle.kind == "complex":
                    yield from self._structure(rule.rules, particle.type_key, inner, here, written)
                continue
            if isinstance(rule, CopyRule):
                moved = self._other_source(source, rule.source)
                if moved is not None:
                    change = f"copies {moved} instead of {rule.source}"
                    yield mutant(replace(rule, source=moved), OTHER_SOURCE, change, moved.pos)
                if rule.when is not None:
                    for condition, operator, change in self._condition(rule.when, source, "when"):
                        yield mutant(replace(rule, when=condition), operator, change, pos)
                continue
            expected = (
                self.contracts.simple_types.get(particle.type_key)
                if particle.kind == "simple" and particle.type_key
                else None
            )
            for found in self._value(rule, expected, source):
                yield mutant(found.value, found.operator, found.change, found.at, found.table)

    def _mutant(
        self,
        keys: tuple[str, ...],
        target: str,
        pos: Pos,
        replacement: Rule | None,
        operator: str,
        change: str,
        at: Pos,
        table: TableSwap | None,
    ) -> Mutant:
        name = f"{self.mapping.file}#{target} {operator}"
        self.seen[name] = self.seen.get(name, 0) + 1
        number = self.seen[name]
        return Mutant(
            id=name if number == 1 else f"{name} #{number}",
            mapping=self.mapping.file,
            flow=self.mapping.flow,
            part=self.mapping.part,
            target=target,
            operator=operator,
            change=change,
            rule=pos,
            at=at,
            keys=keys,
            replacement=replacement,
            table=table,
        )

    # ---------------------------------------------------------------- values

    def _value(
        self, rule: Value, expected: SimpleType | None, source: tuple[Home, str] | None
    ) -> Iterator[_Change]:
        """The changes of one value rule: of itself, its modifiers and its inner values."""
        mods = rule.mods
        if mods.when is not None:
            for condition, operator, change in self._condition(mods.when, source, "when"):
                changed = replace(rule, mods=replace(mods, when=condition))
                yield _Change(changed, operator, change, rule.pos)
        if mods.default is not None:
            new = altered(mods.default, expected)
            if new is not None:
                change = f"default {lexical_of(mods.default)!r} -> {lexical_of(new)!r}"
                changed = replace(rule, mods=replace(mods, default=new))
                yield _Change(changed, ALTER_CONSTANT, change, rule.pos)
        if isinstance(rule, ConstRule):
            new = altered(rule.value, expected)
            if new is not None:
                change = f"const {lexical_of(rule.value)!r} -> {lexical_of(new)!r}"
                yield _Change(replace(rule, value=new), ALTER_CONSTANT, change, rule.pos)
        elif isinstance(rule, PathRule):
            other = self._other_source(source, rule.path)
            if other is not None:
                change = f"reads {other} instead of {rule.path}"
                yield _Change(replace(rule, path=other), OTHER_SOURCE, change, rule.path.pos)
        elif isinstance(rule, TableRule):
            yield from self._table(rule)
            for index, key in enumerate(rule.keys):
                for found in self._value(key, None, source):
                    keys = (*rule.keys[:index], found.value, *rule.keys[index + 1 :])
                    yield _inner(found, replace(rule, keys=keys), f"key {index + 1}")
        elif isinstance(rule, MapRule):
            swap = _rotation([str(lexical_of(v)) for _, v in rule.cases])
            if swap:
                cases = tuple((key, swap.get(lexical_of(v), v)) for key, v in rule.cases)
                change = f"map values swapped ({_shown(swap)})"
                yield _Change(replace(rule, cases=cases), SWAP_VALUES, change, rule.pos)
        elif isinstance(rule, FnRule):
            yield from self._function(rule, source)
        elif isinstance(rule, XrefRule):
            for found in self._value(rule.key, None, source):
                yield _inner(found, replace(rule, key=found.value), "key")

    def _condition(
        self, condition: Condition, source: tuple[Home, str] | None, verb: str
    ) -> Iterator[tuple[Condition, str, str]]:
        """A condition negated, then each constant it compares with altered."""
        yield _negated(condition), NEGATE, f"{verb} negated"
        for changed, change in self._compared(condition, source):
            yield changed, ALTER_CONSTANT, f"{verb}: {change}"

    def _compared(
        self, condition: Condition, source: tuple[Home, str] | None
    ) -> Iterator[tuple[Condition, str]]:
        if isinstance(condition, Combine):
            for index, part in enumerate(condition.parts):
                for changed, change in self._compared(part, source):
                    parts = (*condition.parts[:index], changed, *condition.parts[index + 1 :])
                    yield replace(condition, parts=parts), change
        elif isinstance(condition, Compare):
            found = self._resolve(source, condition.path) or []
            last = found[-1] if found else None
            simple = (
                self.contracts.simple_types.get(last.type_key)
                if last is not None and last.kind == "simple" and last.type_key
                else None
            )
            for index, value in enumerate(condition.values):
                new = altered(value, simple)
                if new is not None:
                    values = (*condition.values[:index], new, *condition.values[index + 1 :])
                    old, now = lexical_of(value), lexical_of(new)
                    yield replace(condition, values=values), f"{condition.path} {old!r} -> {now!r}"

    def _table(self, rule: TableRule) -> Iterator[_Change]:
        table = self.tables.get(rule.table)
        if table is None:
            return
        # A reversed lookup gives the key column: its cells are the values it can give.
        column = (
            table.keys[0]
            if rule.reverse
            else rule.column or (table.values[0] if len(table.values) == 1 else "")
        )
        cells = [row[column] for row in table.rows.values() if column in row]
        if not rule.reverse and table.default is not None and column in table.default:
            cells.append(table.default[column])
        swap = _rotation(cells)
        if not swap:
            return
        name = f"{rule.table}~{column}~swapped"
        yield _Change(
            replace(rule, table=name),
            SWAP_VALUES,
            f"{rule.table}.{column} values swapped ({_shown(swap)})",
            rule.pos,
            TableSwap(rule.table, name, column, tuple(swap.items())),
        )

    def _function(self, rule: FnRule, source: tuple[Home, str] | None) -> Iterator[_Change]:
        known = self.functions.get(rule.name)
        params = list(known.signature.params) if known else []
        if params and params[-1].endswith("*"):
            params = params[:-1] + [params[-1][:-1]] * max(1, len(rule.args) - len(params) + 1)
        kinds = [p.rstrip("?") for p in params] if len(params) == len(rule.args) else []
        for index in range(len(kinds) - 1):
            first, second = rule.args[index], rule.args[index + 1]
            if kinds[index] != kinds[index + 1] or _same(first, second):
                continue
            args = (*rule.args[:index], second, first, *rule.args[index + 2 :])
            change = f"{rule.name} arguments {index + 1} and {index + 2} swapped"
            yield _Change(replace(rule, args=args), SWAP_ARGUMENTS, change, first.pos)
        for index, argument in enumerate(rule.args):
            wanted = kinds[index].removesuffix("[]") if kinds else "string"
            for found in self._value(argument, plain(wanted), source):
                args = (*rule.args[:index], found.value, *rule.args[index + 1 :])
                yield _inner(found, replace(rule, args=args), f"{rule.name} argument {index + 1}")

    # ---------------------------------------------------------------- source paths

    def _resolve(self, source: tuple[Home, str] | None, path: Path) -> list[Particle] | None:
        key = self.root if path.absolute else source
        found: list[Particle] = []
        for step in path.steps:
            complex_type = self.contracts.complex_types.get(key) if key else None
            particle = (
                {p.name: p for p in complex_type.particles}.get(step) if complex_type else None
            )
            if particle is None:
                return None
            found.append(particle)
            key = particle.type_key if particle.kind == "complex" else None
        return found

    def _other_source(self, source: tuple[Home, str] | None, path: Path) -> Path | None:
        """The path with its last step moved to the next sibling of the same type and
        repetition: for a value, the same simple type or, failing one, the same primitive; for
        a structure (from:, each:, copy:), the same complex type."""
        found = self._resolve(source, path) or []
        last = found[-1] if found else None
        if last is None or last.type_key is None:
            return None
        parent = found[-2].type_key if len(found) > 1 else (self.root if path.absolute else source)
        if parent is None:
            return None
        siblings = list(self.contracts.complex_types[parent].particles)
        start = next(i for i, p in enumerate(siblings) if p.name == last.name)
        candidates = [
            p
            for p in siblings[start + 1 :] + siblings[:start]
            if p.kind == last.kind and p.type_key is not None and p.repeats == last.repeats
        ]
        chosen = [p for p in candidates if p.type_key == last.type_key]
        if not chosen and last.kind == "simple":
            simple = self.contracts.simple_types
            primitive = simple[last.type_key].primitive
            chosen = [
                p for p in candidates if p.type_key and simple[p.type_key].primitive == primitive
            ]
        if not chosen:
            return None
        return replace(path, steps=(*path.steps[:-1], chosen[0].name))


def _inner(found: _Change, rule: Value, where: str) -> _Change:
    """A change of an inner value (a key, an argument) as a change of the rule holding it."""
    return replace(found, value=rule, change=f"{where}: {found.change}")


def _negated(condition: Condition) -> Condition:
    if isinstance(condition, Combine) and condition.op == "not":
        return condition.parts[0]
    return Combine("not", (condition,))


def _rotation(values: list[str]) -> dict[str, str]:
    """Each distinct value -> the next one (the last -> the first): with two values, a swap;
    with more, every value changes. Empty when there is a single value."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) < 2:
        return {}
    return {value: distinct[(i + 1) % len(distinct)] for i, value in enumerate(distinct)}


def _shown(swap: dict[str, str]) -> str:
    pairs = [f"{old}->{new}" for old, new in swap.items()]
    return ", ".join(pairs[:3]) + (", …" if len(pairs) > 3 else "")


def _same(first: Value, second: Value) -> bool:
    """Two arguments that read or give the same thing (their positions aside)."""
    if isinstance(first, PathRule) and isinstance(second, PathRule):
        return str(first.path) == str(second.path) and first.mods == second.mods
    if isinstance(first, ConstRule) and isinstance(second, ConstRule):
        return first.value == second.value
    return False


def altered(literal: Literal_, simple: SimpleType | None) -> Literal_ | None:
    """A constant changed as a typing slip would change it, still a valid value of its type;
    None when no such change exists."""
    if isinstance(literal, bool):
        return not literal
    if isinstance(literal, int | float):
        new: Literal_ = literal + 1
    else:
        new = _altered_text(literal, simple)
    if new == literal:
        return None
    if simple is not None and facet_problem(simple, lexical_of(new)) is not None:
        return None
    return new


def _altered_text(text: str, simple: SimpleType | None) -> str:
    enumeration = simple.facets.enumeration if simple else ()
    if enumeration:
        others = (
            [*enumeration[enumeration.index(text) + 1 :], *enumeration]
            if (text in enumeration)
            else list(enumeration)
        )
        return next((v for v in others if v != text), text)
    primitive = simple.primitive if simple else "string"
    if primitive == "boolean":
        return {"true": "false", "false": "true", "1": "0", "0": "1"}.get(text, text)
    if primitive in ("integer", "decimal"):
        try:
            return str(Decimal(text) + 1)
        except InvalidOperation:
            return text
    if primitive == "date":
        try:
            return (date.fromisoformat(text) + timedelta(days=1)).isoformat()
        except ValueError:
            return text
    if not text:
        return "X"
    last = text[-1]
    for alphabet in ("0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"):
        if last in alphabet:
            return text[:-1] + alphabet[(alphabet.index(last) + 1) % len(alphabet)]
    return text + "X"

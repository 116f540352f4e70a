"""`ccbmdm conformance --mutate`: change the compiled mappings one rule at a time and report
every change no case notices.

A case that passes whatever its mapping does proves little. Each mutant (see
``conformance.mutants``) is bound and rendered like the real mapping, executed in memory (never
written to target/) and put in the place of its mapping's transformer in a copy of the kit; the
cases of that flow and part then run against it. The mutant is killed when any of them fails:
a difference, a problem, a fault where a message was expected, another fault, or a crash. A
survivor is reported at its rule's ``file:line:col`` unless the project's allow-list names it.
"""

from __future__ import annotations

import copy
import time
import types
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Literal

from ccbmdm.codegen.compiler import mapping_files
from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.mapping.bind import Binder
from ccbmdm.codegen.mapping.compile import render_transformer
from ccbmdm.codegen.mapping.functions import load_library
from ccbmdm.codegen.mapping.loader import SCHEMA_FILE, load_fragment, load_mapping
from ccbmdm.codegen.mapping.syntax import Mapping, Rules
from ccbmdm.codegen.project import display_path
from ccbmdm.codegen.render import Renderer
from ccbmdm.conformance.allowed import Allowance, read_allowed
from ccbmdm.conformance.cases import MappingCase
from ccbmdm.conformance.coverage import measure
from ccbmdm.conformance.mutants import OPERATORS, Mutant, applied, merged, mutants
from ccbmdm.conformance.outcome import Outcome
from ccbmdm.conformance.runner import Kit
from ccbmdm.runtime.messages.mapping import CodeTables, Transformer

Status = Literal["killed", "survived", "allowed", "not-compiled"]


@dataclass(frozen=True)
class Verdict:
    """What the cases made of one mutant."""

    mutant: Mutant
    status: Status
    cases: int  # the cases that ran against it
    covered: bool  # a case exercises the mutated rule (see conformance.coverage)
    killed_by: str | None = None  # the first case that failed, and how
    reason: str | None = None  # the allow-list's, for an allowed survivor


@dataclass(frozen=True)
class Report:
    verdicts: list[Verdict]
    findings: list[Finding]  # of the allow-list: malformed or stale entries
    seconds: float

    @property
    def survivors(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.status == "survived"]

    def per_operator(self) -> list[tuple[str, dict[str, int]]]:
        """Mutants per operator: how many, and how many of each status."""
        rows = []
        for operator in OPERATORS:
            mine = [v for v in self.verdicts if v.mutant.operator == operator]
            counts: dict[str, int] = {"mutants": len(mine)}
            for status in _STATUSES:
                counts[status] = sum(1 for v in mine if v.status == status)
            rows.append((operator, counts))
        return rows


_STATUSES: tuple[Status, ...] = ("killed", "survived", "allowed", "not-compiled")


class BaselineFailed(Exception):
    """A selected case fails on the mappings as they are: mutants would prove nothing."""


class Mutator:
    """The project's mappings as the compiler reads them, ready to be mutated and run."""

    def __init__(self, kit: Kit) -> None:
        self.kit = kit
        project = kit.project
        self.renderer = Renderer(kit.contracts)
        self.functions = load_library(kit.project).functions
        schema = project.mappings / SCHEMA_FILE
        fragments: dict[str, Rules] = {}
        for path in sorted((project.mappings / "fragments").glob("*.yaml")):
            name, rules, _ = load_fragment(path, display_path(path, project.root), schema)
            fragments[name] = rules
        compiled = {t.file for t in kit.transformers.values()}
        self.mappings: dict[str, Mapping] = {}
        for path in mapping_files(project):
            display = display_path(path, project.root)
            if path.parent == project.mappings and path.suffix == ".yaml" and display in compiled:
                self.mappings[display] = merged(load_mapping(path, display, schema), fragments)

    def mutants(self, flows: Collection[str] = ()) -> list[Mutant]:
        """Every mutant of the mappings (of those flows when ``flows`` names some), mapping by
        mapping in file order."""
        return [
            mutant
            for file, mapping in sorted(self.mappings.items())
            if not flows or mapping.flow in flows
            for mutant in mutants(
                mapping, self.kit.contracts, self.kit.tables.tables, self.functions
            )
        ]

    def transformer(self, mutant: Mutant) -> Transformer | None:
        """The mutant compiled and loaded in memory; None when the compiler rejects it."""
        mapping = applied(self.mappings[mutant.mapping], mutant)
        tables = dict(self.kit.tables.tables)
        if mutant.table is not None:
            tables[mutant.table.name] = mutant.table.applied(tables[mutant.table.table])
        binder = Binder(self.kit.contracts, tables, mapping, {}, self.functions)
        binder.bind()
        if any(f.severity == "error" for f in binder.findings):
            return None
        source = render_transformer(self.renderer.env, self.kit.contracts, mapping, binder)
        original = self.kit.transformers[(mutant.flow, mutant.part)]
        package = self.kit.package.__name__
        module = types.ModuleType(f"{package}.mutant")
        module.__package__ = package
        exec(compile(source, f"<mutant {mutant.id}>", "exec"), module.__dict__)
        transform = module.transform
        return replace(original, load=lambda: transform)

    def kill(self, mutant: Mutant, cases: list[MappingCase]) -> tuple[Status, str | None]:
        """Run the cases against the mutant until one fails."""
        transformer = self.transformer(mutant)
        if transformer is None:
            return "not-compiled", None
        kit = copy.copy(self.kit)
        kit.transformers = {**self.kit.transformers, (mutant.flow, mutant.part): transformer}
        swap = mutant.table
        if swap is not None:
            tables = self.kit.tables.tables
            kit.tables = CodeTables({**tables, swap.name: swap.applied(tables[swap.table])})
        for case in cases:
            if swap is not None and swap.table in case.tables:
                rows = [swap.row(row) for row in case.tables[swap.table]]
                case = replace(case, tables={**case.tables, swap.name: rows})
            try:
                outcome = kit.run(case)
            except Exception as exc:  # a mutant may break the generated code itself
                return "killed", f"{case.id}: {type(exc).__name__}: {exc}"
            if not outcome.passed:
                return "killed", _first_failure(outcome)
        return "survived", None


def mutate(
    kit: Kit,
    cases: list[MappingCase],
    flows: Collection[str] = (),
    progress: Callable[[int, int, Mutant], None] | None = None,
) -> Report:
    """Every mutant of the project's mappings (of ``flows`` when it names some) against the
    cases of its mapping."""
    started = time.perf_counter()
    baseline = [kit.run(case) for case in cases]
    failed = [o.case.id for o in baseline if not o.passed]
    if failed:
        raise BaselineFailed(
            f"{len(failed)} case(s) fail on the mappings as they are ({', '.join(failed[:5])}); "
            "mutation checking needs every case to pass: run `ccbmdm conformance` and fix them"
        )
    project = kit.project
    try:
        allowed = read_allowed(project)
        findings: list[Finding] = []
    except Finding as finding:
        allowed, findings = [], [finding]
    covered = {(m.flow, m.part): m.covered_rules for m in measure(kit.lineage, baseline, flows)}
    mutator = Mutator(kit)
    found = mutator.mutants(flows)
    by_mapping: dict[tuple[str, str], list[MappingCase]] = {}
    for case in cases:
        by_mapping.setdefault((case.flow, case.part), []).append(case)
    allowances = {a.key: a for a in allowed}
    verdicts = []
    for number, mutant in enumerate(found, 1):
        if progress is not None:
            progress(number, len(found), mutant)
        mine = by_mapping.get((mutant.flow, mutant.part), [])
        status, killer = mutator.kill(mutant, mine)
        allowance = allowances.get(mutant.key)
        if status == "survived" and allowance is not None:
            status = "allowed"
        verdicts.append(
            Verdict(
                mutant,
                status,
                len(mine),
                str(mutant.rule) in covered.get((mutant.flow, mutant.part), set()),
                killer,
                allowance.reason if allowance and status == "allowed" else None,
            )
        )
    findings += _stale(allowed, verdicts, flows, mutator.mappings)
    return Report(verdicts, findings, time.perf_counter() - started)


def _stale(
    allowed: Iterable[Allowance],
    verdicts: list[Verdict],
    flows: Collection[str],
    mappings: dict[str, Mapping],
) -> list[Finding]:
    """An entry of a mapping in the run that names no surviving mutant: it no longer says
    anything true, so it must go (or be corrected)."""
    status = {v.mutant.key: v.status for v in verdicts}
    findings = []
    for allowance in allowed:
        if flows and (
            allowance.mapping not in mappings or mappings[allowance.mapping].flow not in flows
        ):
            continue
        found = status.get(allowance.key)
        if found == "allowed":
            continue
        if found is None:
            problem = (
                f"no mapping file {allowance.mapping}"
                if allowance.mapping not in mappings
                else f"no mutant {allowance.target} {allowance.operator}: {allowance.change}"
            )
            hint = "the rule or the mapping changed; remove or correct the entry"
        else:
            problem = f"the mutant {allowance.target} {allowance.operator} is {found} now"
            hint = "remove the entry"
        findings.append(Finding(allowance.pos, "allow-list", f"stale entry: {problem}", hint))
    return findings


def _first_failure(outcome: Outcome) -> str:
    """How a case noticed a mutant, on one line: its first problem or difference."""
    if outcome.problems:
        problem = outcome.problems[0].splitlines()[0]
        if not problem.startswith(outcome.case.id):
            problem = f"{outcome.case.id}: {problem}"
        return _short(problem, 300)
    first = outcome.differences[0]
    expected, actual = _short(first.expected, 80), _short(first.actual, 80)
    return f"{outcome.case.id}: {first.path}: expected {expected}, actual {actual}"


def _short(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"

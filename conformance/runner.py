"""Run mapping cases through the project's compiled transformers and judge the result.

The runner uses what ``ccbmdm transform`` uses: the generated package (compiled first when
stale), the contract registry and a Context, here built from the case (its frozen clock, time
zone, extra code-table rows and cross-references). A case passes when the actual message equals
the golden after normalisation, or when the mapping fails with the expected fault at the
expected rule.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from ccbmdm.codegen.compiler import LINEAGE
from ccbmdm.codegen.diagnostics import Finding, Pos
from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.loader import load_contracts, load_package
from ccbmdm.codegen.project import Project
from ccbmdm.codegen.xsd_reader import read_contracts
from ccbmdm.conformance.cases import CASE_FILE, HINT, Case, FlowCase, MappingCase
from ccbmdm.conformance.compare import Difference, differences, message_tree, present_fields
from ccbmdm.conformance.fault_file import FaultNotWritten, rewrite_fault
from ccbmdm.conformance.flow_runner import FlowRunner
from ccbmdm.conformance.outcome import Outcome, pretty
from ccbmdm.runtime.messages.codec import ContractViolation
from ccbmdm.runtime.messages.contracts import ContractRegistry, UnknownContract
from ccbmdm.runtime.messages.mapping import CodeTables, Context, Transformer, TransformError
from ccbmdm.runtime.messages.xmlsafe import XmlRejected

# The clock of a case that does not freeze its own: a case never reads the real time.
DEFAULT_CLOCK = datetime(2025, 1, 1, tzinfo=UTC)


class _CaseCrossReference:
    """The cross-reference a case declares: maintenance object -> key -> other key."""

    def __init__(self, keys: dict[str, dict[str, str]]) -> None:
        self.keys = keys

    def resolve(self, mo: str, key: str) -> str | None:
        return self.keys.get(mo, {}).get(key)


class Kit:
    """The project's compiled mappings and contracts, loaded once for many cases."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.package: ModuleType = load_package(project)
        self.registry: ContractRegistry = load_contracts(project)
        self.contracts: ContractSet = read_contracts(project.contracts)
        self.tables = CodeTables.load(project.mappings / "tables")
        # The transformer of each (flow, part); --mutate runs a copy of the kit with one swapped.
        self.transformers: dict[tuple[str, str], Transformer] = dict(self.package.TRANSFORMERS)
        # Written by the compiler beside the build; without it, differences name no rule.
        lineage_file = Path(self.package.__file__ or "").parent.parent.parent / LINEAGE
        self.lineage: dict[str, Any] = (
            json.loads(lineage_file.read_text(encoding="utf-8")) if lineage_file.is_file() else {}
        )

    @functools.cached_property
    def flows(self) -> FlowRunner:
        return FlowRunner(self)

    def run(self, case: Case, time_limit_s: float | None = None) -> Outcome:
        """Run one case; ``time_limit_s`` (the run's --time-limit) is when a flow case stops
        waiting for its nodes."""
        if isinstance(case, FlowCase):
            return self.flows.run(case, time_limit_s)
        started = time.perf_counter()
        ran = Outcome(case, 0.0)
        try:
            transformer, result = self.transform(case)
            ran = self.exercised(ran, transformer, result)
            differences_, actual = self._judge(case, transformer, result)
        except (Finding, _Unexpected) as exc:
            return replace(ran, seconds=time.perf_counter() - started, problems=(str(exc),))
        return replace(
            ran,
            seconds=time.perf_counter() - started,
            differences=tuple(differences_),
            actual=actual,
        )

    def update(self, case: Case, time_limit_s: float | None = None) -> Outcome:
        """Run the case and write its actual message as its golden. The outcome's differences
        are the changes, field by field; a golden that could not be read is written anew and
        said so. A fault case gets the fault its mapping gives now (see _update_fault)."""
        if isinstance(case, FlowCase):
            return self.flows.update(case, time_limit_s)
        started = time.perf_counter()
        if case.expected is None:
            return self._update_fault(case, started)
        ran = Outcome(case, 0.0)
        try:
            transformer, result = self.transform(case)
            ran = self.exercised(ran, transformer, result)
            if isinstance(result, TransformError):
                raise _Unexpected(f"{case.id}: the mapping failed, nothing to write: {result}")
            written = pretty(self.registry[transformer.target].encode(result))
            try:
                changes = tuple(self.compare(case, transformer, result))
                notes: tuple[str, ...] = ()
            except Finding as finding:
                changes, notes = (), (f"the old golden could not be read: {finding}",)
        except (Finding, _Unexpected) as exc:
            return replace(ran, seconds=time.perf_counter() - started, problems=(str(exc),))
        if changes or notes:
            case.expected.write_bytes(written)
        return replace(
            ran,
            seconds=time.perf_counter() - started,
            differences=changes,
            actual=written,
            notes=notes,
        )

    def _update_fault(self, case: MappingCase, started: float) -> Outcome:
        """Write the code and rule of the fault the mapping gives now into the case.yaml, in
        place (the rest of the file kept byte for byte); the differences are the changes. A
        mapping that now gives a message leaves the case as it is, failed: a golden message is
        a claim to write by hand."""
        assert case.fault is not None
        ran = Outcome(case, 0.0)
        try:
            transformer, result = self.transform(case)
            ran = self.exercised(ran, transformer, result)
            if not isinstance(result, TransformError):
                raise _Unexpected(
                    f"{case.id}: expected fault 90000/{case.fault.code} at {case.fault.rule}; "
                    "the mapping now gives a message: case.yaml is left as it is (give the "
                    "case an expected message, or fix the mapping)"
                )
            changes = tuple(self._fault_differences(case, result))
            if changes:
                rule = f"{result.site.file}#{result.site.target}"
                rewrite_fault(case.folder / CASE_FILE, result.code, rule)
        except (Finding, _Unexpected, FaultNotWritten) as exc:
            return replace(ran, seconds=time.perf_counter() - started, problems=(str(exc),))
        except OSError as exc:
            problem = f"{case.display(case.folder / CASE_FILE)}: cannot write: {exc.strerror}"
            return replace(ran, seconds=time.perf_counter() - started, problems=(problem,))
        return replace(ran, seconds=time.perf_counter() - started, differences=changes)

    # ------------------------------------------------------------------ judging

    def transformer(self, case: MappingCase) -> Transformer:
        found = self.transformers.get((case.flow, case.part))
        if found is not None:
            return found
        flows = sorted({flow for flow, _ in self.transformers})
        if case.flow not in flows:
            raise Finding(
                Pos(case.display(case.folder / "case.yaml"), 1, 1),
                "case",
                f"no flow {case.flow} (the folder {case.folder.parent.name})",
                "the flow folder is the flow code in kebab case; flows: " + ", ".join(flows),
            )
        parts = sorted(part for flow, part in self.transformers if flow == case.flow)
        raise Finding(
            case.at("part"),
            "case",
            f"part: flow {case.flow} has no mapping for part {case.part}",
            "its parts: " + ", ".join(parts),
        )

    def context(self, case: MappingCase) -> Context:
        tables = dict(self.tables.tables)
        for name, rows in case.tables.items():
            table = tables.get(name)
            if table is None:
                raise Finding(
                    case.at(f"tables.{name}"),
                    "case",
                    f"tables: no code table {name}",
                    "tables: " + ", ".join(sorted(tables)),
                )
            extra = {tuple(row.get(k, "") for k in table.keys): row for row in rows}
            tables[name] = replace(table, rows={**table.rows, **extra})
        clock = case.clock or DEFAULT_CLOCK
        return Context(
            CodeTables(tables),
            clock=lambda: clock,
            time_zone=case.time_zone or "UTC",
            xref=_CaseCrossReference(case.xref),
        )

    def transform(self, case: MappingCase) -> tuple[Transformer, BaseModel | TransformError]:
        """The case's input through its mapping: the target message or the mapping's fault."""
        transformer = self.transformer(case)
        ctx = self.context(case)
        source = self.decode(case, case.input, transformer.source)
        try:
            return transformer, transformer.function(source, ctx)
        except TransformError as exc:
            return transformer, exc

    def exercised(
        self, ran: Outcome, transformer: Transformer, result: BaseModel | TransformError
    ) -> Outcome:
        """What the case exercised, for --coverage: the fields its message holds, or the rule
        its mapping failed at."""
        if isinstance(result, TransformError):
            return replace(ran, fault_target=result.site.target)
        type_key = self.contracts.contracts[transformer.target].type_key
        tree = message_tree(result, self.contracts, type_key)
        return replace(ran, exercised=frozenset(present_fields(tree)))

    def _judge(
        self, case: MappingCase, transformer: Transformer, result: BaseModel | TransformError
    ) -> tuple[list[Difference], bytes | None]:
        if case.fault is not None:
            if not isinstance(result, TransformError):
                raise _Unexpected(
                    f"{case.id}: expected fault 90000/{case.fault.code} at {case.fault.rule}; "
                    "the mapping gave a message"
                )
            return self._fault_differences(case, result), None
        if isinstance(result, TransformError):
            raise _Unexpected(f"{case.id}: expected a message; the mapping failed: {result}")
        written = pretty(self.registry[transformer.target].encode(result))
        return self.compare(case, transformer, result), written

    def compare(
        self, case: MappingCase, transformer: Transformer, actual: BaseModel
    ) -> list[Difference]:
        assert case.expected is not None
        expected = self.decode(case, case.expected, transformer.target)
        type_key = self.contracts.contracts[transformer.target].type_key
        return differences(
            message_tree(expected, self.contracts, type_key),
            message_tree(actual, self.contracts, type_key),
            self.rules(transformer),
        )

    def rules(self, transformer: Transformer) -> dict[str, str]:
        """The rule (``file:line:col``) writing each target field of the transformer's mapping,
        from the lineage."""
        fields = self.lineage.get(transformer.file, {}).get("fields", {})
        return {target: entry["rule"] for target, entry in fields.items() if entry.get("rule")}

    @staticmethod
    def _fault_differences(case: MappingCase, fault: TransformError) -> list[Difference]:
        assert case.fault is not None
        site = fault.site
        where = f"{site.file}:{site.line}:{site.column}"
        found = []
        if fault.code != case.fault.code:
            found.append(Difference("fault/code", str(case.fault.code), str(fault.code), where))
        rule = f"{site.file}#{site.target}"
        if rule != case.fault.rule:
            found.append(Difference("fault/rule", case.fault.rule, rule, where))
        return found

    def decode(self, case: MappingCase, path: Path, contract: str) -> BaseModel:
        """A message file of the case as ``contract``'s model (``decode_file``)."""
        return self.decode_file(case, path, contract)[1]

    def decode_file(
        self, case: Case, path: Path, contract: str | None = None
    ) -> tuple[str, BaseModel]:
        """A message file of a case as its contract's model (the contract its root names when
        none is given); a Finding at the line and column of what is wrong."""
        name = case.display(path)
        try:
            codec, message = self.registry.decode(path.read_bytes(), contract)
        except OSError as exc:
            raise Finding(Pos(name, 1, 1), "message", f"cannot read: {exc.strerror}") from None
        except XmlRejected as exc:
            raise Finding(
                Pos(name, exc.line or 1, exc.column or 1), "message", exc.reason, HINT
            ) from None
        except UnknownContract as exc:
            raise Finding(Pos(name, 1, 1), "message", str(exc), HINT) from None
        except ContractViolation as exc:
            first = exc.problems[0] if exc.problems else None
            line, column = (first.line or 1, first.column or 1) if first else (1, 1)
            what = f"{first.xpath}: {first.message}" if first else str(exc)
            written = contract or exc.contract
            raise Finding(
                Pos(name, line, column),
                "message",
                f"not a valid {written} message ({exc.total} problem(s)): {what}",
                f"run `ccbmdm validate --contract {written} {name}`",
            ) from None
        return codec.name, message


class _Unexpected(Exception):
    """The mapping gave a message where the case expects a fault, or the reverse."""

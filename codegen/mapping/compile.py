"""Stage 6 and the orchestration: every mapping of a project compiled into transformer modules,
with the findings of all stages and the lineage artifact."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import jinja2

from ccbmdm.codegen.catalogue import Flow, Part
from ccbmdm.codegen.diagnostics import Finding, Pos
from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.mapping.bind import Binder, elements, leaves
from ccbmdm.codegen.mapping.functions import Function
from ccbmdm.codegen.mapping.loader import (
    SCHEMA_FILE,
    load_fragment,
    load_mapping,
    table_positions,
)
from ccbmdm.codegen.mapping.syntax import Mapping, Rules
from ccbmdm.codegen.mapping.violations import suggest
from ccbmdm.codegen.project import display_path
from ccbmdm.runtime.messages.mapping import CodeTable, RuleSite, read_table


@dataclass
class MappingBuild:
    findings: list[Finding] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)  # module file name -> source
    transformers: list[dict[str, str]] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]


def module_name(file_stem: str) -> str:
    """``sa-sync.request`` -> ``map_sa_sync_request``."""
    return "map_" + file_stem.replace("-", "_").replace(".", "_")


def compile_mappings(
    root: FilePath,
    folder: FilePath,
    contracts: ContractSet,
    flows: tuple[Flow, ...],
    env: jinja2.Environment,
    functions: dict[str, Function] | None = None,
) -> MappingBuild:
    """Compile every mapping under ``folder``, calling ``functions`` (default: the built-ins);
    findings carry paths relative to ``root``."""
    run = _Run(root, folder, contracts, env, functions, MappingBuild())
    tables, table_pos = run.load_tables()
    fragments = run.load_fragments()
    parts = {(f.code, p.name): (f, p) for f in flows for p in f.parts}
    for path in sorted(folder.glob("*.yaml")):
        run.compile_one(path, parts, tables, fragments)
    # Which tables the mappings use is known only when every mapping and fragment could be read
    # and bound.
    if run.complete:
        run.unused_tables(table_pos)
    run.result.findings = _distinct(run.result.findings)
    return run.result


@dataclass
class _Run:
    """One compilation of a project's mappings: the tables, the fragments, then each mapping."""

    root: FilePath
    folder: FilePath
    contracts: ContractSet
    env: jinja2.Environment
    functions: dict[str, Function] | None
    result: MappingBuild
    # Tables and fragments that exist but failed to load: reported once, where they are wrong.
    broken: set[str] = field(default_factory=set)
    complete: bool = True  # every mapping and fragment read and bound
    used: set[str] = field(default_factory=set)  # the tables the mappings use

    @property
    def schema(self) -> FilePath:
        return self.folder / SCHEMA_FILE

    def display(self, path: FilePath) -> str:
        return display_path(path, self.root)

    def load_tables(self) -> tuple[dict[str, CodeTable], dict[str, Pos]]:
        """The code tables that load without errors, and where each is written."""
        result = self.result
        tables: dict[str, CodeTable] = {}
        table_pos: dict[str, Pos] = {}
        for path in sorted((self.folder / "tables").glob("*.yaml")):
            try:
                located = table_positions(path, self.display(path), self.schema)
            except Finding as finding:
                result.findings.append(finding)
                self.broken.add(path.stem)
                continue
            table = read_table(path)
            errors = len(result.errors)
            if table.name != path.stem:
                result.findings.append(
                    Finding(
                        located["table"].pos,
                        "table-name",
                        f"table {table.name} is in {path.name}; name the file {table.name}.yaml",
                    )
                )
            _check_table(table, located, result)
            if len(result.errors) > errors:
                self.broken |= {table.name, path.stem}
                continue
            tables[table.name] = table
            table_pos[table.name] = located.pos
        return tables, table_pos

    def load_fragments(self) -> dict[str, Rules]:
        """The fragments that load, by name."""
        fragments: dict[str, Rules] = {}
        for path in sorted((self.folder / "fragments").glob("*.yaml")):
            try:
                name, rules, _ = load_fragment(path, self.display(path), self.schema)
            except Finding as finding:
                self.result.findings.append(finding)
                self.broken.add(path.stem)
                self.complete = False
                continue
            fragments[name] = rules
        return fragments

    def compile_one(
        self,
        path: FilePath,
        parts: dict[tuple[str, str], tuple[Flow, Part]],
        tables: dict[str, CodeTable],
        fragments: dict[str, Rules],
    ) -> None:
        """Read, check and bind one mapping; render its transformer when it has no errors."""
        result = self.result
        try:
            mapping = load_mapping(path, self.display(path), self.schema)
        except Finding as finding:
            result.findings.append(finding)
            self.complete = False
            return
        known = parts.get((mapping.flow, mapping.part))
        if known is None:
            self.complete = False
            result.findings.append(
                Finding(
                    mapping.pos,
                    "unknown-flow",
                    f"flow {mapping.flow} has no part {mapping.part} in contracts/flows.yaml",
                )
            )
            return
        result.findings += _header_findings(path, mapping, *known)
        binder = Binder(
            self.contracts, tables, mapping, fragments, self.functions, frozenset(self.broken)
        )
        binder.bind()
        result.findings.extend(binder.findings)
        self.complete = self.complete and binder.complete
        declared = _declared_unread(self.contracts, mapping, result)
        self.used |= binder.tables_used
        if any(f.severity == "error" for f in binder.findings):
            return
        module = module_name(path.name.removesuffix(".yaml"))
        result.modules[f"{module}.py"] = render_transformer(
            self.env, self.contracts, mapping, binder
        )
        result.transformers.append(
            {
                "flow": mapping.flow,
                "part": mapping.part,
                "module": module,
                "source": mapping.source,
                "target": mapping.target,
                "file": mapping.file,
            }
        )
        result.lineage[mapping.file] = _lineage(self.contracts, mapping, binder, declared)

    def unused_tables(self, table_pos: dict[str, Pos]) -> None:
        for name, pos in sorted(table_pos.items()):
            if name not in self.used:
                self.result.findings.append(
                    Finding(pos, "unused-table", f"no mapping uses code table {name}")
                )


def _header_findings(path: FilePath, mapping: Mapping, flow: Flow, part: Part) -> list[Finding]:
    """The mapping's file name and contracts against the flow part it says it maps."""
    findings = []
    expected_name = f"{flow.kebab}.{part.name}.yaml"
    if path.name != expected_name:
        findings.append(
            Finding(
                mapping.pos,
                "file-name",
                f"the mapping of {flow.code} {part.name} must be named {expected_name}",
            )
        )
    for given, wanted, pos, role in (
        (mapping.source, part.sender, mapping.source_pos, "source"),
        (mapping.target, part.receiver, mapping.target_pos, "target"),
    ):
        if given != wanted:
            findings.append(
                Finding(
                    pos,
                    "contract",
                    f"the {role} of {flow.code} {part.name} is {wanted}, not {given}",
                )
            )
    return findings


def _lineage(
    contracts: ContractSet, mapping: Mapping, binder: Binder, declared: list[str]
) -> dict[str, Any]:
    """The lineage artifact's entry for one mapping: what each target field is computed from,
    and the source fields no rule reads."""
    source_key = contracts.contracts[mapping.source].type_key
    source_fields = leaves(contracts, source_key)
    unread = [leaf for leaf in source_fields if leaf not in binder.reads]
    return {
        "flow": mapping.flow,
        "part": mapping.part,
        "source": mapping.source,
        "target": mapping.target,
        "fields": {
            target: {
                "sources": sorted(entry.sources),
                "tables": sorted(entry.tables),
                "functions": sorted(entry.functions),
                "constants": entry.constants,
                "rule": str(entry.rule) if entry.rule else None,
            }
            for target, entry in sorted(binder.lineage.items())
        },
        "unread_sources": [leaf for leaf in unread if not _covered(leaf, declared)],
        "declared_unread": [leaf for leaf in unread if _covered(leaf, declared)],
        "source_fields": source_fields,
    }


def _distinct(findings: list[Finding]) -> list[Finding]:
    """One finding per root cause: a fragment's mistake is found in every mapping that uses it,
    at the same position with the same words."""
    seen: set[tuple[object, ...]] = set()
    distinct = []
    for finding in findings:
        key = (finding.pos, finding.rule, finding.message, finding.severity)
        if key not in seen:
            seen.add(key)
            distinct.append(finding)
    return distinct


def _declared_unread(contracts: ContractSet, mapping: Mapping, result: MappingBuild) -> list[str]:
    """The paths under the mapping's ``unread:`` key, each checked against the source contract
    (a path that names no element is an error: it would silence nothing)."""
    contract = contracts.contracts.get(mapping.source)
    if contract is None:  # reported where the mapping names it
        return []
    known = elements(contracts, contract.type_key)
    declared = []
    for path in mapping.unread:
        dotted = ".".join(path.steps)
        if dotted in known:
            declared.append(dotted)
            continue
        close = difflib.get_close_matches(dotted, list(known), n=1, cutoff=0.6)
        result.findings.append(
            Finding(
                path.pos,
                "unread-path",
                f"{mapping.source} has no element {dotted}",
                f"did you mean {close[0]}?" if close else "write a path of the source contract",
            )
        )
    return declared


def _covered(leaf: str, declared: list[str]) -> bool:
    """Whether a source leaf (with [] after repeated steps) is, or is inside, a declared path."""
    plain = leaf.replace("[]", "")
    return any(plain == path or plain.startswith(path + ".") for path in declared)


def render_transformer(
    env: jinja2.Environment, contracts: ContractSet, mapping: Mapping, binder: Binder
) -> str:
    """The source of one mapping's transformer module, from its bound rules (unformatted)."""
    return env.get_template("transformer.py.jinja2").render(
        mapping=mapping,
        binder=binder,
        sites=[_site_repr(s) for s in binder.sites],
        source_model=_model(contracts, mapping.source),
        target_model=_model(contracts, mapping.target),
    )


def _check_table(table: CodeTable, located: Any, result: MappingBuild) -> None:
    columns = set(table.keys) | set(table.values)
    if set(table.keys) & set(table.values):
        result.findings.append(
            Finding(
                located["keys"].pos, "table-columns", "a column cannot be both a key and a value"
            )
        )
    if table.miss == "pass_through":
        result.findings.append(
            Finding(
                located.key_pos["miss"],
                "pass-through",
                f"{table.name} passes unknown codes through unchanged",
                "the reference project fails on a miss (PD-C05)",
            )
        )
    if table.miss == "default" and (
        table.default is None or set(table.default) != set(table.values)
    ):
        result.findings.append(
            Finding(
                located.key_pos["miss"],
                "table-default",
                "miss: default needs a default row giving every value column",
            )
        )
    seen: dict[tuple[str, ...], int] = {}
    for index, row in enumerate(located["rows"]):
        if set(row) != columns:
            result.findings.append(_row_columns(row, table))
            continue
        key = tuple(str(row[k]) for k in table.keys)
        if key in seen:
            result.findings.append(
                Finding(
                    row.pos,
                    "table-duplicate",
                    f"key {'/'.join(key)} is also in row {seen[key] + 1}",
                )
            )
        seen[key] = index


def _row_columns(row: Any, table: CodeTable) -> Finding:
    """A row whose columns are not the table's: the unknown ones, the missing ones, and the
    column an unknown one probably meant."""
    columns = [*table.keys, *table.values]
    unknown = [c for c in row if c not in columns]
    missing = [c for c in columns if c not in row]
    said = []
    if unknown:
        said.append(f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}")
    if missing:
        said.append(f"no {', '.join(missing)}")
    hint = next(
        (suggest(c, missing) for c in unknown if suggest(c, missing)),
        f"a row of {table.name} has the columns {', '.join(columns)}",
    )
    return Finding(row.pos, "table-row", f"the row has {' and '.join(said)}", hint)


def _model(contracts: ContractSet, name: str) -> str:
    from ccbmdm.codegen.mapping.bind import MODULES

    home, type_name = contracts.contracts[name].type_key
    return f"{MODULES[home]}.{type_name}"


def _site_repr(site: RuleSite) -> str:
    return (
        f"RuleSite({site.file!r}, {site.line}, {site.column}, {site.target!r}, {site.source!r}, "
        f"{site.personal!r})"
    )

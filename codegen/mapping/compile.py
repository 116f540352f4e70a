"""Stage 6 and the orchestration: every mapping of a project compiled into transformer modules,
with the findings of all stages and the lineage artifact."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import jinja2

from ccbmdm.codegen.catalogue import Flow
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
    result = MappingBuild()
    schema = folder / SCHEMA_FILE

    def display(path: FilePath) -> str:
        return display_path(path, root)

    tables: dict[str, CodeTable] = {}
    table_pos: dict[str, Pos] = {}
    # Tables and fragments that exist but failed to load: reported once, where they are wrong.
    broken: set[str] = set()
    for path in sorted((folder / "tables").glob("*.yaml")):
        try:
            located = table_positions(path, display(path), schema)
        except Finding as finding:
            result.findings.append(finding)
            broken.add(path.stem)
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
            broken |= {table.name, path.stem}
            continue
        tables[table.name] = table
        table_pos[table.name] = located.pos
    # Which tables the mappings use is known only when every mapping and fragment could be read
    # and bound.
    complete = True
    fragments: dict[str, Rules] = {}
    for path in sorted((folder / "fragments").glob("*.yaml")):
        try:
            name, rules, _ = load_fragment(path, display(path), schema)
        except Finding as finding:
            result.findings.append(finding)
            broken.add(path.stem)
            complete = False
            continue
        fragments[name] = rules
    parts = {(f.code, p.name): (f, p) for f in flows for p in f.parts}
    used: set[str] = set()
    for path in sorted(folder.glob("*.yaml")):
        try:
            mapping = load_mapping(path, display(path), schema)
        except Finding as finding:
            result.findings.append(finding)
            complete = False
            continue
        known = parts.get((mapping.flow, mapping.part))
        if known is None:
            complete = False
            result.findings.append(
                Finding(
                    mapping.pos,
                    "unknown-flow",
                    f"flow {mapping.flow} has no part {mapping.part} in contracts/flows.yaml",
                )
            )
            continue
        flow, part = known
        expected_name = f"{flow.kebab}.{part.name}.yaml"
        if path.name != expected_name:
            result.findings.append(
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
                result.findings.append(
                    Finding(
                        pos,
                        "contract",
                        f"the {role} of {flow.code} {part.name} is {wanted}, not {given}",
                    )
                )
        binder = Binder(contracts, tables, mapping, fragments, functions, frozenset(broken))
        binder.bind()
        result.findings.extend(binder.findings)
        complete = complete and binder.complete
        declared = _declared_unread(contracts, mapping, result)
        used |= binder.tables_used
        stem = path.name.removesuffix(".yaml")
        if binder.findings and any(f.severity == "error" for f in binder.findings):
            continue
        module = module_name(stem)
        result.modules[f"{module}.py"] = render_transformer(env, contracts, mapping, binder)
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
        source_key = contracts.contracts[mapping.source].type_key
        source_fields = leaves(contracts, source_key)
        unread = [leaf for leaf in source_fields if leaf not in binder.reads]
        result.lineage[mapping.file] = {
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
    for name, pos in sorted(table_pos.items()) if complete else ():
        if name not in used:
            result.findings.append(
                Finding(pos, "unused-table", f"no mapping uses code table {name}")
            )
    result.findings = _distinct(result.findings)
    return result


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

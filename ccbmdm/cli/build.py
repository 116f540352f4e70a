"""The integrator's commands on a project: create it, compile and check it, ask where a field
comes from, list the functions, and gate contract changes."""

from __future__ import annotations

import json
import time
from contextlib import suppress
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ccbmdm.cli import requires
from ccbmdm.cli.app import app, err, out
from ccbmdm.cli.failures import Failed, fail, report
from ccbmdm.cli.params import ListFormat, OutputFormat, ProjectDir, Strict
from ccbmdm.codegen import compiler
from ccbmdm.codegen import report as reports
from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.project import initialise


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder of the new project (created if missing).")
    ],
    force: Annotated[
        bool,
        typer.Option(
            help="Complete an existing project: add the missing files; keep, and list, the "
            "files you changed."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Like --force, but replace the files you changed with the reference, listing them."
        ),
    ] = False,
) -> None:
    """Create a new integration project from the reference contracts."""
    done = initialise(directory, force=force, overwrite=overwrite)
    for line in done.report(directory):
        out.print(escape(line))


@app.command(name="compile")
def compile_(
    project_dir: ProjectDir = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; fail, naming the inputs changed since the last compile, "
            "if target/ is out of date.",
        ),
    ] = False,
    output: OutputFormat = "text",
    strict: Strict = False,
) -> None:
    """Generate typed models and codecs of every contract into the project's target/ folder.

    Nothing is regenerated when no input (contract, catalogue, mapping, code table, fragment)
    changed since the last compile and target/ was not edited.
    """
    # With --format json or sarif, standard output holds the findings only.
    info = out if output == "text" else err
    project = requires.project(project_dir)
    started = time.perf_counter()
    base = compiler.output_dir(project)
    if check:
        stale = compiler.staleness(project)
        if stale:
            err.print(f"[bold red]error:[/] {base} is stale; run `ccbmdm compile`:")
            for reason in stale:
                err.print(f"  stale: {escape(reason)}")
            raise Failed(1)
        findings = compiler.recorded_findings(project)
        report(findings, output)
        info.print(f"{base} is up to date")
        if reports.failing(findings, strict):
            raise Failed(1)
        return
    with err.status("compiling contracts…"):
        compiled = compiler.compile_project(project)
    report(compiled.findings, output)
    contracts, mappings = compiled.counts()
    if not compiled.written:
        info.print(f"up to date: {contracts} contracts and {mappings} mappings, nothing changed")
    else:
        seconds = time.perf_counter() - started
        info.print(f"compiled {contracts} contracts and {mappings} mappings in {seconds:.1f} s")
    info.print(f"into {compiled.package_dir}")
    if reports.failing(compiled.findings, strict):
        raise Failed(1)


@app.command()
def check(
    project_dir: ProjectDir = None, output: OutputFormat = "text", strict: Strict = False
) -> None:
    """Run every static check of the contracts, flow catalogue and mappings; write nothing."""
    build = compiler.generate(requires.project(project_dir))
    report(build.findings, output)
    if output == "text":
        out.print("no errors" + (f", {len(build.findings)} warning(s)" if build.findings else ""))
    if reports.failing(build.findings, strict):
        raise Failed(1)


@app.command(name="functions")
def functions_(
    output: ListFormat = "text",
    project_dir: ProjectDir = None,
) -> None:
    """List the functions mappings may call, the built-in ones and the project's, with their
    signatures and what they do."""
    from ccbmdm.codegen.mapping.functions import described, load_library

    library = load_library(requires.project(project_dir))
    listed = described(library)
    if output == "json":
        out.print_json(json.dumps(listed))
    width = max(len(f["signature"]) for f in listed)
    for builtin, heading in ((True, "built-in functions:"), (False, "project functions:")):
        group = [f for f in listed if (f["defined"] == "built-in") == builtin]
        if output == "text" and group:
            out.print(heading)
        for f in group if output == "text" else ():
            where = "" if builtin else f"  ({f['defined']})"
            out.print(escape(f"  {f['signature']:<{width}}  {f['doc']}{where}".rstrip()))
    report(library.findings)
    if library.errors:
        raise Failed(1)


@app.command()
def lineage(
    field: Annotated[
        str | None,
        typer.Argument(
            help="A target field: mdm/ContactSyncRequest/contact/name (contract and path), "
            "person-sync.request:contact.name (mapping and field) or a field name that only "
            "one mapping writes.",
            show_default=False,
        ),
    ] = None,
    unread: Annotated[
        bool,
        typer.Option(
            "--unread", help="List the source fields no rule reads, per mapping, instead."
        ),
    ] = False,
    flow: Annotated[
        str | None,
        typer.Option(help="With --unread: one flow's mappings only (SA_SYNC or sa-sync)."),
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Show which source fields, rules, code tables and functions make a target field."""
    from ccbmdm.codegen import lineage as questions

    if unread == (field is not None) or (flow is not None and not unread):
        fail("name a target field, or use --unread [--flow F]; see ccbmdm lineage --help")
    project = requires.project(project_dir)
    found = compiler.current_lineage(project)
    if field is None:
        lines = questions.unread(found, flow) or ["every source field is read"]
    else:
        tables = project.mappings / "tables"
        lines = [
            line
            for one in questions.locate(found, field)
            for line in questions.describe(project.root, tables, found, one)
        ]
    for line in lines:
        out.print(escape(line))


@app.command()
def compat(
    against: Annotated[
        str,
        typer.Option(
            "--against",
            help="The reference contracts: a folder (a project, or its contracts folder) or, "
            "when no such folder exists, a git revision such as main, HEAD~1 or a tag.",
        ),
    ],
    output: ListFormat = "text",
    project_dir: ProjectDir = None,
) -> None:
    """Classify every change of the contracts since --against, for senders and for receivers;
    fail on a breaking change unless the contract's version was raised."""

    from ccbmdm.codegen import compat as gate
    from ccbmdm.codegen.xsd_reader import ContractError, read_contracts
    from ccbmdm.conformance.cases import discover, flow_code, read_case

    project = requires.project(project_dir)
    new = read_contracts(project.contracts)
    lineage: dict[str, Any] | None = {}
    with gate.reference_contracts(project, against) as folder:
        try:
            old = read_contracts(folder)
        except ContractError as exc:
            problems = "\n  ".join(str(finding) for finding in exc.findings)
            fail(f"the contracts of {against} cannot be read:\n  {problems}")
        diffs = gate.compare(old, new)
        if any(c.breaking for d in diffs for c in d.changes):
            # over the new contracts, else the old ones they may still be written for
            lineage = gate.lineage(project, new, project.contracts)
            lineage = lineage or gate.lineage(project, old, folder)
    folders = discover(project)

    @cache
    def cases_of(flow: str) -> list[gate.CaseRef]:
        """The readable cases of one flow (the conformance command reports the others)."""
        found = []
        for case in (f for f in folders if flow_code(f.parent.name) == flow):
            with suppress(Finding):
                read = read_case(case, project.root)
                found.append(gate.CaseRef(read.id, read.flow, read.part))
        return found

    found = gate.impacts(diffs, lineage or {}, cases_of)
    if output == "json":
        out.print_json(json.dumps([f.as_json() for f in found]))
    for diff in diffs if output == "text" else ():
        versions = (d.version or "1" if d else "-" for d in (diff.old, diff.new))
        out.print(f"{diff.name} (version {' -> '.join(versions)})")
        for finding in (f for f in found if f.diff is diff):
            out.print(f"  {escape(str(finding))}")
            for label, names in (("mappings", finding.mappings), ("cases", finding.cases)):
                if names:
                    out.print(f"    {label}: {', '.join(names)}")
    if lineage is None:
        err.print("the mappings compile against neither contract set: no mapping is listed")
    blocking = [c for d in diffs for c in d.blocking]
    if blocking:
        err.print(
            f"[bold red]error:[/] {len(blocking)} breaking change(s) in contracts whose version "
            "was not raised: raise `version` on their xs:schema (docs/contracts.md, Compatibility)"
        )
        raise Failed(1)
    breaking = sum(1 for f in found if f.change.breaking)
    err.print(
        f"{len(found)} change(s) since {against}, {breaking} breaking"
        + (", each in a contract whose version was raised" if breaking else "")
    )

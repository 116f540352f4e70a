"""The `ccbmdm` command line.

Each command is a thin layer over the package: it finds the project, calls one function and
turns the known failures into a message for people (what, where, what to do) and an exit code.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from ccbmdm import __version__
from ccbmdm.codegen import compiler
from ccbmdm.codegen import report as reports
from ccbmdm.codegen.diagnostics import Finding, FindingsError
from ccbmdm.codegen.project import Project, ProjectError, display_path, initialise
from ccbmdm.help_labels import use_plain_labels
from ccbmdm.runtime import logs
from ccbmdm.runtime.store.base import StoreError, StoreUnavailable

# The modules of the contract reader, the renderer, the runtime's configuration and the codecs
# take longer to import than a compile that finds target/ up to date takes to run: each command
# imports them when it needs them, and `explained` when a failure of theirs arrives.
if TYPE_CHECKING:
    from ccbmdm.codegen.mapping.loader import Finding
    from ccbmdm.conformance.against import Skipped
    from ccbmdm.conformance.cases import Case
    from ccbmdm.conformance.coverage import MappingCoverage
    from ccbmdm.conformance.mutants import Mutant
    from ccbmdm.conformance.outcome import Outcome
    from ccbmdm.conformance.runner import Kit
    from ccbmdm.docsite.schemas import Schema
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.messages.mapping import Context
    from ccbmdm.runtime.store import Store

use_plain_labels()
# -h as well as --help, on every command and group.
HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    context_settings=HELP,
    name="ccbmdm",
    help="Contract-first integration of CCB and MDM: compile contracts, validate messages.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

OutputFormat = Annotated[
    reports.Format,
    typer.Option(
        "--format",
        help="How findings are written: text for people, json (a list of findings) or sarif "
        "(SARIF 2.1.0, for code scanning) on standard output.",
    ),
]
Strict = Annotated[bool, typer.Option("--strict", help="Fail (exit 1) on warnings too.")]

ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        help="The project folder (default: search upward from the working directory "
        "for ccbmdm_project.yaml).",
        file_okay=False,
    ),
]


# The database cannot be reached (sysexits' EX_UNAVAILABLE): the same command may work later.
UNAVAILABLE = 69


class Failed(Exception):
    """A failure already explained to the user; carries the exit code."""

    def __init__(self, code: int = 1) -> None:
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}")
    raise Failed(code)


def fail_store(exc: StoreError) -> NoReturn:
    """A store that cannot be used: its message names the database, the password redacted."""
    fail(str(exc), UNAVAILABLE if isinstance(exc, StoreUnavailable) else 1)


@contextmanager
def explained(output: reports.Format = "text") -> Iterator[None]:
    """Turn the package's known failures into messages; anything else is an internal error."""
    try:
        yield
    except (ProjectError, compiler.FormatError) as exc:
        fail(str(exc))
    except StoreError as exc:
        fail_store(exc)
    except FindingsError as exc:  # the contracts, the flow catalogue or the mappings
        report(exc.findings, output)
        raise Failed(1) from None
    except Exception as exc:
        from ccbmdm.codegen.render import RenderError
        from ccbmdm.runtime.config import ConfigError

        if isinstance(exc, RenderError | ConfigError):
            fail(str(exc))
        raise


def report(findings: Iterable[Finding], output: reports.Format = "text") -> None:
    """Print findings: as text on standard error, errors last so that they stay in view, with a
    count; as JSON or SARIF on standard output (then always, an empty list too)."""
    ordered = reports.ordered(findings)
    if output == "json":
        sys.stdout.write(json.dumps(reports.as_json(ordered), indent=2) + "\n")
    elif output == "sarif":
        sys.stdout.write(json.dumps(reports.as_sarif(ordered, __version__), indent=2) + "\n")
    elif ordered:
        for finding in ordered:
            style = "red" if finding.severity == "error" else "yellow"
            err.print(escape(str(finding)), style=style)
        err.print(reports.summary(ordered))


def describe_input_error(name: str, exc: Exception) -> str:
    """A message that could not be read, as ``file:line:col: what`` lines."""
    from ccbmdm.runtime.messages.codec import ContractViolation
    from ccbmdm.runtime.messages.xmlsafe import XmlRejected

    if isinstance(exc, XmlRejected):
        where = "".join(f"{n}:" for n in (exc.line, exc.column) if n is not None)
        return f"{name}:{where} XML rejected: {exc.reason}"
    if isinstance(exc, ContractViolation):
        lines = [f"{name}: does not satisfy {exc.contract}, {exc.total} problem(s):"]
        for problem in exc.problems:
            where = ":".join(str(n) for n in (problem.line, problem.column) if n is not None)
            lines.append(f"{name}:{where}: {problem.xpath}: {problem.message}")
        if exc.more:
            lines.append(f"{name}: and {exc.more} more problem(s)")
        return "\n".join(lines)
    return f"{name}: {exc}"


def _project(project_dir: Path | None) -> Project:
    return Project.load(project_dir) if project_dir is not None else Project.find()


def _version(value: bool) -> None:
    if value:
        out.print(f"ccbmdm {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Contract-first integration of CCB and MDM."""


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
    with explained():
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
    with explained(output):
        project = _project(project_dir)
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
    with explained(output):
        build = compiler.generate(_project(project_dir))
    report(build.findings, output)
    if output == "text":
        out.print("no errors" + (f", {len(build.findings)} warning(s)" if build.findings else ""))
    if reports.failing(build.findings, strict):
        raise Failed(1)


@app.command(name="functions")
def functions_(
    output: Annotated[
        Literal["text", "json"], typer.Option("--format", help="text or json.")
    ] = "text",
    project_dir: ProjectDir = None,
) -> None:
    """List the functions mappings may call, the built-in ones and the project's, with their
    signatures and what they do."""
    from ccbmdm.codegen.mapping.functions import described, load_library

    with explained():
        library = load_library(_project(project_dir))
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
    with explained():
        project = _project(project_dir)
        found = compiler.current_lineage(project)
    try:
        if field is None:
            lines = questions.unread(found, flow) or ["every source field is read"]
        else:
            tables = project.mappings / "tables"
            lines = [
                line
                for one in questions.locate(found, field)
                for line in questions.describe(project.root, tables, found, one)
            ]
    except questions.LineageError as exc:
        fail(str(exc))
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
    output: Annotated[
        Literal["text", "json"], typer.Option("--format", help="text or json (a list of changes).")
    ] = "text",
    project_dir: ProjectDir = None,
) -> None:
    """Classify every change of the contracts since --against, for senders and for receivers;
    fail on a breaking change unless the contract's version was raised."""
    from contextlib import suppress
    from functools import cache

    from ccbmdm.codegen import compat as gate
    from ccbmdm.codegen.xsd_reader import ContractError, read_contracts
    from ccbmdm.conformance.cases import discover, flow_code, read_case

    with explained():
        project = _project(project_dir)
        new = read_contracts(project.contracts)
        lineage: dict[str, Any] | None = {}
        try:
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
        except gate.CompatError as exc:
            fail(str(exc))
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


@app.command()
def transform(
    message: Annotated[Path, typer.Argument(help="The source message (- for standard input).")],
    flow: Annotated[str, typer.Option(help="The flow code, such as SA_SYNC (or sa-sync).")],
    part: Annotated[
        str, typer.Option(help="The message part: request, response, ack or notification.")
    ] = "request",
    context: Annotated[
        Path | None,
        typer.Option(
            help="A YAML file with the clock (clock: ISO date-time) and time_zone to use."
        ),
    ] = None,
    unmask: UnmaskOption = False,
    project_dir: ProjectDir = None,
) -> None:
    """Transform one message through one flow's mapping and print the target message."""
    from ccbmdm.codegen.loader import load_contracts, load_package
    from ccbmdm.runtime.messages.codec import ContractViolation
    from ccbmdm.runtime.messages.contracts import UnknownContract
    from ccbmdm.runtime.messages.mapping import TransformError
    from ccbmdm.runtime.messages.xmlsafe import XmlRejected

    with explained():
        project = _project(project_dir)
        package = load_package(project)
        registry = load_contracts(project)
        ctx = _context(project, context)
    code = flow.upper().replace("-", "_")
    transformer = package.TRANSFORMERS.get((code, part))
    if transformer is None:
        known = ", ".join(f"{f} {p}" for f, p in sorted(package.TRANSFORMERS))
        fail(f"no mapping for flow {code} part {part}; compiled mappings: {known}")
    name = "<stdin>" if str(message) == "-" else str(message)
    try:
        data = sys.stdin.buffer.read() if str(message) == "-" else message.read_bytes()
    except OSError as exc:
        fail(f"{name}: cannot read: {exc.strerror}")
    try:
        _, source = registry.decode(data, transformer.source)
        result = transformer.function(source, ctx)
    except (XmlRejected, UnknownContract, ContractViolation) as exc:
        fail(describe_input_error(name, exc))
    except TransformError as exc:
        fail(f"{exc.unmasked() if unmask else exc}\n  (fault 90000/{exc.code}; input {name})")
    out.print(_pretty(registry[transformer.target].encode(result)), end="")


def _context(project: Project, path: Path | None) -> Context:
    """The transform context: the project's code tables, and the clock and zone of a file."""
    from datetime import datetime

    import yaml

    from ccbmdm.runtime.messages.lexical import configured_datetime
    from ccbmdm.runtime.messages.mapping import CodeTables, Context

    ctx = Context(CodeTables.load(project.mappings / "tables"))
    if path is None:
        return ctx
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        fail(f"{path}: cannot read the context: {exc}")
    if not isinstance(data, dict) or set(data) - {"clock", "time_zone"}:
        fail(f"{path}: a context file may set clock and time_zone only")
    if "clock" in data:
        try:
            instant: datetime = configured_datetime(data["clock"])
        except ValueError as exc:
            fail(f"{path}: clock: {exc}")
        ctx.clock = lambda: instant
    if "time_zone" in data:
        ctx.time_zone = str(data["time_zone"])
    return ctx


def _pretty(xml: bytes) -> str:
    from lxml import etree

    root = etree.fromstring(xml)
    etree.indent(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode() + "\n"


@app.command()
def validate(
    files: Annotated[
        list[Path], typer.Argument(help="Message files to check (- for standard input).")
    ],
    contract: Annotated[
        str | None,
        typer.Option(
            help="The contract, as <system>/<root>; default: found from the root element."
        ),
    ] = None,
    project_dir: ProjectDir = None,
    output: OutputFormat = "text",
) -> None:
    """Check messages against their contracts; print OK <contract> or every problem."""
    from ccbmdm.codegen.loader import load_contracts
    from ccbmdm.runtime.messages.codec import ContractViolation
    from ccbmdm.runtime.messages.contracts import UnknownContract
    from ccbmdm.runtime.messages.xmlsafe import XmlRejected

    with explained(output):
        registry = load_contracts(_project(project_dir))
    failures = 0
    findings: list[Finding] = []
    for path in files:
        name = "<stdin>" if str(path) == "-" else str(path)
        try:
            data = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
        except OSError as exc:
            findings += reports.message_findings(name, Exception(f"cannot read: {exc.strerror}"))
            if output == "text":
                err.print(f"{name}: cannot read: {exc.strerror}")
            failures += 1
            continue
        try:
            codec, _ = registry.decode(data, contract)
        except (XmlRejected, UnknownContract, ContractViolation) as exc:
            findings += reports.message_findings(name, exc)
            if output == "text":
                err.print(escape(describe_input_error(name, exc)))
        else:
            if output == "text":
                out.print(f"OK {codec.name}" + (f"  {name}" if len(files) > 1 else ""))
            continue
        failures += 1
    if output != "text":
        report(findings, output)
    if failures:
        raise Failed(1)


@app.command()
def conformance(
    flow: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only this flow's cases (PERSON_SYNC or person-sync); repeat for more flows."
        ),
    ] = None,
    case: Annotated[
        list[str] | None,
        typer.Option(help="Run only this case (its folder name or flow/case); repeat for more."),
    ] = None,
    keyword: Annotated[
        str | None,
        typer.Option(
            "-k", help="Run the cases whose id matches, as pytest -k: words, and, or, not."
        ),
    ] = None,
    update: Annotated[
        bool,
        typer.Option(
            "--update",
            help="Rewrite the golden messages of the selected cases from what the mappings "
            "give now, and print what changed.",
        ),
    ] = False,
    output: Annotated[
        reports.Format,
        typer.Option(
            "--format",
            help="text, json (every case's result) or sarif (the malformed and failing cases "
            "as SARIF 2.1.0 findings, for code scanning).",
        ),
    ] = "text",
    junit: Annotated[
        Path | None, typer.Option(help="Also write a JUnit XML report to this file (for CI).")
    ] = None,
    coverage: Annotated[
        bool,
        typer.Option(
            "--coverage",
            help="Also report, per mapping, the rules and target fields no selected case "
            "exercises.",
        ),
    ] = False,
    fail_under: Annotated[
        float | None,
        typer.Option(
            "--fail-under",
            min=0,
            max=100,
            help="With --coverage: fail when the rules covered are below this percent.",
        ),
    ] = None,
    time_limit: Annotated[
        float | None,
        typer.Option(
            "--time-limit",
            min=0.001,
            help="Seconds a case may take before it is stopped and fails (default 30; a "
            "case's time_limit_s in case.yaml overrides it).",
        ),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            envvar="CCBMDM_AGAINST",
            help="Run the cases against the bridge at this base URL (a deployment) instead of "
            "the in-process build: the kit posts each input and takes the delivered messages "
            "as CCB and MDM (see --receive).",
        ),
    ] = None,
    receive: Annotated[
        str,
        typer.Option(
            "--receive",
            help="With --against: host:port where the kit takes deliveries, as CCB at /ccb and "
            "MDM at /mdm (port 0: any free port, printed).",
        ),
    ] = "127.0.0.1:0",
    as_ccb: Annotated[
        str | None,
        typer.Option(
            "--as-ccb",
            envvar="CCBMDM_AGAINST_AS_CCB",
            help="With --against: the credential the kit presents to the bridge as CCB: "
            "token_env=VAR, or user=NAME,password_env=VAR (the secret from the environment).",
        ),
    ] = None,
    as_mdm: Annotated[
        str | None,
        typer.Option("--as-mdm", envvar="CCBMDM_AGAINST_AS_MDM", help="The same, as MDM."),
    ] = None,
    bridge_to_ccb: Annotated[
        str | None,
        typer.Option(
            "--bridge-to-ccb",
            envvar="CCBMDM_AGAINST_BRIDGE_TO_CCB",
            help="With --against: the credential the bridge presents to CCB, which the kit's "
            "CCB then requires (same forms); unset, it takes deliveries from anyone.",
        ),
    ] = None,
    bridge_to_mdm: Annotated[
        str | None,
        typer.Option(
            "--bridge-to-mdm", envvar="CCBMDM_AGAINST_BRIDGE_TO_MDM", help="The same, to MDM."
        ),
    ] = None,
    mutate: Annotated[
        bool,
        typer.Option(
            "--mutate",
            help="Change the compiled mappings one rule at a time and report every mutant no "
            "case kills (with --flow: those flows' mappings).",
        ),
    ] = False,
    project_dir: ProjectDir = None,
) -> None:
    """Run the project's conformance cases: each input through its mapping, against its golden."""
    import json
    from functools import partial

    from rich.table import Table

    from ccbmdm.conformance import suite
    from ccbmdm.conformance.cases import flow_code
    from ccbmdm.conformance.coverage import as_json, measure, totals
    from ccbmdm.conformance.limit import limit_of, limited
    from ccbmdm.conformance.runner import Kit

    with explained():
        if fail_under is not None and not coverage:
            fail("--fail-under needs --coverage", 2)
        if against is not None and (update or coverage):
            fail("--against checks a deployment; --update and --coverage work in process", 2)
        if mutate and (case or keyword or update or coverage or junit or against):
            fail("--mutate runs every case of the selected flows: use it with --flow only", 2)
        if output == "sarif" and (mutate or coverage):
            fail("--format sarif reports cases; use json with --mutate or --coverage", 2)
        project = _project(project_dir)
        selection = suite.Selection(tuple(flow or ()), tuple(case or ()), keyword)
        try:
            cases, findings = suite.load(project, selection)
        except suite.BadSelection as exc:
            fail(str(exc))
        if not cases and not findings:
            fail(f"no conformance case in {project.cases} matches the selection")
        with err.status("loading the compiled mappings…"):
            kit = Kit(project)
    flows = {flow_code(f) for f in flow or ()}
    if mutate:
        _mutate(kit, cases, findings, flows, output)
        return
    outcomes: list[Outcome] = []
    skipped: list[Skipped] = []
    if against is not None:
        credentials = {
            "as": {"ccb": as_ccb, "mdm": as_mdm},
            "bridge-to": {"ccb": bridge_to_ccb, "mdm": bridge_to_mdm},
        }
        outcomes, skipped = _run_against(
            kit, project, against, receive, credentials, cases, time_limit, output
        )
    else:
        step = kit.update if update else kit.run
        for number, selected in enumerate(cases, 1):
            limit = limit_of(selected, time_limit)
            outcome = limited(selected, limit, partial(step, selected, time_limit))
            outcomes.append(outcome)
            if output == "text":
                _print_outcome(outcome, number, len(cases), update)
    if junit is not None:
        try:
            suite.write_junit(junit, outcomes, findings)
        except OSError as exc:
            fail(f"{junit}: cannot write the JUnit report: {exc.strerror}")
    mappings = measure(kit.lineage, outcomes, flows) if coverage else []
    if output == "sarif":
        report([*findings, *suite.failure_findings(outcomes)], output)
    elif output == "json":
        document = suite.as_json(outcomes, findings)
        if against is not None:
            document["skipped"] = [{"case": s.case.id, "reason": s.reason} for s in skipped]
        if coverage:
            document["coverage"] = as_json(mappings)
        out.print_json(json.dumps(document))
    else:
        report(findings)
        table = Table(title="conformance", title_justify="left")
        for column in ("flow", "cases", "passed", "failed", "time"):
            table.add_column(column, justify="left" if column == "flow" else "right")
        for row in suite.summary(outcomes):
            table.add_row(
                row.flow, str(row.cases), str(row.passed), str(row.failed), f"{row.seconds:.2f} s"
            )
        out.print(table)
        if skipped:
            out.print(f"{len(skipped)} case(s) skipped: a deployment cannot run them")
        if coverage:
            _print_coverage(mappings)
    # Under --update a rewritten golden or fault is no failure; a broken case still is.
    failed = [o for o in outcomes if not o.passed and not (update and not o.problems)]
    if findings or failed:
        raise Failed(1)
    if fail_under is not None and totals(mappings).rule_percent < fail_under:
        err.print(
            f"rule coverage {totals(mappings).rule_percent:.1f} % is below "
            f"--fail-under {fail_under:g} %"
        )
        raise Failed(1)


def _mutate(
    kit: Kit, cases: list[Case], findings: list[Finding], flows: set[str], output: str
) -> None:
    """--mutate: the mutation run, its survivors and a summary per operator; exit 1 when a
    mutant survives that the allow-list does not name, or a case or the allow-list is
    malformed."""
    import json

    from rich.table import Table

    from ccbmdm.conformance.cases import MappingCase
    from ccbmdm.conformance.mutation import BaselineFailed, mutate

    mapping_cases = [c for c in cases if isinstance(c, MappingCase)]
    with err.status("mutating…") as spinner:

        def progress(number: int, total: int, mutant: Mutant) -> None:
            spinner.update(f"mutant {number}/{total}: {escape(mutant.id)}")

        try:
            result = mutate(kit, mapping_cases, flows, progress)
        except BaselineFailed as exc:
            fail(str(exc))
    findings = [*findings, *result.findings]
    if output == "json":
        document = {
            "mutants": [
                {
                    "id": v.mutant.id,
                    "mapping": v.mutant.mapping,
                    "flow": v.mutant.flow,
                    "part": v.mutant.part,
                    "target": v.mutant.target,
                    "operator": v.mutant.operator,
                    "change": v.mutant.change,
                    "rule": str(v.mutant.rule),
                    "at": str(v.mutant.at),
                    "status": v.status,
                    "cases": v.cases,
                    "rule_exercised": v.covered,
                    "killed_by": v.killed_by,
                    "reason": v.reason,
                }
                for v in result.verdicts
            ],
            "operators": {operator: counts for operator, counts in result.per_operator()},
            "seconds": round(result.seconds, 2),
            "findings": [str(f) for f in findings],
        }
        out.print_json(json.dumps(document))
    else:
        for verdict in result.verdicts:
            if verdict.status not in ("survived", "allowed"):
                continue
            mutant = verdict.mutant
            why = (
                f"allowed: {verdict.reason}"
                if verdict.status == "allowed"
                else "no mapping case runs this mapping"
                if not verdict.cases
                else "no mapping case exercises this rule"
                if not verdict.covered
                else f"{verdict.cases} case(s) run this rule; none notices the change"
            )
            label = "[red]SURVIVED[/]" if verdict.status == "survived" else "[yellow]allowed[/]"
            out.print(
                f"{label} {escape(str(mutant.rule))} {escape(mutant.target)} "
                f"({escape(mutant.mapping)}) {mutant.operator}: {escape(mutant.change)}"
            )
            out.print(f"    {escape(why)}")
        report(findings)
        table = Table(title="mutation", title_justify="left")
        for column in ("operator", "mutants", "killed", "survived", "allowed", "not compiled"):
            table.add_column(column, justify="left" if column == "operator" else "right")
        rows = result.per_operator()
        for operator, counts in rows:
            table.add_row(operator, *(str(n) for n in counts.values()))
        table.add_row("total", *(str(sum(c[k] for _, c in rows)) for k in rows[0][1]))
        out.print(table)
        out.print(f"{len(result.verdicts)} mutant(s) in {result.seconds:.1f} s")
    if findings or result.survivors:
        raise Failed(1)


def _run_against(
    kit: Kit,
    project: Project,
    url: str,
    receive: str,
    credentials: dict[str, dict[str, str | None]],
    cases: list[Case],
    time_limit: float | None,
    output: str,
) -> tuple[list[Outcome], list[Skipped]]:
    """The cases run against the bridge at ``url``, the kit taking deliveries at ``receive``."""
    from contextlib import ExitStack
    from functools import partial

    from pydantic import ValidationError

    from ccbmdm.codegen.catalogue import load_catalogue
    from ccbmdm.conformance import suite
    from ccbmdm.conformance.against import (
        AGAINST_GRACE_S,
        Against,
        AgainstError,
        Skipped,
        credential,
    )
    from ccbmdm.conformance.cases import MappingCase
    from ccbmdm.conformance.limit import limit_of, limited
    from ccbmdm.conformance.receiving import KitSystems
    from ccbmdm.runtime.config import NodeSetting

    try:
        host, port = NodeSetting(listen=receive).address()
    except ValidationError:
        fail(f"--receive {receive!r}: write host:port (port 0: any free port)", 2)
    outcomes: list[Outcome] = []
    skipped: list[Skipped] = []
    try:
        given = {
            kind: {
                system: credential(spec, f"--{kind}-{system}")
                for system, spec in specs.items()
                if spec is not None
            }
            for kind, specs in credentials.items()
        }
        with explained():
            flows = load_catalogue(project.contracts / "flows.yaml")
        every_case = [
            c for c in suite.load(project, suite.Selection())[0] if isinstance(c, MappingCase)
        ]
        systems = KitSystems(kit.registry, flows, given["bridge-to"])
        with ExitStack() as stack:
            try:
                base = systems.serve(stack, host, port)
            except RuntimeError:  # uvicorn could not bind: it said why just above
                fail(f"--receive {receive}: the kit cannot listen there; is the port in use?")
            err.print(f"the kit takes deliveries as CCB at {base}/ccb and as MDM at {base}/mdm")
            for system, checked in systems.checked.items():
                if not checked:
                    err.print(
                        f"  (as {system.upper()} from any caller: no --bridge-to-{system} given)"
                    )
            runner = Against(kit, flows, url, given["as"], systems, every_case, time_limit)
            stack.callback(runner.close)
            for number, selected in enumerate(cases, 1):
                # The kit stops waiting for the bridge at the case's limit; past it, what still
                # runs is the kit's own work on the case (decoding its input, say): stopped.
                limit = limit_of(selected, time_limit) + AGAINST_GRACE_S
                ran = limited(selected, limit, partial(runner.run, selected))
                if isinstance(ran, Skipped):
                    skipped.append(ran)
                    if output == "text":
                        out.print(
                            f"[{number}/{len(cases)}] {ran.case.id} skipped: {escape(ran.reason)}"
                        )
                    continue
                outcomes.append(ran)
                if output == "text":
                    _print_outcome(ran, number, len(cases), False)
    except AgainstError as exc:
        fail(str(exc))
    return outcomes, skipped


def _print_coverage(mappings: list[MappingCoverage]) -> None:
    """Each mapping's rules and fields no case exercises, then the coverage table."""
    from rich.table import Table

    from ccbmdm.conformance.coverage import totals

    for mapping in mappings:
        if not mapping.uncovered_rules and not mapping.uncovered_fields:
            continue
        cases = "no case" if not mapping.cases else f"{mapping.cases} case(s)"
        out.print(f"{escape(mapping.file)} ({mapping.flow} {mapping.part}, {cases}):")
        for rule in mapping.uncovered_rules:
            written = sorted(t for t, r in mapping.fields.items() if r == rule)
            out.print(f"    rule {escape(rule)} not exercised ({', '.join(written)})")
        listed = {t for t, r in mapping.fields.items() if r in mapping.uncovered_rules}
        for target in mapping.uncovered_fields:
            if target not in listed:  # a field without a rule of its own
                out.print(f"    field {escape(target)} not exercised")
    table = Table(title="coverage", title_justify="left")
    for column in ("mapping", "cases", "rules", "fields", "rules %", "fields %"):
        table.add_column(column, justify="left" if column == "mapping" else "right")
    for mapping in mappings:
        table.add_row(
            f"{mapping.flow} {mapping.part}",
            str(mapping.cases),
            f"{len(mapping.covered_rules)}/{len(mapping.rules)}",
            f"{mapping.exercised_fields}/{len(mapping.fields)}",
            f"{mapping.rule_percent:.1f}",
            f"{mapping.field_percent:.1f}",
        )
    total = totals(mappings)
    table.add_row(
        "total",
        str(sum(m.cases for m in mappings)),
        f"{total.covered_rules}/{total.rules}",
        f"{total.covered_fields}/{total.fields}",
        f"{total.rule_percent:.1f}",
        f"{total.field_percent:.1f}",
    )
    out.print(table)


def _print_outcome(outcome: Outcome, number: int, total: int, update: bool) -> None:
    from ccbmdm.conformance.suite import failure_lines

    progress = f"[{number}/{total}] {outcome.case.id}"
    if update:
        changed = "updated" if outcome.differences or outcome.notes else "unchanged"
        out.print(f"{progress} {'FAILED' if outcome.problems else changed}")
        for difference in outcome.differences:
            out.print(f"    {escape(str(difference))}")
        for line in (*outcome.notes, *outcome.problems):
            out.print(f"    {escape(line)}")
        return
    out.print(f"{progress} " + ("[green]passed[/]" if outcome.passed else "[red]FAILED[/]"))
    for line in failure_lines(outcome):
        out.print(f"    {escape(line)}")


RUNTIME_CONFIG = "ccbmdm_runtime.yaml"

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="CCBMDM_STORE",
        help="The runtime's store: a SQLite file or a postgresql:// DSN "
        "(default: target/runtime.db in the project).",
    ),
]


def _open_store(dsn: str | None, project_dir: Path | None) -> Store:
    from ccbmdm.runtime.store import open_store

    if dsn is None:
        with explained():
            project = _project(project_dir)
        path = project.target / "runtime.db"
        if not path.exists():
            fail(f"no store at {path}; pass --store (a SQLite file or a postgresql:// DSN)")
        dsn = str(path)
    with explained():
        store = open_store(dsn)
        store.migrate()
    return store


UnmaskOption = Annotated[
    bool,
    typer.Option(
        "--unmask",
        help="Show the values of personal data that reasons withhold (***), re-derived from "
        "the data itself; for an operator's terminal, never for a log or a ticket.",
    ),
]


@app.command()
def status(
    store: StoreOption = None, unmask: UnmaskOption = False, project_dir: ProjectDir = None
) -> None:
    """Counts per lifecycle and state, the oldest Pending request, every Error and its reason."""
    from rich.table import Table

    from ccbmdm.runtime.operations import status as read_status

    opened = _open_store(store, project_dir)
    current = read_status(opened)
    table = Table("machine", "state", "rows", title="ccbmdm status")
    for (machine, state), count in sorted(current.counts.items()):
        table.add_row(machine, state, str(count))
    out.print(table)
    age = current.oldest_pending_age_s()
    out.print("oldest Pending request: " + ("none" if age is None else f"{age:.0f} s old"))
    if current.errors:
        out.print(f"{len(current.errors)} in ERROR:")
        unmasked = _unmasker(opened, project_dir) if unmask else None
        for entry in current.errors:
            out.print(f"  {entry.kind} {entry.id} {escape(entry.key)}: {escape(entry.reason)}")
            shown = unmasked(entry.id) if unmasked and entry.kind == "sync_request" else None
            if shown:
                out.print(f"    unmasked: {escape(shown)}")


def _unmasker(store: Store, project_dir: Path | None) -> Callable[[int], str | None]:
    """The reasons of sync requests in Error with personal values, re-derived from the final
    snapshots kept with them, through the project's contracts."""
    from ccbmdm.codegen.catalogue import load_catalogue
    from ccbmdm.codegen.loader import load_contracts
    from ccbmdm.runtime.lifecycles.sync import unmasked_reasons

    with explained():
        project = _project(project_dir)
        contracts = load_contracts(project)
        flows = load_catalogue(project.contracts / "flows.yaml")
    senders = {
        flow.code: part.sender for flow in flows for part in flow.parts if part.name == "request"
    }
    err.print("--unmask: personal data is shown below; keep it off logs and tickets")
    return lambda request_id: unmasked_reasons(store, contracts, senders, request_id)


@app.command()
def discard(
    request_id: Annotated[
        int, typer.Argument(help="The sync request, as `ccbmdm status` lists it.")
    ],
    reason: Annotated[str, typer.Option(help="Why it is discarded; kept with the request.")],
    store: StoreOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Discard a sync request in Error (the change will not reach MDM), with a reason."""
    from ccbmdm.runtime.operations import NotInError
    from ccbmdm.runtime.operations import discard as discard_request

    try:
        discard_request(_open_store(store, project_dir), request_id, reason)
    except (NotInError, ValueError) as exc:
        fail(str(exc))
    out.print(f"sync request {request_id} discarded")


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="CCBMDM_CONFIG",
        help="The runtime configuration (store, nodes, credentials by environment variable, "
        f"delivery); default: {RUNTIME_CONFIG} in the project, else SQLite in target/ with "
        "the reference simulators.",
        dir_okay=False,
    ),
]
LogLevelOption = Annotated[
    logs.Level,
    typer.Option(
        "--log-level",
        envvar="CCBMDM_LOG_LEVEL",
        help="The least severe log lines written to standard error: debug, info (every "
        "delivery and lifecycle move), warning (retries, faults) or error.",
    ),
]
LogFormatOption = Annotated[
    logs.Format,
    typer.Option(
        "--log-format",
        envvar="CCBMDM_LOG_FORMAT",
        help="json (one JSON object a line), text (lines for people), or auto: text on a "
        "terminal, json otherwise.",
    ),
]
WorkersOption = Annotated[
    int, typer.Option("--workers", min=1, max=64, help="Worker processes sharing the store.")
]
BatchOption = Annotated[
    int | None,
    typer.Option("--batch", min=1, max=10_000, help="Items per claim (default: the config's)."),
]


def _runtime(config: Path | None, project_dir: Path | None) -> Runtime:
    """The runtime a configuration describes: ``--config``, else the project's
    ``ccbmdm_runtime.yaml``, else SQLite in target/ with the reference simulators."""
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.config import load_config, reference_config

    with explained():
        project = _project(project_dir)
        if config is not None and not config.exists():
            fail(
                f"no runtime configuration at {config}; pass an existing --config FILE "
                "(store, nodes and delivery: see docs/runtime.md, Configuration)"
            )
        path = config or project.root / RUNTIME_CONFIG
        if path.exists():
            return Runtime(load_config(path), project)
        project.target.mkdir(parents=True, exist_ok=True)
        return Runtime(reference_config(str(project.target / "runtime.db")), project)
    raise AssertionError("unreachable")


def _work_until_stopped(runtime: Runtime, workers: int, batch: int | None) -> None:
    """This process's worker and ``workers - 1`` supervised worker processes, until SIGTERM or
    SIGINT; whatever still runs at the end of the grace period is ended (exit status 1)."""
    from ccbmdm.runtime.supervisor import run_supervised
    from ccbmdm.runtime.worker import Shutdown

    shutdown = Shutdown(runtime.config.supervision.stop_grace_s).on_signals()
    run_supervised(runtime, workers, batch, shutdown)


@app.command()
def monitor(
    config: ConfigOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="Work until nothing is due, then exit.")
    ] = False,
    workers: WorkersOption = 1,
    batch: BatchOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "auto",
    project_dir: ProjectDir = None,
) -> None:
    """Move every lifecycle and message on: claim due work, send, process, rescue passed leases."""
    from ccbmdm.runtime.worker import StillBusy

    logs.configure(log_level, log_format)
    runtime = _runtime(config, project_dir)
    try:
        if once:
            with err.status("working until nothing is due…"):
                moved = runtime.worker(batch).drain()
            out.print(f"moved {moved} item(s); nothing more is due")
            return
        out.print(f"monitoring with {workers} worker(s); Ctrl-C stops after the current batch")
        _work_until_stopped(runtime, workers, batch)
    except StillBusy as exc:
        fail(f"{exc}; run the monitor without --once, or with more --workers")
    finally:
        runtime.close()


@app.command()
def resubmit(
    request_ids: Annotated[
        list[int] | None,
        typer.Argument(help="Sync requests in Error, as `ccbmdm status` lists them."),
    ] = None,
    all_errors: Annotated[
        bool, typer.Option("--all-errors", help="Resubmit every sync request in Error.")
    ] = False,
    config: ConfigOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Send sync requests in Error again: the final snapshot re-taken, a new message id, the
    same sync request id. Pressed twice, it sends once."""
    from ccbmdm.runtime.operations import resubmit as resubmit_requests

    if bool(request_ids) == all_errors:
        fail("name the sync requests to resubmit, or pass --all-errors (not both)", 2)
    runtime = _runtime(config, project_dir)
    try:
        if runtime.monitor is None:
            fail("this runtime hosts no ccb node, so it has no sync requests to resubmit")
        result = resubmit_requests(runtime.monitor, None if all_errors else list(request_ids or []))
    finally:
        runtime.close()
    done = result.sent + result.discarded + result.errors
    if done == 0:
        fail("nothing resubmitted: no such request in ERROR (see `ccbmdm status`)")
    out.print(
        f"resubmitted {done}: {result.sent} sent, {result.discarded} without difference "
        f"(discarded), {result.errors} in Error again"
    )


@app.command(name="run")
def run_runtime(
    config: ConfigOption = None,
    workers: WorkersOption = 1,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "auto",
    project_dir: ProjectDir = None,
) -> None:
    """Serve every hosted node's HTTP endpoint and run the workers until stopped."""
    from contextlib import ExitStack

    logs.configure(log_level, log_format)
    runtime = _runtime(config, project_dir)
    try:
        with ExitStack() as stack:
            with explained():
                urls = runtime.serve(stack)
            for url in urls:
                out.print(f"listening: {url}")
            hosted = ", ".join(runtime.nodes)
            out.print(f"running {hosted} with {workers} worker(s); Ctrl-C stops")
            _work_until_stopped(runtime, workers, None)
    finally:
        runtime.close()
    out.print("stopped")


@app.command()
def demo(
    customers: Annotated[
        int, typer.Option("--customers", min=1, max=1_000_000, help="Customers to generate.")
    ] = 1000,
    db: Annotated[
        Path | None,
        typer.Option(
            "--db", help="The SQLite file (default: target/demo.db), replaced if present."
        ),
    ] = None,
    pg: Annotated[
        str | None,
        typer.Option("--pg", help="A PostgreSQL DSN: the demo creates a schema of its own there."),
    ] = None,
    project_dir: ProjectDir = None,
) -> None:
    """Run a synthetic utility end to end between the reference CCB and MDM, with a summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from ccbmdm.runtime.sim.demo import fresh_sqlite, run_demo

    if db is not None and pg is not None:
        fail("give --db or --pg, not both", 2)
    with explained():
        project = _project(project_dir)
        store = _demo_schema(pg) if pg else fresh_sqlite(db or project.target / "demo.db")
    columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress("{task.description}", *columns, console=err) as bars:

        def phase(name: str, total: int) -> Any:
            task = bars.add_task(name, total=total)
            return lambda done: bars.advance(task, done)

        with explained():
            report = run_demo(project, store, customers, phase)
    _print_demo(report)


def _demo_schema(dsn: str) -> str:
    """A schema of its own for the demo's run in a PostgreSQL database, named by the time."""
    import psycopg

    from ccbmdm.runtime.store.postgres import PostgresStore

    schema = f"ccbmdm_demo_{time.strftime('%Y%m%d%H%M%S')}"
    admin = PostgresStore(dsn)
    try:
        with admin.transaction() as tx:
            tx.execute(f"CREATE SCHEMA {schema}")
    except psycopg.Error as exc:
        reason = admin.described(exc)
        raise StoreError(f"cannot create the demo's schema in {admin.where}: {reason}") from None
    finally:
        admin.close()
    err.print(f"PostgreSQL schema {schema}")
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options=-csearch_path%3D{schema}"


def _print_demo(report: Any) -> None:
    from rich.table import Table

    out.print(f"[bold]ccbmdm demo[/]: {report.customers} customers")
    phases = Table("phase", "seconds", title="time per phase")
    for name, seconds in report.phases:
        phases.add_row(name, f"{seconds:.1f}")
    phases.add_row("total", f"{sum(s for _, s in report.phases):.1f}")
    out.print(phases)
    messages = Table("flow", "part", "messages", title="messages relayed by the bridge")
    for (flow, part), count in sorted(report.messages.items()):
        messages.add_row(flow, part, str(count))
    out.print(messages)
    requests = Table("machine", "state", "requests", title="requests per state")
    for (machine, state), count in sorted(report.requests.items()):
        requests.add_row(machine, state, str(count))
    out.print(requests)
    if report.bills:
        bills = Table("billing", "count", title="bills")
        for name, count in sorted(report.bills.items()):
            bills.add_row(name, str(count))
        out.print(bills)
    if report.rate_check:
        out.print(f"rate check: {escape(report.rate_check)}")
    if report.errors:
        out.print(f"[bold red]{len(report.errors)} in Error:[/]")
        for machine, key, reason in report.errors:
            out.print(f"  {machine} {escape(key)}: {escape(reason)}")
    else:
        out.print("no request in Error")


docs_app = typer.Typer(
    context_settings=HELP,
    help="The documentation site: the contract and mapping reference with the guides.",
    no_args_is_help=True,
)
app.add_typer(docs_app, name="docs")

OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        file_okay=False,
        help="Folder of the built HTML (default: the project's target/site).",
    ),
]
StrictOption = Annotated[
    bool,
    typer.Option("--strict", help="Fail on any warning of the site build (a broken link, a page)."),
]


def _build_docs(project_dir: Path | None, out_dir: Path | None, strict: bool) -> Path:
    from ccbmdm.conformance.cases import discover, read_case
    from ccbmdm.docsite.build import SiteError, build_site
    from ccbmdm.docsite.flows import CaseSummary

    with explained():
        project = _project(project_dir)
        started = time.perf_counter()
        with err.status("building the documentation site…"):
            read = [read_case(folder, project.root) for folder in discover(project)]
            cases = [CaseSummary(c.id, c.flow, c.part, c.description) for c in read]
            try:
                site = build_site(
                    project,
                    out_dir,
                    strict=strict,
                    cases=cases,
                    cli=app,
                    published=_site_schemas(project),
                )
            except SiteError as exc:
                fail(f"the site did not build:\n{exc}")
    for warning in site.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")
    seconds = time.perf_counter() - started
    out.print(f"built the site in {seconds:.1f} s into {site.out}")
    return site.out


def _site_schemas(project: Project) -> list[Schema]:
    """The schemas of the kit's cases and of the runtime's configuration, which the site
    publishes beside the project's mapping schema but may not import."""
    from ccbmdm.conformance.cases import SCHEMA_FILE as CASE_SCHEMA
    from ccbmdm.docsite.schemas import Schema
    from ccbmdm.runtime.config import json_schema

    cases = display_path(project.cases, project.root)
    return [
        Schema(
            "case.schema.json",
            (f"{cases}/*/*/case.yaml",),
            json.loads(CASE_SCHEMA.read_text(encoding="utf-8")),
        ),
        Schema("runtime-config.schema.json", (RUNTIME_CONFIG,), json_schema()),
    ]


@docs_app.command(name="build")
def docs_build(
    out_dir: OutOption = None, strict: StrictOption = False, project_dir: ProjectDir = None
) -> None:
    """Generate the reference pages and build the site; open index.html in a browser."""
    site = _build_docs(project_dir, out_dir, strict)
    out.print(f"open {site / 'index.html'}")


@docs_app.command(name="serve")
def docs_serve(
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="The port to listen on (0: any free port)."),
    ] = 8000,
    out_dir: OutOption = None,
    strict: StrictOption = False,
    project_dir: ProjectDir = None,
) -> None:
    """Build the site, then serve it on 127.0.0.1 until interrupted."""
    from ccbmdm.docsite.serve import server

    site = _build_docs(project_dir, out_dir, strict)
    try:
        httpd = server(site, port)
    except OSError as exc:
        fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror}; pick another --port")
    out.print(f"serving the site on http://127.0.0.1:{httpd.server_port}/ (Ctrl+C stops)")
    with httpd:
        httpd.serve_forever()


sim_app = typer.Typer(
    context_settings=HELP,
    help="The reference simulators of CCB and MDM, as HTTP services or for one task.",
    no_args_is_help=True,
)
app.add_typer(sim_app, name="sim")

PortOption = Annotated[int, typer.Option("--port", min=1, max=65535, help="The port to listen on.")]
BridgeOption = Annotated[
    str, typer.Option("--bridge", help="The bridge's base URL (a runtime serving it).")
]
TokenOption = Annotated[
    str,
    typer.Option(
        "--token-env",
        help="The environment variable holding the bearer token the simulator and the bridge "
        "present to each other.",
    ),
]
ViewerOption = Annotated[
    str,
    typer.Option(
        "--viewer",
        help="The user an operator gives a browser (HTTP Basic) to read the entity pages.",
    ),
]
ViewerPasswordOption = Annotated[
    str,
    typer.Option(
        "--viewer-password-env",
        help="The environment variable holding that user's password; unset, only the bridge's "
        "token reads the pages.",
    ),
]


DeliveryOption = Annotated[
    Path | None,
    typer.Option(
        "--delivery",
        help="A YAML file whose delivery: settings (as in a runtime configuration) replace the "
        "simulator's (lease 30 s, backoff from 1 s to 30 s, retry window 10 min).",
        dir_okay=False,
    ),
]


def _serve_simulator(
    name: Literal["ccb", "mdm"],
    port: int,
    store: str | None,
    bridge: str,
    token_env: str,
    viewer: tuple[str, str],
    delivery: Path | None,
    project_dir: Path | None,
) -> None:
    """A runtime hosting one simulator's node on ``port``; the bridge is reached over HTTP.
    Its pages show persons' data: they need the bridge's token or the viewer's password."""
    from contextlib import ExitStack

    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.config import (
        REFERENCE_SYSTEMS,
        SIMULATOR_DELIVERY,
        CredentialSetting,
        NodeSetting,
        RuntimeConfig,
        load_delivery,
    )

    token = CredentialSetting(token_env=token_env)
    user, password_env = viewer
    viewers = (
        {user: CredentialSetting(user=user, password_env=password_env)}
        if os.environ.get(password_env)
        else {}
    )
    other: Literal["ccb", "mdm"] = "mdm" if name == "ccb" else "ccb"
    with explained():
        project = _project(project_dir)
        project.target.mkdir(parents=True, exist_ok=True)
        config = RuntimeConfig(
            store=store or str(project.target / f"{name}.db"),
            delivery=SIMULATOR_DELIVERY if delivery is None else load_delivery(delivery),
            nodes={
                name: NodeSetting(
                    system=REFERENCE_SYSTEMS[name],
                    listen=f"127.0.0.1:{port}",
                    accept={"bridge": token},
                    viewers=viewers,
                ),
                "bridge": NodeSetting(url=bridge, credential=token),
                other: NodeSetting(url=bridge, credential=token),  # reached only through it
            },
        )
        runtime = Runtime(config, project)
        try:
            with ExitStack() as stack:
                for url in runtime.serve(stack):
                    out.print(f"listening: {url}")
                out.print(
                    f"pages: for {user} (HTTP Basic, password in {password_env})"
                    if viewers
                    else f"pages: only with the bridge's token (set {password_env} for a browser)"
                )
                out.print(f"the {name.upper()} simulator is running; Ctrl-C stops it")
                _work_until_stopped(runtime, 1, None)
        finally:
            runtime.close()
    out.print("stopped")


ccb_app = typer.Typer(
    context_settings=HELP, help="The reference CCB: serve it (no command), or one task."
)
mdm_app = typer.Typer(
    context_settings=HELP, help="The reference MDM: serve it (no command), or one task."
)
sim_app.add_typer(ccb_app, name="ccb")
sim_app.add_typer(mdm_app, name="mdm")


@ccb_app.callback(invoke_without_command=True)
def sim_ccb(
    context: typer.Context,
    port: PortOption = 8401,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="Its SQLite file or postgresql:// DSN (default: target/ccb.db)."
        ),
    ] = None,
    bridge: BridgeOption = "http://127.0.0.1:8400",
    token_env: TokenOption = "CCBMDM_SIM_TOKEN",
    viewer: ViewerOption = "operator",
    viewer_password_env: ViewerPasswordOption = "CCBMDM_SIM_VIEWER_PASSWORD",
    delivery: DeliveryOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "auto",
    project_dir: ProjectDir = None,
) -> None:
    """Serve the reference CCB over HTTP, with its monitors, until stopped."""
    if context.invoked_subcommand is None:
        logs.configure(log_level, log_format)
        _serve_simulator(
            "ccb",
            port,
            store,
            bridge,
            token_env,
            (viewer, viewer_password_env),
            delivery,
            project_dir,
        )


@mdm_app.callback(invoke_without_command=True)
def sim_mdm(
    context: typer.Context,
    port: PortOption = 8402,
    store: Annotated[
        str | None,
        typer.Option(
            "--store", help="Its SQLite file or postgresql:// DSN (default: target/mdm.db)."
        ),
    ] = None,
    bridge: BridgeOption = "http://127.0.0.1:8400",
    token_env: TokenOption = "CCBMDM_SIM_TOKEN",
    viewer: ViewerOption = "operator",
    viewer_password_env: ViewerPasswordOption = "CCBMDM_SIM_VIEWER_PASSWORD",
    delivery: DeliveryOption = None,
    log_level: LogLevelOption = "info",
    log_format: LogFormatOption = "auto",
    project_dir: ProjectDir = None,
) -> None:
    """Serve the reference MDM over HTTP, with its monitors, until stopped."""
    if context.invoked_subcommand is None:
        logs.configure(log_level, log_format)
        _serve_simulator(
            "mdm",
            port,
            store,
            bridge,
            token_env,
            (viewer, viewer_password_env),
            delivery,
            project_dir,
        )


@ccb_app.command("initial-load")
def sim_initial_load(config: ConfigOption = None, project_dir: ProjectDir = None) -> None:
    """Create one sync request per CCB entity with the initial-load flag (docs/flows.md §0.2)."""
    from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator

    runtime = _runtime(config, project_dir)
    try:
        ccb = runtime.systems.get("ccb")
        if not isinstance(ccb, CcbSimulator):
            fail("this runtime does not host the reference CCB")
        with err.status("capturing every entity…"):
            count = ccb.initial_load()
    finally:
        runtime.close()
    out.print(
        f"{count} sync request(s) created with the initial-load flag; `ccbmdm monitor` sends them"
    )


def _mdm_simulator(config: Path | None, project_dir: Path | None) -> tuple[Runtime, Any]:
    """The runtime and its reference MDM (the command needs the simulator hosted)."""
    from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator

    runtime = _runtime(config, project_dir)
    mdm = runtime.systems.get("mdm")
    if not isinstance(mdm, MdmSimulator):
        runtime.close()
        fail("this runtime does not host the reference MDM")
    return runtime, mdm


@mdm_app.command("import-espi")
def sim_import_espi(
    feed: Annotated[
        Path, typer.Argument(help="A NAESB ESPI (Green Button) XML feed.", dir_okay=False)
    ],
    sp: Annotated[
        str, typer.Option("--sp", help="The CCB SP whose installed interval MC gets it.")
    ],
    config: ConfigOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Load a Green Button feed as the interval channel of an SP's installed configuration."""
    from ccbmdm.runtime.sim.mdm.espi import EspiError
    from ccbmdm.runtime.sim.mdm.measurements import MeasurementError, import_espi

    runtime, _ = _mdm_simulator(config, project_dir)
    try:
        with err.status(f"importing {feed.name}…"):
            result = import_espi(runtime.store, feed, sp)
    except (EspiError, MeasurementError, OSError) as exc:
        fail(f"{feed}: {exc}")
    finally:
        runtime.close()
    out.print(
        f"{result.values} interval value(s) of {result.seconds_per_interval // 60} minutes on MC "
        f"{result.mc_id}, {result.first_end} to {result.last_end}; {result.skipped} outside the "
        f"installation, {result.gaps} gap(s)"
    )


@mdm_app.command("correct-read")
def sim_correct_read(
    sp: Annotated[str, typer.Option("--sp", help="The CCB SP whose measurement is corrected.")],
    at: Annotated[
        str, typer.Option("--at", help="The interval's end or the read's instant, with offset.")
    ],
    value: Annotated[str, typer.Option("--value", help="The corrected value (a decimal).")],
    config: ConfigOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Correct a measurement in MDM: usage already billed with it is notified to CCB (flow 13),
    which cancels and rebills; usage not yet on a bill is marked stale."""
    from decimal import Decimal, InvalidOperation

    from ccbmdm.runtime.messages.lexical import parse_datetime
    from ccbmdm.runtime.sim.mdm.measurements import MeasurementError

    try:
        instant = parse_datetime(at)
        Decimal(value)
    except (ValueError, InvalidOperation) as exc:
        fail(f"--at takes an ISO date-time with offset and --value a decimal: {exc}", 2)
    runtime, mdm = _mdm_simulator(config, project_dir)
    try:
        result = mdm.usage.correct_read(sp_id=sp, at=instant, value=value)
    except (MeasurementError, LookupError, ValueError) as exc:
        fail(str(exc))
    finally:
        runtime.close()
    out.print(
        f"MC {result.mc_id} at {result.measurement_date_time}: {result.old_value} -> "
        f"{result.new_value}; {len(result.corrected)} usage transaction(s) notified to CCB, "
        f"{len(result.stale)} stale, {len(result.unchanged)} unchanged"
    )


@app.command("link")
def link_command(
    system: Annotated[str, typer.Argument(help="Where the entity is: ccb or mdm.")],
    kind: Annotated[
        str,
        typer.Argument(
            help="CCB: person, sa, sa-360, sp, usage-request, meter; MDM: service-point."
        ),
    ],
    entity_id: Annotated[str, typer.Argument(help="Its id in that system.")],
    ccb_url: Annotated[
        str, typer.Option("--ccb-url", help="Where the CCB simulator serves its pages.")
    ] = "http://127.0.0.1:8401",
    mdm_url: Annotated[
        str, typer.Option("--mdm-url", help="Where the MDM simulator serves its pages.")
    ] = "http://127.0.0.1:8402",
    config: ConfigOption = None,
    project_dir: ProjectDir = None,
) -> None:
    """Print the address, in the other system, of an entity (through MDM's cross-reference)."""
    from ccbmdm.runtime.sim.links import Bases, NoLink, link

    runtime = _runtime(config, project_dir)
    try:
        url = link(runtime.store, system.lower(), kind, entity_id, Bases(ccb_url, mdm_url))
    except NoLink as exc:
        fail(str(exc))
    finally:
        runtime.close()
    out.print(url)


def run(command: Callable[[], object]) -> int:
    """Run the app and map failures to exit codes, never to a traceback."""
    try:
        try:
            command()
        except StoreError as exc:  # outside `explained`: the database lost mid-command
            fail_store(exc)
    except Failed as exc:
        return exc.code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:
        if os.environ.get("CCBMDM_DEBUG"):
            raise
        err.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}")
        err.print(
            "this is a defect in ccbmdm; rerun with CCBMDM_DEBUG=1 for the traceback and report it"
        )
        return 70
    return 0


def main() -> None:
    """Console entry point."""
    # Standalone mode: usage errors print what is missing with a pointer to --help, exit 2.
    sys.exit(run(app))

"""Commands on single messages: transform one through its mapping, validate files against
their contracts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ccbmdm.cli import requires
from ccbmdm.cli.app import app, err, out
from ccbmdm.cli.failures import Failed, describe_input_error, fail, report
from ccbmdm.cli.params import OutputFormat, ProjectDir, UnmaskOption
from ccbmdm.codegen import report as reports
from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.project import Project

if TYPE_CHECKING:
    from ccbmdm.runtime.messages.mapping import Context


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

    project = requires.project(project_dir)
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

    registry = load_contracts(requires.project(project_dir))
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

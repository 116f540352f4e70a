"""`ccbmdm docs`: build and serve the documentation site of a project."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ccbmdm.cli import requires
from ccbmdm.cli.app import app, docs_app, err, out
from ccbmdm.cli.failures import fail
from ccbmdm.cli.params import RUNTIME_CONFIG, ProjectDir, SiteOut, SiteStrict
from ccbmdm.codegen.project import Project, display_path

if TYPE_CHECKING:
    from ccbmdm.docsite.schemas import Schema

app.add_typer(docs_app, name="docs")


def _build_docs(project_dir: Path | None, out_dir: Path | None, strict: bool) -> Path:
    from ccbmdm.conformance.cases import discover, read_case
    from ccbmdm.docsite.build import SiteError, build_site
    from ccbmdm.docsite.flows import CaseSummary

    project = requires.project(project_dir)
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
    out_dir: SiteOut = None, strict: SiteStrict = False, project_dir: ProjectDir = None
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
    out_dir: SiteOut = None,
    strict: SiteStrict = False,
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

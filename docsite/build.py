"""Build the site: write the generated pages beside the hand-written guides, then run mkdocs.

The pages and the mkdocs configuration are written under the project's ``target/docs/`` (never
committed, like all generated files); the built HTML goes to ``target/site/`` or ``--out``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import typer
import yaml

from ccbmdm.codegen import compiler
from ccbmdm.codegen.catalogue import Flow, load_catalogue
from ccbmdm.codegen.project import Project, display_path
from ccbmdm.codegen.xsd_reader import read_contracts
from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.messages.mapping import CodeTable, CodeTables

from . import (
    benchmarks,
    cli_reference,
    code_tables,
    diagrams,
    findings,
    flows,
    mappings,
    messages,
    rules,
    schemas,
)
from .flows import CaseSummary

GUIDES = "guides"
BENCHMARKS_GUIDE = "benchmarks.md"  # how the suite runs; the results page follows it
NAV_FILE = "nav.yaml"  # in the guides' folder: section title -> its pages, in order
MERMAID = "assets/javascripts/mermaid.min.js"
STYLE = "assets/stylesheets/ccbmdm.css"
# What the site ships from this package's assets/: where each goes in the site.
ASSETS = {MERMAID: "mermaid.min.js", STYLE: "site.css"}


class _PythonName(str):
    """A function mkdocs imports by name, written ``!!python/name:module.function`` in
    mkdocs.yml (how a Markdown extension is given a callable)."""


class _ConfigDumper(yaml.SafeDumper):
    """Writes mkdocs.yml: plain YAML, and :class:`_PythonName` as its tag."""


_ConfigDumper.add_representer(
    _PythonName,
    lambda dumper, name: dumper.represent_scalar(f"tag:yaml.org,2002:python/name:{name}", ""),
)
# ```mermaid blocks become <pre class="mermaid">, which material hands to Mermaid.
MERMAID_FENCE = {
    "name": "mermaid",
    "class": "mermaid",
    "format": _PythonName("pymdownx.superfences.fence_code_format"),
}


class SiteError(CcbmdmError):
    """mkdocs could not build the site, or warned under ``--strict``; lists every warning."""


@dataclass
class Site:
    """What a build wrote and what mkdocs said about it."""

    pages: Path  # the Markdown sources and mkdocs.yml
    out: Path  # the HTML
    warnings: list[str] = field(default_factory=list)


def build_site(
    project: Project,
    out: Path | None = None,
    *,
    strict: bool = False,
    work: Path | None = None,
    cases: Sequence[CaseSummary] = (),
    cli: typer.Typer | None = None,
    published: Sequence[schemas.Schema] = (),
    figures: bool = True,
) -> Site:
    """Generate every page of ``project`` into ``work`` (default: target/docs) and build the
    HTML into ``out`` (default: target/site). ``cases`` are the project's conformance cases,
    which the flow and mapping pages list; ``cli``, the command line's app, adds its reference
    page; ``published`` adds schemas to the project's mapping schema. ``figures=False`` leaves
    the guides' benchmark references as written: the suite times a build whose own figure it
    is about to publish, before the results file has it."""
    source = work or project.target / "docs"
    docs = source / "pages"
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    nav, gaps = write_pages(project, docs, cases, cli, published, figures)
    if strict and gaps:
        raise SiteError("\n".join(gaps))
    site = Site(source, (out or project.target / "site").resolve())
    config = source / "mkdocs.yml"
    config.write_text(
        yaml.dump(_config(project, docs, site.out, nav), Dumper=_ConfigDumper, sort_keys=False)
    )
    site.warnings = gaps + _mkdocs_build(config, strict=strict)
    return site


def write_pages(
    project: Project,
    docs: Path,
    cases: Sequence[CaseSummary] = (),
    cli: typer.Typer | None = None,
    published: Sequence[schemas.Schema] = (),
    figures: bool = True,
) -> tuple[list[Any], list[str]]:
    """Write the home page, the guides and the reference pages; return the navigation and what
    the pages miss (a contract's documentation, a sample), which the pages say too."""
    contracts = read_contracts(project.contracts)
    catalogue = load_catalogue(project.contracts / "flows.yaml", contracts.contracts)
    build = compiler.generate(project)
    lineage: dict[str, Any] = json.loads(build.lineage)
    message_pages = {name: messages.page_path(c) for name, c in contracts.contracts.items()}
    mapping_pages: dict[str, list[str]] = {}
    for mapping_file, entry in lineage.items():
        for contract in (entry["source"], entry["target"]):
            mapping_pages.setdefault(contract, []).append(mappings.page_path(mapping_file))

    assets = resources.files(__package__).joinpath("assets")
    for path, asset in ASSETS.items():
        _write_bytes(docs / path, assets.joinpath(asset).read_bytes())
    results = benchmarks.load(project.root)
    guides = _copy_guides(project.root, docs / GUIDES, results, figures)

    gaps: list[str] = []
    message_nav: list[Any] = ["messages/index.md"]
    index = ["# Messages", "", "Every contract of the project, by system.", ""]
    for system, label in messages.SYSTEMS.items():
        listed = sorted((c for c in contracts.contracts.values() if c.system == system), key=str)
        if not listed:
            continue
        index += [f"## {label}", ""]
        entries = []
        for contract in sorted(listed, key=lambda c: c.root):
            path = message_pages[contract.name]
            text = messages.page(
                contracts,
                contract,
                catalogue,
                mapping_pages,
                project.contracts / "samples",
            )
            _write(docs / path, text)
            gaps += messages.gaps(contracts, contract, project.contracts / "samples")
            index.append(f"- [{contract.root}]({path.removeprefix('messages/')})")
            entries.append({contract.root: path})
        index.append("")
        message_nav.append({label: entries})
    _write(docs / "messages" / "index.md", "\n".join(index))

    mapping_nav: list[Any] = ["mappings/index.md"]
    index = ["# Mappings", "", "Every mapping part, with the lineage of each target field.", ""]
    for mapping_file, entry in sorted(lineage.items()):
        path = mappings.page_path(mapping_file)
        exercising = [
            c for c in cases if c.flow == entry["flow"] and c.part in (entry["part"], "flow")
        ]
        _write(
            docs / path, mappings.page(project.root, mapping_file, entry, message_pages, exercising)
        )
        name = Path(path).stem
        index.append(f"- [{name}]({path.removeprefix('mappings/')}): flow `{entry['flow']}`")
        mapping_nav.append({name: path})
    _write(docs / "mappings" / "index.md", "\n".join(index) + "\n")

    tables = CodeTables.load(project.mappings / "tables").tables
    table_nav = _code_table_pages(tables, lineage, docs)
    flow_nav = _flow_pages(catalogue, lineage, message_pages, cases, docs)
    gaps += findings.place(project, docs, build.findings, lineage, tables)

    if results is not None:
        _write(docs / benchmarks.PAGE, benchmarks.page(results, _benchmarks_guide(guides)))
        _place_after(guides, _benchmarks_guide(guides), {benchmarks.TITLE: benchmarks.PAGE})
    nav: list[Any] = [{"Home": "index.md"}, *guides]
    nav += [
        {"Flows": flow_nav},
        {"Messages": message_nav},
        {"Mappings": mapping_nav},
        {"Code tables": table_nav},
    ]
    if cli is not None:
        _write(docs / cli_reference.PAGE, cli_reference.page(cli))
        nav.append({"Command line": cli_reference.PAGE})
    _write(docs / rules.PAGE, rules.page())
    nav.append({"Rules": rules.PAGE})
    mapping_schema = schemas.mapping_schema(project)
    schemas.write(docs, [*([mapping_schema] if mapping_schema else []), *published])
    nav.append({"Schemas": schemas.PAGE})
    home = _home(
        project,
        len(contracts.contracts),
        len(lineage),
        len(catalogue),
        cli is not None,
        results is not None,
    )
    _write(docs / "index.md", home)
    return nav, gaps


def _flow_pages(
    catalogue: tuple[Flow, ...],
    lineage: dict[str, Any],
    message_pages: dict[str, str],
    cases: Sequence[CaseSummary],
    docs: Path,
) -> list[Any]:
    """A page per flow of the catalogue; their navigation."""
    mapping_pages = {
        (entry["flow"], entry["part"]): mappings.page_path(mapping_file)
        for mapping_file, entry in lineage.items()
    }
    sections = flows.guide_sections(docs / GUIDES / "flows.md", GUIDES)
    nav: list[Any] = ["flows/index.md"]
    index = ["# Flows", "", "Every flow of the catalogue, `contracts/flows.yaml`.", ""]
    index += ["| # | Flow | From | Mode |", "|---|---|---|---|"]
    for flow in catalogue:
        path = flows.page_path(flow)
        text = flows.page(
            flow,
            sections.get(flow.code),
            mapping_pages,
            message_pages,
            [c for c in cases if c.flow == flow.code],
        )
        _write(docs / path, text)
        link = f"[{flow.name}]({path.removeprefix('flows/')}) `{flow.code}`"
        index.append(f"| {flow.number} | {link} | {flow.initiator.upper()} | {flow.mode} |")
        nav.append({f"{flow.number}. {flow.name}": path})
    _write(docs / "flows" / "index.md", "\n".join(index) + "\n")
    return nav


def _code_table_pages(
    tables: Mapping[str, CodeTable], lineage: dict[str, Any], docs: Path
) -> list[Any]:
    """A page per code table, with the mapping pages that read it; their navigation."""
    readers: dict[str, list[str]] = {}
    for mapping_file, entry in sorted(lineage.items()):
        for name in sorted({t for written in entry["fields"].values() for t in written["tables"]}):
            readers.setdefault(name, []).append(mappings.page_path(mapping_file))
    nav: list[Any] = ["code-tables/index.md"]
    index = ["# Code tables", "", "Every code table the mappings translate values by.", ""]
    for name, code_table in sorted(tables.items()):
        path = code_tables.page_path(name)
        _write(docs / path, code_tables.page(code_table, readers.get(name, [])))
        index.append(f"- [{name}]({path.removeprefix('code-tables/')}): {code_table.miss}")
        nav.append({name: path})
    _write(docs / "code-tables" / "index.md", "\n".join(index) + "\n")
    return nav


def _copy_guides(
    root: Path, into: Path, results: benchmarks.Published | None, figures: bool = True
) -> list[dict[str, list[Any]]]:
    """The hand-written pages (docs/*.md), kept together so their links between them hold,
    with their benchmark figures filled in from ``results`` (unless not ``figures``); their
    navigation sections, in the order ``docs/nav.yaml`` gives (a page it does not list goes
    last under Guides)."""
    folder = root / "docs"
    pages = sorted(path.name for path in folder.glob("*.md"))
    for name in pages:
        text = (folder / name).read_text(encoding="utf-8")
        source = display_path(folder / name, root)
        _write(into / name, benchmarks.fill(text, source, results) if figures else text)
    order = folder / NAV_FILE
    sections: dict[str, list[str]] = {}
    if order.is_file():
        for title, listed in (yaml.safe_load(order.read_text(encoding="utf-8")) or {}).items():
            sections[str(title)] = [f"{GUIDES}/{name}" for name in listed if name in pages]
    listed = {page for section in sections.values() for page in section}
    rest = [f"{GUIDES}/{name}" for name in pages if f"{GUIDES}/{name}" not in listed]
    if rest:
        sections.setdefault("Guides", []).extend(rest)
    return [{title: section} for title, section in sections.items() if section]


def _benchmarks_guide(guides: list[dict[str, list[Any]]]) -> str | None:
    """The guide that says how the benchmarks run, if the project has it."""
    page = f"{GUIDES}/{BENCHMARKS_GUIDE}"
    return page if any(page in section for s in guides for section in s.values()) else None


def _place_after(sections: list[dict[str, list[Any]]], page: str | None, entry: Any) -> None:
    """Put ``entry`` in the navigation right after ``page``, else last of the first section."""
    for section in (listed for s in sections for listed in s.values()):
        if page in section:
            section.insert(section.index(page) + 1, entry)
            return
    if sections:
        next(iter(sections[0].values())).append(entry)
    else:
        sections.append({"Guides": [entry]})


def _home(
    project: Project,
    contracts: int,
    mapping_parts: int,
    flow_count: int,
    with_cli: bool,
    with_benchmarks: bool,
) -> str:
    optional = (
        "- [Command line](cli.md): every command and option of `ccbmdm`.\n" if with_cli else ""
    )
    if with_benchmarks:
        optional += (
            f"- [{benchmarks.TITLE}]({benchmarks.PAGE}): the published run of `ccbmdm bench`, "
            "each figure beside its anchors measured in the same run, with the machine and "
            "date.\n"
        )
    return f"""# {project.name}

The reference of the integration between CCB and MDM: every flow, every message contract, every
mapping with the lineage of its fields, every code table, and the guides.

{diagrams.fence(diagrams.pipeline())}
- [Flows](flows/index.md): {flow_count} flows, each with its messages as a sequence diagram, the
  lifecycles it drives as state diagrams, its mappings and its conformance cases.
- [Messages](messages/index.md): {contracts} contracts, each field with its type, cardinality,
  facets and documentation, what each enumeration value means, and a sample message.
- [Mappings](mappings/index.md): {mapping_parts} mapping parts, each target field with the source
  paths it reads, its rule and where that rule is written.
- [Code tables](code-tables/index.md): every code table, its rows, what a value with no row
  does, and the mappings that read it.
{optional}- [Schemas](schemas.md): the JSON Schemas of mappings, cases and the runtime
  configuration, for download and for an editor.
"""


def _config(project: Project, docs: Path, out: Path, nav: list[Any]) -> dict[str, Any]:
    return {
        "site_name": project.name,
        "docs_dir": str(docs),
        "site_dir": str(out),
        "use_directory_urls": False,
        # A link to a missing section is a warning too (an error under --strict).
        "validation": {"anchors": "warn", "unrecognized_links": "warn"},
        "nav": nav,
        # Material draws ```mermaid blocks with the Mermaid it finds loaded: this copy, offline.
        "extra_javascript": [MERMAID],
        "extra_css": [STYLE],
        "theme": {
            "name": "material",
            # The site must work offline: no web fonts from a CDN.
            "font": False,
            "features": [
                "navigation.tabs",
                "navigation.top",
                "search.suggest",
                "search.highlight",
                "content.code.copy",
            ],
            "palette": [
                {
                    "media": "(prefers-color-scheme: light)",
                    "scheme": "default",
                    "toggle": {"icon": "material/weather-night", "name": "Dark mode"},
                },
                {
                    "media": "(prefers-color-scheme: dark)",
                    "scheme": "slate",
                    "toggle": {"icon": "material/weather-sunny", "name": "Light mode"},
                },
            ],
        },
        # A field is found by its name, also inside a path (sendDetails/saId, result.exceptionInfo).
        "plugins": [{"search": {"separator": r"[\s\-/.]+"}}],
        "markdown_extensions": [
            "tables",
            "admonition",
            "attr_list",
            "md_in_html",
            "pymdownx.highlight",
            {"pymdownx.superfences": {"custom_fences": [MERMAID_FENCE]}},
            {"toc": {"permalink": True}},
        ],
    }


def _mkdocs_build(config: Path, *, strict: bool) -> list[str]:
    """Run mkdocs; return its warnings, or raise :class:`SiteError` with them under strict."""
    try:
        from mkdocs.commands.build import build
        from mkdocs.config import load_config
        from mkdocs.exceptions import Abort, ConfigurationError
    except ImportError:
        raise SiteError(
            "mkdocs is not installed; install the documentation extra: pip install 'ccbmdm[docs]'"
        ) from None

    with _captured("mkdocs") as warnings:
        try:
            build(load_config(str(config), strict=strict))
        except (Abort, ConfigurationError) as exc:
            raise SiteError("\n".join([*warnings, str(exc)])) from None
    return warnings


@contextmanager
def _captured(logger_name: str) -> Iterator[list[str]]:
    """The warnings a logger emits while the block runs, instead of on standard error."""
    warnings: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            warnings.append(record.getMessage())

    logger = logging.getLogger(logger_name)
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield warnings
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")

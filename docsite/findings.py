"""The warnings of ``ccbmdm check`` on the pages of the files they concern.

A project with warnings still builds (errors stop it before any page is written); each warning is
a warning of the site build too, and stands in a box on the page of the mapping or code table
it is about, where a reader of that page would otherwise trust it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.project import Project, display_path

from . import code_tables, mappings
from .markdown import inline


def pages(project: Project, lineage: dict[str, Any], tables: Iterable[str]) -> dict[str, str]:
    """The page of each file a finding can name, by the path findings give it."""
    found = {mapping_file: mappings.page_path(mapping_file) for mapping_file in lineage}
    for name in tables:
        table_file = display_path(project.mappings / "tables" / f"{name}.yaml", project.root)
        found[table_file] = code_tables.page_path(name)
    return found


def place(
    project: Project,
    docs: Path,
    findings: Iterable[Finding],
    lineage: dict[str, Any],
    tables: Iterable[str],
) -> list[str]:
    """Add a warning box under the title of each page whose file has findings (of the mappings
    in ``lineage``, of the code tables named ``tables``); return every finding as ``ccbmdm
    check`` prints it."""
    listed = sorted(findings, key=lambda f: (f.pos.file, f.pos.line, f.pos.column))
    by_page: dict[str, list[Finding]] = {}
    where = pages(project, lineage, tables)
    for finding in listed:
        page = where.get(finding.pos.file)
        if page is not None:
            by_page.setdefault(page, []).append(finding)
    for page, concerned in by_page.items():
        path = docs / page
        title, _, rest = path.read_text(encoding="utf-8").partition("\n")
        path.write_text(f"{title}\n\n{box(concerned)}{rest}", encoding="utf-8")
    return [str(finding) for finding in listed]


def box(findings: list[Finding]) -> str:
    """A material admonition listing ``findings``."""
    lines = [f'!!! warning "ccbmdm check: {len(findings)} warning(s)"', ""]
    lines += [f"    - {inline(str(finding))}" for finding in findings]
    return "\n".join(lines) + "\n"

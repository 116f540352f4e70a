"""`ccbmdm docs build` on a project with errors or warnings: what `ccbmdm check` says.

Errors stop the build with the findings `check` prints (file:line:col), never a traceback and
never a site. Warnings do not stop it: each is a warning of the build (an error under
``--strict``) and stands in a box on the page of the file it concerns.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from html import escape
from pathlib import Path

import markdown
import pytest
from case_support import ccbmdm, edit

from ccbmdm.codegen import compiler
from ccbmdm.codegen.diagnostics import Finding, Pos
from ccbmdm.codegen.project import Project, init_project
from ccbmdm.docsite import findings
from ccbmdm.docsite.build import write_pages

pytestmark = pytest.mark.slow

CONTACT_TYPE = "OUCCB2_OUMDM2_ContactType"


def misspelt_source_path(project: Project) -> str:
    edit(project.mappings / "person-sync.request.yaml", "name: entityName", "name: entityNam")
    return "mappings/person-sync.request.yaml:13:13: error[unknown-source-path]"


def unnamed_element(project: Project) -> str:
    edit(
        project.contracts / "ccb" / "PersonSyncRequest.xsd",
        '<xs:element name="person"',
        '<xs:element nme="person"',
    )
    return (
        "contracts/ccb/PersonSyncRequest.xsd:17:9: error[xsd-subset]: PersonSyncRequest: an "
        "element must have a name"
    )


def table_not_yaml(project: Project) -> str:
    with (project.mappings / "tables" / f"{CONTACT_TYPE}.yaml").open("a") as table:
        table.write("rows: [\n")
    return f"mappings/tables/{CONTACT_TYPE}.yaml:11:1: error[yaml]: not valid YAML"


@pytest.mark.parametrize("breaks", [misspelt_source_path, unnamed_element, table_not_yaml])
def test_a_broken_project_gives_the_findings_of_check(
    breaks: Callable[[Project], str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = init_project(tmp_path / "scratch")
    expected = breaks(project)
    where = ("--project-dir", str(project.root))

    check_code, _, check_err = ccbmdm(capsys, "check", *where)
    out = tmp_path / "html"
    code, stdout, stderr = ccbmdm(capsys, "docs", "build", "--out", str(out), *where)

    assert check_code == 1 and code == 1
    assert expected in check_err
    assert stderr == check_err
    assert "Traceback" not in stderr and "internal error" not in stderr
    assert not out.exists() and "built the site" not in stdout


def project_with_warnings(root: Path) -> tuple[Project, list[str]]:
    """A new project whose check warns twice: a table passes misses through, one is unused."""
    project = init_project(root)
    tables = project.mappings / "tables"
    edit(tables / f"{CONTACT_TYPE}.yaml", "miss: fail", "miss: pass_through")
    spare = tables / "OUCCB2_OUMDM2_Spare.yaml"
    shutil.copy(tables / "OUCCB2_OUMDM2_Country.yaml", spare)
    edit(spare, "table: OUCCB2_OUMDM2_Country", "table: OUCCB2_OUMDM2_Spare")
    return project, [
        f"mappings/tables/{CONTACT_TYPE}.yaml:6:1: warning[pass-through]",
        "mappings/tables/OUCCB2_OUMDM2_Spare.yaml:2:1: warning[unused-table]",
    ]


def finding_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.match(r"\S+:\d+:\d+: warning\[", line)]


def test_warnings_build_and_stand_on_the_pages_they_concern(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, expected = project_with_warnings(tmp_path / "scratch")
    where = ("--project-dir", str(project.root))
    check_code, check_out, check_err = ccbmdm(capsys, "check", *where)
    assert check_code == 0 and "2 warning(s)" in check_out
    warned = finding_lines(check_err)
    assert len(warned) == len(expected)
    assert all(line.startswith(start) for line, start in zip(warned, expected, strict=True))

    out = tmp_path / "html"
    code, _, stderr = ccbmdm(capsys, "docs", "build", "--out", str(out), *where)
    assert code == 0, stderr
    for line in warned:
        assert f"warning: {line}" in stderr.splitlines()

    for table, line in zip((CONTACT_TYPE, "OUCCB2_OUMDM2_Spare"), warned, strict=True):
        page = (out / "code-tables" / f"{table}.html").read_text(encoding="utf-8")
        box = re.search(r'<div class="admonition warning">(.*?)</div>', page, re.S)
        assert box, table
        assert "ccbmdm check: 1 warning(s)" in box.group(1)
        assert escape(line, quote=False) in box.group(1), line
    untouched = (out / "code-tables" / "OUCCB2_OUMDM2_Country.html").read_text(encoding="utf-8")
    assert "admonition" not in untouched

    code, _, stderr = ccbmdm(capsys, "docs", "build", "--strict", "--out", str(out), *where)
    assert code == 1
    assert all(line in stderr for line in warned) and "Traceback" not in stderr


def test_a_finding_in_a_mapping_stands_on_the_mapping_page(tmp_path: Path) -> None:
    """The checker's warnings today concern code tables; one in a mapping file goes on the
    page of that mapping, with its markup characters shown as written."""
    project = init_project(tmp_path / "scratch")
    docs = tmp_path / "pages"
    write_pages(project, docs)
    lineage = json.loads(compiler.generate(project).lineage)
    finding = Finding(
        Pos("mappings/person-sync.request.yaml", 12, 7),
        "example",
        "<contact> [name](x) | *kept* as_written `code`",
        severity="warning",
    )
    assert findings.place(project, docs, [finding], lineage, []) == [str(finding)]
    page = (docs / "mappings" / "person-sync.request.md").read_text(encoding="utf-8")
    assert page.startswith('# person-sync.request\n\n!!! warning "ccbmdm check: 1 warning(s)"')
    html = markdown.markdown(page, extensions=["admonition", "tables"])
    box = re.search(r'<div class="admonition warning">(.*?)</div>', html, re.S)
    assert box and "<li>" in box.group(1)
    shown = escape(str(finding), quote=False)
    assert shown in box.group(1), box.group(1)
    other = (docs / "mappings" / "sa-sync.request.md").read_text(encoding="utf-8")
    assert "!!! warning" not in other

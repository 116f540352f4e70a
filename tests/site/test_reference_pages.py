"""The site's command-line page and schemas, built by `ccbmdm docs build` for a new project.

The command tree is walked here independently of the page's writer: every command, under its
full name, and every argument and option it takes must be on the built page, in its command's
section. Each published schema must be its source, byte for byte as JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer
import typer.main
import yaml
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from ccbmdm.cli import app, run
from ccbmdm.codegen.project import Project, init_project
from ccbmdm.conformance.cases import SCHEMA_FILE as CASE_SCHEMA
from ccbmdm.runtime.config import json_schema
from support import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Path]:
    """A new project and its site, built strictly through the command line."""
    folder = tmp_path_factory.mktemp("reference")
    project = init_project(folder / "project")
    out = folder / "html"
    code = run(
        lambda: app(
            ["docs", "build", "--strict", "--out", str(out), "--project-dir", str(project.root)]
        )
    )
    assert code == 0
    return project, out


def command_tree(
    command: TyperCommand | TyperGroup, name: str, parent: typer.Context | None = None
) -> Iterator[tuple[str, TyperCommand | TyperGroup]]:
    yield name, command
    if isinstance(command, TyperGroup):
        context = typer.Context(command, info_name=name.rsplit(" ", 1)[-1], parent=parent)
        for sub in command.list_commands(context):
            child = command.get_command(context, sub)
            assert isinstance(child, TyperCommand | TyperGroup)
            yield from command_tree(child, f"{name} {sub}", context)


def section(page: str, name: str) -> str:
    """The HTML of a command's section: from its heading to the next heading."""
    heading = re.search(rf'<h(\d) id="[^"]+">{re.escape(name)}<a class="headerlink"', page)
    assert heading, f"no section for {name}"
    rest = page[heading.end() :]
    following = re.search(r"<h\d ", rest)
    return rest[: following.start()] if following else rest


def test_the_command_line_page_lists_every_command_and_parameter(
    built: tuple[Project, Path],
) -> None:
    _, out = built
    page = (out / "cli.html").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    tree = list(command_tree(root, "ccbmdm"))
    names = [name for name, _ in tree]
    assert {"ccbmdm docs build", "ccbmdm sim ccb initial-load", "ccbmdm check"} <= set(names)
    for name, command in tree:
        text = section(page, name)
        assert f"Usage: {name} " in text
        first_line = (command.help or "").strip().splitlines()[0]
        assert escape(first_line, quote=False) in text, name
        for parameter in command.params:
            if isinstance(parameter, TyperOption):
                for opt in (*parameter.opts, *parameter.secondary_opts):
                    assert f"{opt}" in text, f"{name}: {opt}"
            else:
                assert isinstance(parameter, TyperArgument)
                shown = parameter.metavar or parameter.name  # as the usage line names it
                assert f"<td>{shown}</td>" in text, f"{name}: {shown}"
    # Help texts with markup characters show as written.
    assert "print OK &lt;contract&gt; or every problem." in section(page, "ccbmdm validate")
    assert "<td>--format</td> <td>text|json|sarif</td> <td>text</td>" in page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert re.search(r'href="cli.html"[^>]*>\s*(<span[^>]*>\s*)?Command line', index)


def test_the_schemas_are_published_as_their_sources(built: tuple[Project, Path]) -> None:
    project, out = built
    sources = {
        "mapping.schema.json": json.loads((project.mappings / "mapping.schema.json").read_text()),
        "case.schema.json": json.loads(CASE_SCHEMA.read_text(encoding="utf-8")),
        "runtime-config.schema.json": json_schema(),
    }
    assert {p.name for p in (out / "schemas").iterdir()} == set(sources)
    page = (out / "schemas.html").read_text(encoding="utf-8")
    for name, source in sources.items():
        published = json.loads((out / "schemas" / name).read_text(encoding="utf-8"))
        assert published == source
        jsonschema.validators.validator_for(published).check_schema(published)
        assert f'href="schemas/{name}"' in page
        assert "$schema=" in page


def test_the_published_schemas_accept_the_files_they_describe(
    built: tuple[Project, Path],
) -> None:
    project, out = built

    def valid(schema_file: str, document: Any) -> list[str]:
        schema = json.loads((out / "schemas" / schema_file).read_text(encoding="utf-8"))
        validator = jsonschema.validators.validator_for(schema)(schema)
        return [error.message for error in validator.iter_errors(document)]

    mapping = project.mappings / "person-sync.request.yaml"
    assert valid("mapping.schema.json", yaml.safe_load(mapping.read_text())) == []
    for case in sorted((REPO / "conformance" / "cases").glob("*/*/case.yaml"))[:20]:
        assert valid("case.schema.json", yaml.safe_load(case.read_text())) == [], case
    config = {
        "store": "target/runtime.db",
        "nodes": {
            "ccb": {"system": "mypackage.ccb:connect"},
            "bridge": {"listen": "127.0.0.1:8400"},
            "mdm": {"url": "https://mdm.example.com", "credential": {"token_env": "MDM_TOKEN"}},
        },
        "delivery": {"lease_s": 60, "max_attempts": 4},
    }
    assert valid("runtime-config.schema.json", config) == []
    assert valid("runtime-config.schema.json", {**config, "source": "x"}) != []

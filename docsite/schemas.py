"""The schemas page: the JSON Schemas of the project's files, published for download.

An editor given a schema completes and checks a mapping, a case or a runtime configuration as
it is typed. The mapping schema is the project's own (``mappings/mapping.schema.json``, the one
the compiler checks mappings against); the others belong to parts the site does not import (the
conformance kit, the runtime), so the command line passes them in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ccbmdm.codegen.mapping.loader import SCHEMA_FILE
from ccbmdm.codegen.project import Project, display_path

from .markdown import inline

PAGE = "schemas.md"
FOLDER = "schemas"


@dataclass(frozen=True)
class Schema:
    """One JSON Schema and the files it describes."""

    file: str  # its name in the site's schemas/ folder
    describes: tuple[str, ...]  # the files it checks, as globs from the project's folder
    document: dict[str, Any]


def mapping_schema(project: Project) -> Schema | None:
    """The schema of the project's mappings, fragments and code tables, if it has one."""
    path = project.mappings / SCHEMA_FILE
    if not path.is_file():
        return None
    folder = display_path(project.mappings, project.root)
    return Schema(
        SCHEMA_FILE,
        (f"{folder}/*.yaml", f"{folder}/fragments/*.yaml", f"{folder}/tables/*.yaml"),
        json.loads(path.read_text(encoding="utf-8")),
    )


def write(docs: Path, schemas: Sequence[Schema]) -> None:
    """Copy each schema into the site (mkdocs copies files that are not Markdown as they are)
    and write the page that says what each is for."""
    for schema in schemas:
        path = docs / FOLDER / schema.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema.document, indent=2) + "\n", encoding="utf-8")
    (docs / PAGE).write_text(page(schemas), encoding="utf-8")


def page(schemas: Sequence[Schema]) -> str:
    """The Markdown of the schemas page."""
    lines = [
        "# Schemas",
        "",
        "The JSON Schemas of the files a project is written in. An editor that knows a file's "
        "schema completes its keys, shows their documentation and marks a mistake as it is "
        "typed, before `ccbmdm check` runs.",
        "",
    ]
    for schema in schemas:
        title = schema.document.get("title", schema.file)
        description = schema.document.get("description", "")
        lines += [
            f"## {inline(str(title))}",
            "",
            f'Download: [{schema.file}]({FOLDER}/{schema.file}){{ download="{schema.file}" }}',
            "",
        ]
        if description:
            lines += [inline(str(description)), ""]
        lines += [
            "Describes: " + ", ".join(f"`{glob}`" for glob in schema.describes) + ". "
            f"With the schema in a `{FOLDER}/` folder of the project, the first line of such "
            "a file that names it:",
            "",
            "```yaml",
            f"# yaml-language-server: $schema={_from(schema.describes[0])}{FOLDER}/{schema.file}",
            "```",
            "",
        ]
    lines += [
        "## Pointing an editor at a schema",
        "",
        "The YAML language server (VS Code's YAML extension, and the other editors that use "
        "the server) reads the schema a file names in a `# yaml-language-server: $schema=` "
        "comment on its first line: a path from the file, or the address of the schema where "
        "this site is served. Instead of a comment in every file, the editor's settings can "
        "give every file of a kind its schema once (VS Code: `.vscode/settings.json` in the "
        "project's folder):",
        "",
        "```json",
        json.dumps(
            {
                "yaml.schemas": {
                    f"{FOLDER}/{schema.file}": list(schema.describes) for schema in schemas
                }
            },
            indent=2,
        ),
        "```",
        "",
        "The paths in the settings are from the project's folder.",
        "",
    ]
    return "\n".join(lines)


def _from(glob: str) -> str:
    """The way up from a file matching ``glob`` to the project's folder."""
    return "../" * glob.count("/")

"""The integration project: where its contracts, mappings, cases and generated code live.

A project is a folder holding ``ccbmdm_project.yaml``; commands find it by searching upward from
the working directory, like git and dbt do, unless they are given ``--project-dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

PROJECT_FILE = "ccbmdm_project.yaml"
_FOLDERS = ("contracts", "mappings", "cases", "target")


def display_path(path: Path, root: Path) -> str:
    """How findings name a file: relative to the project's folder when it is inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class ProjectError(Exception):
    """The project file is missing or malformed; the message says where and what to do."""


@dataclass(frozen=True)
class Project:
    """The folders of one integration project, all absolute."""

    root: Path
    name: str
    contracts: Path
    mappings: Path
    cases: Path
    target: Path
    # Python files (or folders of them) whose typed functions mappings may call
    functions: tuple[Path, ...] = ()

    @classmethod
    def load(cls, root: Path) -> Project:
        """Read ``ccbmdm_project.yaml`` in ``root``."""
        path = root / PROJECT_FILE
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ProjectError(
                f"{path}: no project file; run `ccbmdm init DIR` to create a project"
            ) from None
        except yaml.YAMLError as exc:
            raise ProjectError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ProjectError(f"{path}: expected a mapping of folder names")
        folders: dict[str, Path] = {}
        for key in _FOLDERS:
            value = data.get(key, key)
            if not isinstance(value, str) or not value:
                raise ProjectError(f"{path}: `{key}` must be a folder name, not {value!r}")
            folders[key] = (root / value).resolve()
        name = data.get("name", root.name)
        return cls(
            root=root.resolve(), name=str(name), functions=_functions(data, root, path), **folders
        )

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        """The project that contains ``start`` (default: the working directory)."""
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / PROJECT_FILE).is_file():
                return cls.load(folder)
        raise ProjectError(
            f"no {PROJECT_FILE} in {here} or any folder above it; "
            "run the command inside a project, pass --project-dir, "
            "or create one with `ccbmdm init DIR`"
        )


def _functions(data: dict[str, object], root: Path, path: Path) -> tuple[Path, ...]:
    """The optional `functions` key: a Python file or folder, or a list of them."""
    value = data.get("functions", [])
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise ProjectError(
            f"{path}: `functions` must be a Python file or folder, or a list of them, not {value!r}"
        )
    found = []
    for entry in entries:
        resolved = (root / entry).resolve()
        if not resolved.is_dir() and not (resolved.is_file() and resolved.suffix == ".py"):
            raise ProjectError(
                f"{path}: functions: {entry} is neither a folder nor a Python file; "
                "create it or correct the path"
            )
        found.append(resolved)
    return tuple(found)


# The folders ``ccbmdm init`` copies from the reference project.
_REFERENCE_FOLDERS = ("contracts", "mappings", "cases")
_NEW_PROJECT_FILE = """\
# An integration project: its contracts, mappings and conformance cases. Commands find it by
# searching upward from the working directory for this file (or take --project-dir).
name: {name}
contracts: contracts
mappings: mappings
cases: cases
target: target
# Python files (or folders of them) whose typed functions mappings may call:
# functions: functions/
"""


def init_project(destination: Path, *, force: bool = False) -> Project:
    """Create a project in ``destination`` from the reference contracts shipped in the package."""
    from importlib.resources import as_file

    destination = destination.resolve()
    if (destination / PROJECT_FILE).exists() and not force:
        raise ProjectError(
            f"{destination / PROJECT_FILE} exists already; pass --force to overwrite"
        )
    destination.mkdir(parents=True, exist_ok=True)
    for folder, source in reference_folders().items():
        target = destination / folder
        if source.is_dir():
            with as_file(source) as path:
                _copy_tree(Path(path), target, force=force)
        else:
            target.mkdir(exist_ok=True)
    (destination / PROJECT_FILE).write_text(
        _NEW_PROJECT_FILE.format(name=destination.name), encoding="utf-8"
    )
    (destination / ".gitignore").write_text("target/\n__pycache__/\n", encoding="utf-8")
    return Project.load(destination)


def reference_folders() -> dict[str, Traversable]:
    """The reference project's contracts, mappings and cases, by the new project's folder names.

    A wheel and a strict editable install ship them in the package, as ``ccbmdm/reference/``
    (pyproject's package-dir). A plain editable install maps the package onto the source tree
    instead, and its import finder reaches no data folder nested in the package; there the
    source tree itself, the repository that is the reference project, holds them.
    """
    from importlib.resources import files

    package = files("ccbmdm")
    shipped = package.joinpath("reference")
    if shipped.is_dir():
        return {folder: shipped.joinpath(folder) for folder in _REFERENCE_FOLDERS}
    source = package.parent if isinstance(package, Path) else None
    if source is None or not (source / PROJECT_FILE).is_file():
        raise ProjectError(
            f"{package}: the reference contracts are not installed with ccbmdm; "
            "reinstall it (`pip install ccbmdm`, or `pip install -e .` in its repository)"
        )
    reference = Project.load(source)
    return {
        "contracts": reference.contracts,
        "mappings": reference.mappings,
        "cases": reference.cases,
    }


def _copy_tree(source: Path, target: Path, *, force: bool) -> None:
    import shutil

    for path in sorted(source.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        destination = target / path.relative_to(source)
        if destination.exists() and not force:
            raise ProjectError(f"{destination} exists already; pass --force to overwrite")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)

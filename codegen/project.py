"""The integration project: where its contracts, mappings, cases and generated code live.

A project is a folder holding ``ccbmdm_project.yaml``; commands find it by searching upward from
the working directory, like git and dbt do, unless they are given ``--project-dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

from ccbmdm.errors import CcbmdmError

PROJECT_FILE = "ccbmdm_project.yaml"
_FOLDERS = ("contracts", "mappings", "cases", "target")


def display_path(path: Path, root: Path) -> str:
    """How findings name a file: relative to the project's folder when it is inside it."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class ProjectError(CcbmdmError):
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


@dataclass(frozen=True)
class Initialised:
    """What `ccbmdm init` did, file by file (paths relative to the project's folder)."""

    project: Project
    existed: bool  # the folder held a project already
    added: tuple[str, ...]  # written: they were missing
    unchanged: tuple[str, ...]  # left: identical to the reference
    kept: tuple[str, ...]  # left: the user changed them (no --overwrite)
    replaced: tuple[str, ...]  # overwritten: the user had changed them (--overwrite)

    def report(self, given: Path) -> list[str]:
        """What `ccbmdm init` prints: ``given`` is the folder as the user named it."""
        project = self.project
        if not (self.existed or self.unchanged or self.kept or self.replaced):
            return [
                f"created project {project.name} in {project.root}",
                f"next: cd {given} && ccbmdm compile",
            ]
        lines = [
            f"project {project.name} in {project.root}: {_count(self.added)} added, "
            f"{_count(self.unchanged)} as in the reference",
            *(f"  added {path}" for path in self.added),
        ]
        for paths, what, hint in (
            (self.kept, "kept", " (use --overwrite to replace {})"),
            (self.replaced, "replaced", ""),
        ):
            if len(paths) == 1:
                lines.append(f"{what} 1 file you changed: {paths[0]}" + hint.format("it"))
            elif paths:
                lines.append(f"{what} {len(paths)} files you changed" + hint.format("them") + ":")
                lines.extend(f"  {path}" for path in paths)
        return lines


def _count(paths: tuple[str, ...]) -> str:
    return f"{len(paths)} file" + ("" if len(paths) == 1 else "s")


def init_project(destination: Path, *, force: bool = False) -> Project:
    """Create a project in ``destination`` from the reference contracts shipped in the package."""
    return initialise(destination, force=force).project


def initialise(destination: Path, *, force: bool = False, overwrite: bool = False) -> Initialised:
    """Create a project from the reference, or complete one: never lose an edit unasked.

    Without ``force`` or ``overwrite`` nothing that exists is touched: an existing file is an
    error. ``force`` adds the missing files and keeps every file that differs from the
    reference; ``overwrite`` replaces those too. Files equal to the reference are left alone.
    """
    destination = destination.resolve()
    existed = (destination / PROJECT_FILE).exists()
    reference = _reference_files(destination.name)
    if not (force or overwrite):
        for relative in (PROJECT_FILE, *reference):
            if (destination / relative).exists():
                raise ProjectError(
                    f"{destination / relative} exists already; pass --force to add the missing "
                    "files (files you changed are kept) or --overwrite to replace them as well"
                )
    added, unchanged, kept, replaced = [], [], [], []
    for relative, content in reference.items():
        path = destination / relative
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            added.append(relative)
        else:
            if current == content:
                unchanged.append(relative)
                continue
            if not overwrite:
                kept.append(relative)
                continue
            replaced.append(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for folder in ("contracts", "mappings", "cases"):
        (destination / folder).mkdir(parents=True, exist_ok=True)
    return Initialised(
        Project.load(destination),
        existed,
        tuple(added),
        tuple(unchanged),
        tuple(kept),
        tuple(replaced),
    )


def _reference_files(name: str) -> dict[str, bytes]:
    """Every file of a new project named ``name``, by path relative to its folder."""
    from importlib.resources import as_file

    contents = {
        PROJECT_FILE: _NEW_PROJECT_FILE.format(name=name).encode(),
        ".gitignore": b"target/\n__pycache__/\n",
    }
    for folder, source in reference_folders().items():
        if not source.is_dir():
            continue
        with as_file(source) as root:
            for path in sorted(Path(root).rglob("*")):
                if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
                    continue
                relative = f"{folder}/{path.relative_to(root).as_posix()}"
                contents[relative] = path.read_bytes()
    return contents


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


def function_files(project: Project) -> list[Path]:
    """The Python files the project's `functions` key names, folders expanded (sorted, files
    starting with ``_`` left out)."""
    files: list[Path] = []
    for entry in project.functions:
        found = sorted(p for p in entry.glob("*.py") if not p.name.startswith("_"))
        files.extend(found if entry.is_dir() else [entry])
    return list(dict.fromkeys(files))

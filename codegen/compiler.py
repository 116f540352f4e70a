"""`ccbmdm compile`: contracts in, formatted Python out, in the project's target/ folder.

The generated package is named after a digest of everything that shapes it (the contracts, this
generator's own code and templates), so two projects or two versions never share a module name
and a stale build is recognised by its name alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ccbmdm
from ccbmdm.codegen import lineage
from ccbmdm.codegen.catalogue import load_catalogue
from ccbmdm.codegen.diagnostics import Finding, FindingsError
from ccbmdm.codegen.mapping.compile import compile_mappings
from ccbmdm.codegen.mapping.functions import function_files, load_library
from ccbmdm.codegen.project import Project, display_path
from ccbmdm.codegen.render import Renderer
from ccbmdm.codegen.xsd_reader import SYSTEM_NAMESPACES, read_contracts

PACKAGE_PREFIX = "ccbmdm_contracts_"
MANIFEST = "manifest.json"
LINEAGE = "lineage.json"
# ruff, isolated from any configuration so that the output depends on nothing else.
FORMAT_COMMAND = (sys.executable, "-m", "ruff", "format", "--isolated", "--line-length", "100")
_GENERATOR_SOURCES = (
    "ir.py",
    "naming.py",
    "render.py",
    "xsd_reader.py",
    "compiler.py",
    "catalogue.py",
    "mapping/binder.py",
    "mapping/compile.py",
    "mapping/facets.py",
    "mapping/functions.py",
    "mapping/loader.py",
    "mapping/syntax.py",
    "mapping/violations.py",
    "mapping/writer.py",
)


class FormatError(Exception):
    """The formatter rejected generated code: a generator defect, reported with the file."""


class MappingError(FindingsError):
    """The mappings have errors; every finding (warnings too) is listed."""


@dataclass(frozen=True)
class Build:
    """The generated files of one project, before or after they are written."""

    digest: str
    files: dict[str, str]  # path relative to target/python -> text
    findings: tuple[Finding, ...] = ()
    lineage: str = ""  # the lineage artifact, JSON

    @property
    def package(self) -> str:
        return PACKAGE_PREFIX + self.digest[:16]


def contract_files(project: Project) -> list[Path]:
    return sorted(
        path for system in SYSTEM_NAMESPACES for path in (project.contracts / system).glob("*.xsd")
    )


def inputs_digest(project: Project) -> str:
    """A digest of every input of generation: contract files and the generator itself."""
    digest = hashlib.sha256(f"ccbmdm {ccbmdm.__version__}\n".encode())
    here = Path(__file__).parent
    generator = [here / name for name in _GENERATOR_SOURCES] + sorted(
        (here / "templates").glob("*.jinja2")
    )
    for path in generator:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for path in [
        *contract_files(project),
        project.contracts / "flows.yaml",
        *mapping_files(project),
        *function_files(project),
    ]:
        if path.is_file():
            where = path.relative_to(project.root) if path.is_relative_to(project.root) else path
            digest.update(where.as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def mapping_files(project: Project) -> list[Path]:
    folder = project.mappings
    return sorted(
        [
            *folder.glob("*.yaml"),
            *folder.glob("*.json"),
            *folder.glob("tables/*.yaml"),
            *folder.glob("fragments/*.yaml"),
        ]
    )


def generate(project: Project, *, formatted: bool = True) -> Build:
    """Render and format every generated module, in memory (without ``formatted``, the modules
    as rendered: every check of the inputs is made, and the formatter's process is saved)."""
    digest = inputs_digest(project)
    before = lineage.previous(project.target / LINEAGE)  # before a compile overwrites it
    contracts = read_contracts(project.contracts)
    catalogue = project.contracts / "flows.yaml"
    flows = load_catalogue(catalogue, contracts.contracts, display_path(catalogue, project.root))
    renderer = Renderer(contracts)
    library = load_library(project)
    mappings = compile_mappings(
        project.root, project.mappings, contracts, flows, renderer.env, library.functions
    )
    mappings.findings[:0] = library.findings
    if mappings.errors:
        raise MappingError(mappings.findings)
    findings = [
        *mappings.findings,
        *lineage.new_unread(before, mappings.lineage, contracts, project.root),
    ]
    build = Build(digest, {}, tuple(findings), json.dumps(mappings.lineage, indent=2) + "\n")
    package = build.package
    modules = {
        "common.py": renderer.models_module("common"),
        "ccb.py": renderer.models_module("ccb"),
        "mdm.py": renderer.models_module("mdm"),
        "__init__.py": renderer.package_module(digest, mappings.transformers),
        **mappings.modules,
    }
    for system, namespace in SYSTEM_NAMESPACES.items():
        modules[f"codec_{system}.py"] = renderer.codec_module(system, namespace)  # type: ignore[arg-type]
    modules["py.typed"] = ""
    sources = {name: text for name, text in modules.items() if name.endswith(".py")}
    tidy = _format(sources) if formatted else sources
    for name, text in modules.items():
        build.files[f"{package}/{name}"] = tidy.get(name, text)
    return build


def current_lineage(project: Project) -> lineage.Lineage:
    """The lineage of the project as it is now: the last compile's when its build is current,
    else compiled afresh (nothing is written)."""
    written = lineage.previous(project.target / LINEAGE)
    package = PACKAGE_PREFIX + inputs_digest(project)[:16]
    if written is not None and is_current(output_dir(project) / package):
        return written
    return json.loads(generate(project).lineage)  # type: ignore[no-any-return]


def _format(sources: dict[str, str]) -> dict[str, str]:
    """Format the generated sources as one batch (one formatter process)."""
    with tempfile.TemporaryDirectory(prefix="ccbmdm-format-") as folder:
        root = Path(folder)
        for name, text in sources.items():
            (root / name).write_text(text, encoding="utf-8")
        result = subprocess.run(
            [*FORMAT_COMMAND, "--quiet", "."],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise FormatError(f"formatting generated code failed:\n{result.stderr.strip()}")
        return {name: (root / name).read_text(encoding="utf-8") for name in sources}


def output_dir(project: Project) -> Path:
    return project.target / "python"


def write(build: Build, base: Path, *, prune: bool = True) -> Path:
    """Write a build under ``base`` atomically; returns the package dir.

    With ``prune``, builds of other inputs are removed (`ccbmdm compile`); the loader keeps them,
    since another process may be importing one at that moment.
    """
    base.mkdir(parents=True, exist_ok=True)
    final = base / build.package
    staging = Path(tempfile.mkdtemp(prefix=f".{build.package}-", dir=base))
    try:
        for relative, text in build.files.items():
            path = staging / relative.split("/", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        manifest = {
            "digest": build.digest,
            "package": build.package,
            "files": {rel: _sha(text) for rel, text in sorted(build.files.items())},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        # Same name, same inputs: a current build of another process is left as it is (it may
        # be importing it); a damaged one is moved aside before the new one takes its place.
        if not is_current(final):
            if final.exists():
                os.replace(final, staging.with_name(f".{build.package}-old-{os.getpid()}"))
            try:
                os.replace(staging, final)
            except OSError:
                if not is_current(final):  # not a concurrent writer having won the race
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for old in base.glob(f".{build.package}-old-*"):
            shutil.rmtree(old, ignore_errors=True)
    for other in base.glob(f"{PACKAGE_PREFIX}*") if prune else ():
        if other.name != build.package:
            shutil.rmtree(other, ignore_errors=True)
    if build.lineage:
        (base.parent / LINEAGE).write_text(build.lineage, encoding="utf-8")
    return final


def stale_files(build: Build, base: Path) -> list[str]:
    """Files under ``base`` that differ from ``build``: changed, missing or left over."""
    stale = []
    for relative, text in sorted(build.files.items()):
        path = base / relative
        if not path.is_file():
            stale.append(f"{path} (missing)")
        elif path.read_text(encoding="utf-8") != text:
            stale.append(f"{path} (differs)")
    for other in sorted(base.glob(f"{PACKAGE_PREFIX}*")):
        if other.name != build.package:
            stale.append(f"{other} (left over from other inputs)")
    return stale


def is_current(package_dir: Path) -> bool:
    """True when every file of a written build still has the content its manifest records."""
    try:
        manifest = json.loads((package_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    for relative, sha in manifest.get("files", {}).items():
        path = package_dir / relative.split("/", 1)[1]
        try:
            if _sha(path.read_text(encoding="utf-8")) != sha:
                return False
        except OSError:
            return False
    return bool(manifest.get("files"))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

"""`ccbmdm compile`: contracts in, formatted Python out, in the project's target/ folder.

The generated package is named after a digest of everything that shapes it (the contracts and
the mappings, by their paths in the project and their content, this generator's own code and
templates), so two projects or two versions never share a module name and a stale build is
recognised by its name alone. Each build records its inputs, file by file,
in its manifest: a compile whose inputs have not changed writes nothing, and ``--check`` names
the inputs that changed since the last compile rather than the generated files they affect.

The generating modules are imported only when something is generated, so that the answer "up
to date" costs no more than reading the inputs.
"""

from __future__ import annotations

import compileall
import hashlib
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ccbmdm
from ccbmdm.codegen.diagnostics import FindingsError
from ccbmdm.codegen.project import Project, display_path, function_files
from ccbmdm.errors import CcbmdmError

if TYPE_CHECKING:
    from ccbmdm.codegen.diagnostics import Finding
    from ccbmdm.codegen.lineage import Lineage

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
    "mapping/bind/__init__.py",
    "mapping/bind/binder.py",
    "mapping/bind/checks.py",
    "mapping/bind/conditions.py",
    "mapping/bind/element.py",
    "mapping/bind/emit.py",
    "mapping/bind/model.py",
    "mapping/bind/modifiers.py",
    "mapping/bind/order.py",
    "mapping/bind/paths.py",
    "mapping/bind/sites.py",
    "mapping/bind/state.py",
    "mapping/bind/structures.py",
    "mapping/bind/rules/__init__.py",
    "mapping/bind/rules/const.py",
    "mapping/bind/rules/copy.py",
    "mapping/bind/rules/fn.py",
    "mapping/bind/rules/keys.py",
    "mapping/bind/rules/map.py",
    "mapping/bind/rules/path.py",
    "mapping/bind/rules/table.py",
    "mapping/bind/rules/target.py",
    "mapping/bind/rules/xref.py",
    "mapping/compile.py",
    "mapping/facets.py",
    "mapping/functions.py",
    "mapping/loader.py",
    "mapping/syntax.py",
    "mapping/violations.py",
    "mapping/writer.py",
)


class FormatError(CcbmdmError):
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
    inputs: dict[str, str] = field(default_factory=dict)  # input, as findings name it -> sha256
    # The findings that hold as long as the inputs do (not those about what changed since the
    # previous compile): the manifest keeps them, and a build reused as it is reports them.
    lasting: tuple[Finding, ...] = ()

    @property
    def package(self) -> str:
        return PACKAGE_PREFIX + self.digest[:16]


def contract_files(project: Project) -> list[Path]:
    # Every schema of every folder: one the reader skips costs a needless rebuild, never a
    # missed one, and this module need not import the reader to know its folders.
    return sorted(project.contracts.glob("*/*.xsd"))


def input_files(project: Project) -> list[Path]:
    """Every file of the project that shapes the build.

    Not the project file: what it says of the build (where the contracts and mappings are) shows
    in the inputs' paths, and its name would only keep identical copies from sharing a build.
    """
    candidates = [
        *contract_files(project),
        project.contracts / "flows.yaml",
        *mapping_files(project),
        *function_files(project),
    ]
    return [path for path in candidates if path.is_file()]


def read_inputs(project: Project) -> dict[str, str]:
    """The project's inputs, named as findings name them, with the sha256 of their bytes."""
    return {
        display_path(path, project.root): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in input_files(project)
    }


@cache
def generator_digest() -> str:
    """A digest of this generator: its version, code and templates (fixed within a process)."""
    digest = hashlib.sha256(f"ccbmdm {ccbmdm.__version__}\n".encode())
    here = Path(__file__).parent
    generator = [here / name for name in _GENERATOR_SOURCES] + sorted(
        (here / "templates").glob("*.jinja2")
    )
    for path in generator:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def digest_of(inputs: dict[str, str]) -> str:
    """The build's digest: the generator and every input, by name and content."""
    digest = hashlib.sha256(generator_digest().encode())
    for name, sha in sorted(inputs.items()):
        digest.update(f"\0{name}\0{sha}".encode())
    return digest.hexdigest()


def inputs_digest(project: Project) -> str:
    """A digest of every input of generation: the project's files and the generator itself."""
    return digest_of(read_inputs(project))


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
    from ccbmdm.codegen import lineage
    from ccbmdm.codegen.catalogue import load_catalogue
    from ccbmdm.codegen.mapping.compile import compile_mappings
    from ccbmdm.codegen.mapping.functions import load_library
    from ccbmdm.codegen.render import Renderer
    from ccbmdm.codegen.xsd_reader import SYSTEM_NAMESPACES, read_contracts

    inputs = read_inputs(project)
    digest = digest_of(inputs)
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
    build = Build(
        digest,
        {},
        tuple(findings),
        json.dumps(mappings.lineage, indent=2) + "\n",
        inputs,
        tuple(mappings.findings),
    )
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


def current_lineage(project: Project) -> Lineage:
    """The lineage of the project as it is now: the last compile's when its build is current,
    else compiled afresh (nothing is written)."""
    from ccbmdm.codegen import lineage

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
            "generator": generator_digest(),
            "inputs": dict(sorted(build.inputs.items())),
            "lineage": _sha(build.lineage) if build.lineage else None,
            "findings": [_finding_record(f) for f in build.lasting],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        # Byte-compiled here, once: a command that imports the package would otherwise compile
        # its codecs (a megabyte of source, a quarter of a second) wherever Python may not write
        # its cache (PYTHONDONTWRITEBYTECODE, a read-only folder). Named as they will be found,
        # checked against the source's hash rather than its time, so that the same source gives
        # the same bytes.
        compileall.compile_dir(
            staging,
            ddir=final,
            quiet=1,
            workers=1,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
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
    if prune:
        _prune(base, build.package)
    if build.lineage:
        (base.parent / LINEAGE).write_text(build.lineage, encoding="utf-8")
    return final


@dataclass(frozen=True)
class Compiled:
    """What `ccbmdm compile` did: the package it leaves in target/, and whether it wrote it."""

    package_dir: Path
    findings: tuple[Finding, ...]
    written: bool  # False: the build of these inputs was there already, untouched

    def counts(self) -> tuple[int, int]:
        """How many contracts and mappings the package holds."""
        package = (self.package_dir / "__init__.py").read_text(encoding="utf-8")
        return package.count("ContractCodec("), package.count("Transformer(")


def compile_project(project: Project) -> Compiled:
    """Make target/ hold the build of the project's current inputs, generating only if needed.

    The build is reused when its manifest records the same digest and its files (and the
    lineage artifact) still have the content the manifest records; builds of other inputs are
    removed either way. Warnings are kept in the manifest, so a reused build reports them too.
    """
    base = output_dir(project)
    manifest = _current_manifest(base, read_inputs(project))
    if manifest is None:
        build = generate(project)
        return Compiled(write(build, base), build.findings, written=True)
    package_dir = base / str(manifest["package"])
    _prune(base, package_dir.name)
    return Compiled(package_dir, _findings(manifest.get("findings", [])), written=False)


def recorded_findings(project: Project) -> tuple[Finding, ...]:
    """The findings of the build of the current inputs, as its manifest keeps them."""
    manifest = _current_manifest(output_dir(project), read_inputs(project))
    return _findings(manifest.get("findings", [])) if manifest is not None else ()


def staleness(project: Project) -> list[str]:
    """Why target/ does not hold the build of the current inputs, one reason a line.

    Empty when it does. Otherwise the inputs that changed, were added or removed since the
    last compile (whose manifest records them), or the generated files edited since.
    """
    base = output_dir(project)
    inputs = read_inputs(project)
    package = PACKAGE_PREFIX + digest_of(inputs)[:16]
    if _current_manifest(base, inputs) is not None:
        return [
            f"{display_path(other, project.root)} is left over from other inputs"
            for other in sorted(base.glob(f"{PACKAGE_PREFIX}*"))
            if other.name != package
        ]
    previous = _latest_manifest(base)
    if previous is None:
        return [f"never compiled: {display_path(base, project.root)} holds no build"]
    folder, manifest = previous
    if "inputs" not in manifest:
        where = display_path(folder, project.root)
        return [f"{where} was compiled by an earlier ccbmdm, which did not record its inputs"]
    if manifest.get("digest") == digest_of(inputs):
        return _damage(project, folder, manifest)
    reasons = []
    if manifest.get("generator") != generator_digest():
        reasons.append(f"the generator changed (ccbmdm {ccbmdm.__version__} or its templates)")
    recorded: dict[str, str] = manifest["inputs"]
    for name in sorted(recorded.keys() | inputs.keys()):
        if name not in inputs:
            reasons.append(f"{name} removed")
        elif name not in recorded:
            reasons.append(f"{name} added")
        elif recorded[name] != inputs[name]:
            reasons.append(f"{name} changed")
    return reasons


def _damage(project: Project, folder: Path, manifest: dict[str, Any]) -> list[str]:
    """The generated files of a build of the current inputs that were edited or deleted."""
    expected = {
        folder / relative.split("/", 1)[1]: sha for relative, sha in manifest["files"].items()
    }
    if manifest.get("lineage"):
        expected[folder.parent.parent / LINEAGE] = manifest["lineage"]
    reasons = []
    for path, sha in sorted(expected.items()):
        actual = _file_sha(path)
        if actual != sha:
            state = "missing" if actual is None else "edited since it was generated"
            reasons.append(f"{display_path(path, project.root)} {state}")
    return reasons


def _current_manifest(base: Path, inputs: dict[str, str]) -> dict[str, Any] | None:
    """The manifest of the build of ``inputs`` under ``base`` when that build is intact."""
    package_dir = base / (PACKAGE_PREFIX + digest_of(inputs)[:16])
    manifest = _intact_manifest(package_dir)
    if manifest is None or manifest.get("inputs") != inputs:
        return None
    lineage = manifest.get("lineage")
    if lineage is not None and _file_sha(base.parent / LINEAGE) != lineage:
        return None
    return manifest


def _latest_manifest(base: Path) -> tuple[Path, dict[str, Any]] | None:
    """The most recently written build under ``base`` and its manifest."""
    found = []
    for folder in base.glob(f"{PACKAGE_PREFIX}*"):
        try:
            written = (folder / MANIFEST).stat().st_mtime_ns
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict):
            found.append((written, folder.name, folder, manifest))
    if not found:
        return None
    _, _, folder, manifest = max(found, key=lambda item: (item[0], item[1]))
    return folder, manifest


def _prune(base: Path, keep: str) -> None:
    for other in base.glob(f"{PACKAGE_PREFIX}*"):
        if other.name != keep:
            shutil.rmtree(other, ignore_errors=True)


def is_current(package_dir: Path) -> bool:
    """True when every file of a written build still has the content its manifest records."""
    return _intact_manifest(package_dir) is not None


def _intact_manifest(package_dir: Path) -> dict[str, Any] | None:
    """The manifest of a written build whose every file has the content it records."""
    try:
        manifest = json.loads((package_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or not manifest.get("files"):
        return None
    for relative, sha in manifest["files"].items():
        if _file_sha(package_dir / relative.split("/", 1)[1]) != sha:
            return None
    return manifest


def _finding_record(finding: Finding) -> dict[str, Any]:
    pos = finding.pos
    return {
        "file": pos.file,
        "line": pos.line,
        "column": pos.column,
        "rule": finding.rule,
        "message": finding.message,
        "hint": finding.hint,
        "severity": finding.severity,
        "path": finding.path,
    }


def _findings(records: list[dict[str, Any]]) -> tuple[Finding, ...]:
    if not records:
        return ()
    from ccbmdm.codegen.diagnostics import Finding, Pos

    return tuple(
        Finding(
            Pos(r["file"], r["line"], r["column"]),
            r["rule"],
            r["message"],
            r["hint"],
            r["severity"],
            r["path"],
        )
        for r in records
    )


def _file_sha(path: Path) -> str | None:
    try:
        return _sha(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

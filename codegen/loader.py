"""The one way to reach generated code: compile when stale, then import under a unique name.

Nothing imports target/ by path. The package name carries the digest of the inputs, so a
changed contract gives a new module rather than a stale one, and two projects in one process
never collide. When the project folder cannot be written, the build goes to a cache folder.
The project's own functions are registered for the package before it is imported, since its
transformers call them by name (docs/mappings.md, "A project's own functions").
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

from ccbmdm.codegen import compiler
from ccbmdm.codegen.mapping.functions import load_library
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages import functions
from ccbmdm.runtime.messages.contracts import ContractCodec, ContractRegistry
from ccbmdm.runtime.messages.xmlsafe import DEFAULT_LIMITS, XmlLimits

_lock = threading.Lock()


def cache_dir() -> Path:
    """Where builds go when the project's target/ cannot be written."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ccbmdm" / "python"


def load_package(project: Project) -> ModuleType:
    """The generated package of ``project``, compiled first if missing or stale."""
    with _lock:
        digest = compiler.inputs_digest(project)
        package = compiler.PACKAGE_PREFIX + digest[:16]
        loaded = sys.modules.get(package)
        if loaded is not None:
            return loaded
        package_dir = _current_build(project, package)
        # The project's own functions, which its transformers call by name, come first.
        library = load_library(project)
        if library.errors:
            raise compiler.MappingError(library.findings)
        functions.register_project(package, library.project_functions())
        spec = importlib.util.spec_from_file_location(
            package, package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
                del sys.modules[name]
            raise
        return module


def _current_build(project: Project, package: str) -> Path:
    for base in (compiler.output_dir(project), cache_dir() / project.root.name):
        if compiler.is_current(base / package):
            return base / package
    build = compiler.generate(project)
    try:
        return compiler.write(build, compiler.output_dir(project), prune=False)
    except OSError:
        return compiler.write(build, cache_dir() / project.root.name, prune=False)


def load_contracts(project: Project, limits: XmlLimits = DEFAULT_LIMITS) -> ContractRegistry:
    """The contract registry of ``project``: models and codecs of every message."""
    contracts: dict[str, ContractCodec] = load_package(project).CONTRACTS
    return ContractRegistry(contracts, limits)

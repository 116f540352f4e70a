"""The tree keeps its architecture: which part may import which, and no import cycle.

Every module of the package is read with ``ast`` (nothing is imported), at every import
statement it holds: at the top, inside a function, or under ``if TYPE_CHECKING:``. A deferred
or type-only import still ties two modules together (one cannot be read, moved or tested
without the other), so each counts as an import.

The parts (docs/runtime.md, "The tree"):
- ``runtime.messages``: what generated code imports at run time;
- the engine: the rest of ``runtime`` but the simulators;
- ``runtime.sim``: the reference simulators, ``sim.ccb`` and ``sim.mdm`` two systems that
  share nothing but messages, ``sim.determinants`` MDM's calculation library;
- ``codegen``: the compiler; ``conformance``: the kit; ``ccbmdm.cli``: the command line;
- ``docsite``: the documentation site, generated from what codegen reads and the lifecycle tables;
  the command line passes in the rest (its command tree, the kit's and the runtime's schemas).
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support import REPO

MESSAGES = "ccbmdm.runtime.messages"
SIM = "ccbmdm.runtime.sim"
CODEGEN = "ccbmdm.codegen"
CONFORMANCE = "ccbmdm.conformance"
CLI = "ccbmdm.cli"
DOCSITE = "ccbmdm.docsite"
LIFECYCLES = "ccbmdm.runtime.lifecycles"


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    where: str  # path:line

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def modules() -> dict[str, Path]:
    """Every module of the package, by name, from pyproject's package-dir."""
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found: dict[str, Path] = {}
    folders: dict[str, str] = setup["package-dir"]
    for package in setup["packages"]:
        # a package not listed lives in its parent's folder, under its own name
        parent = max((p for p in folders if within(package, p)), key=len)
        folder = REPO / folders[parent] / package.removeprefix(parent).replace(".", "/").strip("/")
        for path in sorted(folder.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def imports() -> list[Import]:
    """Every import of one of the package's modules by another, wherever it is written."""
    known = modules()
    found = []
    for importer, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for imported in _imported(node, importer, path, known):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                found.append(Import(importer, imported, where))
    return list(dict.fromkeys(found))  # `from m import a, b` is one import of m


def _imported(
    node: ast.Import | ast.ImportFrom, importer: str, path: Path, known: dict[str, Path]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names if alias.name in known)
    elif isinstance(node, ast.ImportFrom):
        module = node.module or ""
        if node.level:  # relative: from the importer's package
            package = importer.split(".")
            if path.stem != "__init__":
                package.pop()
            module = ".".join(package[: len(package) - node.level + 1] + [module] * bool(module))
        for alias in node.names:
            # `from package import module` names a module; otherwise the module is imported
            submodule = f"{module}.{alias.name}"
            if submodule in known:
                yield submodule
            elif module in known:
                yield module


def within(module: str, part: str) -> bool:
    return module == part or module.startswith(part + ".")


def is_engine(module: str) -> bool:
    return within(module, "ccbmdm.runtime") and not (
        within(module, MESSAGES) or within(module, SIM)
    )


def is_simulator(module: str) -> bool:
    return within(module, SIM)


Part = Callable[[str], bool]

# why -> (the importer's part, what it may not import)
RULES: dict[str, tuple[Part, Part]] = {
    "the reference CCB imports nothing of the reference MDM (they share only messages)": (
        lambda m: within(m, f"{SIM}.ccb"),
        lambda m: within(m, f"{SIM}.mdm"),
    ),
    "the reference MDM imports nothing of the reference CCB (they share only messages)": (
        lambda m: within(m, f"{SIM}.mdm"),
        lambda m: within(m, f"{SIM}.ccb"),
    ),
    "MDM's calculation library imports nothing of the simulators, the engine or the store": (
        lambda m: within(m, f"{SIM}.determinants"),
        lambda m: is_engine(m) or (is_simulator(m) and not within(m, f"{SIM}.determinants")),
    ),
    "runtime.messages, what generated code imports, imports nothing else of ccbmdm": (
        lambda m: within(m, MESSAGES),
        lambda m: not within(m, MESSAGES),
    ),
    "the engine never imports the simulators (the configuration names them)": (
        is_engine,
        is_simulator,
    ),
    "codegen imports nothing of the engine or the simulators (only runtime.messages)": (
        lambda m: within(m, CODEGEN),
        lambda m: is_engine(m) or is_simulator(m),
    ),
    "the site reads codegen and the lifecycle tables, nothing else of the engine or simulators": (
        lambda m: within(m, DOCSITE),
        lambda m: is_simulator(m) or (is_engine(m) and not within(m, LIFECYCLES)),
    ),
    "only the command line imports the documentation site": (
        lambda m: not (within(m, DOCSITE) or within(m, CLI)),
        lambda m: within(m, DOCSITE),
    ),
    "only the command line imports the conformance kit": (
        lambda m: not (within(m, CONFORMANCE) or within(m, CLI)),
        lambda m: within(m, CONFORMANCE),
    ),
}


def broken(rule: str, found: list[Import]) -> list[str]:
    importer, forbidden = RULES[rule]
    return [str(i) for i in found if importer(i.importer) and forbidden(i.imported)]


@pytest.mark.parametrize("rule", list(RULES))
def test_the_parts_import_only_what_they_may(rule: str) -> None:
    assert broken(rule, imports()) == [], rule


def test_generated_code_imports_only_runtime_messages() -> None:
    templates = REPO / "codegen" / "templates"
    wrong = [
        f"{path.name}: {line.strip()}"
        for path in sorted(templates.glob("*.jinja2"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.match(r"\s*(from|import) ccbmdm\.", line)
        and not re.match(rf"\s*(from|import) {re.escape(MESSAGES)}\b", line)
    ]
    assert wrong == []


def cycles(found: list[Import]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each as one cycle."""
    graph: dict[str, set[str]] = {}
    for i in found:
        if i.importer != i.imported:
            graph.setdefault(i.importer, set()).add(i.imported)
            graph.setdefault(i.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycle() -> None:
    found = imports()
    described = []
    for group in cycles(found):
        members = set(group)
        described.append(
            "\n".join(str(i) for i in found if i.importer in members and i.imported in members)
        )
    assert described == [], "\n\n".join(described)


def test_the_rules_see_the_whole_package() -> None:
    """A sanity check on the reader: it finds the parts, and the imports between them."""
    known = modules()
    assert {f"{MESSAGES}.codec", f"{SIM}.ccb.simulator", f"{SIM}.mdm.simulator", CLI} <= set(known)
    found = imports()
    assert any(within(i.importer, CLI) and within(i.imported, CONFORMANCE) for i in found)
    assert any(within(i.importer, CODEGEN) and within(i.imported, MESSAGES) for i in found)
    assert any(within(i.importer, DOCSITE) and within(i.imported, CODEGEN) for i in found)

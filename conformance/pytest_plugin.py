"""The pytest plugin: in a project with a project file, each conformance case is a test.

pytest collects ``case.yaml`` files under the project's cases folder; the test id is the case
path (``person-sync/person-change``), a failure prints the same report as ``ccbmdm
conformance``. Registered as a ``pytest11`` entry point, so installing the package is enough.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ccbmdm.codegen.compiler import MappingError
from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.codegen.project import PROJECT_FILE, Project, ProjectError
from ccbmdm.codegen.xsd_reader import ContractError
from ccbmdm.conformance.cases import CASE_FILE, read_case
from ccbmdm.conformance.limit import limit_of, limited
from ccbmdm.conformance.outcome import Outcome
from ccbmdm.conformance.runner import Kit
from ccbmdm.conformance.suite import failure_lines


@cache
def _project_of(folder: Path) -> Project | None:
    for candidate in (folder, *folder.parents):
        if (candidate / PROJECT_FILE).is_file():
            try:
                return Project.load(candidate)
            except ProjectError:
                return None
    return None


@cache
def _kit(project: Project) -> Kit | str:
    """The project's kit, or why the project does not compile (said once, for every case,
    without compiling again for each)."""
    try:
        return Kit(project)
    except (MappingError, ContractError) as exc:
        return f"the project does not compile:\n{exc}"


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name != CASE_FILE:
        return None
    project = _project_of(file_path.parent)
    if project is None or file_path.parent.parent.parent != project.cases:
        return None
    return CaseFile.from_parent(parent, path=file_path)


class CaseFile(pytest.File):
    """A case.yaml: it holds one case."""

    def collect(self) -> list[pytest.Item]:
        folder = self.path.parent
        return [CaseItem.from_parent(self, name=f"{folder.parent.name}/{folder.name}")]


class CaseFailed(Exception):
    """A case whose outcome differs from its golden (or that cannot be run)."""


class CaseItem(pytest.Item):
    """One conformance case run as a test."""

    def runtest(self) -> None:
        project = _project_of(self.path.parent)
        assert project is not None
        try:
            case = read_case(self.path.parent, project.root)
        except Finding as finding:
            raise CaseFailed(str(finding)) from None
        kit = _kit(project)
        if isinstance(kit, str):  # every case says why, as `ccbmdm check` would
            raise CaseFailed(kit)
        outcome: Outcome = limited(case, limit_of(case), lambda: kit.run(case))
        if not outcome.passed:
            raise CaseFailed("\n".join(failure_lines(outcome)))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, CaseFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"conformance case {self.name}"

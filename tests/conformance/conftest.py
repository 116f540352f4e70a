"""The kit's tests share one project made by `ccbmdm init`, compiled once; a test that changes
it works on its own copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from case_support import copied

from ccbmdm.codegen.project import Project, init_project


@pytest.fixture(scope="session")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return init_project(tmp_path_factory.mktemp("reference") / "project")


@pytest.fixture
def project(reference: Project, tmp_path: Path) -> Project:
    return copied(reference, tmp_path)

"""Fixtures shared by the whole suite: the reference project, compiled once per session."""

from __future__ import annotations

import pytest

from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.loader import load_contracts
from ccbmdm.codegen.project import Project
from ccbmdm.codegen.xsd_reader import read_contracts
from ccbmdm.runtime.contracts import ContractRegistry
from support import REPO


@pytest.fixture(scope="session")
def project() -> Project:
    return Project.load(REPO)


@pytest.fixture(scope="session")
def registry(project: Project) -> ContractRegistry:
    return load_contracts(project)


@pytest.fixture(scope="session")
def contract_set(project: Project) -> ContractSet:
    return read_contracts(project.contracts)

"""Fixtures shared by the whole suite: the reference project, compiled once per session, and
the runtime's stores: every store test runs on SQLite and on PostgreSQL.

PostgreSQL is the server at 127.0.0.1:5432, or the one CCBMDM_TEST_PG_DSN names; each test gets a
schema of its own. When no server answers, the PostgreSQL runs are skipped with that reason."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.loader import load_contracts, load_package
from ccbmdm.codegen.project import Project
from ccbmdm.codegen.xsd_reader import read_contracts
from ccbmdm.runtime import logs
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.postgres import PostgresStore
from ccbmdm.runtime.store.sqlite import SqliteStore
from support import REPO, pg_dsn, postgres_schema


@pytest.fixture(scope="session")
def project() -> Project:
    return Project.load(REPO)


@pytest.fixture(scope="session")
def registry(project: Project) -> ContractRegistry:
    return load_contracts(project)


@pytest.fixture(scope="session")
def package(project: Project) -> ModuleType:
    """The reference project's generated package: models, codecs and transformers."""
    return load_package(project)


@pytest.fixture(scope="session")
def contract_set(project: Project) -> ContractSet:
    return read_contracts(project.contracts)


@pytest.fixture(params=["sqlite", "postgres"])
def empty_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A store with no tables yet."""
    if request.param == "sqlite":
        created: Store = SqliteStore(str(tmp_path / "runtime.db"))
        yield created
        created.close()
        return
    with postgres_schema(pg_dsn()) as dsn:
        created = PostgresStore(dsn)
        yield created
        created.close()


@pytest.fixture
def postgres_store() -> Iterator[PostgresStore]:
    """A PostgreSQL store with no tables yet, in a schema of its own, for what only
    PostgreSQL does (its planner, its statistics, vacuuming)."""
    with postgres_schema(pg_dsn()) as dsn:
        created = PostgresStore(dsn)
        yield created
        created.close()


@pytest.fixture
def store(empty_store: Store) -> Store:
    """A store with the runtime's tables."""
    empty_store.migrate()
    return empty_store


@pytest.fixture(autouse=True)
def runtime_logs_as_they_were() -> Iterator[None]:
    """A command run in the test's own process switches the runtime's logs on
    (``logs.configure``); that is undone after the test, so that the next test's capture of
    log records sees every one."""
    root = logging.getLogger(logs.ROOT)
    handlers, level, propagate = root.handlers[:], root.level, root.propagate
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    root.propagate = propagate

"""What a command needs (the project, a store, a runtime, a simulator it hosts), found in one
documented order and handed out as context managers that close what they open.

Which store and runtime a command uses (docs/runtime.md, "Which store a command uses"):

1. ``--config FILE`` or ``--store DSN`` (not both);
2. else ``$CCBMDM_CONFIG`` or ``$CCBMDM_STORE`` (not both);
3. else ``ccbmdm_runtime.yaml``, found upward from the working directory within the project;
4. else the project's default: ``target/runtime.db`` with the reference simulators.

A ``--store`` alone means the reference configuration (every node hosted here, the reference
simulators behind CCB and MDM) over that store. A command that reads a store never creates one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ccbmdm.cli.failures import USAGE, fail
from ccbmdm.cli.params import RUNTIME_CONFIG
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.store.base import StoreError
from ccbmdm.runtime.store.dsn import is_postgres, redacted

if TYPE_CHECKING:
    from ccbmdm.runtime.assembly import Runtime
    from ccbmdm.runtime.config import RuntimeConfig
    from ccbmdm.runtime.store import Store


class NoStore(StoreError):
    """A command that reads a store found none where it looked; it never creates one."""


def project(project_dir: Path | None) -> Project:
    return Project.load(project_dir) if project_dir is not None else Project.find()


@dataclass(frozen=True)
class Located:
    """The store a command uses, the runtime configuration naming it (``None``: the reference
    configuration over it) and where that came from, for messages."""

    project: Project
    dsn: str
    config: RuntimeConfig | None
    source: str
    default: bool = False  # the project's own store, whose folder a command may make

    def runtime_config(self) -> RuntimeConfig:
        from ccbmdm.runtime.config import reference_config

        return self.config or reference_config(self.dsn)

    @property
    def shown(self) -> str:
        """The store as a command line can name it again, its password redacted."""
        return redacted(self.dsn)


def located(config: Path | None, store: str | None, project_dir: Path | None) -> Located:
    """The store and runtime configuration the options, the environment or the project name."""
    found = project(project_dir)
    if config is not None and store is not None:
        fail("give --config or --store, not both", USAGE)
    if config is None and store is None:
        config_env, store_env = os.environ.get("CCBMDM_CONFIG"), os.environ.get("CCBMDM_STORE")
        if config_env and store_env:
            fail("both CCBMDM_CONFIG and CCBMDM_STORE are set: unset one, or pass an option")
        if store_env:
            return Located(found, store_env, None, "$CCBMDM_STORE")
        if config_env:
            return _configured(found, Path(config_env), "$CCBMDM_CONFIG")
        upward = _runtime_file(found, project_dir)
        if upward is not None:
            return _configured(found, upward, str(upward))
        default = found.target / "runtime.db"
        return Located(found, str(default), None, "the project's default store", default=True)
    if store is not None:
        return Located(found, store, None, "--store")
    assert config is not None
    return _configured(found, config, f"--config {config}")


def _configured(found: Project, path: Path, source: str) -> Located:
    from ccbmdm.runtime.config import load_config

    if not path.is_file():
        fail(
            f"no runtime configuration at {path} (named by {source.split(' ')[0]}); pass an "
            "existing --config FILE (store, nodes and delivery: see docs/runtime.md, "
            "Configuration)"
        )
    config = load_config(path)
    return Located(found, config.store, config, f"store: in {path}")


def _runtime_file(found: Project, project_dir: Path | None) -> Path | None:
    """``ccbmdm_runtime.yaml`` in the working directory or a folder above it, up to the
    project's root; the root's own when the working directory is outside the project."""
    root = found.root.resolve()
    start = Path.cwd().resolve() if project_dir is None else root
    folders = [start, *start.parents] if start.is_relative_to(root) else [root]
    for folder in folders:
        if (folder / RUNTIME_CONFIG).is_file():
            return folder / RUNTIME_CONFIG
        if folder == root:
            break
    return None


def _check_sqlite_folder(where: Located) -> None:
    """A SQLite store can be created only in a folder that exists (the default's is made)."""
    if is_postgres(where.dsn):
        return
    folder = Path(where.dsn.removeprefix("sqlite:///")).parent
    if where.default:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise StoreError(
            f"the store's folder {folder} does not exist ({where.source}); create it, or name "
            "a store in a folder that exists"
        )


def _require_existing(where: Located) -> None:
    if not is_postgres(where.dsn) and not Path(where.dsn.removeprefix("sqlite:///")).is_file():
        raise NoStore(_no_store(where))


def _no_store(where: Located) -> str:
    return (
        f"no ccbmdm store at {where.shown} ({where.source}); `ccbmdm run` or `ccbmdm monitor` "
        "creates one, `ccbmdm demo` prints where its store is; name a store with --store DSN "
        "or the runtime with --config FILE"
    )


@contextmanager
def store(config: Path | None, dsn: str | None, project_dir: Path | None) -> Iterator[Store]:
    """An existing store, its schema brought up to date; never a new one."""
    from ccbmdm.runtime.store import open_store
    from ccbmdm.runtime.store.schema import has_schema

    where = located(config, dsn, project_dir)
    _require_existing(where)
    opened = open_store(where.dsn)
    try:
        if not has_schema(opened):
            raise NoStore(_no_store(where))
        opened.migrate()
        yield opened
    finally:
        opened.close()


@contextmanager
def runtime(
    config: Path | None, dsn: str | None, project_dir: Path | None, *, creates: bool = False
) -> Iterator[Runtime]:
    """The runtime the configuration describes. Only a command that runs it (``run``,
    ``monitor``) ``creates`` its store; the others need one that exists."""
    from ccbmdm.runtime.assembly import Runtime

    where = located(config, dsn, project_dir)
    if creates:
        _check_sqlite_folder(where)
    else:
        _require_existing(where)
    built = Runtime(where.runtime_config(), where.project)
    try:
        yield built
    finally:
        built.close()

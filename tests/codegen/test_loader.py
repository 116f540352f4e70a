"""The loader compiles on demand, imports under the digest's name, and falls back to a cache."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ccbmdm.codegen import compiler, loader
from ccbmdm.codegen.project import Project, init_project


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A fresh copy of the reference project, as a new process would see it."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    created = init_project(tmp_path / "scratch")
    # Same inputs, same package name: forget what an earlier test imported under it.
    package = compiler.PACKAGE_PREFIX + compiler.inputs_digest(created)[:16]
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    return created


def test_compiles_when_missing_and_imports_once(scratch: Project) -> None:
    assert not compiler.output_dir(scratch).exists()
    module = loader.load_package(scratch)
    assert module.__name__.startswith(compiler.PACKAGE_PREFIX)
    assert (compiler.output_dir(scratch) / module.__name__ / "__init__.py").is_file()
    assert loader.load_package(scratch) is module
    assert len(module.CONTRACTS) == 56


def test_a_hand_edited_build_is_regenerated(scratch: Project) -> None:
    build = compiler.generate(scratch)
    package_dir = compiler.write(build, compiler.output_dir(scratch))
    (package_dir / "ccb.py").write_text("raise SystemExit('edited')\n")
    assert not compiler.is_current(package_dir)
    module = loader.load_package(scratch)
    assert compiler.is_current(package_dir)
    assert "ccb/PersonSyncRequest" in module.CONTRACTS


def test_unwritable_target_uses_the_cache_folder(scratch: Project, tmp_path: Path) -> None:
    # A file where target/ should be: the project cannot hold a build, whoever runs the test.
    scratch.target.write_text("not a folder")
    module = loader.load_package(scratch)
    assert Path(module.__file__ or "").is_relative_to(tmp_path / "cache")


def test_two_projects_never_share_a_module(scratch: Project, project: Project) -> None:
    person = scratch.contracts / "ccb" / "PersonSyncRequest.xsd"
    person.write_text(person.read_text().replace("The person id.", "The id of the person."))
    mine = loader.load_package(scratch)
    reference = loader.load_package(project)
    assert mine is not reference and mine.__name__ != reference.__name__
    assert sys.modules[mine.__name__] is mine

"""Generation is deterministic, formatted, type-clean, and a stale build is detected."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ccbmdm.codegen import compiler
from ccbmdm.codegen.project import Project, init_project
from support import REPO, run_python


@pytest.fixture
def scratch(tmp_path: Path) -> Project:
    """A writable copy of the reference project."""
    return init_project(tmp_path / "scratch")


def test_generation_is_byte_identical_on_a_second_run(project: Project, tmp_path: Path) -> None:
    first = compiler.generate(project)
    second = compiler.generate(project)
    assert first.files == second.files
    one = compiler.write(first, tmp_path / "one")
    two = compiler.write(second, tmp_path / "two")
    for path in sorted(one.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (two / path.relative_to(one)).read_bytes(), path


def test_package_name_follows_the_inputs(scratch: Project) -> None:
    before = compiler.generate(scratch).package
    types = scratch.contracts / "common" / "types.xsd"
    types.write_text(types.read_text().replace("at most 254 characters", "at most 254 characters."))
    assert compiler.generate(scratch).package != before


def test_check_names_stale_files(scratch: Project) -> None:
    base = compiler.output_dir(scratch)
    build = compiler.generate(scratch)
    assert compiler.stale_files(build, base) == [
        f"{base / name} (missing)" for name in sorted(build.files)
    ]
    compiler.write(build, base)
    assert compiler.stale_files(build, base) == []
    # A hand edit is found ...
    edited = base / build.package / "ccb.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    assert compiler.stale_files(build, base) == [f"{edited} (differs)"]
    # ... and so is a changed contract, which leaves the old build behind.
    person = scratch.contracts / "ccb" / "PersonSyncRequest.xsd"
    person.write_text(person.read_text().replace("The person id.", "The person's id."))
    rebuilt = compiler.generate(scratch)
    stale = compiler.stale_files(rebuilt, base)
    assert f"{base / build.package} (left over from other inputs)" in stale
    assert f"{base / rebuilt.package / '__init__.py'} (missing)" in stale


def test_generated_code_is_ruff_formatted(project: Project, tmp_path: Path) -> None:
    package = compiler.write(compiler.generate(project), tmp_path)
    result = subprocess.run(
        [*compiler.FORMAT_COMMAND, "--check", "."], cwd=package, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_generated_code_is_mypy_strict_clean(project: Project, tmp_path: Path) -> None:
    package = compiler.write(compiler.generate(project), tmp_path)
    result = run_python(
        "-m", "mypy", "--strict", "--no-incremental", "-p", package.name, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found in ")


def test_the_wheel_ships_the_reference_contracts(tmp_path: Path) -> None:
    created = init_project(tmp_path / "new")
    shipped = sorted(
        p.relative_to(created.contracts) for p in created.contracts.rglob("*") if p.is_file()
    )
    source = sorted(
        p.relative_to(REPO / "contracts") for p in (REPO / "contracts").rglob("*") if p.is_file()
    )
    assert shipped == source
    assert shutil.which("ccbmdm") is not None

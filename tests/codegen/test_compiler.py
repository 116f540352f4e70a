"""Generation is deterministic, formatted, type-clean, and a stale build is detected."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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
        # the bytecode names where its source lies, which differs here by design
        if path.is_file() and path.parent.name != "__pycache__":
            assert path.read_bytes() == (two / path.relative_to(one)).read_bytes(), path


def test_the_package_is_written_byte_compiled_and_its_bytecode_used(
    project: Project, tmp_path: Path
) -> None:
    """A command imports the bytecode written with the package, never compiling a codec again,
    even where Python may not write its cache."""
    package = compiler.write(compiler.generate(project), tmp_path)
    compiled = {path.name.split(".")[0] for path in (package / "__pycache__").glob("*.pyc")}
    assert compiled == {path.stem for path in package.glob("*.py")}
    script = (
        "import importlib, importlib.machinery, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "compile_source = importlib.machinery.SourceFileLoader.source_to_code\n"
        "compiled = []\n"
        "def counted(self, *args, **kwargs):\n"
        "    compiled.append(self.name)\n"
        "    return compile_source(self, *args, **kwargs)\n"
        "importlib.machinery.SourceFileLoader.source_to_code = counted\n"
        f"importlib.import_module('{package.name}.codec_ccb')\n"
        f"importlib.import_module('{package.name}.codec_mdm')\n"
        "print('compiled:', [name for name in compiled if name.startswith('ccbmdm_contracts')])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert "compiled: []" in result.stdout, result.stdout


def test_package_name_follows_the_inputs(scratch: Project) -> None:
    before = compiler.generate(scratch).package
    types = scratch.contracts / "common" / "types.xsd"
    types.write_text(types.read_text().replace("at most 254 characters", "at most 254 characters."))
    assert compiler.generate(scratch).package != before


def test_staleness_names_the_inputs_changed_since_the_last_compile(scratch: Project) -> None:
    assert compiler.staleness(scratch) == ["never compiled: target/python holds no build"]
    compiler.compile_project(scratch)
    assert compiler.staleness(scratch) == []
    person = scratch.contracts / "ccb" / "PersonSyncRequest.xsd"
    person.write_text(person.read_text().replace("The person id.", "The person's id."))
    (scratch.mappings / "tables" / "Extra.yaml").write_text("{}\n")
    (scratch.mappings / "fragments" / "sync-ack.yaml").unlink()
    assert compiler.staleness(scratch) == [
        "contracts/ccb/PersonSyncRequest.xsd changed",
        "mappings/fragments/sync-ack.yaml removed",
        "mappings/tables/Extra.yaml added",
    ]


def test_staleness_names_generated_files_edited_or_left_over(scratch: Project) -> None:
    package_dir = compiler.compile_project(scratch).package_dir
    (package_dir / "ccb.py").write_text("# edited\n")
    (scratch.target / "lineage.json").unlink()
    assert compiler.staleness(scratch) == [
        "target/lineage.json missing",
        f"target/python/{package_dir.name}/ccb.py edited since it was generated",
    ]
    assert compiler.compile_project(scratch).written
    assert compiler.staleness(scratch) == []
    # The loader leaves the builds of other inputs in place; `compile` removes them.
    other = package_dir.with_name(compiler.PACKAGE_PREFIX + "0" * 16)
    shutil.copytree(package_dir, other)
    assert compiler.staleness(scratch) == [
        f"target/python/{other.name} is left over from other inputs"
    ]
    assert not compiler.compile_project(scratch).written
    assert not other.exists()


def test_a_build_is_reused_only_while_its_inputs_and_files_are_unchanged(scratch: Project) -> None:
    first = compiler.compile_project(scratch)
    assert first.written and first.counts() == (56, 39)
    again = compiler.compile_project(scratch)
    assert (again.package_dir, again.written) == (first.package_dir, False)
    (first.package_dir / "mdm.py").unlink()
    assert compiler.compile_project(scratch).written
    flows = scratch.contracts / "flows.yaml"
    flows.write_text(flows.read_text() + "\n")
    changed = compiler.compile_project(scratch)
    assert changed.written and changed.package_dir != first.package_dir
    assert not first.package_dir.exists()


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

"""ccbmdm installs the ways a project is installed, and each gives a working command line.

``pip install .`` (a wheel), ``pip install -e .`` (setuptools' plain editable install, which maps
the package onto the source tree with an import finder) and the README's strict editable install
(a link tree) each go into a fresh virtual environment of their own; there, from a folder outside
the repository, ``ccbmdm init`` creates a project that ``ccbmdm compile``, ``ccbmdm check`` and
``ccbmdm docs build`` accept. Each install is of a copy of the working tree (what git tracks or
would track), so that no install writes into the repository's own build/ folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import REPO, run_python

# How each install is asked for: what comes between `pip install` and the source folder.
MODES = {
    "wheel": (),
    "editable": ("-e",),
    "strict editable": ("--config-settings", "editable_mode=strict", "-e"),
}


def copy_of_the_working_tree(destination: Path) -> Path:
    """The repository's files, as they are now, but for what git ignores (build/, target/)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is left out
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination / name)
    return destination


class Environment:
    """A virtual environment of its own, and commands run with it from a given folder."""

    def __init__(self, folder: Path) -> None:
        self.bin = folder / "bin"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
            "VIRTUAL_ENV": str(folder),
            "PATH": f"{folder / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        }

    def run(self, *command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        program, *args = command
        return subprocess.run(
            [str(self.bin / program), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every distribution the installs need, as wheels: the package index is asked once, and
    each install then reads only this folder."""
    folder = tmp_path_factory.mktemp("wheelhouse")
    source = copy_of_the_working_tree(folder / "source")
    wheels = folder / "wheels"
    # setuptools: the build backend pyproject names, for the installs' isolated builds
    build = ("wheel", "-q", "-w", str(wheels), "setuptools>=75", f"{source}[docs]")
    result = run_python("-m", "pip", *build, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return wheels


@pytest.fixture(scope="module", params=list(MODES))
def installed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path
) -> Environment:
    """A fresh virtual environment (not seeing this one's packages) with ccbmdm and its docs
    extra installed in one of the modes."""
    folder = tmp_path_factory.mktemp("install")
    source = copy_of_the_working_tree(folder / "source")
    created = run_python("-m", "venv", str(folder / "venv"), cwd=folder)
    assert created.returncode == 0, created.stdout + created.stderr
    environment = Environment(folder / "venv")
    pip = ("python", "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheelhouse))
    result = environment.run(*pip, *MODES[request.param], f"{source}[docs]", cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return environment


@pytest.mark.slow
def test_a_new_project_compiles_checks_and_builds_its_site(
    installed: Environment, tmp_path: Path
) -> None:
    assert not tmp_path.is_relative_to(REPO)
    result = installed.run("ccbmdm", "init", "project", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    project = tmp_path / "project"
    assert (project / "contracts" / "flows.yaml").is_file()
    assert sorted(project.glob("mappings/*.yaml")) and sorted(project.glob("cases/*/*/*.yaml"))
    outputs = {}
    for command in ("compile", "check", "docs build"):
        result = installed.run("ccbmdm", *command.split(), cwd=project)
        assert result.returncode == 0, f"ccbmdm {command}: {result.stdout}{result.stderr}"
        outputs[command] = result.stdout + result.stderr
    assert "no errors" in outputs["check"]
    assert (project / "target" / "site" / "index.html").is_file()

"""Every command that touches a store names it the same way, resolved in one documented order
(docs/runtime.md, "Which store a command uses"), and a command that reads a store never makes
one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperCommand, TyperGroup, TyperOption

from ccbmdm.cli import app, run
from ccbmdm.codegen.project import Project, init_project
from support import pg_dsn

STORE_COMMANDS = (
    ("status",),
    ("discard",),
    ("resubmit",),
    ("monitor",),
    ("run",),
    ("link",),
    ("sim", "ccb", "initial-load"),
    ("sim", "mdm", "import-espi"),
    ("sim", "mdm", "correct-read"),
)


def command(*path: str) -> TyperCommand | TyperGroup:
    found = typer.main.get_command(app)
    for name in path:
        assert isinstance(found, TyperGroup)
        found = found.commands[name]
    assert isinstance(found, TyperCommand | TyperGroup)
    return found


def option_help(found: TyperCommand | TyperGroup, name: str) -> str | None:
    return next(p.help for p in found.params if isinstance(p, TyperOption) and name in p.opts)


@pytest.mark.parametrize("path", STORE_COMMANDS, ids=" ".join)
def test_every_store_command_takes_the_same_config_and_store(path: tuple[str, ...]) -> None:
    found = command(*path)
    for name in ("--config", "--store", "--project-dir"):  # the same words: declared once
        assert option_help(found, name) == option_help(command("status"), name)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A new project, the working directory in it, no store named by the environment."""
    made = init_project(tmp_path / "utility")
    monkeypatch.chdir(made.root)
    monkeypatch.delenv("CCBMDM_STORE", raising=False)
    monkeypatch.delenv("CCBMDM_CONFIG", raising=False)
    return made


def ccbmdm(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(lambda: app(list(args)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_store(capsys: pytest.CaptureFixture[str], *where: str) -> None:
    """A store, made as an operator makes one: by running the monitor over it."""
    code, _, err = ccbmdm(capsys, "monitor", "--once", *where)
    assert code == 0, err


def test_config_and_store_together_are_refused(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ccbmdm(capsys, "status", "--config", "x.yaml", "--store", "y.db")
    assert code == 2 and "give --config or --store, not both" in err


def test_status_reads_the_store_the_runtime_file_names_found_upward(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The monitor and status agree: both read ccbmdm_runtime.yaml, from a sub-folder too."""
    (project.root / "ccbmdm_runtime.yaml").write_text(
        "store: state/bridge.db\nnodes: {ccb: {system: ccbmdm.runtime.sim.ccb:connect}, "
        "bridge: {}, mdm: {system: ccbmdm.runtime.sim.mdm:connect}}\n"
    )
    (project.root / "state").mkdir()
    make_store(capsys)
    assert (project.root / "state" / "bridge.db").is_file()
    assert not (project.target / "runtime.db").exists()
    monkeypatch.chdir(project.mappings)
    code, out, err = ccbmdm(capsys, "status")
    assert code == 0, err
    assert "ccbmdm status" in out


def test_the_environment_names_the_store_when_no_option_does(
    project: Project,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    elsewhere = tmp_path / "elsewhere.db"
    make_store(capsys, "--store", str(elsewhere))
    monkeypatch.setenv("CCBMDM_STORE", str(elsewhere))
    assert ccbmdm(capsys, "status")[0] == 0
    # an option wins over the environment
    code, _, err = ccbmdm(capsys, "status", "--store", str(tmp_path / "other.db"))
    assert code == 1 and f"no ccbmdm store at {tmp_path / 'other.db'} (--store)" in err
    monkeypatch.setenv("CCBMDM_CONFIG", "runtime.yaml")
    code, _, err = ccbmdm(capsys, "status")
    assert code == 1 and "both CCBMDM_CONFIG and CCBMDM_STORE are set" in err


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("resubmit", "9"),
        ("discard", "9", "--reason", "obsolete"),
        ("link", "ccb", "person", "1"),
        ("sim", "ccb", "initial-load"),
    ],
    ids=lambda a: a[0] if a[0] != "sim" else "initial-load",
)
def test_a_command_that_reads_a_store_never_creates_one(
    args: tuple[str, ...], project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ccbmdm(capsys, *args)
    assert code == 1
    assert f"no ccbmdm store at {project.target / 'runtime.db'} (the project's default" in err
    assert "`ccbmdm run` or `ccbmdm monitor` creates one" in err
    assert not (project.target / "runtime.db").exists()


def test_an_empty_database_is_no_store_and_stays_empty(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg

    dsn = pg_dsn()
    schema = f"ccbmdm_empty_{time.monotonic_ns()}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        separator = "&" if "?" in dsn else "?"
        in_schema = f"{dsn}{separator}options=-csearch_path%3D{schema}"
        code, _, err = ccbmdm(capsys, "status", "--store", in_schema)
        assert code == 1 and "no ccbmdm store at" in err
        with psycopg.connect(dsn) as admin:
            tables = admin.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchone()
        assert tables == (0,)
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_resubmit_and_link_take_the_store_status_takes(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "ops.db")
    make_store(capsys, "--store", store)
    code, _, err = ccbmdm(capsys, "resubmit", "9", "--store", store)
    assert code == 1 and "no such request in ERROR" in err
    code, _, err = ccbmdm(capsys, "link", "ccb", "person", "404", "--store", store)
    assert code == 1 and "404" in err and "internal error" not in err


def test_link_reads_the_store_without_compiling_the_mappings(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A look-up needs the store only: a mapping error elsewhere does not stop it."""
    store = str(tmp_path / "ops.db")
    make_store(capsys, "--store", store)
    mapping = project.mappings / "person-sync.request.yaml"
    mapping.write_text(mapping.read_text() + "\nnot: [valid\n")
    code, _, err = ccbmdm(capsys, "link", "ccb", "person", "404", "--store", store)
    assert code == 1 and "error[" not in err and "mapping" not in err


def test_a_configured_store_in_a_missing_folder_is_a_clear_error(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text(
        "store: no/such/folder/bridge.db\nnodes: {ccb: {system: ccbmdm.runtime.sim.ccb:connect}, "
        "bridge: {}, mdm: {system: ccbmdm.runtime.sim.mdm:connect}}\n"
    )
    code, _, err = ccbmdm(capsys, "monitor", "--once", "--config", str(config))
    assert code == 1
    assert f"the store's folder {tmp_path / 'no' / 'such' / 'folder'} does not exist" in err
    assert "internal error" not in err

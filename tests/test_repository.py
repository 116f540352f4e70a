"""The repository keeps its own promises: the README's commands, CI, code quality."""

from __future__ import annotations

import re
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import support
from support import LOCAL_PG_DSN, REPO, choose_postgres, pg_dsn, run_python


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)\n```", (REPO / "README.md").read_text(), re.DOTALL)
    return blocks[:2]


def test_readme_starts_with_the_two_set_up_commands() -> None:
    text = (REPO / "README.md").read_text()
    first, second = readme_commands()
    assert text.index(first) < 200
    assert "ccbmdm" in first and first.startswith("python3 -m venv")
    assert second.endswith("&& pytest")


def test_ci_runs_the_readme_test_command_as_written() -> None:
    script = (REPO / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in script


def test_nothing_generated_is_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert not [path for path in tracked if path.startswith(("target/", "build/"))]


def test_ruff_is_clean() -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        result = run_python("-m", "ruff", *command, cwd=REPO)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean(tmp_path: Path) -> None:
    # From outside the repository, so that mypy sees the installed package, not the ccbmdm/ folder.
    config = ("--config-file", str(REPO / "pyproject.toml"))
    # The benchmarks reuse the tests' runtime world, so mypy looks in tests/ for them.
    for args, cwd, env in (
        (("-p", "ccbmdm"), tmp_path, None),
        ((".",), REPO / "tests", None),
        ((str(REPO / "benchmarks"),), tmp_path, {"MYPYPATH": str(REPO / "tests")}),
    ):
        result = run_python("-m", "mypy", *config, *args, cwd=cwd, env=env)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_wheel_is_one_package_with_the_reference_project(tmp_path: Path) -> None:
    result = run_python(
        "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("ccbmdm-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("ccbmdm-")}
    assert top_level == {"ccbmdm"}  # no top-level codegen or runtime module
    for expected in (
        "ccbmdm/codegen/templates/codec.py.jinja2",
        "ccbmdm/runtime/messages/xmlsafe.py",
        "ccbmdm/runtime/sim/determinants/usage_groups/RES-TOU.yaml",
        "ccbmdm/runtime/store/bodies.zdict",
        "ccbmdm/py.typed",
        "ccbmdm/reference/contracts/flows.yaml",
        "ccbmdm/reference/contracts/ccb/ServiceAgreementSyncRequest.xsd",
        "ccbmdm/reference/contracts/samples/mdm/UsageTransactionResponse.xml",
    ):
        assert expected in names


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port on 127.0.0.1 held by a socket that does not listen: connections are refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def test_the_postgresql_tests_run_on_the_local_server_unless_told_otherwise() -> None:
    dsn, _ = choose_postgres({})
    assert dsn == LOCAL_PG_DSN == "postgresql://postgres@127.0.0.1:5432/test"


def test_the_postgresql_tests_run_on_a_server_that_answers() -> None:
    answering = pg_dsn()
    assert choose_postgres({"CCBMDM_TEST_PG_DSN": answering}) == (answering, None)
    assert choose_postgres({}, local=answering) == (answering, None)


def test_without_a_server_the_postgresql_tests_say_how_to_name_one(silent_port: int) -> None:
    silent = f"postgresql://postgres@127.0.0.1:{silent_port}/test"
    assert choose_postgres({}, local=silent) == (
        silent,
        f"no PostgreSQL answers at 127.0.0.1:{silent_port}; set CCBMDM_TEST_PG_DSN",
    )


def test_a_postgresql_test_is_skipped_when_the_server_named_does_not_answer(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    silent = f"postgresql://postgres@127.0.0.1:{silent_port}/test"
    monkeypatch.setenv("CCBMDM_TEST_PG_DSN", silent)
    support._postgres.cache_clear()  # the choice is made once per run; this test makes its own
    try:
        with pytest.raises(pytest.skip.Exception) as skipped:
            pg_dsn()
    finally:
        support._postgres.cache_clear()
    reason = f"no PostgreSQL answers at 127.0.0.1:{silent_port}, which CCBMDM_TEST_PG_DSN names"
    assert skipped.value.msg == reason

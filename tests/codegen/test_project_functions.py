"""A project's own functions: typed in Python, checked by the compiler like the built-ins, called
by the compiled transformers, listed by `ccbmdm functions`."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from case_support import ccbmdm, edit

from ccbmdm.codegen import compiler
from ccbmdm.codegen.project import Project, ProjectError, init_project
from support import run_python

FUNCTIONS = textwrap.dedent('''\
    """The project's text functions."""

    from __future__ import annotations

    from decimal import Decimal


    def title_case(text: str) -> str:
        """Every word capitalised.

        The rest of the docstring is not listed."""
        return text.title()


    def initials(text: str, separator: str | None) -> str | None:
        return (separator or "").join(word[0] for word in text.split()) or None


    def repeat(text: str, times: int) -> str:
        return text * times


    def strict(text: str) -> str:
        if text.islower():
            raise ValueError(f"{text!r} is all lower case")
        return text


    def wrong(text: str) -> str:
        return Decimal(len(text))  # type: ignore[return-value]


    def _private(text):
        return text
    ''')
NAME_RULE = "      name: entityName"
CASE = Path("cases/person-sync/person-change/input.xml")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A new project whose functions/ folder holds FUNCTIONS."""
    root = tmp_path / "project"
    init_project(root)
    (root / "functions").mkdir()
    (root / "functions" / "text.py").write_text(FUNCTIONS, encoding="utf-8")
    with (root / "ccbmdm_project.yaml").open("a", encoding="utf-8") as file:
        file.write("functions: functions/\n")
    edit(root / CASE, "Okafor,Adaeze", "okafor adaeze")
    return Project.load(root)


def call(project: Project, rule: str) -> tuple[str, int, int]:
    """Write ``rule`` for the contact's name; the mapping file and the rule's line and column."""
    mapping = project.mappings / "person-sync.request.yaml"
    edit(mapping, NAME_RULE, f"      name: {rule}")
    lines = mapping.read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.startswith(f"      name: {rule}"))
    return "mappings/person-sync.request.yaml", line, len("      name: ") + 1


def transform(capsys: pytest.CaptureFixture[str], project: Project) -> tuple[int, str, str]:
    return ccbmdm(
        capsys,
        "transform",
        str(project.root / CASE),
        "--flow",
        "PERSON_SYNC",
        "--project-dir",
        str(project.root),
    )


def check(capsys: pytest.CaptureFixture[str], project: Project) -> tuple[int, str, str]:
    return ccbmdm(capsys, "check", "--project-dir", str(project.root))


def test_a_mapping_calls_a_project_function(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    call(project, "{fn: title_case, args: [entityName]}")
    edit(
        project.mappings / "person-sync.request.yaml",
        "      phone: phoneNumber",
        "      phone: {fn: initials, args: [entityName, language]}",
    )
    code, out, err = transform(capsys, project)
    assert (code, err) == (0, "")
    assert "<name>Okafor Adaeze</name>" in out
    assert "<phone>oENGa</phone>" in out  # the separator: the language code


def test_the_compiler_checks_the_argument_types_at_the_call(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    file, line, column = call(project, "{fn: repeat, args: [entityName, entityName]}")
    second = column + len("{fn: repeat, args: [entityName, ")
    code, _, err = check(capsys, project)
    assert code == 1
    assert (
        f"{file}:{line}:{second}: error[type-mismatch]: /ContactSyncRequest/contact/name: "
        "repeat takes a integer here, not a string"
    ) in err


def test_the_compiler_checks_the_number_of_arguments_at_the_call(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    file, line, column = call(project, "{fn: title_case, args: [entityName, entityName]}")
    code, _, err = check(capsys, project)
    assert code == 1
    assert (
        f"{file}:{line}:{column}: error[arity]: /ContactSyncRequest/contact/name: "
        "title_case takes 1 argument(s); 2 given "
        "(its signature: title_case(text: string) -> string)"
    ) in err


def test_an_unknown_function_gets_the_closest_name_and_the_list(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    file, line, column = call(project, "{fn: title_cas, args: [entityName]}")
    code, _, err = check(capsys, project)
    assert code == 1
    assert (
        f"{file}:{line}:{column}: error[unknown-function]: /ContactSyncRequest/contact/name: "
        "no function named title_cas (did you mean title_case? functions: concat, "
    ) in err
    listed = err.split("functions: ", 1)[1].split(")", 1)[0].split(", ")
    assert listed == sorted(listed)
    assert {"start_of_day", "title_case", "initials", "repeat"} <= set(listed)
    assert "_private" not in listed


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "def shout(text):\n    return text\n",
            "functions/more.py:1:11: error[function-signature]: parameter text of shout has no "
            "type hint",
        ),
        (
            "def shout(text: str):\n    return text\n",
            "functions/more.py:1:1: error[function-signature]: shout has no return type hint",
        ),
        (
            "def shout(text: list[str]) -> str:\n    return text[0]\n",
            "functions/more.py:1:11: error[function-signature]: parameter text of shout has an "
            "unsupported type: list[str]",
        ),
        (
            "def shout(text: str, *, loud: bool) -> str:\n    return text\n",
            "functions/more.py:1:25: error[function-signature]: shout has keyword parameter loud",
        ),
        (
            "def concat(text: str) -> str:\n    return text\n",
            "functions/more.py:1:1: error[function-clash]: function concat has the name of a "
            "built-in function",
        ),
        (
            "\n\nraise RuntimeError('no database here')\n",
            "functions/more.py:3:1: error[function-import]: cannot import functions/more.py: "
            "RuntimeError: no database here",
        ),
    ],
)
def test_a_function_the_compiler_cannot_type_is_a_finding_at_its_line(
    project: Project, capsys: pytest.CaptureFixture[str], source: str, expected: str
) -> None:
    (project.root / "functions" / "more.py").write_text(source, encoding="utf-8")
    code, _, err = check(capsys, project)
    assert code == 1
    assert expected in err, err


def test_a_failing_project_function_fails_the_transform_at_its_rule(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    file, line, _ = call(project, "{fn: strict, args: [entityName]}")
    code, out, err = transform(capsys, project)
    assert (code, out) == (1, "")
    assert f"{file}:{line}" in err and "is all lower case" in err, err
    assert "Traceback" not in err


def test_a_project_function_returning_the_wrong_type_fails_at_its_rule(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    file, line, _ = call(project, "{fn: wrong, args: [entityName]}")
    code, out, err = transform(capsys, project)
    assert (code, out) == (1, "")
    assert f"{file}:{line}" in err and "wrong returned a Decimal, not a str" in err, err


def test_mutation_checking_runs_mutants_calling_project_functions(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        project.mappings / "person-sync.request.yaml",
        "      phone: phoneNumber",
        "      phone: {fn: initials, args: [entityName, phoneNumber]}",
    )
    where = ("--flow", "PERSON_SYNC", "--project-dir", str(project.root))
    assert ccbmdm(capsys, "conformance", "--update", *where)[0] == 0
    code, out, err = ccbmdm(capsys, "conformance", "--mutate", "--format", "json", *where)
    assert code == 0, err
    report = json.loads(out)
    swapped = [m for m in report["mutants"] if m["operator"] == "swap-arguments"]
    assert [(m["change"], m["status"]) for m in swapped] == [
        ("initials arguments 1 and 2 swapped", "killed")
    ]
    assert report["operators"]["other-source"]["not-compiled"] == 0


def test_functions_lists_the_built_ins_and_the_project_functions(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ccbmdm(capsys, "functions", "--project-dir", str(project.root))
    assert (code, err) == (0, "")
    lines = [line.split() for line in out.splitlines()]
    assert lines[0] == ["built-in", "functions:"]
    start_of_day = next(line for line in out.splitlines() if "start_of_day" in line)
    assert re.split(r"\s{2,}", start_of_day) == [
        "",
        "start_of_day(day: date, time_zone: string) -> dateTime",
        "00:00 of the date in the IANA zone",
    ]
    projects = out.split("project functions:\n", 1)[1]
    assert [line.split("(", 1)[0].strip() for line in projects.splitlines()] == [
        "initials",
        "repeat",
        "strict",
        "title_case",
        "wrong",
    ]
    title = next(line for line in projects.splitlines() if "title_case" in line)
    assert re.split(r"\s{2,}", title) == [
        "",
        "title_case(text: string) -> string",
        "Every word capitalised.",
        "(functions/text.py:8)",
    ]
    code, out, err = ccbmdm(
        capsys, "functions", "--format", "json", "--project-dir", str(project.root)
    )
    listed = {f["name"]: f for f in json.loads(out)}
    assert listed["title_case"] == {
        "name": "title_case",
        "params": [{"name": "text", "type": "string"}],
        "result": "string",
        "doc": "Every word capitalised.",
        "signature": "title_case(text: string) -> string",
        "defined": "functions/text.py:8",
    }
    assert listed["initials"]["signature"] == (
        "initials(text: string, separator: string?) -> string?"
    )
    assert listed["concat"]["defined"] == "built-in"


def test_a_function_file_that_does_not_exist_is_a_project_error(tmp_path: Path) -> None:
    root = tmp_path / "project"
    init_project(root)
    with (root / "ccbmdm_project.yaml").open("a", encoding="utf-8") as file:
        file.write("functions: [functions/billing.py]\n")
    with pytest.raises(ProjectError, match=r"functions: functions/billing\.py is neither"):
        Project.load(root)


def test_a_changed_function_file_changes_the_build(project: Project) -> None:
    before = compiler.inputs_digest(project)
    edit(project.root / "functions" / "text.py", "text.title()", "text.upper()")
    assert compiler.inputs_digest(project) != before


@pytest.mark.slow
def test_generated_code_calling_project_functions_is_mypy_strict_clean(
    project: Project, tmp_path: Path
) -> None:
    call(project, "{fn: title_case, args: [entityName]}")
    edit(
        project.mappings / "person-sync.request.yaml",
        "      phone: phoneNumber",
        "      phone: {fn: initials, args: [entityName, language]}",
    )
    package = compiler.write(compiler.generate(project), tmp_path / "build")
    result = run_python(
        "-m", "mypy", "--strict", "--no-incremental", "-p", package.name, cwd=package.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr

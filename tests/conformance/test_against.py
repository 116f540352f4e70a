"""--against: the cases run against a bridge served by `ccbmdm run` on loopback, hosting only the
bridge, with CCB and MDM remote at the kit's receiving address. The kit posts each input as its
sending system, takes what the bridge delivers as CCB and MDM, and judges it as the in-process
run does."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ccbmdm.cli import app, run
from ccbmdm.codegen.project import Project, init_project
from loopback import TOKENS, Loopback, free_port

ASYNC_REQUEST = "person-sync/person-change"
ASYNC_ACK = "person-sync/ack-accepted"
ASYNC_FAULT = "person-sync/unknown-country"
INLINE_REQUEST = "high-low/boundaries-request"
INLINE_RESPONSE = "high-low/boundaries-response"
INLINE_FAULT = "get-usage/unknown-sqi"  # the reply's mapping fails: the bridge answers 90000/1101
BROKEN = "sp-sync/service-point-change"  # its golden changed on purpose: Naperville -> Boston
WITH_TABLES = "person-sync/business-extra-country"
CREDENTIALS = (
    *("--as-ccb", "token_env=CCBMDM_CCB_TOKEN", "--as-mdm", "token_env=CCBMDM_MDM_TOKEN"),
    *("--bridge-to-ccb", "token_env=CCBMDM_CCB_TOKEN"),
    *("--bridge-to-mdm", "token_env=CCBMDM_MDM_TOKEN"),
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The reference cases, one golden broken on purpose."""
    made = init_project(tmp_path_factory.mktemp("against") / "project")
    golden = made.cases / BROKEN / "expected.xml"
    text = golden.read_text(encoding="utf-8")
    golden.write_text(text.replace("<city>Naperville</city>", "<city>Boston</city>", 1))
    return made


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """A bridge alone under `ccbmdm run`, its CCB and MDM at the kit's address: (the bridge's
    URL, the port the kit is to receive on)."""
    folder = tmp_path_factory.mktemp("deployment")
    kit = free_port()
    urls = {
        "bridge": f"http://127.0.0.1:{free_port()}",
        "ccb": f"http://127.0.0.1:{kit}/ccb",
        "mdm": f"http://127.0.0.1:{kit}/mdm",
    }
    bridge = Loopback(folder, urls, {"bridge": str(folder / "bridge.db")})
    bridge.start("bridge")
    try:
        yield urls["bridge"], kit
    finally:
        bridge.stop()


@pytest.fixture(autouse=True)
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)


def against(
    capsys: pytest.CaptureFixture[str], project: Project, url: str, *args: str
) -> tuple[int, str, str]:
    code = run(
        lambda: app(["conformance", "--project-dir", str(project.root), "--against", url, *args])
    )
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cases(*ids: str) -> list[str]:
    return [argument for case in ids for argument in ("--case", case)]


def test_cases_of_every_kind_are_judged_on_what_the_bridge_delivers(
    project: Project,
    deployment: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, kit = deployment
    selected = (ASYNC_REQUEST, ASYNC_ACK, ASYNC_FAULT, INLINE_REQUEST, INLINE_RESPONSE)
    code, out, err = against(
        capsys,
        project,
        url,
        *cases(*selected, INLINE_FAULT, WITH_TABLES),
        *("--receive", f"127.0.0.1:{kit}", "--format", "json", *CREDENTIALS),
    )
    assert code == 0, out + err
    document = json.loads(out)
    verdicts = {case["case"]: (case["passed"], case["problems"]) for case in document["cases"]}
    assert verdicts == {case: (True, []) for case in (*selected, INLINE_FAULT)}
    assert document["skipped"] == [
        {"case": WITH_TABLES, "reason": "it sets tables:, which a deployment has of its own"}
    ]
    assert f"the kit takes deliveries as CCB at http://127.0.0.1:{kit}/ccb" in err


def test_a_broken_golden_fails_with_the_difference_the_in_process_run_reports(
    project: Project,
    deployment: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, kit = deployment
    in_process = run(
        lambda: app(["conformance", "--project-dir", str(project.root), "--case", BROKEN])
    )
    local = capsys.readouterr().out.splitlines()
    code, out, err = against(
        capsys, project, url, *cases(BROKEN), "--receive", f"127.0.0.1:{kit}", *CREDENTIALS
    )
    assert (in_process, code) == (1, 1), out + err
    lines = out.splitlines()
    at = lines.index(f"[1/1] {BROKEN} FAILED")
    assert lines[at + 1].startswith(
        '    /servicePoint/address/city: expected "Boston", actual "Naperville"  (written by '
        "mappings/sp-sync.request.yaml:"
    )
    assert lines[at + 1 : at + 2] == local[local.index(f"[1/1] {BROKEN} FAILED") + 1 :][:1]


def test_a_bridge_that_does_not_answer_is_said_once(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    code, out, err = against(
        capsys, project, nowhere, *cases(ASYNC_REQUEST, ASYNC_ACK), *CREDENTIALS
    )
    assert code == 1
    assert f"error: cannot reach the bridge at {nowhere}: ConnectError" in err
    assert "is it running, and is --against its base URL?" in err
    assert "[1/2]" not in out


def test_a_refused_credential_is_said_with_the_option_to_check(
    project: Project,
    deployment: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = deployment
    monkeypatch.setenv("WRONG_TOKEN", "not-the-ccb-token")
    code, _, err = against(
        capsys, project, url, *cases(ASYNC_REQUEST), "--as-ccb", "token_env=WRONG_TOKEN"
    )
    assert code == 1
    assert (
        f"error: the bridge at {url} refused the credential presented as CCB (HTTP 401): check "
        "--as-ccb against the bridge's nodes.bridge.accept.ccb"
    ) in err


def test_a_missing_credential_is_asked_for(
    project: Project, deployment: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = deployment
    code, _, err = against(capsys, project, url, *cases(ASYNC_ACK))
    assert code == 1
    assert (
        "error: no credential to present as MDM (PERSON_SYNC ack is sent by MDM): pass --as-mdm "
        "token_env=VAR, or user=NAME,password_env=VAR"
    ) in err


def test_a_delivery_with_another_credential_is_refused_and_the_case_says_so(
    project: Project,
    deployment: tuple[str, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, kit = deployment
    monkeypatch.setenv("OTHER_TOKEN", "not-what-the-bridge-presents")
    code, out, _ = against(
        capsys,
        project,
        url,
        *cases(ASYNC_REQUEST),
        *("--receive", f"127.0.0.1:{kit}", "--time-limit", "1"),
        *("--as-ccb", "token_env=CCBMDM_CCB_TOKEN", "--bridge-to-mdm", "token_env=OTHER_TOKEN"),
    )
    assert code == 1
    assert "delivered nothing to the kit within the time limit of 1 s" in out
    assert (
        "the kit's MDM refused a delivery of person-sync: the bridge did not present the "
        "credential given with --bridge-to-mdm"
    ) in out


def test_against_takes_no_update(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = against(capsys, project, "http://127.0.0.1:1", "--update")
    assert code == 2
    assert "--against checks a deployment; --update and --coverage work in process" in err

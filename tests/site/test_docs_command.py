"""`ccbmdm docs build`: the site of any project, one page per contract and mapping part."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from case_support import ccbmdm, edit

from ccbmdm.codegen.catalogue import load_catalogue
from ccbmdm.codegen.project import init_project
from ccbmdm.codegen.xsd_reader import read_contracts
from support import REPO


@pytest.mark.parametrize("command", [["docs"], ["docs", "build"], ["docs", "serve"]])
def test_every_docs_command_has_help(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = ccbmdm(capsys, *command, "--help")
    assert code == 0 and "Usage:" in out


@pytest.mark.slow
def test_a_new_project_builds_its_site_strictly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = init_project(tmp_path / "scratch")
    out = tmp_path / "html"
    code, stdout, stderr = ccbmdm(
        capsys, "docs", "build", "--strict", "--out", str(out), "--project-dir", str(project.root)
    )
    assert code == 0, stderr
    assert "warning" not in stderr
    assert f"open {out / 'index.html'}" in stdout
    # every contract, the common Fault and Receipt too
    contracts = read_contracts(project.contracts).contracts
    message_pages = {str(p.relative_to(out / "messages")) for p in out.glob("messages/*/*.html")}
    assert message_pages == {f"{name}.html" for name in contracts}
    assert "common/Fault" in contracts
    mapping_pages = {p.stem for p in (out / "mappings").glob("*.html")} - {"index"}
    assert mapping_pages == {p.stem for p in project.mappings.glob("*.yaml")}
    table_pages = {p.stem for p in (out / "code-tables").glob("*.html")} - {"index"}
    assert table_pages == {p.stem for p in (project.mappings / "tables").glob("*.yaml")}
    country = (out / "code-tables" / "OUCCB2_OUMDM2_Country.html").read_text(encoding="utf-8")
    assert "<td>USA</td> <td>US</td>" in country  # a row, key then value
    assert "person-sync.request" in country  # a mapping that reads it, linked
    assert not (project.root / "docs").exists()  # the guides are the framework's
    flows = load_catalogue(project.contracts / "flows.yaml")
    flow_pages = {p.stem for p in (out / "flows").glob("*.html")} - {"index"}
    assert flow_pages == {flow.kebab for flow in flows}
    person = (out / "flows" / "person-sync.html").read_text(encoding="utf-8")
    # the messages, then the sync request's and MDM's inbound sync lifecycles
    assert person.count('<pre class="mermaid">') == 3
    assert "person-sync/person-change" in person  # a case of the flow
    mapping = (out / "mappings" / "person-sync.request.html").read_text(encoding="utf-8")
    assert "person-sync/person-change" in mapping and "person-sync/ack-accepted" not in mapping
    assert (out / "assets" / "javascripts" / "mermaid.min.js").is_file()  # drawn offline
    config = (out / "messages" / "ccb" / "MeterConfigurationSyncRequest.html").read_text("utf-8")
    # the facets of an enumerated field link to its type's values, each with its meaning
    assert '<a href="#values-ccb-howtousetype">one of ADD, SUBTRACT, PEAK, CHECK</a>' in config
    assert 'id="values-ccb-howtousetype"' in config
    assert (
        "<tr><td>PEAK</td> <td>A demand register: the quantity of its UOM, TOU and SQI is the "
        "maximum, never a sum.</td></tr>"
    ) in config


def test_the_shipped_mermaid_is_the_one_its_readme_records() -> None:
    assets = REPO / "docsite" / "assets"
    recorded = re.search(r"SHA-256: `([0-9a-f]{64})`", (assets / "README.md").read_text())
    assert recorded is not None
    digest = hashlib.sha256((assets / "mermaid.min.js").read_bytes()).hexdigest()
    assert digest == recorded.group(1)


def test_outside_a_project_the_error_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = ccbmdm(capsys, "docs", "build")
    assert code == 1
    assert "no ccbmdm_project.yaml in" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_missing_documentation_or_sample_is_a_warning_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = init_project(tmp_path / "scratch")
    edit(
        project.contracts / "ccb" / "PersonSyncRequest.xsd",
        "<xs:annotation><xs:documentation>Flow 1 PERSON_SYNC: CCB's outbound sync request for"
        " a person (C1-MDM2PersonSyncRequest).</xs:documentation></xs:annotation>",
        "",
    )
    (project.contracts / "samples" / "ccb" / "PersonSyncRequest.xml").unlink()
    args = ("docs", "build", "--out", str(tmp_path / "html"), "--project-dir", str(project.root))

    code, _, stderr = ccbmdm(capsys, *args)
    assert code == 0, stderr
    assert (
        "contracts/ccb/PersonSyncRequest.xsd: ccb/PersonSyncRequest has no documentation" in stderr
    )
    assert (
        "ccb/PersonSyncRequest has no sample message in samples/ccb/PersonSyncRequest.xml" in stderr
    )
    page = (tmp_path / "html" / "messages" / "ccb" / "PersonSyncRequest.html").read_text()
    assert "The contract has no documentation." in page and "No sample message" in page

    code, _, stderr = ccbmdm(capsys, *args, "--strict")
    assert code == 1
    assert "ccb/PersonSyncRequest has no documentation" in stderr and "Traceback" not in stderr


@pytest.mark.slow
def test_a_value_without_documentation_is_a_warning_and_strict_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = init_project(tmp_path / "scratch")
    billing = project.contracts / "common" / "billing.xsd"
    edit(
        billing,
        "<xs:annotation><xs:documentation>A demand register: the quantity of its UOM, TOU and SQI"
        " is the maximum, never a sum.</xs:documentation></xs:annotation>",
        "",
    )
    line = billing.read_text("utf-8").splitlines().index('      <xs:enumeration value="PEAK">') + 1
    args = ("docs", "build", "--out", str(tmp_path / "html"), "--project-dir", str(project.root))

    code, _, stderr = ccbmdm(capsys, *args)
    assert code == 0, stderr
    assert (
        f"contracts/common/billing.xsd:{line}: ccb/BillDeterminantsResponse: "
        "registerReads/howToUse value PEAK has no documentation"
    ) in stderr
    assert "value ADD has no documentation" not in stderr
    page = (tmp_path / "html" / "messages" / "ccb" / "BillDeterminantsResponse.html").read_text()
    assert "<tr><td>PEAK</td> <td>(no documentation)</td></tr>" in page

    code, _, stderr = ccbmdm(capsys, *args, "--strict")
    assert code == 1
    assert "value PEAK has no documentation" in stderr and "Traceback" not in stderr

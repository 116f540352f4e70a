"""The documentation site, opened in a real browser: headless Chromium driven by Selenium.

The site is built with ``--strict`` (no mkdocs warning), served on the loopback interface and
read the way an integrator reads it: the home page and its pipeline diagram, a message's field
table, a mapping's lineage table, a flow's sequence and state diagrams, the command line, the
published benchmark results and material's search. Every page is saved as a screenshot in the
test's temporary folder, and any error in the browser's console fails the test.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium, console_errors, needs_chromium, open_page
from ccbmdm.cli import app
from ccbmdm.codegen import compiler
from ccbmdm.codegen.project import Project
from ccbmdm.codegen.xsd_reader import read_contracts
from ccbmdm.docsite import benchmarks
from ccbmdm.docsite.build import build_site
from ccbmdm.docsite.cli_reference import PARAMETER_TABLE, commands
from ccbmdm.docsite.mappings import LINEAGE_TABLE
from ccbmdm.docsite.messages import FIELD_TABLE, VALUES_TABLE, fields, values
from ccbmdm.docsite.serve import serving
from support import REPO

MESSAGE = "ccb/ContractOptionEventSyncRequest"
MAPPING = "mappings/sa-sync.request.yaml"
FLOW = "person-sync"  # a sequence diagram, then the sync request's and MDM's lifecycles
# An element of MESSAGE only: searching for it must lead to MESSAGE's page.
FIELD = "contractOptionEventId"

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def site_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("site")
    site = build_site(
        Project.load(REPO), folder / "html", strict=True, work=folder / "pages", cli=app
    )
    assert site.warnings == []
    with serving(site.out) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def first_column(browser: webdriver.Chrome, name: str) -> list[str]:
    cells = browser.find_elements(By.CSS_SELECTOR, f"table[data-table={name}] tbody td:first-child")
    return [cell.get_attribute("textContent") or "" for cell in cells]


def diagrams(browser: webdriver.Chrome) -> list[str]:
    """The kind of each diagram Mermaid drew on the page, in order ("sequence", "stateDiagram",
    "flowchart-v2"; "error" for Mermaid's error picture), once every block has been drawn.

    Material draws each diagram into a closed shadow root, which scripts cannot enter; the
    browser's DevTools protocol reads the whole tree, shadow roots included."""
    WebDriverWait(browser, 30).until(lambda b: not b.find_elements(By.CSS_SELECTOR, "pre.mermaid"))
    tree = browser.execute_cdp_cmd("DOM.getDocument", {"depth": -1, "pierce": True})
    kinds: list[str] = []

    def attributes(node: dict[str, Any]) -> dict[str, str]:
        flat = node.get("attributes", [])
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def walk(node: dict[str, Any], in_diagram: bool) -> None:
        if node.get("nodeName") == "svg" and in_diagram:
            kinds.append(attributes(node).get("aria-roledescription", "unknown"))
            return
        host = node.get("nodeName") == "DIV" and attributes(node).get("class") == "mermaid"
        for child in node.get("children", []) + node.get("shadowRoots", []):
            walk(child, in_diagram or host)

    walk(tree["root"], False)
    return kinds


def test_the_home_page_links_the_sections(
    browser: webdriver.Chrome, site_url: str, shots: Path
) -> None:
    open_page(browser, site_url + "index.html")
    browser.save_screenshot(str(shots / "home.png"))
    tabs = [
        t.get_attribute("textContent") or ""
        for t in browser.find_elements(By.CSS_SELECTOR, ".md-tabs__link")
    ]
    assert [t.strip() for t in tabs][:2] == ["Home", "Guides"]
    assert [t.strip() for t in tabs][-7:] == [
        "Flows",
        "Messages",
        "Mappings",
        "Code tables",
        "Command line",
        "Rules",
        "Schemas",
    ]
    assert browser.find_element(By.CSS_SELECTOR, "article h1").text
    assert diagrams(browser) == ["flowchart-v2"]  # the pipeline
    results = benchmarks.PAGE.replace(".md", ".html")
    assert browser.find_elements(By.CSS_SELECTOR, f'article a[href="{results}"]')
    assert console_errors(browser) == []


def test_a_flow_page_draws_its_messages_and_lifecycles(
    browser: webdriver.Chrome, site_url: str, shots: Path
) -> None:
    open_page(browser, f"{site_url}flows/{FLOW}.html")
    drawn = diagrams(browser)
    browser.save_screenshot(str(shots / "flow.png"))
    assert drawn == ["sequence", "stateDiagram", "stateDiagram"]
    headings = [h.text for h in browser.find_elements(By.CSS_SELECTOR, "article h3")]
    assert headings == ["CCB: sync request", "MDM: MDM inbound sync request"]
    assert console_errors(browser) == []


def test_a_message_page_lists_every_element_of_its_contract(
    browser: webdriver.Chrome, site_url: str, shots: Path
) -> None:
    contracts = read_contracts(REPO / "contracts")
    expected = [f.path for f in fields(contracts, contracts.contracts[MESSAGE])]
    open_page(browser, f"{site_url}messages/{MESSAGE}.html")
    browser.save_screenshot(str(shots / "message.png"))
    assert first_column(browser, FIELD_TABLE) == expected
    assert f"contractOptionEvent/{FIELD}" in expected
    # every value of its enumerated fields, under the field table
    enumerated = values(contracts, contracts.contracts[MESSAGE])
    assert first_column(browser, VALUES_TABLE) == [
        v.value for entry in enumerated for v in entry.type.facets.value_docs
    ]
    assert "DELETE" in first_column(browser, VALUES_TABLE)
    assert console_errors(browser) == []


def test_a_mapping_page_has_a_row_per_target_field(
    browser: webdriver.Chrome, site_url: str, shots: Path
) -> None:
    lineage = json.loads(compiler.generate(Project.load(REPO)).lineage)[MAPPING]
    open_page(browser, f"{site_url}mappings/{Path(MAPPING).stem}.html")
    browser.save_screenshot(str(shots / "mapping.png"))
    assert first_column(browser, LINEAGE_TABLE) == list(lineage["fields"])
    assert len(lineage["fields"]) > 5
    assert console_errors(browser) == []


def test_the_command_line_page_has_a_section_per_command(
    browser: webdriver.Chrome, site_url: str, shots: Path
) -> None:
    expected = [entry.name for entry in commands(app)]
    open_page(browser, site_url + "cli.html")
    browser.save_screenshot(str(shots / "cli.png"))
    headings = browser.find_elements(By.CSS_SELECTOR, "article :is(h2, h3, h4, h5, h6)")
    assert [h.text.strip() for h in headings] == expected
    assert first_column(browser, PARAMETER_TABLE)[:1] == ["--version"]
    assert console_errors(browser) == []


def test_the_benchmark_results_page_shows_the_published_run(
    browser: webdriver.Chrome, site_url: str, shots: Path
) -> None:
    published = benchmarks.load(REPO)
    assert published is not None
    open_page(browser, site_url + benchmarks.PAGE.replace(".md", ".html"))
    browser.set_window_size(1280, 2600)  # the whole page in the screenshot
    try:
        browser.save_screenshot(str(shots / "benchmarks.png"))
    finally:
        browser.set_window_size(1280, 1000)
    headings = browser.find_elements(By.CSS_SELECTOR, "article h2")
    assert [h.text.strip() for h in headings] == ["Machine", *published.scenarios()]
    assert first_column(browser, benchmarks.RESULTS_TABLE) == [r["name"] for r in published.results]
    # in the navigation, it follows the guide that says how the suite runs
    current, before = browser.execute_script(
        "const item = document.querySelector('.md-nav__link--active').closest('li');"
        "const title = (li) => li.querySelector('.md-nav__link').textContent.trim();"
        "return [title(item), title(item.previousElementSibling)];"
    )
    assert (current, before) == (benchmarks.TITLE, "Benchmarks")
    assert console_errors(browser) == []


def test_search_finds_a_contract_by_a_field_name(
    browser: webdriver.Chrome, site_url: str, shots: Path
) -> None:
    open_page(browser, site_url + "index.html")
    # The window is wide enough for material to show the search box in the header.
    box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
    box.click()
    box.send_keys(FIELD)
    page = f"messages/{MESSAGE}.html"

    def found(b: webdriver.Chrome) -> bool:
        links = b.find_elements(By.CSS_SELECTOR, ".md-search-result__link")
        return any(page in (link.get_attribute("href") or "") for link in links)

    WebDriverWait(browser, 30).until(found)
    browser.save_screenshot(str(shots / "search.png"))
    assert console_errors(browser) == []


def test_screenshots_are_kept(shots: Path) -> None:
    """A copy for people to look at, when asked for with CCBMDM_SITE_SHOTS."""
    import os

    target = os.environ.get("CCBMDM_SITE_SHOTS")
    if target:
        shutil.copytree(shots, target, dirs_exist_ok=True)
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "benchmarks.png",
        "cli.png",
        "flow.png",
        "home.png",
        "mapping.png",
        "message.png",
        "search.png",
    ]

"""Headless Chromium driven by Selenium, for the tests that read pages the way a person does
(the documentation site, the operator's console): the browser, a page opened until it has
loaded, and the errors its console logged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

# Debian's chromium and chromium-driver, which .ci/run installs when they are missing
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (.ci/run installs them)",
)


@contextmanager
def chromium(profile: Path) -> Iterator[webdriver.Chrome]:
    """A headless browser with its profile in ``profile``, logging its console."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: webdriver.Chrome, url: str) -> None:
    browser.get(url)
    wait_loaded(browser)


def wait_loaded(browser: webdriver.Chrome) -> None:
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete"
    )


def console_errors(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    # Selenium leaves get_log unannotated; it returns the log's entries as dicts.
    log: list[dict[str, Any]] = browser.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in log if entry["level"] == "SEVERE"]


def save_whole_page(browser: webdriver.Chrome, path: Path) -> None:
    """A screenshot of the whole page, not only the window's part of it: the window is made as
    tall as the page for the shot, then given its size back."""
    size = browser.get_window_size()
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size["width"], max(size["height"], int(height) + 150))
    try:
        browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(size["width"], size["height"])

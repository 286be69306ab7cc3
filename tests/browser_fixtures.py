"""A real headless Chromium for the UI tests, and a checker's hands on the checker UI's pages.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser-binaries`` installs them).
Their absence fails the test (``make test`` installs them first), never skips it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


# ------------------------------------------------------------------ Chromium
def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser and driver:
        return browser, driver
    missing = ", ".join(
        name for name, found in (("chromium", browser), ("chromedriver", driver)) if not found
    )
    reason = (
        f"{missing} not found: run `make browser-binaries` (Debian packages chromium and "
        "chromium-driver)"
    )
    # `make test` installs them, so their absence is a failure, never a skip.
    pytest.fail(reason, pytrace=False)


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = _binaries()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1800",
        "--no-first-run",
    ):
        options.add_argument(argument)
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # Chromium's sandbox refuses to run as root
    profile = tempfile.mkdtemp(prefix="srs-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver))
    chrome.set_page_load_timeout(60)
    try:
        yield chrome
    finally:
        chrome.quit()
        shutil.rmtree(profile, ignore_errors=True)


# ------------------------------------------------------------------ driving the pages
class Checker:
    """One checker's hands on the browser."""

    def __init__(self, browser: webdriver.Chrome, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.wait = WebDriverWait(browser, 30)

    def open(self, path: str) -> None:
        self.browser.get(self.base_url + path)

    def submit(self, button) -> None:
        """Click a submit button and wait for the next page to have loaded.

        The old page is tagged first and the wait is for a complete page without the tag:
        chromedriver's staleness check can itself fail mid-navigation ("node does not belong
        to the document"), so errors while the page changes count as "not yet".
        """
        token = uuid.uuid4().hex
        self.browser.execute_script(
            "document.documentElement.dataset.srsPage = arguments[0]", token
        )
        button.click()

        def next_page_loaded(browser) -> bool:
            try:
                return browser.execute_script(
                    "return document.readyState === 'complete' && "
                    "document.documentElement.dataset.srsPage !== arguments[0]",
                    token,
                )
            except WebDriverException:
                return False

        self.wait.until(next_page_loaded)

    def flash(self) -> str:
        found = self.browser.find_elements(By.ID, "flash")
        return found[0].text if found else ""

    def sign_in(self, username: str, password: str) -> None:
        self.open("sign-in")
        self.browser.find_element(By.ID, "username").send_keys(username)
        self.browser.find_element(By.ID, "password").send_keys(password)
        self.submit(self.browser.find_element(By.ID, "sign-in"))

    def sign_out(self) -> None:
        self.submit(self.browser.find_element(By.ID, "sign-out"))

    def open_request_from_queue(self, request_id: int) -> None:
        self.open("queue")
        row = self.browser.find_element(By.CSS_SELECTOR, f'tr[data-request="{request_id}"]')
        link = row.find_element(By.CSS_SELECTOR, "a.open-request")
        self.submit(link)

    def output(self, output_id: int):
        return self.browser.find_element(By.ID, f"output-{output_id}")

    def vote(self, output_id: int, decision: str, comment: str = "", visible: bool = False):
        section = self.output(output_id)
        if comment:
            section.find_element(By.NAME, "comment").send_keys(comment)
        if visible:
            Select(section.find_element(By.NAME, "visibility")).select_by_value("researcher")
        css = {"approve": "approve", "reject": "reject", "request_changes": "request-changes"}
        self.submit(section.find_element(By.CSS_SELECTOR, f"button.{css[decision]}"))
        shown = decision.replace("_", " ")
        assert f"Your decision on output #{output_id} is recorded: {shown}." in self.flash()
        your_vote = self.output(output_id).find_element(By.CLASS_NAME, "your-vote").text
        assert your_vote.startswith(f"Your vote: {shown}")

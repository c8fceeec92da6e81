"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

One walk through every page against a real ``relaygate serve``: log in (an API key is refused),
watch the overview's numbers move while requests flow (without a page reload), create a key,
top it up and revoke it, filter the requests table and open one request, switch the usage page
to CNY and download its CSV, look at jobs and cache, log out. The browser console must stay
free of errors, and every page's screenshot lands in ``$RELAYGATE_ARTIFACTS`` (default
``artifacts/dashboard`` in the repository).

Selenium is pointed at the system's browser and driver explicitly, so it never downloads one.
Without them the test skips locally and fails in CI (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import Gateway, start_gateway, stop
from tests.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parents[2]
API_KEY = re.compile(r"rg-[A-Za-z0-9_-]{40}")

webdriver: Any
try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.common.by import By
except ImportError:  # pragma: no cover - the test extra installs it
    webdriver = None


def _missing() -> str | None:
    if webdriver is None:
        return "selenium is not installed (pip install -e '.[test]')"
    absent = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if absent:
        return f"{' and '.join(absent)} missing (apt-get install chromium chromium-driver)"
    return None


def artifacts_dir() -> Path:
    path = Path(os.environ.get("RELAYGATE_ARTIFACTS") or REPO / "artifacts" / "dashboard")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1360,900",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def dashboard_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway of its own, so the ledger holds only this module's requests."""
    gw = start_gateway(tmp_path_factory.mktemp("dashboard-home"))
    yield gw
    stop(gw.process)


class Traffic:
    """Chat requests to the mock on a thread until stopped."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.sent = 0

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        headers = {
            "authorization": f"Bearer {self._gateway.api_key}",
            "x-relaygate-user": "shopper-1",
            "x-relaygate-tags": "team=cs,workflow=wf_1",
        }
        body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}
        with httpx.Client(base_url=self._gateway.base_url, timeout=10.0) as client:
            while not self._stop.is_set():
                response = client.post("/v1/chat/completions", headers=headers, json=body)
                assert response.status_code == 200, response.text
                self.sent += 1
                self._stop.wait(0.02)  # a steady trickle, not a load test


class Walk:
    def __init__(self, driver: WebDriver, gateway: Gateway) -> None:
        self.driver = driver
        self.gateway = gateway
        self.shots = artifacts_dir()

    def open(self, path: str) -> None:
        self.driver.get(self.gateway.base_url + path)

    def text(self, css: str) -> str:
        """The element's text, read in one script (htmx may swap it out between two calls)."""
        texts = self.texts(css)
        assert texts, f"no element matches {css} on {self.path()}"
        return texts[0]

    def texts(self, css: str) -> list[str]:
        script = "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);"
        return [str(t).strip() for t in self.driver.execute_script(script, css)]

    def fill(self, css: str, value: str) -> None:
        field = self.driver.find_element(By.CSS_SELECTOR, css)
        field.clear()
        field.send_keys(value)

    def click(self, css: str) -> None:
        """Click something that loads a new page, and wait until the old one is gone."""
        old = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(By.CSS_SELECTOR, css).click()
        wait_until(lambda: _gone(old), timeout=15, what=f"the page after clicking {css}")
        wait_until(
            lambda: self.driver.execute_script("return document.readyState") == "complete",
            timeout=15,
            what="the new page to load",
        )

    def path(self) -> str:
        return str(self.driver.current_url).removeprefix(self.gateway.base_url)

    def screenshot(self, name: str) -> None:
        assert self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def console_errors(self) -> list[dict[str, Any]]:
        """The console's SEVERE entries since the last call (reading the log empties it)."""
        entries: list[dict[str, Any]] = self.driver.get_log("browser")
        return [e for e in entries if e.get("level") == "SEVERE"]

    def row_of_key(self, name: str) -> str:
        return self.text(f'#keys tr[data-key="{name}"]')


def _gone(element: Any) -> bool:
    try:
        element.is_enabled()
    except WebDriverException:  # stale, or already detached from the new document
        return True
    return False


def test_a_walk_through_every_page(browser: WebDriver, dashboard_gateway: Gateway) -> None:
    walk = Walk(browser, dashboard_gateway)
    walk.open("/dashboard")
    assert walk.path() == "/dashboard/login"
    walk.screenshot("login")

    walk.fill("#token", dashboard_gateway.api_key)
    walk.click("#login")
    assert "not an admin token" in walk.text("#login-error")
    # The refused login is a 401, which Chrome reports as a failed resource; nothing else.
    assert all("401" in e["message"] for e in walk.console_errors())

    walk.fill("#token", dashboard_gateway.admin_token)
    walk.click("#login")
    assert walk.path() == "/dashboard"
    _overview_moves_live(walk, dashboard_gateway)
    _keys(walk)
    _requests(walk)
    _usage(walk)
    for page in ("jobs", "cache"):
        walk.click(f"#nav-{page}")
        assert walk.path() == f"/dashboard/{page}"
        walk.screenshot(page)
    assert walk.console_errors() == []

    walk.click("#logout")
    assert walk.path() == "/dashboard/login"
    walk.open("/dashboard/keys")
    assert walk.path() == "/dashboard/login"
    assert walk.console_errors() == []


def _overview_moves_live(walk: Walk, gateway: Gateway) -> None:
    before = walk.text("#stat-requests")
    # Marks this document: a full reload would lose it, an htmx swap keeps it.
    walk.driver.execute_script(
        "window.relaygateTestMarker = 'same page'; window.relaygateSwaps = 0;"
        "document.body.addEventListener('htmx:afterSwap', function () {"
        " window.relaygateSwaps += 1; });"
    )
    with Traffic(gateway) as traffic:
        wait_until(lambda: traffic.sent >= 60, timeout=30, what="60 requests sent")
        wait_until(
            lambda: walk.text("#stat-requests") != before and walk.text("#stat-rps") != "0.00",
            timeout=30,
            what="the overview's request count and rate to move",
        )
        wait_until(
            lambda: "mock-gpt" in walk.text("#models"), timeout=15, what="a model row appears"
        )
        # A few more polls, so the chart in the screenshot has a line.
        wait_until(
            lambda: walk.driver.execute_script("return window.relaygateSwaps") >= 4,
            timeout=30,
            what="four live updates",
        )
        assert walk.driver.execute_script("return window.relaygateTestMarker") == "same page"
        walk.screenshot("overview")
    assert "ms" in walk.text("#stat-latency")
    assert walk.text("#deployments")
    assert walk.console_errors() == []


def _keys(walk: Walk) -> None:
    walk.click("#nav-keys")
    walk.fill("#create-name", "browser-key")
    walk.fill('#create-key input[name="monthly_budget_usd"]', "25")
    walk.fill('#create-key input[name="balance_usd"]', "5")
    walk.fill('#create-key input[name="allowed_models"]', "mock-gpt, mock-claude")
    walk.click("#create")
    assert API_KEY.fullmatch(walk.text("#new-key"))
    assert "$5.00" in walk.row_of_key("browser-key")
    walk.screenshot("keys")

    row = '#keys tr[data-key="browser-key"]'
    walk.fill(f'{row} input[name="amount"]', "10")
    walk.click(f"{row} form.top-up button")
    assert "topped up" in walk.text("#done")
    assert "$15.00" in walk.row_of_key("browser-key")
    # The key is shown once: the page after the top-up does not show it again.
    assert not walk.driver.find_elements(By.CSS_SELECTOR, "#new-key")

    walk.click(f"{row} a.edit")
    entries = walk.texts("#balance-entries tbody tr")
    assert len(entries) == 2 and "$10.00" in " ".join(entries)
    walk.screenshot("key-edit")
    walk.fill('#adjust-balance input[name="amount"]', "-2.5")
    walk.driver.find_element(
        By.CSS_SELECTOR, '#adjust-balance select[name="kind"] option[value="adjustment"]'
    ).click()
    walk.fill('#adjust-balance input[name="note"]', "correction")
    walk.click("#adjust")
    assert "$12.50" in walk.row_of_key("browser-key")
    walk.click(f"{row} a.edit")
    walk.fill('#edit-key input[name="rpm"]', "120")
    walk.click("#save")
    assert "updated" in walk.text("#done")

    walk.click(f"{row} form.revoke button")
    assert "revoked" in walk.text("#done")
    assert "revoked" in walk.row_of_key("browser-key")
    assert walk.console_errors() == []


def _requests(walk: Walk) -> None:
    walk.click("#nav-requests")
    assert len(walk.texts("#requests tbody tr")) == 50  # a full first page
    assert walk.driver.find_elements(By.CSS_SELECTOR, "#next")
    walk.fill('#request-filters input[name="model"]', "mock-gpt")
    walk.fill('#request-filters input[name="user"]', "shopper-1")
    walk.fill('#request-filters input[name="tag"]', "team=cs")
    walk.click("#filter")
    assert "model=mock-gpt" in walk.path()
    statuses = walk.texts("#requests td.status")
    assert statuses and set(statuses) == {"200"}
    walk.screenshot("requests")

    walk.fill('#request-filters input[name="status"]', "503")
    walk.click("#filter")
    assert "No request matches" in walk.text("#requests")

    walk.click("#nav-requests")
    walk.click("#requests tbody tr a")
    assert "/dashboard/requests/detail?id=" in walk.path()
    assert "mock-gpt" in walk.text("table.attempts")
    walk.screenshot("request-detail")
    assert walk.console_errors() == []


def _usage(walk: Walk) -> None:
    walk.click("#nav-usage")
    usd_total = walk.text("#usage-total")
    assert usd_total.startswith("$")
    assert walk.driver.find_elements(By.CSS_SELECTOR, "#cost-chart canvas")
    walk.screenshot("usage-usd")

    walk.click("#currency-CNY")
    assert "currency=CNY" in walk.path()
    assert walk.text("#usage-total").startswith("¥")
    assert "Cost (CNY)" in walk.text("#usage-table")
    walk.screenshot("usage-cny")

    href = walk.driver.find_element(By.CSS_SELECTOR, "#csv").get_attribute("href")
    assert href is not None
    cookies = {c["name"]: c["value"] for c in walk.driver.get_cookies()}
    csv = httpx.get(href, cookies=cookies, follow_redirects=False)
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv.headers["content-disposition"]
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("group,requests,errors")
    assert lines[-1].startswith("TOTAL,") and lines[-1].endswith(",CNY")
    walk.click("#nav-usage")
    walk.fill('#usage-filters input[name="tagkey"]', "workflow")
    walk.click("#usage-filters button")
    assert "wf_1" in walk.text("#usage-table")
    assert walk.console_errors() == []

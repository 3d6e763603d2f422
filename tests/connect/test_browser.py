"""A real browser clicks through a Facebook connect flow: headless Chromium (Debian's
`chromium` and `chromium-driver`, installed by .ci/run) opens the connect link, consents
at the sandbox, ticks a second Page on Crier's selection page and lands on redirect_url.
The same for Instagram through Facebook Login, where the choices are the Instagram
accounts linked to the Pages. A screenshot of each selection page is kept in
var/test-artifacts/."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask

from tests.api.helpers import sql
from tests.conftest import Tenant
from tests.connect.conftest import connect_link

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser test needs Debian's chromium and chromium-driver "
    "(.ci/run installs them with apt-get; they could not be installed here)",
)


@pytest.fixture
def browser() -> Any:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=900,900")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


# (platform, connect link options, screenshot name)
FLOWS = [
    ("facebook", {}, "connect-facebook-page-selection.png"),
    ("instagram", {"login": "facebook"}, "connect-instagram-facebook-login-selection.png"),
]


@pytest.mark.parametrize(("platform", "options", "shot_name"), FLOWS, ids=["facebook", "ig-fb"])
def test_a_browser_clicks_through_the_facebook_connect_flow(
    platform: str,
    options: dict[str, str],
    shot_name: str,
    app: Flask,
    connect_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    done_url = f"{connect_env}/health"
    link = connect_link(tenant.api, platform, redirect_url=done_url, state="browser", **options)

    browser.get(link["url"])  # → the sandbox's consent page → Crier's callback → selection
    WebDriverWait(browser, 20).until(lambda d: "/connect/select/" in d.current_url)
    assert browser.title == "Choose the accounts to connect"
    boxes = browser.find_elements(By.NAME, "choice")
    assert len(boxes) == 2 and boxes[0].is_selected() and not boxes[1].is_selected()
    boxes[1].click()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / shot_name
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 1000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(done_url))
    result = {k: v[0] for k, v in parse_qs(urlsplit(browser.current_url).query).items()}
    assert result["status"] == "connected" and result["state"] == "browser"
    rows = sql(app, "SELECT id, name, platform FROM accounts ORDER BY id")
    assert [str(r["id"]) for r in rows] == result["account_ids"].split(",")
    assert len(rows) == 2 and {r["platform"] for r in rows} == {platform}


def test_a_browser_connects_bluesky_with_an_app_password(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client, browser: Any
) -> None:
    """Crier's own form: the account password is refused on the page, an app password
    connects the account."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    done_url = f"{connect_env}/health"
    link = connect_link(tenant.api, "bluesky", redirect_url=done_url, state="sky")

    browser.get(link["url"])
    assert browser.title == "Connect a Bluesky account"
    browser.find_element(By.ID, "handle").send_keys("carol.bsky.social")
    browser.find_element(By.ID, "app_password").send_keys("my-own-password")
    browser.find_element(By.ID, "connect").click()
    error = WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "error"))
    assert "account password" in error[0].text
    assert browser.find_element(By.ID, "handle").get_attribute("value") == "carol.bsky.social"
    assert browser.find_element(By.ID, "app_password").get_attribute("value") == ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "connect-bluesky-form.png"))

    browser.find_element(By.ID, "app_password").send_keys("abcd-efgh-ijkl-mnop")
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(done_url))
    result = {k: v[0] for k, v in parse_qs(urlsplit(browser.current_url).query).items()}
    assert result["status"] == "connected" and result["state"] == "sky"
    [row] = sql(app, "SELECT id, external_id, platform FROM accounts")
    assert (row["platform"], row["external_id"]) == ("bluesky", "carol.bsky.social")


def test_a_browser_fills_the_telegram_connect_page(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client, browser: Any
) -> None:
    """Crier's own page for Telegram: a wrong chat is shown again with the reason, the
    right one connects and lands on redirect_url."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app.config["CRIER"] = replace(app.config["CRIER"], telegram_bot_token="7000000001:crier-bot")
    done_url = f"{connect_env}/health"
    link = connect_link(tenant.api, "telegram", redirect_url=done_url, state="browser")

    browser.get(link["url"])
    assert browser.title == "Connect a Telegram account"
    browser.find_element(By.ID, "chat").send_keys("@sandbox_member")
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "error"))
    assert "not an administrator" in browser.find_element(By.ID, "error").text
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "connect-telegram-chat.png"))

    field = browser.find_element(By.ID, "chat")
    field.clear()
    field.send_keys("t.me/crier_news")
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(done_url))
    result = {k: v[0] for k, v in parse_qs(urlsplit(browser.current_url).query).items()}
    assert result["status"] == "connected" and result["state"] == "browser"
    [row] = sql(app, "SELECT external_id, platform FROM accounts")
    assert row == {"external_id": "@crier_news", "platform": "telegram"}

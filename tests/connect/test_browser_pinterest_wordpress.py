"""A real browser through Pinterest's consent and WordPress's credential page: headless
Chromium (as in test_browser.py) opens the connect link and lands on redirect_url with
the account connected. A screenshot of the WordPress form is kept in
var/test-artifacts/."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from flask import Flask

from tests.api.helpers import sql
from tests.conftest import Tenant
from tests.connect.conftest import connect_link
from tests.connect.test_browser import ARTIFACTS, browser, pytestmark
from tests.connect.test_pinterest_wordpress import pinterest_env

__all__ = ["browser", "pinterest_env", "pytestmark"]


def _result(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def test_a_browser_connects_pinterest_through_its_consent(
    app: Flask, pinterest_env: str, tenant: Tenant, sandbox: httpx.Client, browser: Any
) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    done_url = f"{pinterest_env}/health"
    link = connect_link(tenant.api, "pinterest", redirect_url=done_url, state="pin")

    browser.get(link["url"])  # → the sandbox's consent → Crier's callback → redirect_url
    WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(done_url))

    result = _result(browser.current_url)
    assert result["status"] == "connected" and result["state"] == "pin", result
    [row] = sql(app, "SELECT platform, settings FROM accounts")
    assert row["platform"] == "pinterest" and len(row["settings"]["boards"]) == 2


def test_a_browser_fills_in_the_wordpress_form(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    done_url = f"{connect_env}/health"
    link = connect_link(tenant.api, "wordpress", redirect_url=done_url, state="wp")
    sandbox.post("/_faults", json={"wordpress": {"revoked_tokens": ["editor:typo"]}})

    browser.get(link["url"])
    assert browser.title == "Connect a WordPress account"
    browser.find_element(By.ID, "site_url").send_keys("https://blog.example.com")
    browser.find_element(By.ID, "username").send_keys("editor")
    browser.find_element(By.ID, "application_password").send_keys("typo")
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "error"))
    assert "refused" in browser.find_element(By.ID, "error").text
    # What was typed stays, except the password.
    assert browser.find_element(By.ID, "username").get_attribute("value") == "editor"
    assert browser.find_element(By.ID, "application_password").get_attribute("value") == ""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "connect-wordpress-form.png"
    assert browser.save_screenshot(str(shot))

    browser.find_element(By.ID, "application_password").send_keys("abcd EFGH 1234 ijkl")
    browser.find_element(By.ID, "connect").click()
    WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(done_url))

    result = _result(browser.current_url)
    assert result["status"] == "connected" and result["state"] == "wp", result
    [row] = sql(app, "SELECT platform, external_id FROM accounts")
    assert (row["platform"], row["external_id"]) == ("wordpress", "https://blog.example.com")

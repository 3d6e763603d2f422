"""A real browser through the consents where the user picks something on the platform's
page: headless Chromium (as in test_browser.py) opens the connect link, fills the page
(Mastodon's server on Crier; the server and channel on Discord's consent; the blog on
WordPress.com's), lands on redirect_url, and the account is listed through the API and
publishes once through the pipeline. The sandbox's consent pages are on
(`consent_page`; Mastodon's is Authorize or Cancel). A screenshot of each consent page is
kept in var/test-artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask

from app.config import Settings
from sandbox import consent
from tests.api.helpers import future, sql
from tests.conftest import Tenant
from tests.connect.conftest import connect_link, publish_now
from tests.connect.test_browser import ARTIFACTS, browser, pytestmark
from workers.pipeline import PipelineDeps

__all__ = ["browser", "pytestmark"]

BOT_TOKEN = "crier-discord-bot-token"


@pytest.fixture
def apps_env(app: Flask, connect_env: str, sandbox: httpx.Client) -> Iterator[str]:
    """Crier's Discord app and bot and its WordPress.com app set; the sandbox's Discord
    and WordPress.com consents are pages to fill in."""
    settings = app.config["CRIER"]
    apps = dict(settings.platform_apps)
    env = {
        "CRIER_DISCORD_CLIENT_ID": "crier-discord",
        "CRIER_DISCORD_CLIENT_SECRET": "s",
        "CRIER_WORDPRESS_CLIENT_ID": "crier-wpcom",
        "CRIER_WORDPRESS_CLIENT_SECRET": "s",
    }
    apps.update(Settings.from_env(env).platform_apps)
    app.config["CRIER"] = replace(settings, platform_apps=apps, discord_bot_token=BOT_TOKEN)
    pages = {"consent_page": True}
    sandbox.post("/_faults", json={"discord": pages, "wordpress": pages}).raise_for_status()
    yield connect_env


def _done(browser: Any, done_url: str, state: str) -> dict[str, str]:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: d.current_url.startswith(done_url))
    result = {k: v[0] for k, v in parse_qs(urlsplit(browser.current_url).query).items()}
    assert result["status"] == "connected" and result["state"] == state, result
    return result


def _listed(tenant: Tenant, result: dict[str, str]) -> list[dict[str, Any]]:
    """The accounts the walk connected, as GET /accounts lists them."""
    ids = {int(i) for i in result["account_ids"].split(",")}
    listed = [a for a in tenant.api.get("/accounts").json()["data"] if a["id"] in ids]
    assert len(listed) == len(ids)
    return listed


def _publish(app: Flask, tenant: Tenant, deps: PipelineDeps, account_id: int, **extra: Any):
    body = {"content": "Hi", "account_ids": [account_id], "scheduled_at": future(2), **extra}
    created = tenant.api.post("/posts", json=body)
    assert created.status_code == 201, created.text
    assert publish_now(app, deps, created.json()["data"]["post_id"]) == "published"


def _consent(browser: Any, shot: str, **picks: str) -> None:
    """On the sandbox's consent page: pick by the options' text, keep a screenshot,
    authorize."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "approve"))
    for field, text in picks.items():
        Select(browser.find_element(By.ID, field)).select_by_visible_text(text)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / shot))
    browser.find_element(By.ID, "approve").click()


def test_a_browser_connects_mastodon_on_the_server_it_names(
    app: Flask,
    connect_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By

    sandbox.post("/_faults", json={"mastodon": {"consent_page": True}}).raise_for_status()
    done_url = f"{connect_env}/health"
    link = connect_link(tenant.api, "mastodon", redirect_url=done_url, state="md")

    browser.get(link["url"])
    assert browser.title == "Connect your Mastodon account"
    browser.find_element(By.ID, "instance").send_keys("https://Sandbox.Social/@someone")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "connect-mastodon-instance.png"))
    browser.find_element(By.ID, "continue").click()  # → app registered → the consent page
    _consent(browser, "connect-mastodon-consent.png")  # → Crier's callback

    [account] = _listed(tenant, _done(browser, done_url, "md"))
    assert account["platform"] == "mastodon"
    assert account["external_id"] == "https://sandbox.social/@sandbox"
    [registered] = sql(app, "SELECT instance FROM instance_apps")
    assert registered["instance"] == "https://sandbox.social"
    _publish(app, tenant, deps, account["id"])
    [status] = sandbox.get("/_ledger", params={"platform": "mastodon"}).json()
    assert status["text"] == "Hi"


def test_a_browser_picks_the_server_and_channel_of_a_discord_webhook(
    app: Flask,
    apps_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
    browser: Any,
) -> None:
    _, studio = consent.discord_guilds("sandbox")
    [_, announcements] = [c for c in studio["channels"] if c["type"] in (0, 5)]
    done_url = f"{apps_env}/health"
    link = connect_link(tenant.api, "discord", redirect_url=done_url, state="hook")

    browser.get(link["url"])
    _consent(
        browser,
        "connect-discord-webhook-consent.png",
        guild=studio["name"],
        channel=f"{studio['name']} · #announcements",
    )

    [account] = _listed(tenant, _done(browser, done_url, "hook"))
    assert account["platform"] == "discord" and account["external_id"] == announcements["id"]
    _publish(app, tenant, deps, account["id"])
    [message] = sandbox.get("/_ledger", params={"platform": "discord"}).json()
    assert message["account"] == announcements["id"]
    [target] = sql(app, "SELECT url FROM post_targets")
    assert target["url"].startswith(f"https://discord.com/channels/{studio['id']}/")


def test_a_browser_installs_crier_bot_and_picks_channels(
    app: Flask,
    apps_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, studio = consent.discord_guilds("sandbox")
    postable = [c for c in studio["channels"] if c["type"] in (0, 5)]
    done_url = f"{apps_env}/health"
    link = connect_link(tenant.api, "discord", login="bot", redirect_url=done_url, state="bot")

    browser.get(link["url"])
    _consent(browser, "connect-discord-bot-consent.png", guild=studio["name"])
    WebDriverWait(browser, 20).until(lambda d: "/connect/select/" in d.current_url)
    boxes = browser.find_elements(By.NAME, "choice")
    assert [b.get_attribute("value") for b in boxes] == [c["id"] for c in postable]
    boxes[1].click()  # the first is ticked already
    assert browser.save_screenshot(str(ARTIFACTS / "connect-discord-bot-channels.png"))
    browser.find_element(By.ID, "connect").click()

    listed = _listed(tenant, _done(browser, done_url, "bot"))
    assert sorted(a["external_id"] for a in listed) == sorted(c["id"] for c in postable)
    _publish(app, tenant, deps, listed[0]["id"])
    [message] = sandbox.get("/_ledger", params={"platform": "discord"}).json()
    assert message["account"] == listed[0]["external_id"]


def test_a_browser_connects_a_wordpress_com_blog_from_the_wordpress_page(
    app: Flask,
    apps_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
    browser: Any,
) -> None:
    from selenium.webdriver.common.by import By

    _, notes = consent.wordpress_blogs("sandbox")
    done_url = f"{apps_env}/health"
    link = connect_link(tenant.api, "wordpress", redirect_url=done_url, state="wpc")

    browser.get(link["url"])  # the application-password page, offering WordPress.com too
    assert browser.title == "Connect a WordPress account"
    assert browser.find_elements(By.ID, "application_password")
    browser.find_element(By.ID, "oauth").click()
    _consent(browser, "connect-wordpress-com-consent.png", blog=f"{notes['name']} ({notes['url']})")

    [account] = _listed(tenant, _done(browser, done_url, "wpc"))
    assert account["platform"] == "wordpress" and account["external_id"] == notes["url"]
    settings = {"wordpress": {"settings": {"title": "Notes"}}}
    _publish(app, tenant, deps, account["id"], platform_content=settings)
    [post] = sandbox.get("/_ledger", params={"platform": "wordpress"}).json()
    assert post["account"] == notes["id"] and post["params"]["title"] == "Notes"

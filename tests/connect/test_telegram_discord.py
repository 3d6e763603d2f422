"""Telegram and Discord connect over real HTTP: Discord's `webhook.incoming` consent ends
with the webhook as the account's credential; Telegram's own page on Crier takes the
channel, checks the bot's rights there with getChat/getChatMember, and adds the chat. Both
accounts then publish through the real pipeline."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from flask import Flask

from app.config import Settings
from app.security import decrypt_token
from tests.api.helpers import future, sql
from tests.conftest import Tenant
from tests.connect.conftest import REDIRECT_URL, connect_link, publish_now, walk
from workers.pipeline import PipelineDeps

BOT_TOKEN = "7000000001:crier-sandbox-bot"
FORM = re.compile(r"<form method='post' action='([^']+)'")


@pytest.fixture
def chat_env(app: Flask, connect_env: str) -> Iterator[str]:
    """Crier's Telegram bot and Discord app set, links on the test server."""
    settings = app.config["CRIER"]
    apps = dict(settings.platform_apps)
    apps.update(
        Settings.from_env(
            {"CRIER_DISCORD_CLIENT_ID": "crier-discord", "CRIER_DISCORD_CLIENT_SECRET": "s"}
        ).platform_apps
    )
    app.config["CRIER"] = replace(settings, platform_apps=apps, telegram_bot_token=BOT_TOKEN)
    yield connect_env


def _post_and_publish(app: Flask, tenant: Tenant, deps: PipelineDeps, account_id: int) -> None:
    created = tenant.api.post(
        "/posts",
        json={"content": "Hello channel", "account_ids": [account_id], "scheduled_at": future(2)},
    )
    assert created.status_code == 201, created.text
    assert publish_now(app, deps, created.json()["data"]["post_id"]) == "published"


def test_discord_consent_stores_the_webhook_and_publishes_through_it(
    app: Flask, chat_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    link = connect_link(tenant.api, "discord", state="d-1")
    end = walk(link["url"])
    assert end.result["status"] == "connected", end.result
    assert "scope=webhook.incoming" in end.hops[1]
    [row] = sql(app, "SELECT * FROM accounts")
    credential = decrypt_token(app.config["CRIER"].secret_key, row["access_token_encrypted"])
    assert re.match(r"^https://discord\.com/api/webhooks/\d+/[\w-]+$", credential)
    assert row["external_id"] and row["external_id"].isdigit()

    _post_and_publish(app, tenant, deps, row["id"])

    [entry] = sandbox.get("/_ledger", params={"platform": "discord"}).json()
    assert entry["account"] == row["external_id"] and entry["text"] == "Hello channel"
    [target] = sql(app, "SELECT * FROM post_targets")
    assert target["url"] == (
        f"https://discord.com/channels/{row['settings']['guild_id']}/{row['external_id']}/"
        f"{entry['id']}"
    )

    # Removing the account deletes its webhook on Discord.
    hook = credential.split("/api/")[1]
    assert sandbox.get(f"/discord/api/v10/{hook}").status_code == 200
    removed = tenant.api.delete(f"/accounts/{row['id']}")
    assert removed.status_code == 200, removed.text
    assert sandbox.get(f"/discord/api/v10/{hook}").status_code == 404


def _open_page(url: str, field: str = "chat") -> tuple[httpx.Client, str, str]:
    browser = httpx.Client(timeout=20, follow_redirects=False)
    page = browser.get(url)
    assert page.status_code == 200, page.text
    form = FORM.search(page.text)
    assert form and f"name='{field}'" in page.text
    return browser, page.text, urljoin(url, form.group(1))


def test_telegram_page_checks_the_bots_rights_then_adds_the_channel(
    app: Flask, chat_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    link = connect_link(tenant.api, "telegram", state="t-1")
    browser, page, action = _open_page(link["url"])
    assert "administrator" in page

    # The bot is only a member there: the page says so and the link stays usable.
    refused = browser.post(action, data={"chat": "@sandbox_member"})
    assert refused.status_code == 400 and "not an administrator" in refused.text
    missing = browser.post(action, data={"chat": "@sandbox_missing"})
    assert missing.status_code == 400 and "chat not found" in missing.text
    assert sql(app, "SELECT * FROM accounts") == []

    done = browser.post(action, data={"chat": "https://t.me/crier_news"})
    assert done.is_redirect
    where = done.headers["location"]
    assert where.startswith(REDIRECT_URL.split("?")[0])
    result = {k: v[0] for k, v in parse_qs(urlsplit(where).query).items()}
    assert result["status"] == "connected" and result["state"] == "t-1"
    [row] = sql(app, "SELECT * FROM accounts")
    assert row["external_id"] == "@crier_news" and row["platform"] == "telegram"
    assert decrypt_token(app.config["CRIER"].secret_key, row["access_token_encrypted"]) == (
        BOT_TOKEN
    )
    # The link is spent: a second answer is refused with a page of its own.
    assert browser.post(action, data={"chat": "@crier_news"}).status_code == 410

    _post_and_publish(app, tenant, deps, row["id"])
    [entry] = sandbox.get("/_ledger", params={"platform": "telegram"}).json()
    [target] = sql(app, "SELECT * FROM post_targets")
    assert target["url"] == f"https://t.me/crier_news/{entry['id']}"


def test_telegram_links_need_crier_bot(app: Flask, connect_env: str, tenant: Tenant) -> None:
    response = tenant.api.post(
        "/accounts/connect", json={"platform": "telegram", "redirect_url": REDIRECT_URL}
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "platform_not_configured"
    assert "CRIER_TELEGRAM_BOT_TOKEN" in error["message"]


def test_without_crier_discord_app_the_link_takes_a_pasted_webhook(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    link = connect_link(tenant.api, "discord", state="d-2")
    browser, page, action = _open_page(link["url"], "webhook")
    assert "Webhooks" in page
    malformed = browser.post(action, data={"webhook": "https://example.com/api/webhooks/1/x"})
    assert malformed.status_code == 400 and "not a Discord webhook URL" in malformed.text
    url = "https://discord.com/api/webhooks/1400000000000000009/pasted-token"
    hook = sandbox.get("/discord/api/v10/webhooks/1400000000000000009/pasted-token").json()
    sandbox.delete("/discord/api/v10/webhooks/1400000000000000008/gone")  # deleted on Discord
    gone = browser.post(
        action, data={"webhook": "https://discord.com/api/webhooks/1400000000000000008/gone"}
    )
    assert gone.status_code == 400 and "does not know this webhook" in gone.text

    done = browser.post(action, data={"webhook": url})

    assert done.is_redirect and "status=connected" in done.headers["location"]
    [row] = sql(app, "SELECT * FROM accounts")
    assert row["external_id"] == hook["channel_id"]
    assert decrypt_token(app.config["CRIER"].secret_key, row["access_token_encrypted"]) == url
    _post_and_publish(app, tenant, deps, row["id"])

"""A WordPress.com blog through OAuth and Discord channels through Crier's bot, connected
over real HTTP (the test API server, the sandbox playing both platforms, Crier's pages),
then published to through the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from flask import Flask

from app.config import Settings
from app.security import decrypt_token
from sandbox import consent
from tests.api.helpers import future, sql
from tests.conftest import Tenant
from tests.connect.conftest import REDIRECT_URL, connect_link, publish_now, walk
from workers.pipeline import PipelineDeps

BOT_TOKEN = "crier-discord-bot-token"
SITE = "https://blog.example.com"
APP_PASSWORD = {"username": "editor", "application_password": "abcd EFGH 1234 ijkl"}


def _apps(app: Flask, **env: str) -> None:
    settings = app.config["CRIER"]
    apps = dict(settings.platform_apps)
    apps.update(Settings.from_env(env).platform_apps)
    app.config["CRIER"] = replace(settings, platform_apps=apps)


@pytest.fixture
def wpcom_env(app: Flask, connect_env: str) -> Iterator[str]:
    """Crier's WordPress.com app set (connect_env puts the settings back)."""
    _apps(app, CRIER_WORDPRESS_CLIENT_ID="crier-wpcom", CRIER_WORDPRESS_CLIENT_SECRET="s")
    yield connect_env


@pytest.fixture
def bot_env(app: Flask, connect_env: str) -> Iterator[str]:
    """Crier's Discord app and its bot set."""
    _apps(app, CRIER_DISCORD_CLIENT_ID="crier-discord", CRIER_DISCORD_CLIENT_SECRET="s")
    app.config["CRIER"] = replace(app.config["CRIER"], discord_bot_token=BOT_TOKEN)
    yield connect_env


def _publish(app: Flask, tenant: Tenant, deps: PipelineDeps, account_id: int, **extra: object):
    body = {"content": "Hello", "account_ids": [account_id], "scheduled_at": future(2), **extra}
    created = tenant.api.post("/posts", json=body)
    assert created.status_code == 201, created.text
    assert publish_now(app, deps, created.json()["data"]["post_id"]) == "published"


WP_SETTINGS = {"wordpress": {"settings": {"title": "From the blog", "tags": ["crier"]}}}


def test_a_wordpress_com_blog_connects_through_oauth_and_publishes(
    app: Flask, wpcom_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    link = connect_link(tenant.api, "wordpress", login="wordpress.com", state="wpc")
    assert link["login"] == "wordpress.com"
    [_, second] = consent.wordpress_blogs("sandbox")

    end = walk(link["url"], authorize_extra=f"sandbox_blog={second['id']}")

    assert end.result["status"] == "connected" and end.result["state"] == "wpc", end.result
    authorize = urlsplit(end.hops[1])
    assert authorize.path == "/wordpress/oauth2/authorize"
    query = parse_qs(authorize.query)
    assert query["client_id"] == ["crier-wpcom"] and "scope" not in query
    account_id = int(end.result["account_id"])
    listed = tenant.api.get("/accounts").json()["data"]
    assert [(a["id"], a["platform"]) for a in listed] == [(account_id, "wordpress")]
    [row] = sql(app, "SELECT * FROM accounts")
    assert row["external_id"] == second["url"] and row["name"] == second["name"]
    assert row["settings"]["blog_id"] == second["id"] and row["settings"]["kind"] == "blog"
    assert row["token_expires_at"] is None and row["refresh_token_encrypted"] is None

    _publish(app, tenant, deps, account_id, platform_content=WP_SETTINGS)
    [post] = sandbox.get("/_ledger", params={"platform": "wordpress"}).json()
    assert post["account"] == second["id"] and post["params"]["title"] == "From the blog"
    [target] = sql(app, "SELECT * FROM post_targets")
    assert target["url"].startswith(second["url"])


def test_the_wordpress_page_offers_wordpress_com_once_its_app_is_set(
    app: Flask, wpcom_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    link = connect_link(tenant.api, "wordpress", state="both")
    assert link["login"] == "wordpress"
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        page = browser.get(link["url"])
        assert page.status_code == 200 and "name='application_password'" in page.text
        assert f"href='{urlsplit(link['url']).path}?login=wordpress.com'" in page.text
        # A refused password shows the page again, still with the offer.
        sandbox.post("/_faults", json={"wordpress": {"revoked_tokens": ["editor:typo"]}})
        refused = browser.post(
            link["url"],
            data={**APP_PASSWORD, "site_url": SITE, "application_password": "typo"},
        )
        assert refused.status_code == 400 and "?login=wordpress.com" in refused.text
        consent_page = browser.get(f"{link['url']}?login=wordpress.com")
        assert consent_page.is_redirect
        assert "/wordpress/oauth2/authorize" in consent_page.headers["location"]
        back = browser.get(consent_page.headers["location"])
        done = browser.get(urljoin(consent_page.headers["location"], back.headers["location"]))
    assert done.is_redirect and done.headers["location"].startswith(REDIRECT_URL)
    assert "status=connected" in done.headers["location"]
    [row] = sql(app, "SELECT external_id, settings FROM accounts")
    assert row["settings"]["blog_id"] == consent.wordpress_blogs("sandbox")[0]["id"]


def test_without_a_wordpress_com_app_the_page_offers_only_the_password(
    app: Flask, connect_env: str, tenant: Tenant
) -> None:
    link = connect_link(tenant.api, "wordpress")
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        page = browser.get(link["url"])
        assert page.status_code == 200 and "?login=" not in page.text
        # Asking for it anyway changes nothing: the page again.
        again = browser.get(f"{link['url']}?login=wordpress.com")
        assert again.status_code == 200 and "name='application_password'" in again.text
    refused = tenant.api.post(
        "/accounts/connect",
        json={"platform": "wordpress", "login": "wordpress.com", "redirect_url": REDIRECT_URL},
    )
    assert refused.status_code == 409
    assert "CRIER_WORDPRESS_CLIENT_ID" in refused.json()["error"]["message"]


def test_a_site_keeps_its_account_whichever_way_it_connects(
    app: Flask, wpcom_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    """A Jetpack site is the same account through its application password and through
    WordPress.com; each reconnect publishes the way it came back."""
    blog = consent.wordpress_blogs("sandbox")[0]
    link = connect_link(tenant.api, "wordpress")
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        done = browser.post(link["url"], data={"site_url": blog["url"], **APP_PASSWORD})
    assert "status=connected" in done.headers["location"], done.text
    [first] = sql(app, "SELECT id, settings FROM accounts")
    assert "blog_id" not in first["settings"]

    end = walk(connect_link(tenant.api, "wordpress", login="wordpress.com")["url"])
    assert end.result["status"] == "connected" and int(end.result["account_id"]) == first["id"]
    [row] = sql(app, "SELECT id, settings FROM accounts")
    assert row["settings"]["blog_id"] == blog["id"]
    _publish(app, tenant, deps, row["id"], platform_content=WP_SETTINGS)
    assert sandbox.get("/_ledger").json()[-1]["account"] == blog["id"]

    link = connect_link(tenant.api, "wordpress")
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        browser.post(link["url"], data={"site_url": blog["url"], **APP_PASSWORD})
    [row] = sql(app, "SELECT id, settings FROM accounts")
    assert row["id"] == first["id"] and "blog_id" not in row["settings"]


def test_discord_bot_install_connects_the_servers_text_channels(
    app: Flask, bot_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    studio = consent.discord_guilds("sandbox")[1]
    link = connect_link(tenant.api, "discord", login="bot", state="bot-1")
    assert link["login"] == "bot"

    end = walk(link["url"], authorize_extra=f"sandbox_guild={studio['id']}")

    assert end.result["status"] == "connected" and end.result["state"] == "bot-1", end.result
    query = parse_qs(urlsplit(end.hops[1]).query)
    assert query["scope"] == ["bot"] and int(query["permissions"][0]) & (1 << 11)
    callback = parse_qs(urlsplit(end.hops[2]).query)
    assert callback["guild_id"] == [studio["id"]]
    assert "/connect/select/" in end.hops[3]
    assert "name='choice'" in end.pages[0] and "Lounge" not in end.pages[0]
    rows = sql(app, "SELECT * FROM accounts ORDER BY id")
    postable = [c for c in studio["channels"] if c["type"] in (0, 5)]
    assert [r["external_id"] for r in rows] == [c["id"] for c in postable]
    assert rows[0]["name"] == f"#general · {studio['name']}"
    assert {r["settings"]["guild_id"] for r in rows} == {studio["id"]}
    secret = app.config["CRIER"].secret_key
    assert {decrypt_token(secret, r["access_token_encrypted"]) for r in rows} == {BOT_TOKEN}
    # Crier keeps no user token of the consent: it was revoked at once.
    assert len(sandbox.get("/_oauth").json()["revoked"]) == 2  # the access and refresh pair

    _publish(app, tenant, deps, rows[1]["id"])
    [message] = sandbox.get("/_ledger", params={"platform": "discord"}).json()
    assert message["account"] == postable[1]["id"]
    [target] = sql(app, "SELECT * FROM post_targets")
    assert target["url"] == (
        f"https://discord.com/channels/{studio['id']}/{postable[1]['id']}/{message['id']}"
    )


def test_the_callbacks_guild_id_cannot_name_another_server(
    app: Flask, bot_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    """The server comes from the code exchange: a guild_id changed on the way back (to a
    server the bot is in for another user) is not what gets connected."""
    [theirs, _] = consent.discord_guilds("someone")
    [own, _] = consent.discord_guilds("sandbox")
    first = walk(
        connect_link(tenant.api, "discord", login="bot")["url"],
        authorize_extra="sandbox_user=someone",
    )
    assert first.result["status"] == "connected"
    link = connect_link(tenant.api, "discord", login="bot")
    stopped = walk(link["url"], stop_at_callback=True)
    parts = urlsplit(stopped.final)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query["guild_id"] == own["id"]
    forged = parts._replace(query=urlencode({**query, "guild_id": theirs["id"]})).geturl()
    with stopped.browser() as browser:
        picked = browser.get(forged)
        assert picked.is_redirect and "/connect/select/" in picked.headers["location"]
        page = browser.get(urljoin(forged, picked.headers["location"]))
    assert "#general · Sandbox&#x27;s server" in page.text
    assert theirs["name"] not in page.text


def test_a_bot_install_needs_crier_bot_and_app(
    app: Flask, connect_env: str, tenant: Tenant
) -> None:
    body = {"platform": "discord", "login": "bot", "redirect_url": REDIRECT_URL}
    no_app = tenant.api.post("/accounts/connect", json=body)
    assert no_app.status_code == 409
    assert "CRIER_DISCORD_CLIENT_ID" in no_app.json()["error"]["message"]
    _apps(app, CRIER_DISCORD_CLIENT_ID="crier-discord", CRIER_DISCORD_CLIENT_SECRET="s")
    no_bot = tenant.api.post("/accounts/connect", json=body)
    assert no_bot.status_code == 409
    assert no_bot.json()["error"]["code"] == "platform_not_configured"
    assert "CRIER_DISCORD_BOT_TOKEN" in no_bot.json()["error"]["message"]

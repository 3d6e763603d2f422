"""Each platform's connect flow, end to end over real HTTP: a connect link from the API,
the sandbox's consent page, Crier's callback (and page selection), the client's
redirect_url; then the account publishes through the real pipeline."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask

from app.security import decrypt_token
from tests.api.helpers import future, sql, upload
from tests.conftest import Tenant
from tests.connect.conftest import (
    PLATFORMS,
    REDIRECT_URL,
    connect_link,
    publish_now,
    walk,
    without_client_id,
)
from tests.media_samples import jpeg_bytes, mp4_bytes
from workers.pipeline import PipelineDeps

# What each platform's post needs besides text.
MEDIA = {"instagram": "image", "tiktok": "video", "youtube": "video"}
CONTENT = {"youtube": {"youtube": {"settings": {"title": "Connected"}}}}
# The accounts a sandbox user grants: Facebook Pages (2 by default), LinkedIn's member
# and the organisation they administer; one account elsewhere.
GRANTED = {"facebook": 2, "linkedin": 2}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_connect_flow_ends_with_an_account_that_publishes(
    platform: str,
    app: Flask,
    connect_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
) -> None:
    profile = tenant.api.post("/profiles", json={"name": "Client 42", "external_ref": "c42"})
    profile_id = profile.json()["data"]["id"]
    hook = tenant.api.post(
        "/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["account.connected"]}
    )
    assert hook.status_code == 201
    link = connect_link(tenant.api, platform, profile_id=profile_id, state="opaque-77")
    assert link["url"].startswith(f"{connect_env}/connect/")

    end = walk(link["url"])

    result = end.result
    assert result["status"] == "connected", result
    assert result["state"] == "opaque-77" and result["platform"] == platform
    assert result["profile_id"] == str(profile_id) and result["client"] == "42"
    ids = [int(i) for i in result["account_ids"].split(",")]
    assert len(ids) == GRANTED.get(platform, 1)
    assert bool(end.pages) == (platform in GRANTED), "selection page only with several"
    # The consent page had Crier's app, its scopes and, for X and TikTok, PKCE.
    authorize = end.hops[1]
    assert f"crier-{platform}-client" in authorize and "scope=" in authorize
    assert ("code_challenge_method=S256" in authorize) == (platform in ("x", "tiktok"))

    rows = sql(app, "SELECT * FROM accounts WHERE id = ANY(:ids) ORDER BY id", ids=ids)
    secret = app.config["CRIER"].secret_key
    for row in rows:
        assert row["profile_id"] == profile_id and row["status"] == "active"
        # Stored encrypted: never the plain token, and it decrypts to what the sandbox issued.
        plain = decrypt_token(secret, row["access_token_encrypted"])
        assert plain and plain not in row["access_token_encrypted"]
        if platform in ("x", "tiktok", "youtube", "linkedin"):
            assert row["refresh_token_encrypted"]
            assert decrypt_token(secret, row["refresh_token_encrypted"]) != plain
        if platform != "facebook":  # Page tokens do not expire
            assert row["token_expires_at"] is not None
    events = sql(app, "SELECT type, data FROM webhook_events WHERE type = 'account.connected'")
    assert sorted(e["data"]["id"] for e in events) == ids

    body: dict[str, Any] = {
        "content": f"Hello from a connected {platform} account",
        "account_ids": [ids[0]],
        "scheduled_at": future(2),
    }
    if platform in MEDIA:
        data = jpeg_bytes() if MEDIA[platform] == "image" else mp4_bytes()
        name = "photo.jpg" if MEDIA[platform] == "image" else "clip.mp4"
        body["media_ids"] = [upload(tenant.api, name, data)]
    if platform in CONTENT:
        body["platform_content"] = CONTENT[platform]
    created = tenant.api.post("/posts", json=body)
    assert created.status_code == 201, created.text
    assert publish_now(app, deps, created.json()["data"]["post_id"]) == "published"
    ledger = sandbox.get("/_ledger", params={"platform": platform}).json()
    assert len(ledger) == 1


def test_facebook_page_selection_adds_only_the_picked_page(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    link = connect_link(tenant.api, "facebook")
    end = walk(link["url"], authorize_extra="sandbox_pages=3", pick=lambda c: c[1:2])
    assert end.result["status"] == "connected"
    [page] = end.pages
    assert page.count("name='choice'") == 3
    [account] = sql(app, "SELECT * FROM accounts")
    assert str(account["id"]) == end.result["account_id"]
    assert account["name"].endswith("Books")  # the second Page


def test_reconnect_keeps_the_account_id_and_its_scheduled_posts(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    first = walk(connect_link(tenant.api, "x")["url"]).result
    account_id = int(first["account_id"])
    post = tenant.api.post(
        "/posts", json={"content": "Later", "account_ids": [account_id], "scheduled_at": future()}
    )
    assert post.status_code == 201
    sql(app, "UPDATE accounts SET status = 'needs_reconnect', status_reason = 'revoked'")
    old = sql(app, "SELECT access_token_encrypted FROM accounts")[0]["access_token_encrypted"]

    again = walk(connect_link(tenant.api, "x", account_id=account_id)["url"]).result

    assert again["status"] == "connected" and again["account_id"] == str(account_id)
    [row] = sql(app, "SELECT * FROM accounts")
    assert row["status"] == "active" and row["access_token_encrypted"] != old
    targets = sql(app, "SELECT status FROM post_targets WHERE account_id = :a", a=account_id)
    assert targets == [{"status": "scheduled"}]


def test_an_unconfigured_platform_is_refused_up_front(
    app: Flask, tenant: Tenant, connect_env: str
) -> None:
    without_client_id(app, "tiktok")
    response = tenant.api.post(
        "/accounts/connect", json={"platform": "tiktok", "redirect_url": REDIRECT_URL}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "platform_not_configured"


@pytest.mark.parametrize("platform", ["x", "tiktok", "youtube", "linkedin", "instagram", "threads"])
def test_connected_tokens_refresh_with_the_platforms_refresh_flow(
    platform: str, app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    from workers.adapters import get_adapter
    from workers.adapters.base import AccountCredentials

    end = walk(connect_link(tenant.api, platform)["url"], pick=lambda c: c[:1])
    [row] = sql(app, "SELECT * FROM accounts WHERE id = :a", a=int(end.result["account_id"]))
    secret = app.config["CRIER"].secret_key
    refresh = row["refresh_token_encrypted"]
    credentials = AccountCredentials(
        account_id=row["id"],
        platform=platform,
        name=row["name"],
        external_id=row["external_id"],
        access_token=decrypt_token(secret, row["access_token_encrypted"]),
        refresh_token=decrypt_token(secret, refresh) if refresh else None,
        token_expires_at=row["token_expires_at"],
    )
    with httpx.Client(timeout=10) as http:
        adapter = get_adapter(
            platform, http, str(sandbox.base_url).rstrip("/"), app.config["CRIER"]
        )
        fresh = adapter.refresh_token(credentials)
    assert fresh.access_token and fresh.access_token != credentials.access_token
    assert fresh.expires_at is not None

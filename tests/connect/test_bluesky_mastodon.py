"""Connecting the accounts of platforms without a consent page of Crier's app: Bluesky
(handle and app password on the link's own form) and Mastodon (the instance first, Crier's
app registered there, then its consent page). Over real HTTP: the test API server, the
sandbox playing both platforms; then the account publishes through the real pipeline."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from flask import Flask

from app.security import decrypt_token
from tests.api.helpers import future, sql
from tests.conftest import Tenant
from tests.connect.conftest import REDIRECT_URL, connect_link, publish_now
from workers.pipeline import PipelineDeps

APP_PASSWORD = "abcd-efgh-ijkl-mnop"


def _result(response: httpx.Response) -> dict[str, str]:
    assert response.is_redirect, (response.status_code, response.text[:500])
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URL.split("?")[0]), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _publish(app: Flask, tenant: Tenant, deps: PipelineDeps, account_id: int, text: str) -> None:
    created = tenant.api.post(
        "/posts", json={"content": text, "account_ids": [account_id], "scheduled_at": future(2)}
    )
    assert created.status_code == 201, created.text
    assert publish_now(app, deps, created.json()["data"]["post_id"]) == "published"


def test_bluesky_connects_with_an_app_password_and_publishes(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    link = connect_link(tenant.api, "bluesky", state="s-1")
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        page = browser.get(link["url"])
        assert page.status_code == 200 and "app password" in page.text.lower()
        assert "name='handle'" in page.text and "name='app_password'" in page.text

        # The account's main password is refused, and the session it made is ended.
        refused = browser.post(
            link["url"], data={"handle": "alice.bsky.social", "app_password": "hunter2-main"}
        )
        assert refused.status_code == 400
        assert "account password" in refused.text and "hunter2-main" not in refused.text
        assert sql(app, "SELECT count(*) AS n FROM accounts") == [{"n": 0}]

        done = browser.post(
            link["url"], data={"handle": "@Alice.bsky.social", "app_password": APP_PASSWORD}
        )
        result = _result(done)
        assert result["status"] == "connected" and result["state"] == "s-1"
        again = browser.post(
            link["url"], data={"handle": "alice.bsky.social", "app_password": APP_PASSWORD}
        )
        assert again.status_code == 410

    [row] = sql(app, "SELECT * FROM accounts")
    secret = app.config["CRIER"].secret_key
    assert row["external_id"] == "alice.bsky.social" and row["name"] == "@alice.bsky.social"
    assert decrypt_token(secret, row["access_token_encrypted"]) == APP_PASSWORD
    session = json.loads(decrypt_token(secret, row["refresh_token_encrypted"]))
    assert session["did"].startswith("did:plc:") and session["handle"] == "alice.bsky.social"
    assert row["settings"]["did"] == session["did"]
    assert APP_PASSWORD not in json.dumps(row, default=str)

    _publish(app, tenant, deps, row["id"], "Hello #crier from https://example.com/launch")
    [entry] = sandbox.get("/_ledger", params={"platform": "bluesky"}).json()
    assert entry["account"] == session["did"]
    kinds = [f["features"][0]["$type"].rsplit("#", 1)[1] for f in entry["params"]["facets"]]
    assert sorted(kinds) == ["link", "tag"]
    [target] = sql(app, "SELECT * FROM post_targets")
    assert target["url"].startswith("https://bsky.app/profile/alice.bsky.social/")


def test_mastodon_asks_the_instance_registers_once_and_publishes(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    for _attempt in range(2):
        link = connect_link(tenant.api, "mastodon")
        with httpx.Client(timeout=20, follow_redirects=False) as browser:
            page = browser.get(link["url"])
            assert page.status_code == 200 and "name='instance'" in page.text
            bad = browser.post(link["url"], data={"instance": "not a server at all/"})
            assert bad.status_code == 400 and "class='error'" in bad.text
            consent = browser.post(link["url"], data={"instance": "Sandbox.Social"})
            assert consent.is_redirect, consent.text
            authorize = consent.headers["location"]
            query = parse_qs(urlsplit(authorize).query)
            assert "/mastodon/oauth/authorize" in authorize
            assert query["code_challenge_method"] == ["S256"]
            assert "write:statuses" in query["scope"][0]
            back = browser.get(authorize)
            callback = browser.get(urljoin(authorize, back.headers["location"]))
            result = _result(callback)
        assert result["status"] == "connected", result
        apps = sql(app, "SELECT * FROM instance_apps")
        assert len(apps) == 1, "registered on the instance once, reused after"
    [registered] = apps
    assert registered["instance"] == "https://sandbox.social"
    assert query["client_id"] == [registered["client_id"]]
    assert registered["client_secret_encrypted"] and registered["limits"]["max_characters"] == 500
    assert len(sandbox.get("/_oauth").json()["revoked"]) == 0

    [row] = sql(app, "SELECT * FROM accounts")
    assert row["external_id"] == "https://sandbox.social/@sandbox"
    assert row["name"] == "@sandbox@sandbox.social"
    assert row["settings"]["instance"] == "https://sandbox.social"
    assert row["settings"]["limits"]["max_characters"] == 500
    _publish(app, tenant, deps, row["id"], "Hello from Mastodon")
    [entry] = sandbox.get("/_ledger", params={"platform": "mastodon"}).json()
    assert entry["account"] == row["settings"]["account_id"]
    assert entry["params"]["idempotency_key"].startswith("crier-target-")

    # Removing the account revokes its token with the app registered on its instance.
    removed = tenant.api.delete(f"/accounts/{row['id']}")
    assert removed.status_code == 200, removed.text
    assert len(sandbox.get("/_oauth").json()["revoked"]) >= 1


def test_an_expired_bluesky_session_is_refreshed_by_the_pipeline_and_kept(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client, deps: PipelineDeps
) -> None:
    link = connect_link(tenant.api, "bluesky")
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        done = browser.post(
            link["url"], data={"handle": "bob.bsky.social", "app_password": APP_PASSWORD}
        )
    assert _result(done)["status"] == "connected"
    [row] = sql(app, "SELECT * FROM accounts")
    secret = app.config["CRIER"].secret_key
    first = json.loads(decrypt_token(secret, row["refresh_token_encrypted"]))
    sandbox.post(
        "/_faults", json={"bluesky": {"expired_tokens": [first["access_jwt"]]}}
    ).raise_for_status()

    _publish(app, tenant, deps, row["id"], "After a refresh")

    [row] = sql(app, "SELECT * FROM accounts")
    kept = json.loads(decrypt_token(secret, row["refresh_token_encrypted"]))
    assert kept["access_jwt"] != first["access_jwt"] and kept["did"] == first["did"]
    assert decrypt_token(secret, row["access_token_encrypted"]) == APP_PASSWORD
    assert row["status"] == "active"
    [entry] = sandbox.get("/_ledger", params={"platform": "bluesky"}).json()
    assert entry["text"] == "After a refresh"

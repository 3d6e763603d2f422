"""Pinterest's OAuth connect (with the user's boards kept for `boardId`) and WordPress's
credential connect page, end to end over real HTTP: the API's connect link, the
sandbox, Crier's pages, the client's redirect_url; then the account publishes through
the real pipeline."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask

from app import create_app
from app.security import decrypt_token
from app.services.outbound import REFUSED
from sandbox import pinterest as pinterest_sandbox
from tests.api.helpers import assert_error, future, sql, upload
from tests.conftest import Tenant, make_key_client
from tests.connect.conftest import REDIRECT_URL, connect_link, publish_now, walk
from tests.media_samples import jpeg_bytes
from tests.servers import serve_wsgi
from workers.adapters import get_adapter
from workers.adapters.base import AccountCredentials
from workers.pipeline import PipelineDeps

WORDPRESS_FORM = {
    "site_url": "https://Blog.Example.com/",
    "username": "editor",
    "application_password": "abcd EFGH 1234 ijkl MNOP 5678",
}


@pytest.fixture
def pinterest_env(app: Flask, connect_env: str) -> str:
    from dataclasses import replace

    from app.config import Settings

    settings = app.config["CRIER"]
    apps = dict(settings.platform_apps)
    apps.update(
        Settings.from_env(
            {
                "CRIER_PINTEREST_CLIENT_ID": "crier-pinterest-client",
                "CRIER_PINTEREST_CLIENT_SECRET": "crier-pinterest-secret",
            }
        ).platform_apps
    )
    app.config["CRIER"] = replace(settings, platform_apps=apps)
    return connect_env


def test_pinterest_connect_keeps_the_boards_and_the_account_pins_to_one(
    app: Flask,
    pinterest_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
) -> None:
    link = connect_link(tenant.api, "pinterest", state="pin-1")

    end = walk(link["url"])

    result = end.result
    assert result["status"] == "connected" and result["state"] == "pin-1", result
    authorize = end.hops[1]
    assert "/pinterest/oauth/" in authorize and "crier-pinterest-client" in authorize
    assert "scope=boards%3Aread%2Cboards%3Awrite%2Cpins%3Aread%2Cpins%3Awrite" in authorize
    account_id = int(result["account_id"])
    account = tenant.api.get(f"/accounts/{account_id}").json()["data"]
    boards = account["metadata"]["boards"]
    expected = pinterest_sandbox.boards_of("sandbox")
    assert [b["id"] for b in boards] == [b["id"] for b in expected]
    assert boards[0]["name"] == expected[0]["name"]
    [row] = sql(app, "SELECT * FROM accounts WHERE id = :a", a=account_id)
    assert row["refresh_token_encrypted"] and row["token_expires_at"] is not None

    body = {
        "content": "A Pin from a connected account",
        "account_ids": [account_id],
        "scheduled_at": future(2),
        "media_ids": [upload(tenant.api, "photo.jpg", jpeg_bytes())],
        "platform_content": {
            "pinterest": {"settings": {"boardId": boards[1]["id"], "title": "Connected"}}
        },
    }
    created = tenant.api.post("/posts", json=body)
    assert created.status_code == 201, created.text
    assert publish_now(app, deps, created.json()["data"]["post_id"]) == "published"
    [pin] = sandbox.get("/_ledger", params={"platform": "pinterest"}).json()
    assert pin["params"]["board_id"] == boards[1]["id"] and pin["params"]["title"] == "Connected"

    # The connected refresh token refreshes, and Pinterest's answer replaces it.
    secret = app.config["CRIER"].secret_key
    credentials = AccountCredentials(
        account_id=account_id,
        platform="pinterest",
        name=row["name"],
        external_id=row["external_id"],
        access_token=decrypt_token(secret, row["access_token_encrypted"]),
        refresh_token=decrypt_token(secret, row["refresh_token_encrypted"]),
    )
    with httpx.Client(timeout=10) as http:
        adapter = get_adapter("pinterest", http, str(sandbox.base_url).rstrip("/"))
        fresh = adapter.refresh_token(credentials)
    assert fresh.access_token != credentials.access_token
    assert fresh.refresh_token and fresh.refresh_token != credentials.refresh_token


def test_a_pinterest_post_without_a_board_is_refused_at_intake(tenant: Tenant) -> None:
    account = tenant.api.post(
        "/accounts",
        json={"platform": "pinterest", "name": "Pins", "access_token": "t", "external_id": "1"},
    ).json()["data"]
    body = {
        "content": "No board",
        "account_ids": [account["id"]],
        "media_ids": [upload(tenant.api, "photo.jpg", jpeg_bytes())],
    }
    response = tenant.api.post("/posts", json=body)
    assert response.status_code == 400, response.text
    assert "platform_content.pinterest.settings.boardId" in response.json()["error"]["details"]


def _form_fields(page: str) -> set[str]:
    return set(re.findall(r"<input id='[a-z_]+' name='([a-z_]+)'", page))


def test_wordpress_connects_with_an_application_password_on_crier_page(
    app: Flask,
    connect_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
) -> None:
    # No OAuth app to configure: the link is made without CRIER_WORDPRESS_CLIENT_ID.
    link = connect_link(tenant.api, "wordpress", state="wp-1")
    sandbox.post("/_faults", json={"wordpress": {"revoked_tokens": ["editor:wrong"]}})
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        page = browser.get(link["url"])
        assert page.status_code == 200 and "no-store" in page.headers["cache-control"]
        assert _form_fields(page.text) == {"site_url", "username", "application_password"}

        refused = browser.post(
            link["url"], data={**WORDPRESS_FORM, "application_password": "wrong"}
        )
        assert refused.status_code == 400
        assert "refused the user name or application password" in refused.text
        assert "value='editor'" in refused.text and "wrong" not in refused.text.split("<form")[1]

        done = browser.post(link["url"], data=WORDPRESS_FORM)
        assert done.is_redirect, done.text
        assert done.headers["location"].startswith(REDIRECT_URL)
        again = browser.post(link["url"], data=WORDPRESS_FORM)
        assert again.status_code == 410

    result = {k: v[0] for k, v in parse_qs(urlsplit(done.headers["location"]).query).items()}
    assert result["status"] == "connected" and result["state"] == "wp-1"
    account_id = int(result["account_id"])
    [row] = sql(app, "SELECT * FROM accounts WHERE id = :a", a=account_id)
    assert row["external_id"] == "https://blog.example.com"
    secret = app.config["CRIER"].secret_key
    assert decrypt_token(secret, row["access_token_encrypted"]) == "editor:abcdEFGH1234ijklMNOP5678"
    assert "abcd" not in row["access_token_encrypted"]

    body = {
        "content": "<p>Hello from a connected site</p>",
        "account_ids": [account_id],
        "scheduled_at": future(2),
        "media_ids": [upload(tenant.api, "photo.jpg", jpeg_bytes())],
        "platform_content": {
            "wordpress": {"settings": {"title": "Connected", "categories": ["News"]}}
        },
    }
    created = tenant.api.post("/posts", json=body)
    assert created.status_code == 201, created.text
    assert publish_now(app, deps, created.json()["data"]["post_id"]) == "published"
    [post] = sandbox.get("/_ledger", params={"platform": "wordpress"}).json()
    assert post["params"]["title"] == "Connected" and post["params"]["featured_media"]
    assert [m["role"] for m in post["media"]] == ["featured"]


def test_a_wordpress_post_needs_a_title_at_intake(tenant: Tenant) -> None:
    account = tenant.api.post(
        "/accounts",
        json={
            "platform": "wordpress",
            "name": "Blog",
            "access_token": "editor:pw",
            "external_id": "https://blog.example.com",
        },
    )
    assert account.status_code == 201, account.text
    response = tenant.api.post(
        "/posts", json={"content": "Untitled", "account_ids": [account.json()["data"]["id"]]}
    )
    assert response.status_code == 400, response.text
    assert "platform_content.wordpress.settings.title" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    ("token", "external_id", "field"),
    [
        ("editor:pw", "blog.example.com", "external_id"),
        ("no-colon", "https://b.example", "access_token"),
    ],
)
def test_post_accounts_refuses_a_malformed_wordpress_credential(
    tenant: Tenant, token: str, external_id: str, field: str
) -> None:
    response = tenant.api.post(
        "/accounts",
        json={
            "platform": "wordpress",
            "name": "Blog",
            "access_token": token,
            "external_id": external_id,
        },
    )
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["details"]


def test_post_accounts_refuses_a_wordpress_site_inside_our_network(
    app_settings: dict[str, Any],
) -> None:
    strict = create_app({**app_settings, "allow_private_urls": False})
    with serve_wsgi(strict) as url, make_key_client(strict, url) as api:
        for site in ("https://127.0.0.1", "http://10.0.0.7/blog", "https://localhost:8443"):
            body = {
                "platform": "wordpress",
                "name": "Blog",
                "access_token": "editor:pw",
                "external_id": site,
            }
            error = assert_error(api.post("/accounts", json=body), 400, "validation_error")
            assert error["details"] == {"external_id": [REFUSED]}, site
        body["external_id"] = "https://93.184.215.14/blog/"
        created = api.post("/accounts", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["data"]["external_id"] == "https://93.184.215.14/blog"

"""A connect flow that cannot finish lands on redirect_url with its own error code, and
stores no account: denied consent, replayed state, expired link, PKCE mismatch, a
platform error, a forged state."""

from __future__ import annotations

import httpx
from flask import Flask

from app.security import encrypt_token
from tests.api.helpers import count, sql
from tests.conftest import Tenant
from tests.connect.conftest import connect_link, walk


def test_denied_consent(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    end = walk(
        connect_link(tenant.api, "linkedin", state="s1")["url"], authorize_extra="sandbox_deny=1"
    )
    assert end.result["status"] == "error"
    assert end.result["error"] == "access_denied" and end.result["state"] == "s1"
    assert count(app, "accounts") == 0


def test_replayed_state(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    callback = walk(connect_link(tenant.api, "youtube")["url"], stop_at_callback=True).final
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        first = browser.get(callback)
        second = browser.get(callback)
    assert "status=connected" in first.headers["location"]
    assert "error=state_replayed" in second.headers["location"]
    assert count(app, "accounts") == 1  # the first, and only the first


def test_replayed_state_after_a_failure_stays_spent(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    callback = walk(connect_link(tenant.api, "x")["url"], stop_at_callback=True).final
    sandbox.post("/_faults", json={"x": {"oauth_error_status": 503}})
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        first = browser.get(callback)
        sandbox.post("/_faults", json={})
        second = browser.get(callback)
    assert "error=platform_error" in first.headers["location"]
    assert "error=state_replayed" in second.headers["location"]
    assert count(app, "accounts") == 0


def test_expired_link(app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client) -> None:
    link = connect_link(tenant.api, "threads")
    sql(app, "UPDATE connect_links SET expires_at = now() - interval '1 second'")
    end = walk(link["url"])
    assert end.result["error"] == "link_expired"
    assert count(app, "accounts") == 0


def test_link_expiring_during_consent(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    callback = walk(connect_link(tenant.api, "instagram")["url"], stop_at_callback=True).final
    sql(app, "UPDATE connect_links SET expires_at = now() - interval '1 second'")
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        answer = browser.get(callback)
    assert "error=link_expired" in answer.headers["location"]
    assert count(app, "accounts") == 0


def test_mismatched_pkce_verifier(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    callback = walk(connect_link(tenant.api, "tiktok")["url"], stop_at_callback=True).final
    # The verifier Crier holds no longer matches the challenge the platform saw.
    wrong = encrypt_token(app.config["CRIER"].secret_key, "not-the-verifier-" + "x" * 40)
    sql(app, "UPDATE connect_links SET pkce_verifier_encrypted = :v", v=wrong)
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        answer = browser.get(callback)
    assert "error=pkce_mismatch" in answer.headers["location"]
    assert answer.headers["location"].startswith("https://agency.example/onboarded")
    assert count(app, "accounts") == 0


def test_platform_error_on_the_token_exchange(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"facebook": {"oauth_error_status": 500}})
    end = walk(connect_link(tenant.api, "facebook")["url"])
    assert end.result["error"] == "platform_error"
    assert "HTTP 500" in end.result["error_description"]
    assert count(app, "accounts") == 0


def test_forged_state_is_refused_without_a_stack_trace(
    connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    with httpx.Client(base_url=connect_env, timeout=20) as browser:
        answer = browser.get("/oauth/x/callback", params={"code": "c", "state": "forged.state"})
        unknown = browser.get("/connect/no-such-token")
    assert answer.status_code == 400 and "state_invalid" in answer.text
    assert "Traceback" not in answer.text
    assert unknown.status_code == 404

"""A connect flow that cannot finish lands on redirect_url with its own error code, and
stores no account: denied consent, replayed state, expired link, PKCE mismatch, a
platform error, a forged state."""

from __future__ import annotations

from dataclasses import replace

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
    stopped = walk(connect_link(tenant.api, "youtube")["url"], stop_at_callback=True)
    callback = stopped.final
    with stopped.browser() as browser:
        first = browser.get(callback)
        second = browser.get(callback)
    assert "status=connected" in first.headers["location"]
    assert "error=state_replayed" in second.headers["location"]
    assert count(app, "accounts") == 1  # the first, and only the first


def test_replayed_state_after_a_failure_stays_spent(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    stopped = walk(connect_link(tenant.api, "x")["url"], stop_at_callback=True)
    callback = stopped.final
    sandbox.post("/_faults", json={"x": {"oauth_error_status": 503}})
    with stopped.browser() as browser:
        first = browser.get(callback)
        sandbox.post("/_faults", json={})
        second = browser.get(callback)
    assert "error=platform_error" in first.headers["location"]
    assert "error=state_replayed" in second.headers["location"]
    assert count(app, "accounts") == 0


def test_expired_link(app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client) -> None:
    link = connect_link(tenant.api, "threads")
    sql(app, "UPDATE connect_links SET expires_at = now() - interval '1 second'")
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        answer = browser.get(link["url"])
    # A page of its own, never a redirect to redirect_url: an old link bounces nobody.
    assert answer.status_code == 410 and "location" not in answer.headers
    assert "link_expired" in answer.text and "agency.example" not in answer.text
    assert count(app, "accounts") == 0


def test_used_link_answers_a_page_and_no_redirect(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    link = connect_link(tenant.api, "x")
    assert walk(link["url"]).result["status"] == "connected"
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        again = browser.get(link["url"])
    assert again.status_code == 410 and "location" not in again.headers
    assert "link_used" in again.text
    assert count(app, "accounts") == 1


def test_consent_finished_in_another_browser_connects_nothing(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    """The link's holder opens it and sends the authorize URL to a victim: the victim's
    consent comes back without the opener's cookie and connects nothing."""
    opener = walk(connect_link(tenant.api, "facebook")["url"], stop_at_callback=True)
    with httpx.Client(follow_redirects=False, timeout=20) as victim:
        answer = victim.get(opener.final)
        forged = victim.get(
            opener.final,
            headers={"Cookie": "; ".join(f"{c.name}=forged" for c in opener.cookies.jar)},
        )
    for refused in (answer, forged):
        assert "error=browser_mismatch" in refused.headers["location"]
    assert count(app, "accounts") == 0
    assert "facebook" not in str(sandbox.get("/_ledger").json())
    # Nothing was spent: the browser that opened the link can still finish.
    with opener.browser() as browser:
        finished = browser.get(opener.final)
    assert (
        "status=connected" in finished.headers["location"]
        or "/connect/select/" in (finished.headers["location"])
    )


def test_the_browser_cookie_is_scoped_to_the_callback(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        opened = browser.get(connect_link(tenant.api, "linkedin")["url"])
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("crier_connect_")
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")}
    assert "httponly" in attributes and attributes["samesite"].strip() == "SameSite=Lax"
    assert attributes["path"].strip() == "Path=/oauth/linkedin/callback"
    assert "secure" not in attributes  # the public URL here is http
    previous = app.config["CRIER"]
    app.config["CRIER"] = replace(previous, public_base_url="https://crier.example/api")
    try:
        with httpx.Client(follow_redirects=False, timeout=20) as browser:
            secure = browser.get(
                connect_link(tenant.api, "linkedin")["url"].replace(
                    "https://crier.example/api", connect_env
                )
            )
    finally:
        app.config["CRIER"] = previous
    assert "Secure" in secure.headers["set-cookie"]
    assert "Path=/api/oauth/linkedin/callback" in secure.headers["set-cookie"]


def test_link_expiring_during_consent(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    stopped = walk(connect_link(tenant.api, "instagram")["url"], stop_at_callback=True)
    callback = stopped.final
    sql(app, "UPDATE connect_links SET expires_at = now() - interval '1 second'")
    with stopped.browser() as browser:
        answer = browser.get(callback)
    assert "error=link_expired" in answer.headers["location"]
    assert count(app, "accounts") == 0


def test_mismatched_pkce_verifier(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    stopped = walk(connect_link(tenant.api, "tiktok")["url"], stop_at_callback=True)
    callback = stopped.final
    # The verifier Crier holds no longer matches the challenge the platform saw.
    wrong = encrypt_token(app.config["CRIER"].secret_key, "not-the-verifier-" + "x" * 40)
    sql(app, "UPDATE connect_links SET pkce_verifier_encrypted = :v", v=wrong)
    with stopped.browser() as browser:
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

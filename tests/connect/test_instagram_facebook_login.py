"""Instagram through Facebook Login, end to end over real HTTP: a connect link with
`login: "facebook"`, Facebook's consent (Crier's Facebook app, Instagram scopes), the
selection among the Instagram professional accounts linked to the Pages granted, then
posts that go out on graph.facebook.com with the Page's token. Errors land on
redirect_url with their code, and an account keeps its id whichever login it comes back
through."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flask import Flask

from app.security import decrypt_token
from tests.api.helpers import count, future, sql, upload
from tests.conftest import Tenant
from tests.connect.conftest import CHOICE, connect_link, publish_now, walk, without_client_id
from tests.media_samples import jpeg_bytes
from workers.pipeline import PipelineDeps

# The sandbox user "sandbox": Pages "Sandbox Bakery" (linked to @sandbox, the account
# Instagram Login connects too) and "Sandbox Books" (linked to @sandbox_books).
IG_SCOPES = ("instagram_basic", "instagram_content_publish", "pages_show_list")


def ig_link(api: httpx.Client, **body: Any) -> dict[str, Any]:
    return connect_link(api, "instagram", login="facebook", **body)


def accounts(app: Flask, ids: list[int] | None = None) -> list[dict[str, Any]]:
    if ids is None:
        return sql(app, "SELECT * FROM accounts ORDER BY id")
    return sql(app, "SELECT * FROM accounts WHERE id = ANY(:ids) ORDER BY id", ids=ids)


def post_image(app: Flask, tenant: Tenant, deps: PipelineDeps, account_id: int, text: str) -> str:
    body = {
        "content": text,
        "account_ids": [account_id],
        "scheduled_at": future(2),
        "media_ids": [upload(tenant.api, "photo.jpg", jpeg_bytes())],
    }
    created = tenant.api.post("/posts", json=body)
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]
    assert publish_now(app, deps, post_id) == "published"
    return str(post_id)


def graph(sandbox: httpx.Client, method: str, path: str, token: str) -> httpx.Response:
    return sandbox.request(method, path, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("picked", ["second", "both"])
def test_facebook_login_connects_the_linked_instagram_accounts_picked(
    picked: str,
    app: Flask,
    connect_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
) -> None:
    profile = tenant.api.post("/profiles", json={"name": "Client 7"}).json()["data"]
    link = ig_link(tenant.api, profile_id=profile["id"], state="ig-fb")
    assert link["platform"] == "instagram" and link["login"] == "facebook"

    pick = (lambda c: c[1:2]) if picked == "second" else None
    end = walk(link["url"], pick=pick)

    result = end.result
    assert result["status"] == "connected", result
    assert result["platform"] == "instagram" and result["state"] == "ig-fb"
    # Facebook's consent page, with Crier's Facebook app and the Instagram scopes.
    authorize = end.hops[1]
    assert "/facebook/v25.0/dialog/oauth?" in authorize
    assert "crier-facebook-client" in authorize
    scope = parse_qs(urlsplit(authorize).query)["scope"][0].split(",")
    assert set(IG_SCOPES) <= set(scope)
    # The selection page offered both linked accounts, naming their Pages.
    [page] = end.pages
    assert page.count("name='choice'") == 2
    assert "@sandbox " in page and "Page: Sandbox Bakery" in page
    assert "@sandbox_books" in page and "Page: Sandbox Books" in page

    ids = [int(i) for i in result["account_ids"].split(",")]
    rows = accounts(app, ids)
    assert [r["name"] for r in rows] == (
        ["@sandbox_books"] if picked == "second" else ["@sandbox", "@sandbox_books"]
    )
    secret = app.config["CRIER"].secret_key
    for row in rows:
        assert row["platform"] == "instagram" and row["profile_id"] == profile["id"]
        assert row["external_id"].startswith("17841")
        assert row["settings"]["login"] == "facebook" and row["settings"]["page_id"]
        assert row["settings"]["kind"] == "professional_account"
        # The Page's token, encrypted at rest; it does not expire and has no refresh token.
        plain = decrypt_token(secret, row["access_token_encrypted"])
        assert plain.startswith("EAAP") and plain not in row["access_token_encrypted"]
        assert row["refresh_token_encrypted"] is None and row["token_expires_at"] is None
    assert len({decrypt_token(secret, r["access_token_encrypted"]) for r in rows}) == len(rows)

    for row in rows:
        post_image(app, tenant, deps, row["id"], f"Hello from {row['name']}")
    ledger = sandbox.get("/_ledger", params={"platform": "instagram"}).json()
    assert sorted(e["account"] for e in ledger) == sorted(r["external_id"] for r in rows)
    for row in rows:
        token = decrypt_token(secret, row["access_token_encrypted"])
        [entry] = [e for e in ledger if e["account"] == row["external_id"]]
        assert entry["text"] == f"Hello from {row['name']}"
        assert entry["params"] == {"media_type": "IMAGE"}
        # The post went out on graph.facebook.com: the Page token reads it there, and
        # graph.instagram.com refuses that token outright.
        read = graph(sandbox, "GET", f"/facebook/v25.0/{entry['id']}?fields=permalink", token)
        assert read.status_code == 200 and read.json()["permalink"].startswith(
            "https://www.instagram.com/p/"
        )
        refused = graph(sandbox, "GET", f"/instagram/v25.0/{entry['id']}", token)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == 190
    targets = sql(app, "SELECT status, url FROM post_targets WHERE account_id = ANY(:ids)", ids=ids)
    assert {t["status"] for t in targets} == {"published"}
    assert all(t["url"].startswith("https://www.instagram.com/p/") for t in targets)


def test_a_page_token_acts_only_for_the_account_linked_to_its_page(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    end = walk(ig_link(tenant.api)["url"])
    bakery, books = accounts(app)
    secret = app.config["CRIER"].secret_key
    bakery_token = decrypt_token(secret, bakery["access_token_encrypted"])
    other = graph(sandbox, "GET", f"/facebook/v25.0/{books['external_id']}/media", bakery_token)
    own = graph(sandbox, "GET", f"/facebook/v25.0/{bakery['external_id']}/media", bakery_token)
    assert end.result["status"] == "connected"
    assert other.status_code == 400 and own.status_code == 200


def test_pages_without_a_linked_instagram_account_are_not_offered(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    end = walk(ig_link(tenant.api)["url"], authorize_extra="sandbox_pages=3&sandbox_instagram=2")
    assert end.result["status"] == "connected"
    [page] = end.pages
    assert page.count("name='choice'") == 2 and "Sandbox Bikes" not in page
    assert [r["name"] for r in accounts(app)] == ["@sandbox", "@sandbox_books"]


def test_one_linked_account_among_several_pages_connects_without_a_selection(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    end = walk(ig_link(tenant.api)["url"], authorize_extra="sandbox_pages=2&sandbox_instagram=1")
    assert end.result["status"] == "connected" and not end.pages
    [row] = accounts(app)
    assert row["name"] == "@sandbox" and str(row["id"]) == end.result["account_id"]


def test_no_linked_instagram_account_at_all(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    end = walk(
        ig_link(tenant.api, state="none")["url"],
        authorize_extra="sandbox_pages=2&sandbox_instagram=0",
    )
    assert end.result["status"] == "error" and end.result["state"] == "none"
    assert end.result["error"] == "no_instagram_account"
    assert "Instagram professional account" in end.result["error_description"]
    assert count(app, "accounts") == 0


def test_denied_consent(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    end = walk(ig_link(tenant.api, state="s1")["url"], authorize_extra="sandbox_deny=1")
    assert end.hops[1].split("?")[0].endswith("/facebook/v25.0/dialog/oauth")
    assert end.result["status"] == "error" and end.result["platform"] == "instagram"
    assert end.result["error"] == "access_denied" and end.result["state"] == "s1"
    assert count(app, "accounts") == 0


def test_replayed_state(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    # One linked account: the first callback connects it straight away.
    link = ig_link(tenant.api)
    stopped = walk(link["url"], authorize_extra="sandbox_instagram=1", stop_at_callback=True)
    callback = stopped.final
    assert "/oauth/instagram/callback?" in callback
    with stopped.browser() as browser:
        first = browser.get(callback)
        second = browser.get(callback)
    assert "status=connected" in first.headers["location"]
    assert "error=state_replayed" in second.headers["location"]
    assert count(app, "accounts") == 1  # the first, and only the first


def test_replayed_state_after_a_failure_stores_nothing(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    stopped = walk(ig_link(tenant.api)["url"], stop_at_callback=True)
    callback = stopped.final
    sandbox.post("/_faults", json={"facebook": {"oauth_error_status": 503}})
    with stopped.browser() as browser:
        first = browser.get(callback)
        sandbox.post("/_faults", json={})
        second = browser.get(callback)
    assert "error=platform_error" in first.headers["location"]
    assert "error=state_replayed" in second.headers["location"]
    assert count(app, "accounts") == 0


def test_expired_link(app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client) -> None:
    link = ig_link(tenant.api)
    sql(app, "UPDATE connect_links SET expires_at = now() - interval '1 second'")
    with httpx.Client(follow_redirects=False, timeout=20) as browser:
        answer = browser.get(link["url"])
    assert answer.status_code == 410 and "location" not in answer.headers
    assert "link_expired" in answer.text
    assert count(app, "accounts") == 0


def test_link_expiring_during_consent(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    stopped = walk(ig_link(tenant.api)["url"], stop_at_callback=True)
    callback = stopped.final
    sql(app, "UPDATE connect_links SET expires_at = now() - interval '1 second'")
    with stopped.browser() as browser:
        answer = browser.get(callback)
    assert "error=link_expired" in answer.headers["location"]
    assert count(app, "accounts") == 0


def test_selection_page_cannot_be_submitted_twice(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    link = ig_link(tenant.api)
    with httpx.Client(follow_redirects=True, timeout=20) as browser:
        page = browser.get(link["url"])
        assert "/connect/select/" in str(page.url)
        action = str(page.url)
        with httpx.Client(follow_redirects=False, timeout=20) as poster:
            first = poster.post(action, data={"choice": CHOICE.findall(page.text)[:1]})
            second = poster.post(action, data={"choice": CHOICE.findall(page.text)})
    assert "status=connected" in first.headers["location"]
    assert "error=state_replayed" in second.headers["location"]
    assert count(app, "accounts") == 1


def test_reconnecting_through_either_login_keeps_the_account(
    app: Flask,
    connect_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
) -> None:
    secret = app.config["CRIER"].secret_key
    # Instagram Login first: @sandbox with its own token, on graph.instagram.com.
    first = walk(connect_link(tenant.api, "instagram")["url"]).result
    account_id = int(first["account_id"])
    [before] = accounts(app)
    assert before["settings"]["login"] == "instagram" and before["token_expires_at"]
    post_image(app, tenant, deps, account_id, "Through Instagram Login")
    later = tenant.api.post(
        "/posts",
        json={
            "content": "Later",
            "account_ids": [account_id],
            "scheduled_at": future(),
            "media_ids": [upload(tenant.api, "later.jpg", jpeg_bytes())],
        },
    )
    assert later.status_code == 201

    # Facebook Login, picking the Page @sandbox is linked to: the same account.
    again = walk(ig_link(tenant.api)["url"], pick=lambda c: c[:1]).result
    assert again["status"] == "connected" and again["account_id"] == str(account_id)
    [after] = accounts(app)
    assert after["id"] == account_id and after["external_id"] == before["external_id"]
    assert after["settings"]["login"] == "facebook" and after["settings"]["page_id"]
    assert after["token_expires_at"] is None
    assert decrypt_token(secret, after["access_token_encrypted"]).startswith("EAAP")
    post_image(app, tenant, deps, account_id, "Through Facebook Login")
    targets = sql(
        app, "SELECT status FROM post_targets WHERE account_id = :a ORDER BY id", a=account_id
    )
    assert [t["status"] for t in targets] == ["published", "scheduled", "published"]
    # The sandbox recorded both posts alike, whichever host they came through.
    ledger = sandbox.get("/_ledger", params={"platform": "instagram"}).json()
    assert [e["text"] for e in ledger] == ["Through Instagram Login", "Through Facebook Login"]
    assert {e["account"] for e in ledger} == {before["external_id"]}
    assert len({frozenset(e) for e in ledger}) == 1 and ledger[0]["params"] == ledger[1]["params"]

    # And back through Instagram Login: its own token again, the Page forgotten.
    back = walk(connect_link(tenant.api, "instagram", account_id=account_id)["url"]).result
    assert back["account_id"] == str(account_id)
    [final] = accounts(app)
    assert final["settings"]["login"] == "instagram" and "page_id" not in final["settings"]
    assert final["token_expires_at"] is not None
    post_image(app, tenant, deps, account_id, "Back on Instagram Login")
    assert count(app, "accounts") == 1


def test_login_is_validated_and_needs_the_facebook_app(
    app: Flask, tenant: Tenant, connect_env: str
) -> None:
    def attempt(**body: Any) -> httpx.Response:
        return tenant.api.post(
            "/accounts/connect",
            json={"platform": "instagram", "redirect_url": "https://agency.example/x", **body},
        )

    unknown = attempt(login="myspace")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "validation_error"
    assert "login" in unknown.json()["error"]["details"]
    elsewhere = attempt(platform="x", login="facebook")
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"]["details"]["login"] == [
        "x accounts connect through their own login only; leave login out."
    ]
    assert attempt(platform="facebook", login="facebook").status_code == 201
    wrong_type = attempt(login=7)
    assert wrong_type.status_code == 400 and "login" in wrong_type.json()["error"]["details"]
    own = attempt(login="instagram")
    assert own.status_code == 201 and own.json()["data"]["login"] == "instagram"
    default = attempt()
    assert default.status_code == 201 and default.json()["data"]["login"] == "instagram"

    # Facebook Login signs in with Crier's Facebook app, not its Instagram one.
    without_client_id(app, "facebook")
    unconfigured = attempt(login="facebook")
    assert unconfigured.status_code == 409
    assert unconfigured.json()["error"]["code"] == "platform_not_configured"
    assert "CRIER_FACEBOOK_CLIENT_ID" in unconfigured.json()["error"]["message"]
    assert attempt().status_code == 201  # Instagram Login needs only Instagram's app


def test_an_expired_page_token_asks_for_reconnecting_without_a_refresh(
    app: Flask,
    connect_env: str,
    tenant: Tenant,
    sandbox: httpx.Client,
    deps: PipelineDeps,
) -> None:
    walk(ig_link(tenant.api)["url"], authorize_extra="sandbox_instagram=1")
    [row] = accounts(app)
    token = decrypt_token(app.config["CRIER"].secret_key, row["access_token_encrypted"])
    sandbox.post("/_faults", json={"instagram": {"expired_tokens": [token]}})
    created = tenant.api.post(
        "/posts",
        json={
            "content": "Expired",
            "account_ids": [row["id"]],
            "scheduled_at": future(2),
            "media_ids": [upload(tenant.api, "photo.jpg", jpeg_bytes())],
        },
    )
    publish_now(app, deps, created.json()["data"]["post_id"])

    [target] = sql(app, "SELECT status, error_code FROM post_targets")
    assert target == {"status": "failed", "error_code": "auth_expired"}
    [after] = accounts(app)
    assert after["status"] == "needs_reconnect"
    # No ig_refresh_token was tried: the Page token is the one stored, untouched.
    assert after["access_token_encrypted"] == row["access_token_encrypted"]
    assert after["refresh_failures"] == 0


def test_reconnecting_an_account_by_id_through_facebook_login_needs_no_selection(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    walk(ig_link(tenant.api)["url"], pick=lambda c: c[1:2])  # @sandbox_books
    [books] = accounts(app)
    sql(app, "UPDATE accounts SET status = 'needs_reconnect', status_reason = 'auth_expired'")

    again = walk(ig_link(tenant.api, account_id=books["id"])["url"])
    assert again.result["status"] == "connected" and not again.pages
    assert again.result["account_ids"] == str(books["id"])
    [row] = accounts(app)
    assert row["status"] == "active" and row["external_id"] == books["external_id"]
    assert row["access_token_encrypted"] != books["access_token_encrypted"]

    # The user no longer links that account to a granted Page: nothing is changed.
    gone = walk(
        ig_link(tenant.api, account_id=books["id"])["url"], authorize_extra="sandbox_instagram=1"
    )
    assert gone.result["error"] == "account_mismatch"
    assert accounts(app)[0]["access_token_encrypted"] == row["access_token_encrypted"]

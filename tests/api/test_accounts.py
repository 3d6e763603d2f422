"""GET /accounts and GET /accounts/{id}: the organisation's accounts and whether each can post."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from tests.api.helpers import TIMESTAMP, assert_error, future, ok_data, sql
from tests.conftest import Tenant


def test_list_accounts_with_pagination(tenant: Tenant, make_account: Any) -> None:
    ids = [
        make_account(tenant, platform, name=f"Brand {platform}", external_id=f"ext-{platform}")
        for platform in ("x", "instagram", "linkedin")
    ]
    response = tenant.api.get("/accounts")
    accounts = ok_data(response)
    assert [a["id"] for a in accounts] == ids
    assert response.json()["meta"]["pagination"] == {"limit": 50, "offset": 0, "total": 3}
    first = accounts[0]
    assert set(first) == {
        "id",
        "platform",
        "name",
        "external_id",
        "profile_id",
        "status",
        "created_at",
        "health",
        "metadata",
    }
    assert first["metadata"] == {}
    assert (first["platform"], first["name"], first["external_id"], first["status"]) == (
        "x",
        "Brand x",
        "ext-x",
        "active",
    )
    assert TIMESTAMP.match(first["created_at"])
    page = tenant.api.get("/accounts", params={"limit": 1, "offset": 2})
    assert [a["id"] for a in ok_data(page)] == [ids[2]]
    assert page.json()["meta"]["pagination"] == {"limit": 1, "offset": 2, "total": 3}
    error = assert_error(tenant.api.get("/accounts?limit=500"), 400, "validation_error")
    assert error["details"] == {
        "limit": ["Must be greater than or equal to 1 and less than or equal to 200."]
    }


def test_health_of_a_good_account(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    account = ok_data(tenant.api.get(f"/accounts/{account_id}"))
    assert account["id"] == account_id
    assert account["health"] == {
        "can_post": True,
        "needs_reconnect": False,
        "reason": None,
        "token_expires_at": None,
        "has_refresh_token": True,
        "refresh_failures": 0,
        "last_refresh_error": None,
    }


def test_health_when_the_token_expired(tenant: Tenant, make_account: Any, app: Flask) -> None:
    with_refresh = make_account(tenant, "linkedin")
    without_refresh = make_account(tenant, "linkedin", refresh_token=None)
    expired = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    sql(app, "UPDATE accounts SET token_expires_at = :at", at=expired)
    stamp = expired.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    # With a refresh token the worker renews it: still able to post.
    assert ok_data(tenant.api.get(f"/accounts/{with_refresh}"))["health"] == {
        "can_post": True,
        "needs_reconnect": False,
        "reason": None,
        "token_expires_at": stamp,
        "has_refresh_token": True,
        "refresh_failures": 0,
        "last_refresh_error": None,
    }
    assert ok_data(tenant.api.get(f"/accounts/{without_refresh}"))["health"] == {
        "can_post": False,
        "needs_reconnect": True,
        "reason": "The access token expired and there is no refresh token; reconnect the account.",
        "token_expires_at": stamp,
        "has_refresh_token": False,
        "refresh_failures": 0,
        "last_refresh_error": None,
    }


def test_health_of_accounts_marked_by_workers(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    flagged = make_account(tenant, "x", status="needs_reconnect")
    explained = make_account(tenant, "x", status="needs_reconnect")
    disabled = make_account(tenant, "x", status="disabled")
    sql(
        app,
        "UPDATE accounts SET status_reason = 'X revoked the token (401).' WHERE id = :a",
        a=explained,
    )
    health = {a["id"]: a["health"] for a in ok_data(tenant.api.get("/accounts"))}
    assert health[flagged]["can_post"] is False
    assert health[flagged]["needs_reconnect"] is True
    assert health[flagged]["reason"] == "The account must be reconnected before it can post."
    assert health[explained]["reason"] == "X revoked the token (401)."
    assert health[disabled]["can_post"] is False
    assert health[disabled]["needs_reconnect"] is False
    assert health[disabled]["reason"] == "The account is disabled."


def test_accounts_that_cannot_post_are_refused_at_intake(tenant: Tenant, make_account: Any) -> None:
    flagged = make_account(tenant, "x", name="Old brand", status="needs_reconnect")
    disabled = make_account(tenant, "x", name="Gone", status="disabled")
    body = {"content": "hi", "account_ids": [flagged, disabled], "scheduled_at": future()}
    error = assert_error(tenant.api.post("/posts", json=body), 400, "validation_error")
    assert error["details"] == {
        "account_ids": [
            f"Account {flagged} (Old brand) needs reconnecting before it can post.",
            f"Account {disabled} (Gone) is disabled.",
        ]
    }


def test_duplicate_account_ids_are_refused(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    body = {"content": "hi", "account_ids": [account_id, account_id], "scheduled_at": future()}
    error = assert_error(tenant.api.post("/posts", json=body), 400, "validation_error")
    assert error["details"] == {"account_ids": ["Each account may appear only once."]}


def test_unknown_account_paths(tenant: Tenant) -> None:
    assert_error(tenant.api.get("/accounts/0"), 404, "not_found", "Account not found.")
    assert_error(
        tenant.api.get("/accounts/abc"), 404, "not_found", "The requested resource does not exist."
    )

"""GET /me, GET /platform-rules, GET /accounts/{id}/health and campaigns over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from app.models import Platform
from tests.api.helpers import assert_error, future, ok_data, sql
from tests.conftest import Tenant


def test_me_names_the_organisation_key_limits_and_usage(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    tenant.api.post("/posts", json={"content": "hi", "account_ids": [x], "scheduled_at": future()})
    me = ok_data(tenant.api.get("/me"))
    assert me["organisation"]["id"] == tenant.organisation_id
    assert me["organisation"]["name"] == "acme"
    assert me["api_key"]["name"] == "acme-key"
    assert tenant.key.startswith(me["api_key"]["prefix"])
    assert me["limits"]["requests"] and me["limits"]["max_accounts_per_post"] == 500
    assert me["usage"]["accounts"] == 1 and me["usage"]["posts"] == 1
    assert me["usage"]["posts_last_30_days"] == 1
    assert_error(
        tenant.api.get("/me", headers={"Authorization": "Bearer nope"}), 401, "invalid_api_key"
    )


def test_platform_rules_are_the_intake_table(tenant: Tenant) -> None:
    rules = ok_data(tenant.api.get("/platform-rules"))
    assert set(rules) == {p.value for p in Platform}
    assert {"telegram", "discord", "bluesky", "mastodon", "pinterest", "wordpress"} <= set(rules)
    assert rules["x"]["text_limit"] == 280
    assert (rules["bluesky"]["text_limit"], rules["bluesky"]["text_unit"]) == (300, "graphemes")
    assert rules["mastodon"]["media"]["max_images"] == 4
    assert "image/jpeg" in rules["instagram"]["media"]["image_mime_types"]
    assert "Reels" in rules["instagram"]["content_types"]
    assert rules["youtube"]["media"]["required"] is True


def test_account_health(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    health = ok_data(tenant.api.get(f"/accounts/{x}/health"))
    assert health["status"] == "active" and health["can_post"] is True
    assert health["needs_reconnection"] is False and health["last_error"] is None
    assert health["last_published_at"] is None and health["token_expires_at"] is None
    post_id = ok_data(
        tenant.api.post(
            "/posts", json={"content": "a", "account_ids": [x], "scheduled_at": future()}
        ),
        201,
    )["post_id"]
    published = datetime.now(UTC) - timedelta(hours=2)
    sql(
        app,
        "UPDATE post_targets SET status = 'published', published_at = :t WHERE post_id = :p",
        t=published,
        p=post_id,
    )
    expired = datetime.now(UTC) - timedelta(minutes=5)
    sql(
        app,
        "UPDATE accounts SET status = 'needs_reconnect', status_reason = 'auth_revoked: gone', "
        "token_expires_at = :t WHERE id = :a",
        t=expired,
        a=x,
    )
    health = ok_data(tenant.api.get(f"/accounts/{x}/health"))
    assert health["can_post"] is False and health["needs_reconnection"] is True
    assert health["token_expired"] is True and health["token_expires_at"]
    assert health["last_error"]["message"] == "auth_revoked: gone"
    assert health["last_published_at"].startswith(published.strftime("%Y-%m-%dT%H:%M"))
    assert_error(tenant.api.get("/accounts/999999/health"), 404, "not_found")


def test_campaign_crud_and_post_grouping(
    tenant: Tenant, make_account: Any, make_tenant: Any
) -> None:
    x = make_account(tenant, "x")
    created = ok_data(
        tenant.api.post(
            "/campaigns",
            json={"name": "Launch", "description": "Q2", "color": "#1DA1F2"},
        ),
        201,
    )
    assert isinstance(created["id"], int) and created["status"] == "active"
    assert created["posts_count"] == 0
    ok_data(
        tenant.api.post(
            "/posts",
            json={
                "content": "a",
                "account_ids": [x],
                "scheduled_at": future(),
                "campaign_id": created["id"],
            },
        ),
        201,
    )
    one = ok_data(tenant.api.get(f"/campaigns/{created['id']}"))
    assert one["posts_count"] == 1 and one["color"] == "#1DA1F2"
    changed = ok_data(
        tenant.api.patch(f"/campaigns/{created['id']}", json={"status": "paused", "name": "L2"})
    )
    assert (changed["status"], changed["name"]) == ("paused", "L2")
    listed = tenant.api.get("/campaigns?status=paused").json()
    assert [c["id"] for c in listed["data"]] == [created["id"]]
    assert listed["data"][0]["posts_count"] == 1
    for body in ({}, {"name": ""}, {"name": "a", "color": "blue"}, {"name": "a", "status": "x"}):
        assert_error(tenant.api.post("/campaigns", json=body), 400, "validation_error")
    other = make_tenant("rival")
    assert_error(other.api.get(f"/campaigns/{created['id']}"), 404, "not_found")
    assert_error(other.api.delete(f"/campaigns/{created['id']}"), 404, "not_found")
    assert ok_data(tenant.api.delete(f"/campaigns/{created['id']}"))["deleted"] is True
    assert_error(tenant.api.get(f"/campaigns/{created['id']}"), 404, "not_found")
    posts = tenant.api.get("/posts").json()["data"]
    assert posts[0]["campaign_id"] is None

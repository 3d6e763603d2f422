"""The profile boundary, leak by leak: a key restricted to one profile never
reaches, borrows or moves another profile's objects, never holds `admin`, never reads
organisation-wide data, and shares no Idempotency-Key with another profile.

A reference in a body to another profile's object is refused exactly like an id that
does not exist (400 "… not found"), an object in the path reads as absent (404), and
nothing changes. tests/api/test_boundary.py sweeps every route the same way.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.api.helpers import assert_error, future, ok_data, sql, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes


@dataclass
class Side:
    profile: int
    account: int
    media: str
    campaign: int
    post: str
    api: httpx.Client


@pytest.fixture
def sides(app: Flask, live_url: str, tenant: Tenant, make_account: Any) -> dict[str, Side]:
    """Profiles A and B of one organisation, each with an X account, a photo, a campaign,
    a scheduled post and a posts:write + media:write key restricted to it."""
    made: dict[str, Side] = {}
    clients = []
    for name in ("a", "b"):
        profile = ok_data(tenant.api.post("/profiles", json={"name": name.upper()}), 201)["id"]
        account = make_account(tenant, "x", name=f"x {name}")
        ok_data(tenant.api.patch(f"/accounts/{account}", json={"profile_id": profile}))
        photo = tenant.api.post(
            "/media/upload",
            files={"file": (f"{name}.jpg", jpeg_bytes())},
            data={"profile_id": str(profile)},
        )
        media = ok_data(photo, 201)["id"]
        campaign = ok_data(
            tenant.api.post("/campaigns", json={"name": name, "profile_id": profile}), 201
        )["id"]
        post = ok_data(
            tenant.api.post(
                "/posts",
                json={"content": f"for {name}", "account_ids": [account], "scheduled_at": future()},
            ),
            201,
        )["post_id"]
        key = ok_data(
            tenant.api.post(
                "/keys",
                json={
                    "name": name,
                    "scopes": ["posts:write", "media:write"],
                    "profile_id": profile,
                },
            ),
            201,
        )["key"]
        client = httpx.Client(
            base_url=live_url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        clients.append(client)
        made[name] = Side(profile, account, media, campaign, post, client)
    yield made
    for client in clients:
        client.close()


def _post_row(app: Flask, post_id: str) -> dict[str, Any]:
    [row] = sql(
        app,
        "SELECT status, media_ids::text AS media, cover_photo, campaign_id, profile_id, "
        "content FROM posts WHERE id = :p",
        p=post_id,
    )
    row["targets"] = sql(
        app,
        "SELECT account_id, status FROM post_targets WHERE post_id = :p ORDER BY id",
        p=post_id,
    )
    return row


def test_scheduling_a_draft_cannot_use_another_profiles_account(
    app: Flask, sides: dict[str, Side]
) -> None:
    a, b = sides["a"], sides["b"]
    draft = ok_data(
        b.api.post("/posts", json={"content": "draft", "account_ids": [b.account], "draft": True}),
        201,
    )["post_id"]
    before = _post_row(app, draft)
    response = b.api.post(
        f"/posts/{draft}/schedule", json={"scheduled_for": future(), "account_ids": [a.account]}
    )
    message = f"account_ids: Account not found: {a.account}. Use ids from GET /accounts."
    assert_error(response, 400, "validation_error", message)
    assert _post_row(app, draft) == before
    # Exactly what an id that does not exist gets.
    unknown = b.api.post(
        f"/posts/{draft}/schedule", json={"scheduled_for": future(), "account_ids": [987654]}
    )
    assert_error(unknown, 400, "validation_error")
    # Its own account still works.
    ok_data(
        b.api.post(
            f"/posts/{draft}/schedule",
            json={"scheduled_for": future(), "account_ids": [b.account]},
        )
    )


def test_an_admin_cannot_schedule_a_profiles_draft_on_another_profiles_account(
    app: Flask, tenant: Tenant, sides: dict[str, Side]
) -> None:
    a, b = sides["a"], sides["b"]
    draft = ok_data(
        b.api.post("/posts", json={"content": "draft", "account_ids": [b.account], "draft": True}),
        201,
    )["post_id"]
    before = _post_row(app, draft)
    response = tenant.api.post(
        f"/posts/{draft}/schedule", json={"scheduled_for": future(), "account_ids": [a.account]}
    )
    assert_error(response, 400, "validation_error")
    assert _post_row(app, draft) == before


@pytest.mark.parametrize("field", ["media_ids", "cover_photo", "campaign_id"])
def test_patch_cannot_borrow_another_profiles_objects(
    app: Flask, sides: dict[str, Side], field: str
) -> None:
    a, b = sides["a"], sides["b"]
    value: Any = {"media_ids": [a.media], "cover_photo": a.media, "campaign_id": a.campaign}[field]
    before = _post_row(app, b.post)
    response = b.api.patch(f"/posts/{b.post}", json={field: value})
    error = assert_error(response, 400, "validation_error")
    assert "not found" in error["message"], error
    assert list(error["details"]) == [field]
    assert _post_row(app, b.post) == before
    # What an unknown id gets is the same refusal.
    unknown: Any = {
        "media_ids": [str(uuid.uuid4())],
        "cover_photo": str(uuid.uuid4()),
        "campaign_id": 987654,
    }[field]
    same = assert_error(
        b.api.patch(f"/posts/{b.post}", json={field: unknown}), 400, "validation_error"
    )
    assert same["message"].replace(str(unknown[0] if field == "media_ids" else unknown), "?") == (
        error["message"].replace(str(value[0] if field == "media_ids" else value), "?")
    )


@pytest.mark.parametrize("field", ["media_ids", "cover_photo", "campaign_id"])
def test_create_and_bulk_create_cannot_borrow_another_profiles_objects(
    app: Flask, sides: dict[str, Side], field: str
) -> None:
    a, b = sides["a"], sides["b"]
    value: Any = {"media_ids": [a.media], "cover_photo": a.media, "campaign_id": a.campaign}[field]
    body = {
        "content": "borrowed",
        "account_ids": [b.account],
        "scheduled_at": future(),
        field: value,
    }
    posts = sql(app, "SELECT count(*) AS n FROM posts")[0]["n"]
    error = assert_error(b.api.post("/posts", json=body), 400, "validation_error")
    assert "not found" in error["message"] and list(error["details"]) == [field]
    bulk = assert_error(b.api.post("/posts/bulk", json={"posts": [body]}), 422, "validation_error")
    assert "not found" in bulk["details"]["posts[0]"][0]
    assert sql(app, "SELECT count(*) AS n FROM posts")[0]["n"] == posts


def test_an_admin_cannot_attach_another_profiles_media_to_a_profiles_post(
    app: Flask, tenant: Tenant, sides: dict[str, Side]
) -> None:
    a, b = sides["a"], sides["b"]
    before = _post_row(app, b.post)
    for field, value in (("media_ids", [a.media]), ("cover_photo", a.media)):
        response = tenant.api.patch(f"/posts/{b.post}", json={field: value})
        assert_error(response, 400, "validation_error")
    response = tenant.api.patch(f"/posts/{b.post}", json={"campaign_id": a.campaign})
    assert_error(response, 400, "validation_error")
    assert _post_row(app, b.post) == before


def test_a_restricted_key_cannot_use_organisation_media_it_cannot_read(
    app: Flask, tenant: Tenant, sides: dict[str, Side]
) -> None:
    b = sides["b"]
    shared = upload(tenant.api, "org.jpg", jpeg_bytes())  # no profile
    assert_error(b.api.get(f"/media/{shared}"), 404, "not_found")
    body = {
        "content": "borrowed",
        "account_ids": [b.account],
        "scheduled_at": future(),
        "media_ids": [shared],
    }
    assert_error(b.api.post("/posts", json=body), 400, "validation_error")
    # An unrestricted key may still use the organisation's shared media in a profile's post.
    mine = ok_data(tenant.api.post("/posts", json=body), 201)["post_id"]
    assert ok_data(tenant.api.get(f"/posts/{mine}"))["media_ids"] == [shared]


def test_the_same_idempotency_key_in_two_profiles_makes_two_posts(
    app: Flask, sides: dict[str, Side]
) -> None:
    a, b = sides["a"], sides["b"]
    headers = {"Idempotency-Key": "order-1"}
    body = {"content": "same", "account_ids": [a.account], "scheduled_at": future()}
    first = ok_data(a.api.post("/posts", json=body, headers=headers), 201)
    # The same key and body from profile B is B's own request: A's account does not exist
    # for B, so it is refused; A's post is not handed over.
    replay = b.api.post("/posts", json=body, headers=headers)
    assert_error(replay, 400, "validation_error")
    assert first["post_id"] not in replay.text
    # Nor does B learn that A used the key: B's own body under it is a new post.
    own = b.api.post("/posts", json={**body, "account_ids": [b.account]}, headers=headers)
    second = ok_data(own, 201)
    assert "Idempotent-Replayed" not in own.headers
    assert second["post_id"] != first["post_id"]
    # Each profile replays its own.
    again = b.api.post("/posts", json={**body, "account_ids": [b.account]}, headers=headers)
    assert ok_data(again, 201)["post_id"] == second["post_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    again = a.api.post("/posts", json=body, headers=headers)
    assert ok_data(again, 201)["post_id"] == first["post_id"]


def test_a_profile_key_made_without_scopes_is_not_admin(tenant: Tenant, live_url: str) -> None:
    profile = ok_data(tenant.api.post("/profiles", json={"name": "P"}), 201)["id"]
    made = ok_data(tenant.api.post("/keys", json={"name": "client", "profile_id": profile}), 201)
    assert made["scopes"] == ["media:write", "posts:write"]
    refused = tenant.api.post(
        "/keys", json={"name": "client", "profile_id": profile, "scopes": ["admin"]}
    )
    error = assert_error(refused, 400, "validation_error")
    assert "admin" in error["message"] and list(error["details"]) == ["scopes"]
    mixed = tenant.api.post(
        "/keys", json={"name": "c", "profile_id": profile, "scopes": ["posts:read", "admin"]}
    )
    assert_error(mixed, 400, "validation_error")
    # Without a profile, no scopes is still an admin key.
    assert ok_data(tenant.api.post("/keys", json={"name": "ops"}), 201)["scopes"] == ["admin"]
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {made['key']}"}) as api:
        assert_error(api.get("/audit-log"), 403, "insufficient_scope")
        assert_error(api.post("/profiles", json={"name": "mine"}), 403, "insufficient_scope")


def test_a_stored_admin_key_of_a_profile_gets_nothing_organisation_wide(
    app: Flask, tenant: Tenant, live_url: str, sides: dict[str, Side]
) -> None:
    """A key written before the fix, with ['admin'] and a profile: it keeps what it may
    do inside its profile, and loses everything organisation-wide."""
    a = sides["a"]
    made = ok_data(
        tenant.api.post(
            "/keys", json={"name": "old", "scopes": ["posts:read"], "profile_id": a.profile}
        ),
        201,
    )
    sql(app, "UPDATE api_keys SET scopes = '[\"admin\"]' WHERE id = :k", k=made["id"])
    ok_data(tenant.api.post("/webhooks", json={"url": "https://org.example/h"}), 201)
    profiles = sql(app, "SELECT count(*) AS n FROM profiles")[0]["n"]
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {made['key']}"}) as api:
        for method, path, body in (
            ("GET", "/audit-log", None),
            ("GET", "/keys", None),
            ("POST", "/keys", {"name": "escalate"}),
            ("POST", "/profiles", {"name": "mine"}),
            ("PATCH", f"/profiles/{a.profile}", {"name": "renamed"}),
            ("DELETE", f"/profiles/{a.profile}", None),
        ):
            response = api.request(method, path, json=body)
            assert_error(response, 403, "insufficient_scope")
        assert sql(app, "SELECT count(*) AS n FROM profiles")[0]["n"] == profiles
        # Inside its profile it still works.
        assert [p["post_id"] for p in ok_data(api.get("/posts"))] == [a.post]
        assert [w["url"] for w in ok_data(api.get("/webhooks"))] == []
        assert [p["id"] for p in ok_data(api.get("/profiles"))] == [a.profile]


def test_me_counts_only_the_keys_profile(tenant: Tenant, sides: dict[str, Side]) -> None:
    usage = ok_data(sides["a"].api.get("/me"))["usage"]
    assert usage["accounts"] == 1 and usage["posts"] == 1
    assert usage["media"] == 1 and usage["campaigns"] == 1 and usage["webhooks"] == 0
    everything = ok_data(tenant.api.get("/me"))["usage"]
    assert everything["accounts"] == 2 and everything["posts"] == 2

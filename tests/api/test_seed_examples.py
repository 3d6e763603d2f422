"""Every example of the POST /posts API contract, through real HTTP, PostgreSQL and Redis."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes, mp4_bytes

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def assert_envelope(body: dict[str, Any]) -> None:
    assert set(body) == {"data", "error", "meta"}
    assert set(body["meta"]) >= {"request_id", "timestamp"}
    assert body["meta"]["request_id"]
    assert TIMESTAMP.match(body["meta"]["timestamp"])


def upload(api: httpx.Client, name: str, data: bytes) -> str:
    response = api.post("/media/upload", files={"file": (name, data)})
    assert response.status_code == 201, response.text
    return response.json()["data"]["id"]


def future(days: int = 3) -> str:
    moment = datetime.now(UTC) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_instagram_stories_example(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "instagram")
    media_id = upload(tenant.api, "story.jpg", jpeg_bytes(1080, 1920))
    body = {
        "content": "Check this out!",
        "account_ids": [account_id],
        "media_ids": [media_id],
        "platform_content": {"instagram": {"contentType": "Story"}},
    }
    response = tenant.api.post("/posts", json=body)
    assert response.status_code == 201, response.text
    payload = response.json()
    assert_envelope(payload)
    assert payload["error"] is None
    data = payload["data"]
    assert set(data) == {"post_id", "status", "scheduled_for", "accounts_count", "message"}
    uuid.UUID(data["post_id"])
    assert data["status"] == "publishing"
    assert data["accounts_count"] == 1
    assert TIMESTAMP.match(data["scheduled_for"])
    stored = tenant.api.get(f"/posts/{data['post_id']}").json()["data"]
    assert stored["platform_content"] == {"instagram": {"contentType": "Story"}}
    assert stored["targets"][0]["platform"] == "instagram"


def test_full_request_example_scheduled_for_three_accounts(
    tenant: Tenant, make_account: Any
) -> None:
    instagram = make_account(tenant, "instagram")
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    media_id = upload(tenant.api, "launch.mp4", mp4_bytes(20))
    scheduled = future(5)
    body = {
        "content": "Excited to share our latest update! Check it out.",
        "account_ids": [instagram, x, linkedin],
        "scheduled_at": scheduled,
        "timezone": "America/New_York",
        "media_ids": [media_id],
        "platform_content": {
            "instagram": {
                "content": "Excited to share our latest update! #newfeature #launch",
                "contentType": "Reels",
            },
            "x": {"content": "Excited to share our latest update! Check it out."},
        },
    }
    response = tenant.api.post("/posts", json=body)
    assert response.status_code == 201, response.text
    payload = response.json()
    assert_envelope(payload)
    data = payload["data"]
    assert data["status"] == "scheduled"
    # An explicit Z is an absolute instant whatever the timezone field says.
    assert data["scheduled_for"] == scheduled
    assert data["accounts_count"] == 3
    assert data["message"] == "Post scheduled for 3 accounts."


def test_missing_required_fields_example(tenant: Tenant) -> None:
    response = tenant.api.post("/posts", json={"scheduled_at": future()})
    assert response.status_code == 400
    payload = response.json()
    assert_envelope(payload)
    assert payload["data"] is None
    assert payload["error"]["message"] == (
        "Missing required fields: content and account_ids are required."
    )
    assert payload["error"]["code"] == "validation_error"


def test_unauthorized_example(live_url: str) -> None:
    for headers in ({}, {"Authorization": "Bearer crier_nope"}, {"X-API-Key": "wrong"}):
        response = httpx.post(f"{live_url}/posts", json={"content": "x"}, headers=headers)
        assert response.status_code == 401
        payload = response.json()
        assert_envelope(payload)
        assert payload["data"] is None
        assert payload["error"] == {
            "message": "Invalid API key. Check that the key is correct and has not been deleted.",
            "code": "invalid_api_key",
        }


def test_rate_limited_example(app: Any, tenant: Tenant, make_account: Any) -> None:
    from app.ratelimit import RequestLimiter

    settings = app.config["CRIER"]
    app.extensions["crier.limiter"] = RequestLimiter(settings.redis_url, "1000/minute", "2/minute")
    try:
        account_id = make_account(tenant, "x")
        body = {"content": "hello", "account_ids": [account_id], "scheduled_at": future()}
        statuses = [tenant.api.post("/posts", json=body) for _ in range(3)]
        assert [r.status_code for r in statuses] == [201, 201, 429]
        limited = statuses[2]
        payload = limited.json()
        assert_envelope(payload)
        assert payload["data"] is None
        assert payload["error"]["code"] == "rate_limited"
        wait = int(limited.headers["Retry-After"])
        assert 1 <= wait <= 60
        assert payload["error"]["message"] == f"Rate limit exceeded. Try again in {wait} seconds."
        assert limited.headers["X-RateLimit-Limit"] == "2"
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert int(limited.headers["X-RateLimit-Reset"]) > 0
        # Other endpoints still answer, with their own limit in the headers.
        listing = tenant.api.get("/posts")
        assert listing.status_code == 200
        assert listing.headers["X-RateLimit-Limit"] == "1000"
    finally:
        app.extensions["crier.limiter"] = RequestLimiter(
            settings.redis_url, settings.rate_limit, settings.posts_rate_limit
        )

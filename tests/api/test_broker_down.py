"""Redis away: intake still answers, loses nothing, and leaves the work for the sweeper.

If the enqueue fails (Redis down), the request still succeeds; the sweeper enqueues it
(docs/delivery.md, "Enqueue after commit"). The rate limiter fails open meanwhile, and
says so in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

from app import create_app
from app.db import get_db
from tests.api.helpers import future, ok_data, targets_of
from tests.conftest import Tenant
from tests.servers import serve_wsgi

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def redisless(app_settings: dict[str, Any], tenant: Tenant) -> Iterator[httpx.Client]:
    """A second app on the same database whose Redis cannot be reached, with tenant's key."""
    dead = create_app({**app_settings, "redis_url": DEAD_REDIS})
    try:
        with (
            serve_wsgi(dead) as url,
            httpx.Client(base_url=url, headers=dict(tenant.api.headers), timeout=30) as client,
        ):
            yield client
    finally:
        get_db(dead).dispose()


def test_create_succeeds_and_leaves_the_target_for_the_sweeper(
    redisless: httpx.Client,
    tenant: Tenant,
    make_account: Any,
    app: Flask,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    account_id = make_account(tenant, "x")
    started = time.monotonic()
    response = redisless.post("/posts", json={"content": "now", "account_ids": [account_id]})
    elapsed = time.monotonic() - started
    data = ok_data(response, 201)
    # kombu retries the connection for broker_connection_timeout (2 s) before giving up.
    assert elapsed < 5, f"took {elapsed:.1f}s with Redis down"
    assert data["status"] == "publishing"
    assert data["message"] == "Post is being published to 1 account."
    [target] = targets_of(app, data["post_id"])
    assert target["status"] == "scheduled"
    assert target["dispatch_token"] is None
    assert target["queued_at"] is None
    # No limiter state, so no rate-limit headers: the request was let through.
    assert "X-RateLimit-Limit" not in response.headers
    messages = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    assert any(
        name == "app.ratelimit"
        and level == "WARNING"
        and message.startswith("rate limiter unavailable, letting requests through")
        for name, level, message in messages
    ), messages
    assert any(
        name == "app.dispatch" and level == "WARNING" and message.startswith("broker unavailable")
        for name, level, message in messages
    ), messages
    # Right after a failure the broker is skipped: the next create does not wait again.
    started = time.monotonic()
    again = redisless.post("/posts", json={"content": "again", "account_ids": [account_id]})
    assert again.status_code == 201
    assert time.monotonic() - started < 1
    [second] = targets_of(app, again.json()["data"]["post_id"])
    assert second["status"] == "scheduled" and second["dispatch_token"] is None


def test_reads_and_changes_keep_working(
    redisless: httpx.Client, tenant: Tenant, make_account: Any, app: Flask
) -> None:
    account_id = make_account(tenant, "x")
    started = time.monotonic()
    created = ok_data(
        redisless.post(
            "/posts",
            json={"content": "later", "account_ids": [account_id], "scheduled_at": future()},
        ),
        201,
    )
    post_id = created["post_id"]
    assert ok_data(redisless.get(f"/posts/{post_id}"))["status"] == "scheduled"
    assert [p["post_id"] for p in ok_data(redisless.get("/posts"))] == [post_id]
    # Rescheduling into the horizon needs the broker: the target waits for the sweeper.
    patched = ok_data(redisless.patch(f"/posts/{post_id}", json={"scheduled_at": None}))
    assert patched["status"] == "publishing"
    [target] = targets_of(app, post_id)
    assert (target["status"], target["dispatch_token"]) == ("scheduled", None)
    assert ok_data(redisless.delete(f"/posts/{post_id}"))["status"] == "cancelled"
    assert time.monotonic() - started < 10

"""Per-key limits: a bulk create counts each of its posts against the posts limit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from app.ratelimit import RequestLimiter
from tests.api.helpers import future
from tests.conftest import Tenant


@pytest.fixture
def five_posts_a_minute(app: Flask) -> Iterator[None]:
    settings = app.config["CRIER"]
    app.extensions["crier.limiter"] = RequestLimiter(settings.redis_url, "1000/minute", "5/minute")
    yield
    app.extensions["crier.limiter"] = RequestLimiter(
        settings.redis_url, settings.rate_limit, settings.posts_rate_limit
    )


def test_bulk_counts_every_post(
    five_posts_a_minute: None, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")

    def bulk(count: int) -> Any:
        posts = [
            {"content": f"bulk {n}", "account_ids": [account_id], "scheduled_at": future()}
            for n in range(count)
        ]
        return tenant.api.post("/posts/bulk", json={"posts": posts})

    first = bulk(4)
    assert first.status_code == 201, first.text
    assert first.headers["X-RateLimit-Remaining"] == "1"
    second = bulk(4)
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limited"
    assert int(second.headers["Retry-After"]) >= 1
    # Nothing of the refused request was created.
    listing = tenant.api.get("/posts").json()
    assert listing["meta"]["pagination"]["total"] == 4

"""End to end: API → PostgreSQL → Redis → a real Celery worker → adapter → sandbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def post_status(tenant: Tenant, post_id: str) -> dict[str, Any]:
    return tenant.api.get(f"/posts/{post_id}").json()["data"]


def test_publish_now_to_x(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker()
    account_id = make_account(tenant, "x", external_id="2244994945")
    created = tenant.api.post(
        "/posts", json={"content": "Hello from Crier", "account_ids": [account_id]}
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]

    data = wait_until(lambda: (d := post_status(tenant, post_id))["status"] == "published" and d)
    target = data["targets"][0]
    assert target["status"] == "published"
    assert target["attempts"] == 1
    ledger = sandbox.get("/_ledger").json()
    assert len(ledger) == 1
    assert ledger[0]["text"] == "Hello from Crier"
    assert target["platform_post_id"] == ledger[0]["id"]
    assert target["url"].endswith(f"/status/{ledger[0]['id']}")


def test_health_reports_database_redis_workers_and_beat(stack: Stack, tenant: Tenant) -> None:
    """Details for a key holder (anonymous callers get up/down only)."""
    before = tenant.api.get("/health").json()["data"]
    assert before["checks"]["database"]["ok"] and before["checks"]["redis"]["ok"]
    assert before["checks"]["workers"]["ok"] is False
    assert before["checks"]["beat"]["ok"] is False
    stack.worker("healthy")
    stack.beat()
    after = wait_until(
        lambda: (
            (d := tenant.api.get("/health").json()["data"])["checks"]["workers"]["ok"]
            and d["checks"]["beat"]["ok"]
            and d
        ),
        timeout=20,
    )
    assert after["status"] == "ok"
    assert any(w["name"].startswith("healthy@") for w in after["checks"]["workers"]["seen"])

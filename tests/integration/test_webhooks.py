"""Webhooks end to end: outbox → drain → `webhooks` queue → a real worker → a receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.models import WebhookEvent
from app.services.outbound import REFUSED
from app.services.webhooks import verify_signature
from tests.conftest import Tenant, reset_redis
from tests.integration.conftest import Stack, wait_until
from tests.servers import serve_wsgi


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver: fails its first `fail_first` requests, may answer slowly."""

    fail_first: int = 0
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            status = 500 if len(self.received) < self.fail_first else 200
            self.received.append(Received(headers, body, status))
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"nope" if status == 500 else b"ok"]

    def delivered(self) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.answered == 200]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    handler = Receiver()
    with serve_wsgi(handler) as url:
        handler.url = f"{url}/hooks/crier"
        yield handler


def create_webhook(tenant: Tenant, url: str, **extra: Any) -> dict[str, Any]:
    response = tenant.api.post("/webhooks", json={"url": url, "name": "ours", **extra})
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["secret"].startswith("whsec_")
    return data


def event_ids(app: Flask, organisation_id: int) -> set[str]:
    with app.app_context(), get_db(app).session() as session:
        return {
            str(i)
            for i in session.scalars(
                select(WebhookEvent.id).where(WebhookEvent.organisation_id == organisation_id)
            )
        }


def test_a_post_life_arrives_signed_and_exact(
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    receiver: Receiver,
) -> None:
    stack.worker()
    stack.beat()
    hook = create_webhook(tenant, receiver.url)
    x_account = make_account(tenant, "x", external_id="2244994945")
    linkedin = make_account(tenant, "linkedin", external_id="li-123")
    sandbox.post("/_faults", json={"linkedin": {"error_rate": 1.0, "error_status": 400}})
    created = tenant.api.post(
        "/posts", json={"content": "Webhooks, please", "account_ids": [x_account, linkedin]}
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]

    wait_until(lambda: len(receiver.delivered()) >= 3, timeout=60)
    time.sleep(2)  # nothing more may follow
    got = receiver.delivered()
    types = sorted(r.event["type"] for r in got)
    assert types == ["post.partially_published", "post.platform.failed", "post.platform.published"]
    assert len({r.event["id"] for r in got}) == 3
    for item in got:
        headers = item.headers
        assert verify_signature(hook["secret"], item.body, headers["X-Crier-Signature"])
        assert headers["X-Crier-Signature"].startswith("sha256=")
        assert headers["X-Crier-Event"] == item.event["type"]
        assert abs(int(headers["X-Crier-Timestamp"]) - time.time()) < 120
        assert headers["X-Crier-Delivery"]
        assert set(item.event) == {"id", "type", "created_at", "data"}
    by_type = {r.event["type"]: r.event["data"] for r in got}
    assert by_type["post.partially_published"]["post_id"] == post_id
    assert by_type["post.partially_published"]["status"] == "partially_published"
    published = by_type["post.platform.published"]
    assert (published["post_id"], published["account_id"]) == (post_id, x_account)
    assert published["platform_post_url"] and published["platform_post_id"]
    failed = by_type["post.platform.failed"]
    assert (failed["account_id"], failed["status"]) == (linkedin, "failed")
    assert failed["error"]["message"]

    deliveries = tenant.api.get(f"/webhooks/{hook['id']}/deliveries").json()
    assert deliveries["meta"]["pagination"]["total"] == 3
    for delivery in deliveries["data"]:
        assert delivery["status"] == "succeeded"
        assert delivery["status_code"] == 200
        assert delivery["attempt"] == 1
        assert delivery["latency_ms"] is not None and delivery["error"] is None
        assert delivery["next_attempt_at"] is None


def test_a_receiver_failing_five_times_gets_every_event_once(
    app: Flask,
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    receiver: Receiver,
) -> None:
    receiver.fail_first = 5
    stack.worker()
    stack.beat()
    hook = create_webhook(tenant, receiver.url)
    account = make_account(tenant, "x")
    for n in range(3):
        response = tenant.api.post(
            "/posts", json={"content": f"post {n}", "account_ids": [account]}
        )
        assert response.status_code == 201, response.text
    for _ in range(2):
        assert tenant.api.post(f"/webhooks/{hook['id']}/test").status_code == 202

    # 3 x (post.platform.published + post.published) + 2 test events.
    wait_until(lambda: len(event_ids(app, tenant.organisation_id)) == 8, timeout=60)
    expected = event_ids(app, tenant.organisation_id)
    wait_until(lambda: {r.event["id"] for r in receiver.delivered()} == expected, timeout=90)
    time.sleep(1.5)
    delivered = [r.event["id"] for r in receiver.delivered()]
    assert sorted(delivered) == sorted(expected)  # each exactly once
    assert len([r for r in receiver.received if r.answered == 500]) == 5
    endpoint = tenant.api.get(f"/webhooks/{hook['id']}").json()["data"]
    assert endpoint["is_active"] and endpoint["consecutive_failures"] == 0
    retried = [
        d
        for d in tenant.api.get(f"/webhooks/{hook['id']}/deliveries").json()["data"]
        if d["attempt"] > 1
    ]
    assert retried and all(d["status"] == "succeeded" for d in retried)


def test_a_redis_flush_mid_delivery_loses_no_event(
    app: Flask,
    app_settings: dict[str, Any],
    stack: Stack,
    tenant: Tenant,
    receiver: Receiver,
) -> None:
    receiver.delay = 0.5
    stack.worker()
    stack.beat()
    hook = create_webhook(tenant, receiver.url)
    for _ in range(12):
        assert tenant.api.post(f"/webhooks/{hook['id']}/test").status_code == 202
    expected = event_ids(app, tenant.organisation_id)
    assert len(expected) == 12
    wait_until(lambda: len(receiver.received) >= 1, timeout=30)
    reset_redis(app_settings["redis_url"])  # FLUSHDB while deliveries are in flight
    wait_until(lambda: {r.event["id"] for r in receiver.delivered()} == expected, timeout=90)


def test_loopback_is_refused_unless_allowed(
    stack: Stack, tenant: Tenant, receiver: Receiver
) -> None:
    stack.worker(extra_env={"CRIER_ALLOW_PRIVATE_URLS": "0"})
    stack.beat(extra_env={"CRIER_ALLOW_PRIVATE_URLS": "0"})
    hook = create_webhook(tenant, receiver.url)
    assert tenant.api.post(f"/webhooks/{hook['id']}/test").status_code == 202

    def refused() -> dict[str, Any] | None:
        rows = tenant.api.get(f"/webhooks/{hook['id']}/deliveries").json()["data"]
        return rows[0] if rows and rows[0]["attempt"] >= 1 else None

    delivery = wait_until(refused, timeout=30)
    # The same text as every other refusal: a caller learns nothing about the address.
    assert delivery["error"] == REFUSED and delivery["status_code"] is None
    assert delivery["status"] in ("pending", "failed")
    assert receiver.received == []

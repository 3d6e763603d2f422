"""Webhook outbox and delivery as plain functions: the events each change writes, claims
within the per-endpoint concurrency, retries with backoff, and disabling after failures."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.services.outbound import UnsafeURLError, address_problem, check_literal_host, resolve
from tests.conftest import Tenant
from tests.servers import serve_wsgi
from tests.workers.test_pipeline import create_target, queue_now
from workers.pipeline import PipelineDeps, publish_target
from workers.webhooks import backoff_seconds, claim_due, deliver_webhook, prune_webhook_outbox


class Answering:
    """A receiver that answers each request with the next status of its script."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        with self.lock:
            self.bodies.append(body)
            status = self.statuses.pop(0) if self.statuses else 200
        start_response(f"{status} X", [("Content-Type", "text/plain")])
        return [b"receiver says no" if status >= 300 else b"ok"]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False) as client:
        yield client


def hook(tenant: Tenant, url: str, **extra: Any) -> dict[str, Any]:
    response = tenant.api.post("/webhooks", json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def events(app: Flask, organisation_id: int) -> list[WebhookEvent]:
    with get_db(app).session() as session:
        rows = session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.organisation_id == organisation_id)
            .order_by(WebhookEvent.created_at)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def claim_all(app: Flask, settings: Any) -> list[Any]:
    with get_db(app).session() as session:
        claims = claim_due(session, settings)
        session.commit()
    return claims


def claim_next(app: Flask, settings: Any, timeout: float = 10.0) -> list[Any]:
    """The claims of the next due delivery, once its backoff has passed: waited for, not
    slept for, so a loaded machine cannot make it look absent."""
    deadline = time.monotonic() + timeout
    while not (claims := claim_all(app, settings)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return claims


def test_publishing_writes_platform_and_post_events_in_its_transaction(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any
) -> None:
    hook(tenant, "http://127.0.0.1:9/never")
    account_id = make_account(tenant, "x", external_id="2244994945")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    assert events(app, tenant.organisation_id) == []  # scheduling a post is no event
    assert publish_target(deps, target_id, token) == "published"
    written = events(app, tenant.organisation_id)
    assert [e.type for e in written] == ["post.platform.published", "post.published"]
    assert written[0].data["account_id"] == account_id
    assert written[0].data["platform_post_url"]
    assert written[1].data["status"] == "published"


def test_cancel_writes_post_cancelled(app: Flask, tenant: Tenant, make_account: Any) -> None:
    hook(tenant, "http://127.0.0.1:9/never", events=["post.cancelled"])
    account_id = make_account(tenant, "x")
    post_id = create_target(tenant, account_id)
    assert tenant.api.delete(f"/posts/{post_id}").status_code == 200
    [event] = events(app, tenant.organisation_id)
    assert event.type == "post.cancelled" and event.data["post_id"] == post_id


def test_revoked_account_writes_account_disconnected(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    hook(tenant, "http://127.0.0.1:9/never", events=["account.disconnected"])
    account_id = make_account(tenant, "x", access_token="gone", refresh_token="gone-too")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"x": {"revoked_tokens": ["gone", "gone-too"]}})
    publish_target(deps, target_id, token)
    [event] = events(app, tenant.organisation_id)
    assert event.type == "account.disconnected"
    assert event.data["id"] == account_id and event.data["health"]["needs_reconnect"]


def test_revoked_account_writes_account_needs_reconnect(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    hook(tenant, "http://127.0.0.1:9/never", events=["account.needs_reconnect"])
    account_id = make_account(tenant, "x", access_token="gone", refresh_token="gone-too")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"x": {"revoked_tokens": ["gone", "gone-too"]}})
    publish_target(deps, target_id, token)
    [event] = events(app, tenant.organisation_id)
    assert event.type == "account.needs_reconnect"
    assert event.data["id"] == account_id and event.data["status"] == "needs_reconnect"


def test_no_subscriber_means_no_outbox_rows(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any
) -> None:
    hook(tenant, "http://127.0.0.1:9/never", events=["media.processed"])
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    assert publish_target(deps, target_id, token) == "published"
    assert events(app, tenant.organisation_id) == []


def test_claims_respect_the_per_endpoint_concurrency(app: Flask, tenant: Tenant) -> None:
    settings = replace(app.config["CRIER"], webhook_concurrency=2)
    slow = hook(tenant, "http://127.0.0.1:9/slow")
    other = hook(tenant, "http://127.0.0.1:9/other")
    for _ in range(5):
        tenant.api.post(f"/webhooks/{slow['id']}/test")
    tenant.api.post(f"/webhooks/{other['id']}/test")
    claims = claim_all(app, settings)
    with get_db(app).session() as session:
        owners = [session.get(WebhookDelivery, c.delivery_id).endpoint_id for c in claims]
    assert owners.count(uuid.UUID(slow["id"])) == 2
    assert owners.count(uuid.UUID(other["id"])) == 1
    assert claim_all(app, settings) == []  # the slots are taken until these finish


def test_failures_retry_with_backoff_then_succeed(
    app: Flask, tenant: Tenant, http: httpx.Client
) -> None:
    settings = replace(app.config["CRIER"], webhook_retry_base=0.05, webhook_retry_cap=0.05)
    receiver = Answering([500, 503])
    with serve_wsgi(receiver) as url:
        endpoint = hook(tenant, f"{url}/in")
        tenant.api.post(f"/webhooks/{endpoint['id']}/test")
        outcomes = []
        for _ in range(3):
            [claim] = claim_next(app, settings)  # past the retry's backoff
            outcomes.append(
                deliver_webhook(
                    get_db(app),
                    settings,
                    app.extensions["celery"],
                    http,
                    str(claim.delivery_id),
                    claim.token,
                )
            )
    assert outcomes == ["failed", "failed", "ok"]
    assert len({body for body in receiver.bodies}) == 1  # the same bytes every attempt
    [delivery] = tenant.api.get(f"/webhooks/{endpoint['id']}/deliveries").json()["data"]
    assert delivery["status"] == "succeeded" and delivery["attempt"] == 3
    assert delivery["status_code"] == 200


def test_a_stale_claim_sends_nothing(app: Flask, tenant: Tenant, http: httpx.Client) -> None:
    settings = app.config["CRIER"]
    receiver = Answering([])
    with serve_wsgi(receiver) as url:
        endpoint = hook(tenant, f"{url}/in")
        tenant.api.post(f"/webhooks/{endpoint['id']}/test")
        [claim] = claim_all(app, settings)
        celery = app.extensions["celery"]
        assert (
            deliver_webhook(get_db(app), settings, celery, http, str(claim.delivery_id), "x")
            == "stale"
        )
        assert (
            deliver_webhook(
                get_db(app), settings, celery, http, str(claim.delivery_id), claim.token
            )
            == "ok"
        )
        assert (
            deliver_webhook(
                get_db(app), settings, celery, http, str(claim.delivery_id), claim.token
            )
            == "stale"
        )
    assert len(receiver.bodies) == 1


def test_consecutive_failures_disable_the_endpoint_with_a_reason(
    app: Flask, tenant: Tenant, http: httpx.Client
) -> None:
    settings = replace(
        app.config["CRIER"],
        webhook_disable_after=3,
        webhook_retry_base=0.05,
        webhook_retry_cap=0.05,
    )
    receiver = Answering([410] * 10)
    with serve_wsgi(receiver) as url:
        endpoint = hook(tenant, f"{url}/gone")
        tenant.api.post(f"/webhooks/{endpoint['id']}/test")
        for _ in range(3):
            [claim] = claim_next(app, settings)  # past the retry's backoff
            deliver_webhook(
                get_db(app),
                settings,
                app.extensions["celery"],
                http,
                str(claim.delivery_id),
                claim.token,
            )
        assert claim_all(app, settings) == []  # a disabled endpoint is not sent to
        data = tenant.api.get(f"/webhooks/{endpoint['id']}").json()["data"]
        assert data["is_active"] is False
        assert "3 consecutive failed deliveries" in data["disabled_reason"]
        assert "HTTP 410" in data["disabled_reason"]
        # Its owner turns it back on: what was held is sent again.
        resumed = tenant.api.patch(f"/webhooks/{endpoint['id']}", json={"is_active": True})
        assert resumed.json()["data"]["disabled_reason"] is None
        assert len(claim_next(app, settings)) == 1


def test_backoff_grows_with_jitter_and_spans_about_a_day(app: Flask) -> None:
    settings = app.config["CRIER"]
    delays = [backoff_seconds(settings, n) for n in range(1, settings.webhook_max_attempts)]
    assert delays[1] > delays[0] * 1.2
    assert max(delays) <= settings.webhook_retry_cap
    assert 14 * 3600 < sum(delays) < 30 * 3600
    assert len({round(backoff_seconds(settings, 5), 6) for _ in range(20)}) > 1


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.169.254", "metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "non-public"),
        ("::ffff:127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
    ],
)
def test_non_public_addresses_are_refused(address: str, problem: str) -> None:
    assert problem in (address_problem(address) or "")
    with pytest.raises(UnsafeURLError):
        resolve(
            f"http://{address if ':' not in address else f'[{address}]'}/x", allow_private=False
        )


def test_public_addresses_and_the_allow_switch() -> None:
    assert address_problem("93.184.216.34") is None
    assert resolve("https://93.184.216.34/hook", allow_private=False).address == "93.184.216.34"
    assert resolve("http://127.0.0.1:9/x", allow_private=True).address == "127.0.0.1"
    with pytest.raises(UnsafeURLError, match=r"^Refused"):
        resolve("http://localhost/x", allow_private=False)
    for bad in ("ftp://example.com/x", "file:///etc/passwd", "http:///nohost", "gopher://a/"):
        with pytest.raises(UnsafeURLError):
            check_literal_host(bad, allow_private=True)
    with pytest.raises(UnsafeURLError):
        check_literal_host("http://169.254.169.254/latest/meta-data", allow_private=False)


def test_deleting_an_endpoint_drops_its_deliveries(app: Flask, tenant: Tenant) -> None:
    endpoint = hook(tenant, "http://127.0.0.1:9/x")
    tenant.api.post(f"/webhooks/{endpoint['id']}/test")
    assert tenant.api.delete(f"/webhooks/{endpoint['id']}").status_code == 200
    with get_db(app).session() as session:
        assert session.scalars(select(WebhookDelivery)).all() == []
        assert session.scalars(select(WebhookEndpoint)).all() == []
        assert DeliveryStatus.PENDING == "pending"


def test_prune_removes_old_finished_events_only(app: Flask, tenant: Tenant) -> None:
    endpoint = hook(tenant, "http://127.0.0.1:9/x")
    for _ in range(3):
        tenant.api.post(f"/webhooks/{endpoint['id']}/test")
    with get_db(app).session() as session:
        rows = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at)).all()
        old = datetime.now(UTC) - timedelta(days=40)
        rows[0].status = DeliveryStatus.SUCCEEDED  # old and finished: pruned
        rows[1].status = DeliveryStatus.PENDING  # old but still owed: kept
        for row in rows[:2]:
            row.event.created_at = old
        session.commit()
        kept = {rows[1].event_id, rows[2].event_id}
    assert prune_webhook_outbox(get_db(app), app.config["CRIER"]) == 1
    with get_db(app).session() as session:
        assert set(session.scalars(select(WebhookEvent.id))) == kept
        assert len(session.scalars(select(WebhookDelivery)).all()) == 2

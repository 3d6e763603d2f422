"""Delivering webhook events from the outbox (app/services/webhooks.py) on the `webhooks` queue.

PostgreSQL holds every delivery; Redis only carries "send delivery D with claim token T".
- The drain (a beat task) claims due deliveries with `FOR UPDATE SKIP LOCKED`, at most
  CRIER_WEBHOOK_CONCURRENCY in flight per endpoint, writes a fresh claim token and a
  lease, commits, then sends the messages. A finished delivery claims its endpoint's next
  one at once, so a busy endpoint keeps its slots full between drains.
- A message whose delivery was claimed again (its lease ran out: the message was lost
  with Redis, or its worker died) finds the token changed and does nothing.
- Outcomes: 2xx is success; anything else (including redirects, which are not followed)
  is a failed attempt, retried with exponential backoff and jitter until the attempts
  run out (about a day by default). CRIER_WEBHOOK_DISABLE_AFTER consecutive failed
  attempts disable the endpoint, with the reason on it for its owner to read.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

import httpx
from celery import Celery, shared_task
from flask import current_app
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import Database, get_db, utcnow
from app.http_deadline import deadline_client
from app.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from app.queues import (
    WEBHOOK_DELIVER_TASK,
    WEBHOOK_DRAIN_TASK,
    WEBHOOK_PRUNE_TASK,
    WEBHOOKS_QUEUE,
)
from app.services.outbound import UnsafeURLError, safe_stream
from app.services.webhooks import endpoint_secret, event_body, sign, sign_v2

log = logging.getLogger("crier.webhooks")

DRAIN_BATCH = 500
# How much of a receiver's answer is kept as the error text.
ERROR_BODY_BYTES = 300
USER_AGENT = "Crier-Webhooks/1"
UNDECRYPTABLE_SECRET = (
    "The endpoint's signing secret cannot be decrypted with CRIER_SECRET_KEY (the key "
    "that encrypted it was dropped before `crier rotate-secrets` re-encrypted it). Put "
    "that key back and redeliver, or create a new endpoint."
)


# What a claim lasts beyond the attempt's total deadline: reading the delivery, and
# recording its outcome.
LEASE_MARGIN = 15.0


def claim_lease(settings: Settings) -> timedelta:
    """How long a claimed delivery may wait in Redis and run before it is claimed again.
    It outlasts the attempt's total deadline (CRIER_WEBHOOK_TIMEOUT, enforced on the
    connection), so a slow receiver never has a delivery handed out twice at once."""
    return timedelta(seconds=settings.webhook_timeout + LEASE_MARGIN)


def backoff_seconds(settings: Settings, attempts: int) -> float:
    """Exponential backoff with jitter: base·2^(n-1) capped, then 80-100% of it."""
    delay = min(settings.webhook_retry_cap, settings.webhook_retry_base * 2 ** (attempts - 1))
    return delay * random.uniform(0.8, 1.0)


# -------------------------------------------------------------------------------- claim


@dataclass(frozen=True)
class Claimed:
    delivery_id: uuid.UUID
    token: str


def claim_due(
    session: Session,
    settings: Settings,
    *,
    endpoint_id: uuid.UUID | None = None,
    limit: int = DRAIN_BATCH,
) -> list[Claimed]:
    """Claim due deliveries within each endpoint's concurrency, in the caller's transaction."""
    now = utcnow()
    inflight_query = (
        select(WebhookDelivery.endpoint_id, func.count())
        .where(
            WebhookDelivery.status == DeliveryStatus.DELIVERING,
            WebhookDelivery.lease_expires_at > now,
        )
        .group_by(WebhookDelivery.endpoint_id)
    )
    due_query = (
        select(WebhookDelivery.id, WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookEndpoint.is_active.is_(True),
            or_(
                and_(
                    WebhookDelivery.status == DeliveryStatus.PENDING,
                    WebhookDelivery.next_attempt_at <= now,
                ),
                # Claimed, but nobody finished it within the lease: its message was lost.
                and_(
                    WebhookDelivery.status == DeliveryStatus.DELIVERING,
                    WebhookDelivery.lease_expires_at <= now,
                ),
            ),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.created_at)
        .limit(limit)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
    )
    if endpoint_id is not None:
        inflight_query = inflight_query.where(WebhookDelivery.endpoint_id == endpoint_id)
        due_query = due_query.where(WebhookDelivery.endpoint_id == endpoint_id)
    due = session.execute(due_query).all()
    owners = sorted({owner for _delivery, owner in due})
    if not owners:
        return []
    # Claimers (the drain, and each finished delivery taking its endpoint's next) take
    # their endpoints' rows in one order before counting what is in flight: two of them
    # never both see a free slot and fill it twice.
    session.execute(
        select(WebhookEndpoint.id)
        .where(WebhookEndpoint.id.in_(owners))
        .order_by(WebhookEndpoint.id)
        .with_for_update()
    )
    inflight: dict[uuid.UUID, int] = dict(
        session.execute(inflight_query.where(WebhookDelivery.endpoint_id.in_(owners))).all()
    )
    claimed: list[Claimed] = []
    lease_until = now + claim_lease(settings)
    for delivery_id, owner in due:
        if inflight.get(owner, 0) >= settings.webhook_concurrency:
            continue
        inflight[owner] = inflight.get(owner, 0) + 1
        token = str(uuid.uuid4())
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(
                status=DeliveryStatus.DELIVERING, claim_token=token, lease_expires_at=lease_until
            )
        )
        claimed.append(Claimed(delivery_id, token))
    return claimed


def send_claims(celery: Celery, claims: list[Claimed]) -> int:
    """After commit: one message per claim. A message that cannot be sent waits for its lease."""
    sent = 0
    for claim in claims:
        try:
            celery.send_task(
                WEBHOOK_DELIVER_TASK,
                args=[str(claim.delivery_id), claim.token],
                queue=WEBHOOKS_QUEUE,
            )
            sent += 1
        except Exception as exc:  # broker down: the lease runs out and the drain resends
            log.warning("webhook enqueue failed delivery_id=%s: %s", claim.delivery_id, exc)
            break
    return sent


def drain_webhook_outbox(db: Database, settings: Settings, celery: Celery) -> dict[str, int]:
    with db.session() as session:
        claims = claim_due(session, settings)
        session.commit()
    return {"claimed": len(claims), "sent": send_claims(celery, claims)}


# ------------------------------------------------------------------------------ deliver


@dataclass
class AttemptResult:
    ok: bool
    status_code: int | None
    latency_ms: int
    error: str | None


def _start(
    session: Session, settings: Settings, delivery_id: uuid.UUID, token: str
) -> tuple[WebhookDelivery, WebhookEndpoint, WebhookEvent] | None:
    """Take the claim for this attempt (renewing its lease) or find it handed on."""
    now = utcnow()
    changed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.claim_token == token,
            WebhookDelivery.status == DeliveryStatus.DELIVERING,
        )
        .values(lease_expires_at=now + claim_lease(settings))
    ).rowcount
    if not changed:
        session.rollback()
        return None
    delivery = session.get(WebhookDelivery, delivery_id)
    assert delivery is not None
    return delivery, delivery.endpoint, delivery.event


def send_once(
    client: httpx.Client,
    settings: Settings,
    url: str,
    secret: str,
    body: bytes,
    event: WebhookEvent,
    delivery_id: uuid.UUID,
) -> AttemptResult:
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Crier-Signature": sign(secret, body),
        # The same HMAC over "<timestamp>.<body>", so a receiver can refuse a replay.
        "X-Crier-Signature-V2": sign_v2(secret, timestamp, body),
        "X-Crier-Timestamp": str(timestamp),
        "X-Crier-Event": event.type,
        "X-Crier-Delivery": str(delivery_id),
    }
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        with safe_stream(
            client,
            "POST",
            url,
            allow_private=settings.allow_private_urls,
            ports=settings.outbound_ports,
            deadline=settings.webhook_timeout,
            content=body,
            headers=headers,
            timeout=httpx.Timeout(settings.webhook_timeout),
        ) as response:
            status = response.status_code
            if 200 <= status < 300:
                return AttemptResult(True, status, elapsed(), None)
            snippet = b""
            for chunk in response.iter_bytes():
                snippet += chunk
                if len(snippet) >= ERROR_BODY_BYTES:
                    break
            text = snippet[:ERROR_BODY_BYTES].decode(errors="replace").strip()
            reason = f"HTTP {status}"
            if 300 <= status < 400:
                reason += " (redirects are not followed)"
            return AttemptResult(False, status, elapsed(), f"{reason}: {text}" if text else reason)
    except UnsafeURLError as exc:
        return AttemptResult(False, None, elapsed(), str(exc))
    except httpx.TimeoutException:
        return AttemptResult(
            False, None, elapsed(), f"Timed out after {settings.webhook_timeout:g} s."
        )
    except httpx.HTTPError as exc:
        return AttemptResult(False, None, elapsed(), f"Connection failed: {exc or type(exc)}")


def _record(
    session: Session,
    settings: Settings,
    delivery: WebhookDelivery,
    endpoint_id: uuid.UUID,
    token: str,
    result: AttemptResult,
    *,
    final: bool = False,
) -> bool:
    """Write the attempt's outcome if the claim still stands; `final` fails it for good."""
    now = utcnow()
    attempts = delivery.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "response_status": result.status_code,
        "latency_ms": result.latency_ms,
        "error": result.error,
        "last_attempt_at": now,
        "claim_token": None,
        "lease_expires_at": None,
    }
    if result.ok:
        values.update(status=DeliveryStatus.SUCCEEDED, delivered_at=now, next_attempt_at=None)
    elif final or attempts >= settings.webhook_max_attempts:
        values.update(status=DeliveryStatus.FAILED, next_attempt_at=None)
    else:
        values.update(
            status=DeliveryStatus.PENDING,
            next_attempt_at=now + timedelta(seconds=backoff_seconds(settings, attempts)),
        )
    changed = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.claim_token == token,
            WebhookDelivery.status == DeliveryStatus.DELIVERING,
        )
        .values(**values)
    ).rowcount
    if not changed:
        session.rollback()
        return False
    if result.ok:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(consecutive_failures=0, last_success_at=now)
        )
    else:
        failures = session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(
                consecutive_failures=WebhookEndpoint.consecutive_failures + 1,
                last_failure_at=now,
            )
            .returning(WebhookEndpoint.consecutive_failures, WebhookEndpoint.is_active)
        ).first()
        # None: the endpoint was deleted meanwhile (its deliveries go with it).
        if failures is not None and failures[1] and failures[0] >= settings.webhook_disable_after:
            session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == endpoint_id)
                .values(
                    is_active=False,
                    disabled_at=now,
                    disabled_reason=(
                        f"Disabled after {failures[0]} consecutive failed deliveries; "
                        f"last error: {result.error}. Fix the receiver, then PATCH "
                        "is_active=true to resume (held deliveries are then sent)."
                    ),
                )
            )
            log.warning("webhook endpoint disabled endpoint_id=%s", endpoint_id)
    session.commit()
    return True


def deliver_webhook(
    db: Database,
    settings: Settings,
    celery: Celery,
    client: httpx.Client,
    delivery_id: str,
    token: str,
) -> str:
    key = uuid.UUID(delivery_id)
    with db.session() as session:
        started = _start(session, settings, key, token)
        if started is None:
            return "stale"
        delivery, endpoint, event = started
        url, endpoint_id = endpoint.url, endpoint.id
        try:
            secret: str | None = endpoint_secret(settings.secret_key, endpoint)
        except ValueError:
            secret = None
        body = event_body(event)
        session.commit()  # never hold a transaction while a receiver answers
        if secret is None:
            # Retrying cannot help until an operator puts the key back: say so, and stop.
            log.error("webhook secret undecryptable endpoint_id=%s", endpoint_id)
            result = AttemptResult(False, None, 0, UNDECRYPTABLE_SECRET)
        else:
            result = send_once(client, settings, url, secret, body, event, key)
        recorded = _record(
            session, settings, delivery, endpoint_id, token, result, final=secret is None
        )
        log.info(
            "webhook delivery_id=%s event=%s status=%s ok=%s latency_ms=%s",
            delivery_id,
            event.type,
            result.status_code,
            result.ok,
            result.latency_ms,
        )
        # Keep this endpoint's slot busy: take its next due delivery now.
        claims = claim_due(session, settings, endpoint_id=endpoint_id, limit=1)
        session.commit()
    send_claims(celery, claims)
    return ("ok" if result.ok else "failed") if recorded else "stale"


# -------------------------------------------------------------------------------- prune

PRUNE_BATCH = 1000


def prune_webhook_outbox(db: Database, settings: Settings) -> int:
    """Delete events past retention whose deliveries are all finished (in batches)."""
    cutoff = utcnow() - timedelta(days=settings.webhook_retention_days)
    open_delivery = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.event_id == WebhookEvent.id,
            WebhookDelivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.DELIVERING)),
        )
        .exists()
    )
    removed = 0
    with db.session() as session:
        while True:
            batch = session.scalars(
                select(WebhookEvent.id)
                .where(WebhookEvent.created_at < cutoff, ~open_delivery)
                .order_by(WebhookEvent.created_at)
                .limit(PRUNE_BATCH)
            ).all()
            if not batch:
                return removed
            session.execute(delete(WebhookEvent).where(WebhookEvent.id.in_(batch)))
            session.commit()
            removed += len(batch)


# -------------------------------------------------------------------------------- tasks


def webhook_client(settings: Settings) -> httpx.Client:
    """Each attempt ends within CRIER_WEBHOOK_TIMEOUT, however slowly the receiver answers.
    Certificates are checked against the URL's host (SNI), not the pinned address."""
    return deadline_client(
        settings.webhook_timeout,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
    )


@lru_cache(maxsize=1)
def _client() -> httpx.Client:
    return webhook_client(current_app.config["CRIER"])


@shared_task(name=WEBHOOK_DRAIN_TASK, ignore_result=True)
def drain_webhook_outbox_task() -> dict[str, int]:
    return drain_webhook_outbox(
        get_db(), current_app.config["CRIER"], current_app.extensions["celery"]
    )


@shared_task(name=WEBHOOK_DELIVER_TASK, ignore_result=True)
def deliver_webhook_task(delivery_id: str, token: str) -> str:
    return deliver_webhook(
        get_db(),
        current_app.config["CRIER"],
        current_app.extensions["celery"],
        _client(),
        delivery_id,
        token,
    )


@shared_task(name=WEBHOOK_PRUNE_TASK, ignore_result=True)
def prune_webhook_outbox_task() -> int:
    return prune_webhook_outbox(get_db(), current_app.config["CRIER"])

"""Webhook endpoints and the outbox.

Every event is written here, in the caller's transaction, as one `webhook_events` row plus
one `webhook_deliveries` row per subscribed active endpoint. The change and its events
commit together or not at all; `workers/webhooks.py` delivers from these rows, so losing
Redis (or a worker) never loses an event. Functions flush; callers commit.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import (
    Account,
    AccountStatus,
    DeliveryStatus,
    Media,
    Post,
    PostStatus,
    PostTarget,
    TargetStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)
from app.security import decrypt_token, encrypt_token
from app.serializers import (
    account_to_dict,
    format_timestamp,
    media_to_dict,
    post_to_dict,
    target_to_dict,
)

SECRET_PREFIX = "whsec_"
# What a caller may subscribe to (the test event is sent on request only).
SUBSCRIBABLE_EVENTS = tuple(e.value for e in WebhookEventType if e != WebhookEventType.WEBHOOK_TEST)

POST_FINAL_EVENTS = {
    PostStatus.PUBLISHED: WebhookEventType.POST_PUBLISHED,
    PostStatus.PARTIALLY_PUBLISHED: WebhookEventType.POST_PARTIALLY_PUBLISHED,
    PostStatus.FAILED: WebhookEventType.POST_FAILED,
    PostStatus.CANCELLED: WebhookEventType.POST_CANCELLED,
}
TARGET_FINAL_EVENTS = {
    TargetStatus.PUBLISHED: WebhookEventType.POST_PLATFORM_PUBLISHED,
    TargetStatus.FAILED: WebhookEventType.POST_PLATFORM_FAILED,
    TargetStatus.UNCONFIRMED: WebhookEventType.POST_PLATFORM_UNCONFIRMED,
}


# ------------------------------------------------------------------------------ signing


def generate_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the raw body with the endpoint's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does; kept here so docs/webhooks.md and the tests use the same rule."""
    return hmac.compare_digest(sign(secret, body), header.strip())


def sign_v2(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<timestamp>,v1=<hex>`: HMAC-SHA256 of `<timestamp>.<raw body>` with the secret.

    The timestamp is inside the signed bytes, so a receiver that refuses old timestamps
    refuses a captured delivery sent again (`X-Crier-Signature` signs the body alone).
    """
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature_v2(
    secret: str, body: bytes, header: str, *, tolerance: float = 300, now: float | None = None
) -> bool:
    """What a receiver of `X-Crier-Signature-V2` does: recompute the HMAC over
    `<t>.<body>` and accept only a timestamp within `tolerance` seconds of its clock."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = sign_v2(secret, timestamp, body).split(",v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in fields.get("v1", []))


def endpoint_secret(secret_key: str, endpoint: WebhookEndpoint) -> str:
    return decrypt_token(secret_key, endpoint.secret_encrypted)


def event_body(event: WebhookEvent) -> bytes:
    """The delivered JSON: the same bytes for every attempt of the event."""
    payload = {
        "id": str(event.id),
        "type": event.type,
        "created_at": format_timestamp(event.created_at),
        "data": event.data,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------- endpoints


def create_endpoint(
    session: Session, secret_key: str, organisation_id: int, data: dict[str, Any]
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret, which is returned once and stored encrypted."""
    secret = generate_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        url=data["url"],
        name=data.get("name"),
        description=data.get("description"),
        events=list(data.get("events") or SUBSCRIBABLE_EVENTS),
        secret_encrypted=encrypt_token(secret_key, secret),
        is_active=data.get("is_active", True),
        profile_id=data.get("profile_id"),
        consecutive_failures=0,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, data: dict[str, Any]) -> None:
    for name in ("url", "name", "description"):
        if name in data:
            setattr(endpoint, name, data[name])
    if "events" in data:
        endpoint.events = list(data["events"] or SUBSCRIBABLE_EVENTS)
    if "is_active" in data:
        endpoint.is_active = data["is_active"]
        if data["is_active"]:
            # Re-enabled by its owner: the failure run starts over, and what was held
            # while it was off is sent now.
            endpoint.consecutive_failures = 0
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
    endpoint.updated_at = utcnow()


# ------------------------------------------------------------------------------- outbox


_ENDPOINT_MEMO = "crier.webhook_endpoints"


@contextmanager
def endpoints_memo(session: Session) -> Iterator[None]:
    """Within the block, each organisation's active endpoints are read once: a batch
    of outcomes records hundreds of events against the same few endpoints."""
    session.info[_ENDPOINT_MEMO] = {}
    try:
        yield
    finally:
        session.info.pop(_ENDPOINT_MEMO, None)


def subscribers(
    session: Session, organisation_id: int, event_type: str, profile_id: int | None
) -> list[WebhookEndpoint]:
    """The active endpoints that hear `event_type` for this profile."""
    memo: dict[int, list[WebhookEndpoint]] | None = session.info.get(_ENDPOINT_MEMO)
    active = memo.get(organisation_id) if memo is not None else None
    if active is None:
        active = list(
            session.scalars(
                select(WebhookEndpoint).where(
                    WebhookEndpoint.organisation_id == organisation_id,
                    WebhookEndpoint.is_active.is_(True),
                )
            )
        )
        if memo is not None:
            memo[organisation_id] = active
    # An endpoint of one profile hears only that profile's events.
    return [
        e
        for e in active
        if event_type in (e.events or ()) and (e.profile_id is None or e.profile_id == profile_id)
    ]


def record_event(
    session: Session,
    organisation_id: int,
    event_type: str,
    data: dict[str, Any],
    *,
    endpoints: Iterable[WebhookEndpoint] | None = None,
    at: datetime | None = None,
) -> WebhookEvent | None:
    """Write one event and its deliveries in the caller's transaction.

    Returns None (and writes nothing) when no active endpoint of the organisation
    subscribes to the type: the outbox holds only what someone will receive.
    """
    if endpoints is None:
        endpoints = subscribers(session, organisation_id, event_type, data.get("profile_id"))
    endpoints = list(endpoints)
    if not endpoints:
        return None
    now = at or utcnow()
    event = WebhookEvent(
        id=uuid.uuid4(), organisation_id=organisation_id, type=event_type, data=data, created_at=now
    )
    session.add(event)
    for endpoint in endpoints:
        session.add(
            WebhookDelivery(
                id=uuid.uuid4(),
                event_id=event.id,
                endpoint_id=endpoint.id,
                status=DeliveryStatus.PENDING,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
    session.flush()
    return event


def record_post_status_change(session: Session, post: Post, previous_status: str | None) -> None:
    """The post-level event when a post reaches an end state (called by refresh_post_status)."""
    event_type = POST_FINAL_EVENTS.get(post.status)  # type: ignore[call-overload]
    if event_type is None or previous_status == post.status:
        return
    record_event(session, post.organisation_id, event_type, post_to_dict(post))


def record_target_events(session: Session, post: Post, target_ids: Iterable[int]) -> None:
    """Per-account events for targets that just reached an end state.

    For the publishing pipeline: call it inside the transaction that wrote the targets'
    outcomes, after the write, with the post freshly loaded with its targets and the ids
    of the targets that changed. Targets not in an end state (requeued, waiting) produce
    nothing.
    """
    ids = set(target_ids)
    for target in post.targets:
        if target.id not in ids:
            continue
        event_type = TARGET_FINAL_EVENTS.get(target.status)  # type: ignore[call-overload]
        if event_type is None:
            continue
        endpoints = subscribers(session, post.organisation_id, event_type, post.profile_id)
        if endpoints:
            record_event(
                session,
                post.organisation_id,
                event_type,
                platform_event_data(target),
                endpoints=endpoints,
            )


def platform_event_data(target: PostTarget) -> dict[str, Any]:
    return {
        "post_id": str(target.post_id),
        "profile_id": target.post.profile_id if target.post is not None else None,
        **target_to_dict(target),
    }


def record_account_disconnected(
    session: Session, account: Account, previous_status: str | None
) -> None:
    """`account.needs_reconnect` when an account turns to needing reconnection; the older
    `account.disconnected` is written too (reason `needs_reconnect`), as before."""
    if account.status != AccountStatus.NEEDS_RECONNECT or previous_status == account.status:
        return
    data = account_to_dict(account)
    record_event(session, account.organisation_id, WebhookEventType.ACCOUNT_NEEDS_RECONNECT, data)
    record_event(
        session,
        account.organisation_id,
        WebhookEventType.ACCOUNT_DISCONNECTED,
        {**data, "reason": "needs_reconnect"},
    )


def record_account_event(session: Session, account: Account, event_type: str, **extra: Any) -> None:
    """`account.connected` / `account.disconnected` (removed) for one account."""
    data = {**account_to_dict(account), **extra}
    record_event(session, account.organisation_id, event_type, data)


def record_media_processed(session: Session, media: Media) -> None:
    record_event(
        session, media.organisation_id, WebhookEventType.MEDIA_PROCESSED, media_to_dict(media)
    )


def record_test_event(session: Session, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A `webhook.test` event for this endpoint only, delivered like any other."""
    event = record_event(
        session,
        endpoint.organisation_id,
        WebhookEventType.WEBHOOK_TEST,
        {"webhook_id": str(endpoint.id), "message": "A test event from Crier."},
        endpoints=[endpoint],
    )
    assert event is not None
    return session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)
    ).one()


def redeliver(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """A fresh delivery of the same event (same event id) to the same endpoint."""
    now = utcnow()
    again = WebhookDelivery(
        id=uuid.uuid4(),
        event_id=delivery.event_id,
        endpoint_id=delivery.endpoint_id,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(again)
    session.flush()
    return again

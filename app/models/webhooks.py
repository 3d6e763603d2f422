"""Webhooks: the endpoints an organisation registers, the outbox of events and each
event's delivery to each endpoint."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.models.columns import ENCRYPTED, JSONType


class WebhookEventType(StrEnum):
    POST_PUBLISHED = "post.published"
    POST_PARTIALLY_PUBLISHED = "post.partially_published"
    POST_FAILED = "post.failed"
    POST_CANCELLED = "post.cancelled"
    POST_PLATFORM_PUBLISHED = "post.platform.published"
    POST_PLATFORM_FAILED = "post.platform.failed"
    POST_PLATFORM_UNCONFIRMED = "post.platform.unconfirmed"
    MEDIA_PROCESSED = "media.processed"
    ACCOUNT_CONNECTED = "account.connected"
    ACCOUNT_DISCONNECTED = "account.disconnected"
    ACCOUNT_NEEDS_RECONNECT = "account.needs_reconnect"
    # Sent only by POST /webhooks/{id}/test, to that endpoint alone.
    WEBHOOK_TEST = "webhook.test"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (the first, or a retry)
    DELIVERING = "delivering"  # claimed by the drain, a worker is sending it
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # out of attempts


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    url: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # Fernet-encrypted (app.security): the secret must be read back to sign each body.
    secret_encrypted: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Failed attempts in a row; at CRIER_WEBHOOK_DISABLE_AFTER the endpoint is disabled.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookEvent(Base):
    """The outbox: one row per event, written in the transaction of the change it reports."""

    __tablename__ = "webhook_events"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    type: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # The prune walks old events in time order.
    __table_args__ = (Index("ix_webhook_events_created", "created_at"),)


class WebhookDelivery(Base):
    """One event owed to one endpoint: its attempts, last answer and next try."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Written at each claim; only the message carrying it may record the outcome.
    claim_token: Mapped[str | None] = mapped_column(String(36))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    response_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    event: Mapped[WebhookEvent] = relationship()
    endpoint: Mapped[WebhookEndpoint] = relationship()

    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        # The drain reads only open deliveries in due order.
        Index(
            "ix_webhook_deliveries_open_due",
            "status",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'delivering')"),
            sqlite_where=text("status IN ('pending', 'delivering')"),
        ),
    )

"""The data model. PostgreSQL is the source of truth; every timestamp is UTC."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
# The marker of a column holding Fernet ciphertext under CRIER_SECRET_KEY (app.security).
# `crier rotate-secrets` finds every column to re-encrypt by it (app/services/rotation.py),
# so a new encrypted column only needs `info=ENCRYPTED` to be rotated too.
ENCRYPTED: dict[str, Any] = {"encrypted": True}


class Platform(StrEnum):
    INSTAGRAM = "instagram"
    TIKTOK = "tiktok"
    YOUTUBE = "youtube"
    LINKEDIN = "linkedin"
    X = "x"
    FACEBOOK = "facebook"
    THREADS = "threads"
    BLUESKY = "bluesky"
    MASTODON = "mastodon"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_RECONNECT = "needs_reconnect"
    DISABLED = "disabled"
    # Removed by DELETE /accounts/{id}: tokens wiped, hidden; kept only for its history.
    DISCONNECTED = "disconnected"


class PostStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    PARTIALLY_PUBLISHED = "partially_published"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TargetStatus(StrEnum):
    DRAFT = "draft"  # of a draft post: never enqueued until POST /posts/{id}/schedule
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    PUBLISHING = "publishing"
    PUBLISHED = "published"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNCONFIRMED = "unconfirmed"


class PrepareState(StrEnum):
    PENDING = "pending"  # the prepare message is on its way
    PREPARING = "preparing"
    PREPARED = "prepared"
    FAILED = "failed"  # the publish at the instant does the whole flow itself


# Targets in these states may still change; the sweeper's index covers only them.
OPEN_TARGET_STATUSES = (TargetStatus.SCHEDULED, TargetStatus.QUEUED, TargetStatus.PUBLISHING)
FINAL_TARGET_STATUSES = (
    TargetStatus.PUBLISHED,
    TargetStatus.FAILED,
    TargetStatus.CANCELLED,
    TargetStatus.UNCONFIRMED,
)


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the key may do (app.api.scopes) and, when set, the one profile it may touch.
    scopes: Mapped[list[str]] = mapped_column(JSONType, default=lambda: ["admin"])
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="CASCADE"), index=True
    )

    organisation: Mapped[Organisation] = relationship()


class Profile(Base):
    """One end client of an organisation (an agency's customer)."""

    __tablename__ = "profiles"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    external_ref: Mapped[str | None] = mapped_column(String(200))
    # `metadata` is taken by SQLAlchemy's declarative base.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    platform: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(200))
    # Fernet tokens (app.security); never the plain platform tokens.
    access_token_encrypted: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=AccountStatus.ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # Proactive refresh failures in a row, and the last one's reason (the health block).
    refresh_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_refresh_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Media(Base):
    __tablename__ = "media"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(10))  # image | video
    mime_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[float | None] = mapped_column()
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    # ready | uploading (a URL import still being fetched and probed) | failed
    status: Mapped[str] = mapped_column(String(16), default="ready", server_default="ready")
    status_reason: Mapped[str | None] = mapped_column(Text)
    source_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_media_org_kind_created", "organisation_id", "kind", "created_at"),)


class Post(Base):
    __tablename__ = "posts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    content: Mapped[str] = mapped_column(Text)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # True when the caller gave no scheduled_at: publish as soon as possible.
    publish_now: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    platform_content: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    media_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(24), default=PostStatus.SCHEDULED)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id", ondelete="SET NULL"))
    # A media id used as the video cover where the platform has one.
    cover_photo: Mapped[str | None] = mapped_column(String(36))
    # When the first of its accounts was published (the list filter's column).
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    targets: Mapped[list[PostTarget]] = relationship(
        back_populates="post", order_by="PostTarget.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_posts_org_created", "organisation_id", "created_at"),
        Index("ix_posts_org_scheduled", "organisation_id", "scheduled_at"),
        Index("ix_posts_org_status_created", "organisation_id", "status", "created_at"),
        Index("ix_posts_org_updated", "organisation_id", "updated_at"),
        Index("ix_posts_org_published", "organisation_id", "published_at"),
        Index("ix_posts_org_campaign", "organisation_id", "campaign_id"),
    )


PREPARE_PENDING = (
    "prepare_due_at IS NOT NULL AND prepare_state IS NULL AND status IN ('scheduled', 'queued')"
)
# Preparations on their way or running: the sweeper looks among these for stuck ones.
PREPARE_IN_FLIGHT = "prepare_state IN ('pending', 'preparing')"


class PostTarget(Base):
    """One account's share of a post: the unit the workers claim, publish and report."""

    __tablename__ = "post_targets"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="RESTRICT"))
    platform: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=TargetStatus.SCHEDULED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Written at every enqueue; only the task carrying the current token may claim.
    dispatch_token: Mapped[str | None] = mapped_column(String(36))
    # The instant the target is next due: scheduled_at, then each retry's backoff.
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The worker process holding the claim ("node:pid"); its heartbeat renews the lease.
    claim_owner: Mapped[str | None] = mapped_column(String(200))
    # Deliveries that ended with their worker dead; a poison target stops at a limit.
    worker_losses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Prepare ahead: from prepare_due_at on, uploads and processing that make nothing
    # public are done and their handle saved (state preparing -> prepared | failed). The
    # token fences a preparation overtaken by an edit, a cancel or the publish itself.
    prepare_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    prepare_state: Mapped[str | None] = mapped_column(String(16))
    prepare_token: Mapped[str | None] = mapped_column(String(36))
    prepared_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Intermediate platform handle (container id, publish_id, upload session) and the
    # moment the irreversible request began: what reconciliation needs after a crash.
    platform_handle: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    irreversible_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    platform_post_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # DELETE /posts/{id}?delete_on_platforms=…: pending | deleted | failed, and why.
    platform_delete_status: Mapped[str | None] = mapped_column(String(16))
    platform_delete_error: Mapped[str | None] = mapped_column(Text)
    platform_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    post: Mapped[Post] = relationship(back_populates="targets")
    account: Mapped[Account] = relationship()

    __table_args__ = (
        UniqueConstraint("post_id", "account_id", name="uq_post_targets_post_account"),
        Index("ix_post_targets_account", "account_id"),
        Index("ix_post_targets_platform_post", "platform", "post_id"),
        # The sweeper reads only open targets in due order, so its cost follows the due
        # rows, not the size of the table.
        Index(
            "ix_post_targets_open_due",
            "status",
            "next_attempt_at",
            postgresql_where=text("status IN ('scheduled', 'queued', 'publishing')"),
            sqlite_where=text("status IN ('scheduled', 'queued', 'publishing')"),
        ),
        # The sweeper's preparation step reads only targets still waiting to prepare.
        Index(
            "ix_post_targets_prepare_due",
            "prepare_due_at",
            postgresql_where=text(PREPARE_PENDING),
            sqlite_where=text(PREPARE_PENDING),
        ),
        # ... and for preparations stuck on their way or with a dead preparer.
        Index(
            "ix_post_targets_prepare_in_flight",
            "prepared_at",
            postgresql_where=text(PREPARE_IN_FLIGHT),
            sqlite_where=text(PREPARE_IN_FLIGHT),
        ),
    )


class PublishAttempt(Base):
    """Append-only log of every call to a platform (and every wait it imposed)."""

    __tablename__ = "publish_attempts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    target_id: Mapped[int] = mapped_column(
        ForeignKey("post_targets.id", ondelete="CASCADE"), index=True
    )
    attempt_number: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    wait_seconds: Mapped[float | None] = mapped_column()
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class IdempotencyRecord(Base):
    """Remembers an `Idempotency-Key` so a retried create returns the first post.

    A key's values are its organisation's and its profile's (null for a key of the whole
    organisation): another profile sending the same value is another request."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    post_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("posts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # One value per (organisation, profile); coalesce makes the organisation's own (null)
    # one scope too, where a plain unique constraint would let nulls repeat.
    __table_args__ = (
        Index(
            "uq_idempotency_org_profile_key",
            "organisation_id",
            text("coalesce(profile_id, 0)"),
            "key",
            unique=True,
        ),
    )


class WorkerHeartbeat(Base):
    """One row per live worker process: what it holds, and when it last said so.

    The sweeper reads these to tell a dead worker from a busy one: claims of a dead
    owner are recovered, and the messages it held unclaimed (reserved, ETA) sent again.
    """

    __tablename__ = "worker_heartbeats"

    owner: Mapped[str] = mapped_column(String(200), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # [[target_id, dispatch_token], ...] of messages received and not yet finished.
    held: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class ServiceState(Base):
    """Small named facts the maintenance tasks keep between runs (last sweep, …)."""

    __tablename__ = "service_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --------------------------------------------------------------------------- webhooks


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


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    color: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ConnectLink(Base):
    """A connect link handed to an end client: `/connect/{token}` starts the platform's
    OAuth flow; the callback consumes it once (the `state` names it)."""

    __tablename__ = "connect_links"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    # Reconnecting an existing account keeps its id.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    # The sign-in the link goes through where the platform has several (Instagram:
    # "facebook" for Facebook Login); None is the platform's own.
    login: Mapped[str | None] = mapped_column(String(20))
    redirect_url: Mapped[str] = mapped_column(Text)
    # The caller's own opaque value, echoed back on redirect_url.
    client_state: Mapped[str | None] = mapped_column(String(500))
    # SHA-256 of the link token; the token is in the URL only.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Fernet-encrypted PKCE verifier, written when the authorize redirect is made.
    pkce_verifier_encrypted: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    state_nonce: Mapped[str | None] = mapped_column(String(64))
    # Fernet-encrypted JSON of the pages/accounts waiting for the user's choice.
    pending_choices_encrypted: Mapped[str | None] = mapped_column(Text, info=ENCRYPTED)
    # The server the user named on the link's page, where accounts live on servers of
    # their own (a Mastodon instance, `https://host`).
    instance: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class InstanceApp(Base):
    """Crier's app on one server of a federated platform (a Mastodon instance): registered
    there at the first connect (POST /api/v1/apps), reused by every later one."""

    __tablename__ = "instance_apps"
    __table_args__ = (UniqueConstraint("platform", "instance", "redirect_uri"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    instance: Mapped[str] = mapped_column(String(255))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scopes: Mapped[str] = mapped_column(Text)
    client_id: Mapped[str] = mapped_column(Text)
    client_secret_encrypted: Mapped[str] = mapped_column(Text, info=ENCRYPTED)
    # What the server says of itself (GET /api/v2/instance): its text and media limits.
    limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    limits_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DiscardedHandle(Base):
    """What a prepare left on a platform for content that was then edited or cancelled.

    Written in the transaction of the edit or cancel, and deleted on the platform by a
    maintenance task where the platform allows it: an outbox, so none is forgotten.
    """

    __tablename__ = "discarded_handles"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(20))
    handle: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)

    account: Mapped[Account] = relationship()

    __table_args__ = (
        Index(
            "ix_discarded_handles_pending",
            "next_try_at",
            postgresql_where=text("finished_at IS NULL"),
            sqlite_where=text("finished_at IS NULL"),
        ),
    )


# The actions the audit log records; GET /audit-log filters on them.
AUDIT_ACTIONS = (
    "api_key.created",
    "api_key.revoked",
    "account.connected",
    "account.reconnected",
    "account.removed",
    "webhook.created",
    "webhook.updated",
    "webhook.deleted",
    "post.deleted",
    "media.deleted",
    "secrets.rotated",
)


class AuditEvent(Base):
    """Who did what security-relevant thing, when, with which key and from where.

    Rows are only ever added. `organisation_id` is null for instance-wide events
    (secret rotation); `api_key_id` is null for operator commands, whose `actor` says
    who ran them (`cli:<user>@<host>`).
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    organisation_id: Mapped[int | None] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(200))
    api_key_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str | None] = mapped_column(String(32))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    source: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_audit_log_org_created", "organisation_id", "created_at"),
        Index("ix_audit_log_action", "action"),
    )

"""What is published: media, posts and their per-account targets (the unit the workers
claim), the attempts made at the platforms, campaigns, and what a prepare left behind."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.models.accounts import Account
from app.models.columns import BigIntId, JSONType


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
METRICS_PENDING = "next_metrics_at IS NOT NULL"


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
    # When its platform's figures are next read (analytics); null once the schedule is done.
    next_metrics_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    post: Mapped[Post] = relationship(back_populates="targets")
    account: Mapped[Account] = relationship()
    # A first comment and thread items posted after the post (workers/pipeline/steps.py).
    steps: Mapped[list[PostTargetStep]] = relationship(
        back_populates="target",
        cascade="all, delete-orphan",
        order_by="PostTargetStep.position",
        passive_deletes=True,
    )

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
        # The metrics collector reads only targets with a reading still to come.
        Index(
            "ix_post_targets_metrics_due",
            "next_metrics_at",
            postgresql_where=text(METRICS_PENDING),
            sqlite_where=text(METRICS_PENDING),
        ),
    )


class StepStatus(StrEnum):
    PENDING = "pending"
    # The request that posts it may have been sent: look before sending it again.
    SENDING = "sending"
    PUBLISHED = "published"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"


class PostTargetStep(Base):
    """What follows a target's post on its platform, in order: the first comment
    (position 0) and the thread's items (1..n), each replying to the one before. Each
    item's platform id is committed before the next one is sent."""

    __tablename__ = "post_target_steps"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("post_targets.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # comment | thread_item
    status: Mapped[str] = mapped_column(String(16), default=StepStatus.PENDING)
    # The platform id it answers (the post's, or the previous item's), once sent.
    reply_to: Mapped[str | None] = mapped_column(String(255))
    platform_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    # What an attempt made on the way (a container, uploaded media) and when it began
    # the request that posts it: how a retry finds it instead of posting it again.
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    target: Mapped[PostTarget] = relationship(back_populates="steps")

    __table_args__ = (
        UniqueConstraint("target_id", "position", name="uq_post_target_steps_position"),
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

"""What the service keeps about itself: live workers' heartbeats, the maintenance tasks'
state between runs, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow
from app.models.columns import BigIntId, JSONType


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

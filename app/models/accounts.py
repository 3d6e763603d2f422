"""Who publishes where: organisations, their keys, profiles (end clients), the platform
accounts connected to them and the links that connect them."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, utcnow
from app.models.columns import ENCRYPTED, BigIntId, JSONType


class Platform(StrEnum):
    INSTAGRAM = "instagram"
    TIKTOK = "tiktok"
    YOUTUBE = "youtube"
    LINKEDIN = "linkedin"
    X = "x"
    FACEBOOK = "facebook"
    THREADS = "threads"
    TELEGRAM = "telegram"
    DISCORD = "discord"
    BLUESKY = "bluesky"
    MASTODON = "mastodon"
    PINTEREST = "pinterest"
    WORDPRESS = "wordpress"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_RECONNECT = "needs_reconnect"
    DISABLED = "disabled"
    # Removed by DELETE /accounts/{id}: tokens wiped, hidden; kept only for its history.
    DISCONNECTED = "disconnected"


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

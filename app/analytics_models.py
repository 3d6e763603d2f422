"""Analytics tables: what the platforms report of each published target, and of each
account, one row per reading (docs/analytics.md).

Kept beside app/models.py rather than in it: the readings are the analytics domain's own,
and nothing in publishing reads them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow
from app.models import BigIntId, JSONType

# The figures a target's reading may hold; a platform that has no such figure leaves it
# null (docs/analytics.md lists which platform has which).
METRIC_FIELDS = ("views", "likes", "comments", "shares", "impressions", "clicks", "saves")


class MetricSnapshot(Base):
    """One reading of a published target's figures, `age_seconds` after it went live."""

    __tablename__ = "metric_snapshots"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("post_targets.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    age_seconds: Mapped[int] = mapped_column(Integer)
    views: Mapped[int | None] = mapped_column(BigInteger)
    likes: Mapped[int | None] = mapped_column(BigInteger)
    comments: Mapped[int | None] = mapped_column(BigInteger)
    shares: Mapped[int | None] = mapped_column(BigInteger)
    impressions: Mapped[int | None] = mapped_column(BigInteger)
    clicks: Mapped[int | None] = mapped_column(BigInteger)
    saves: Mapped[int | None] = mapped_column(BigInteger)
    # The platform's own answer for this target, as it gave it.
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        # A target's series and its latest reading; an account's top posts.
        Index("ix_metric_snapshots_target_collected", "target_id", "collected_at"),
        Index("ix_metric_snapshots_account_collected", "account_id", "collected_at"),
        # The retention prune.
        Index("ix_metric_snapshots_collected", "collected_at"),
    )


class AccountMetricSnapshot(Base):
    """One daily reading of an account's audience where its platform reports one."""

    __tablename__ = "account_metric_snapshots"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(20))
    collected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    followers: Mapped[int | None] = mapped_column(BigInteger)
    # Against the account's previous reading; null for the first one.
    followers_change: Mapped[int | None] = mapped_column(BigInteger)
    following: Mapped[int | None] = mapped_column(BigInteger)
    posts_count: Mapped[int | None] = mapped_column(BigInteger)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        Index("ix_account_metric_snapshots_account_collected", "account_id", "collected_at"),
        Index("ix_account_metric_snapshots_collected", "collected_at"),
    )

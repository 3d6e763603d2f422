"""What the organisation spent on AI captions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow
from app.models.columns import BigIntId


class AiCreditUsage(Base):
    """Caption credits an organisation used in one calendar month (UTC), `period` as
    `YYYY-MM`. A row per organisation and month, raised with a conditional UPDATE so that
    concurrent requests never spend past the limit (app/services/ai_credits.py)."""

    __tablename__ = "ai_credit_usage"

    organisation_id: Mapped[int] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    used: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AiCreditEvent(Base):
    """One taking (positive) or giving back (negative) of credits, when it happened: what
    a period's summary counts, where the monthly row only knows the month."""

    __tablename__ = "ai_credit_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    credits: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_ai_credit_events_org_created", "organisation_id", "created_at"),)

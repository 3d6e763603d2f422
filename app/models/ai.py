"""What the organisation spent on AI captions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, utcnow


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

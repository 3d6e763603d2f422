"""Caption credits: each organisation may generate `CRIER_AI_MONTHLY_CREDITS` captions per
calendar month (UTC), one credit per caption.

Credits are taken before the model is asked and given back for what it did not deliver,
so that concurrent requests never spend more than the limit together: taking is one
conditional UPDATE (`used + n <= limit`) on the organisation's row for the month, which
PostgreSQL applies to the row as it stands after any concurrent update has committed.
Taking and giving back commit at once: a request waiting on the model holds no lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import DomainError
from app.models import AiCreditEvent, AiCreditUsage


def period_of(now: datetime) -> str:
    """The month a moment counts in: `YYYY-MM`, UTC."""
    return now.astimezone(UTC).strftime("%Y-%m")


def period_end(now: datetime) -> datetime:
    """When the month of `now` ends and its credits are whole again (UTC)."""
    moment = now.astimezone(UTC)
    if moment.month == 12:
        return datetime(moment.year + 1, 1, 1, tzinfo=UTC)
    return datetime(moment.year, moment.month + 1, 1, tzinfo=UTC)


def _used(session: Session, organisation_id: int, period: str) -> int:
    statement = select(AiCreditUsage.used).where(
        AiCreditUsage.organisation_id == organisation_id, AiCreditUsage.period == period
    )
    return int(session.scalar(statement) or 0)


def ai_credits(
    session: Session, organisation_id: int, now: datetime, *, limit: int
) -> dict[str, Any]:
    """The organisation's credits this month: `{limit, used, remaining, period, resets_at}`
    (GET /me shows them), `limit` being the settings' monthly credits."""
    period = period_of(now)
    used = _used(session, organisation_id, period)
    return {
        "limit": limit,
        "used": used,
        "remaining": max(limit - used, 0),
        "period": period,
        "resets_at": period_end(now).isoformat().replace("+00:00", "Z"),
    }


def _ensure_row(session: Session, organisation_id: int, period: str, now: datetime) -> None:
    values = {"organisation_id": organisation_id, "period": period, "used": 0, "updated_at": now}
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    session.execute(module.insert(AiCreditUsage).values(**values).on_conflict_do_nothing())


def take_credits(
    session: Session, organisation_id: int, count: int, limit: int, now: datetime
) -> int:
    """Take `count` credits of this month's `limit` and commit; the credits left after.
    Refused with `insufficient_credits` (402) when fewer than `count` are left."""
    period = period_of(now)
    _ensure_row(session, organisation_id, period, now)
    used = session.scalar(
        update(AiCreditUsage)
        .where(
            AiCreditUsage.organisation_id == organisation_id,
            AiCreditUsage.period == period,
            AiCreditUsage.used + count <= limit,
        )
        .values(used=AiCreditUsage.used + count, updated_at=now)
        .returning(AiCreditUsage.used)
    )
    if used is not None:
        session.add(AiCreditEvent(organisation_id=organisation_id, credits=count, created_at=now))
    session.commit()
    if used is not None:
        return max(limit - int(used), 0)
    remaining = max(limit - _used(session, organisation_id, period), 0)
    session.commit()
    asked = f"{count} caption credits" if count != 1 else "1 caption credit"
    raise DomainError(
        f"Not enough AI credits: this request needs {asked} and the organisation has "
        f"{remaining} of {limit} left for {period}; credits renew on "
        f"{period_end(now):%Y-%m-%d} (UTC).",
        code="insufficient_credits",
        status=402,
        details={"count": [f"{remaining} of {limit} credits left for {period}; {count} needed."]},
    )


def give_back(session: Session, organisation_id: int, count: int, now: datetime) -> None:
    """Return `count` credits taken at `now` for captions that were not delivered (to the
    month they were taken from), and commit."""
    if count <= 0:
        return
    returned = session.execute(
        update(AiCreditUsage)
        .where(
            AiCreditUsage.organisation_id == organisation_id,
            AiCreditUsage.period == period_of(now),
            AiCreditUsage.used >= count,
        )
        .values(used=AiCreditUsage.used - count, updated_at=now)
    )
    if returned.rowcount:
        session.add(AiCreditEvent(organisation_id=organisation_id, credits=-count, created_at=now))
    session.commit()


def credits_used_between(
    session: Session, organisation_id: int, start: datetime | None, end: datetime
) -> int:
    """Credits the organisation spent from `start` (the beginning when None) until `end`
    (exclusive), net of those given back."""
    conditions = [
        AiCreditEvent.organisation_id == organisation_id,
        AiCreditEvent.created_at < end,
    ]
    if start is not None:
        conditions.append(AiCreditEvent.created_at >= start)
    total = session.scalar(
        select(func.coalesce(func.sum(AiCreditEvent.credits), 0)).where(*conditions)
    )
    return max(int(total or 0), 0)

"""Reading the analytics: the summary of a period, a post's and an account's figures, and
the rows of the CSV export (docs/analytics.md).

Every query starts from rows the caller's scope sees (`Scope.where`): a key restricted
to a profile never counts another profile's posts. As in the API contract's summary, the
periods are rolling windows ending now (today: 24 h, week: 7 days, month: 30 days) and a
post belongs to the window it was created in, whenever it is scheduled; the export lists
the destinations published in the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select
from sqlalchemy.orm import Session

from app.access import Scope
from app.analytics_models import METRIC_FIELDS, AccountMetricSnapshot, MetricSnapshot
from app.errors import ValidationError
from app.models import Account, Post, PostStatus, PostTarget, TargetStatus
from app.serializers import ts
from app.services.ai_credits import credits_used_between

PERIODS = ("today", "week", "month", "all", "custom")
# The summary's sums (saves are in each post's and the export's figures).
SUMMARY_FIELDS = ("views", "likes", "comments", "shares", "impressions", "clicks")
POST_BUCKETS = {
    PostStatus.DRAFT: "draft",
    PostStatus.SCHEDULED: "scheduled",
    PostStatus.PUBLISHING: "publishing",
    PostStatus.PUBLISHED: "published",
    PostStatus.PARTIALLY_PUBLISHED: "partially_failed",
    PostStatus.FAILED: "failed",
}
WAITING = (TargetStatus.SCHEDULED, TargetStatus.QUEUED, TargetStatus.PUBLISHING)
TOP_POSTS = 10
MAX_CUSTOM_DAYS = 3660


@dataclass(frozen=True)
class Period:
    name: str
    start: datetime | None  # None: from the beginning (`all`)
    end: datetime  # exclusive

    def as_dict(self) -> dict[str, Any]:
        return {"from": ts(self.start), "to": ts(self.end)}


def _instant(raw: str, name: str, end: bool) -> datetime:
    """`2026-12-01` (a whole UTC day: its start, or for `to` its end) or an ISO 8601
    instant with an offset."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), UTC)
            return moment + timedelta(days=1) if end else moment
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _invalid(
            name,
            f"{name} must be a date (2026-12-01) or an ISO 8601 instant with an offset "
            f"(2026-12-01T09:00:00Z); got {raw!r}",
        )
    return parsed.astimezone(UTC)


def _invalid(name: str, message: str) -> ValidationError:
    return ValidationError(message, details={name: [message]})


def resolve_period(
    name: str | None, start: str | None, end: str | None, now: datetime, default: str
) -> Period:
    """The period a request names; ValidationError with the reason otherwise."""
    name = (name or ("custom" if start or end else default)).strip()
    if name not in PERIODS:
        raise _invalid("period", f"period must be one of {', '.join(PERIODS)}; got {name!r}")
    if name != "custom":
        if start or end:
            raise _invalid("period", f"from and to are taken with period=custom, not {name}")
        if name == "all":
            return Period(name, None, now)
        days = {"today": 1, "week": 7, "month": 30}[name]
        return Period(name, now - timedelta(days=days), now)
    if not start or not end:
        missing = "from" if not start else "to"
        raise _invalid(missing, f"period=custom needs both from and to; {missing} is missing")
    first, last = _instant(start, "from", end=False), _instant(end, "to", end=True)
    if first >= last:
        raise _invalid("to", f"to ({ts(last)}) must be after from ({ts(first)})")
    if last - first > timedelta(days=MAX_CUSTOM_DAYS):
        raise _invalid("to", f"a custom period spans at most {MAX_CUSTOM_DAYS} days")
    return Period(name, first, last)


def _post_conditions(
    scope: Scope, period: Period, account_id: int | None
) -> list[ColumnElement[bool]]:
    conditions = [*scope.where(Post), Post.created_at < period.end]
    if period.start is not None:
        conditions.append(Post.created_at >= period.start)
    if account_id is not None:
        conditions.append(
            Post.id.in_(select(PostTarget.post_id).where(PostTarget.account_id == account_id))
        )
    return conditions


def latest_snapshots() -> Any:
    """Each target's latest reading, as a subquery (portable: no DISTINCT ON)."""
    newest = (
        select(
            MetricSnapshot.target_id.label("target_id"),
            func.max(MetricSnapshot.collected_at).label("collected_at"),
        )
        .group_by(MetricSnapshot.target_id)
        .subquery()
    )
    return (
        select(MetricSnapshot)
        .join(
            newest,
            and_(
                MetricSnapshot.target_id == newest.c.target_id,
                MetricSnapshot.collected_at == newest.c.collected_at,
            ),
        )
        .subquery()
    )


def summary(
    session: Session, scope: Scope, period: Period, account_id: int | None
) -> dict[str, Any]:
    """Posts counted per post, `by_platform` per destination (target), metrics summed
    over the latest reading of each published target. Cancelled posts and targets are
    left out of every count."""
    conditions = _post_conditions(scope, period, account_id)
    posts = dict.fromkeys(["total", *POST_BUCKETS.values()], 0)
    for status, count in session.execute(
        select(Post.status, func.count()).where(*conditions).group_by(Post.status)
    ):
        if status in POST_BUCKETS:
            posts[POST_BUCKETS[status]] += count
            posts["total"] += count
    targets = select(PostTarget.platform, PostTarget.status, func.count()).join(Post)
    target_conditions = [*conditions, PostTarget.status != TargetStatus.CANCELLED]
    if account_id is not None:
        target_conditions.append(PostTarget.account_id == account_id)
    platforms: dict[str, dict[str, Any]] = {}
    for platform, status, count in session.execute(
        targets.where(*target_conditions).group_by(PostTarget.platform, PostTarget.status)
    ):
        row = platforms.setdefault(
            platform,
            {"platform": platform, "total": 0, "scheduled": 0, "published": 0, "failed": 0},
        )
        row["total"] += count
        if status in WAITING:
            row["scheduled"] += count
        elif status in (TargetStatus.PUBLISHED, TargetStatus.FAILED):
            row[status] += count
    latest = latest_snapshots()
    sums = session.execute(
        select(*(func.coalesce(func.sum(latest.c[name]), 0) for name in SUMMARY_FIELDS))
        .select_from(latest)
        .join(PostTarget, PostTarget.id == latest.c.target_id)
        .join(Post, Post.id == PostTarget.post_id)
        .where(*target_conditions, PostTarget.status == TargetStatus.PUBLISHED)
    ).one()
    return {
        "period": period.name,
        "range": period.as_dict(),
        "posts": posts,
        "by_platform": [platforms[name] for name in sorted(platforms)],
        "metrics": {name: int(value) for name, value in zip(SUMMARY_FIELDS, sums, strict=True)},
        # The organisation's, whichever key asks (credits are not per profile).
        "ai_credits": {
            "used_this_period": credits_used_between(
                session, scope.organisation_id, period.start, period.end
            ),
            "bonus": 0,
        },
    }


def snapshot_to_dict(row: Any) -> dict[str, Any]:
    return {
        "collected_at": ts(row.collected_at),
        "age_seconds": row.age_seconds,
        **{name: getattr(row, name) for name in METRIC_FIELDS},
    }


def totals(readings: list[dict[str, Any] | None]) -> dict[str, int | None]:
    """Sums over targets' latest readings; None for a figure no target has."""
    result: dict[str, int | None] = {}
    for name in METRIC_FIELDS:
        values = [r[name] for r in readings if r is not None and r[name] is not None]
        result[name] = sum(values) if values else None
    return result


def latest_by_target(session: Session, target_ids: list[int]) -> dict[int, dict[str, Any]]:
    if not target_ids:
        return {}
    latest = latest_snapshots()
    rows = session.execute(select(latest).where(latest.c.target_id.in_(target_ids))).all()
    return {row.target_id: snapshot_to_dict(row) for row in rows}


def post_analytics(session: Session, post: Post) -> dict[str, Any]:
    """Each target's latest reading and its series, oldest first, and the post's totals."""
    ids = [t.id for t in post.targets]
    series: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for row in session.scalars(
            select(MetricSnapshot)
            .where(MetricSnapshot.target_id.in_(ids))
            .order_by(MetricSnapshot.target_id, MetricSnapshot.collected_at)
        ):
            series[row.target_id].append(snapshot_to_dict(row))
    targets = [
        {
            "account_id": t.account_id,
            "platform": t.platform,
            "status": t.status,
            "published_at": ts(t.published_at),
            "url": t.url,
            "next_collection_at": ts(t.next_metrics_at),
            "latest": series[t.id][-1] if series[t.id] else None,
            "series": series[t.id],
        }
        for t in post.targets
    ]
    return {
        "post_id": str(post.id),
        "totals": totals([t["latest"] for t in targets]),
        "targets": targets,
    }


def account_analytics(session: Session, account: Account, period: Period) -> dict[str, Any]:
    """Followers over the period (daily readings) and the account's top posts published
    in it, by views (then likes) at their latest reading."""
    readings = select(AccountMetricSnapshot).where(
        AccountMetricSnapshot.account_id == account.id,
        AccountMetricSnapshot.collected_at < period.end,
    )
    if period.start is not None:
        readings = readings.where(AccountMetricSnapshot.collected_at >= period.start)
    followers = [
        {
            "collected_at": ts(row.collected_at),
            "followers": row.followers,
            "change": row.followers_change,
            "following": row.following,
            "posts_count": row.posts_count,
        }
        for row in session.scalars(readings.order_by(AccountMetricSnapshot.collected_at))
    ]
    latest = latest_snapshots()
    top: Select[Any] = (
        select(latest, PostTarget.post_id, PostTarget.url, PostTarget.published_at)
        .join(PostTarget, PostTarget.id == latest.c.target_id)
        .where(PostTarget.account_id == account.id, PostTarget.published_at < period.end)
    )
    if period.start is not None:
        top = top.where(PostTarget.published_at >= period.start)
    rows = session.execute(
        top.order_by(
            latest.c.views.desc().nulls_last(),
            latest.c.likes.desc().nulls_last(),
            latest.c.target_id,
        ).limit(TOP_POSTS)
    ).all()
    counted = [f["change"] for f in followers if f["change"] is not None]
    return {
        "account_id": account.id,
        "platform": account.platform,
        "period": period.name,
        "range": period.as_dict(),
        "followers": {
            "latest": next((f["followers"] for f in reversed(followers) if f["followers"]), None),
            "change": sum(counted) if counted else None,
            "series": followers,
        },
        "top_posts": [
            {
                "post_id": str(row.post_id),
                "url": row.url,
                "published_at": ts(row.published_at),
                **snapshot_to_dict(row),
            }
            for row in rows
        ],
    }


EXPORT_COLUMNS = (
    "post_id",
    "account_id",
    "account_name",
    "platform",
    "published_at",
    "url",
    "collected_at",
    "age_seconds",
    *METRIC_FIELDS,
)


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet would not run as a formula (an account named `=HYPERLINK(…)`):
    such a cell is prefixed with an apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_rows(
    session: Session, scope: Scope, period: Period, account_id: int | None
) -> list[list[Any]]:
    """One row per destination published in the period, with its latest reading (empty
    figures for one not read yet), by publication time."""
    latest = latest_snapshots()
    conditions = [
        *scope.where(Post),
        PostTarget.status == TargetStatus.PUBLISHED,
        PostTarget.published_at < period.end,
    ]
    if period.start is not None:
        conditions.append(PostTarget.published_at >= period.start)
    if account_id is not None:
        conditions.append(PostTarget.account_id == account_id)
    rows = session.execute(
        select(PostTarget, Account.name, latest)
        .join(Post, Post.id == PostTarget.post_id)
        .join(Account, Account.id == PostTarget.account_id)
        .outerjoin(latest, latest.c.target_id == PostTarget.id)
        .where(*conditions)
        .order_by(PostTarget.published_at, PostTarget.id)
    ).all()
    result = []
    for row in rows:
        target = row[0]
        result.append(
            [
                str(target.post_id),
                target.account_id,
                spreadsheet_safe(row.name),
                target.platform,
                ts(target.published_at),
                spreadsheet_safe(target.url or ""),
                ts(row.collected_at) or "",
                "" if row.age_seconds is None else row.age_seconds,
                *("" if getattr(row, n) is None else getattr(row, n) for n in METRIC_FIELDS),
            ]
        )
    return result

"""Collecting platforms' figures of published posts and of accounts (docs/analytics.md).

Three steps, each a plain function of its dependencies:

- `find_due_metrics` (beat, every minute) reads the targets whose `next_metrics_at` has
  come, through a partial index that holds only targets with a reading still to come;
  moves them a lease ahead so the next run does not send them again; and sends one
  message per account and batch of at most MESSAGE_TARGETS targets.
- `collect_metrics` (queue `metrics`) reads one account's batch through its adapter, in
  as few calls as the platform allows (`metrics_batch_size` posts a call), under the
  holds publishing obeys, and writes every reading and every next instant in one
  transaction of two statements.
- `collect_account_metrics` reads an account's followers once a day.

Publishing comes first: a collect message that finds a burst due around it (or still in
flight) steps aside and is sent again YIELD_SECONDS later, for at most MAX_YIELD after
the finder sent it, so a burst never shares the hosts, the database or the network with
a collection of thousands of readings.

Time comes from `MetricsDeps.clock` plus the message's `clock_offset` (seconds, 0 in
production). A test that moves the sandbox's clock sends the same offset
(`find_due_metrics(..., offset)`), so Crier reads "an hour after publishing" when the
sandbox's posts are an hour old.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from celery import Celery
from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.orm import Session

from app.analytics_models import AccountMetricSnapshot, MetricSnapshot
from app.analytics_schedule import next_collection
from app.config import Settings
from app.db import Database, utcnow
from app.models import Account, AccountStatus, PostTarget, TargetStatus
from app.queues import ACCOUNT_METRICS_TASK, METRICS_COLLECT_TASK, METRICS_QUEUE
from app.services.webhooks import record_account_disconnected
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Adapter,
    AuthExpiredError,
    AuthRevokedError,
    Metrics,
    MetricsPermissionError,
    Outcome,
    PlatformError,
    as_metrics_error,
)
from workers.quotas import Hold, SharedQuotas
from workers.tokens import account_credentials, refresh_account

log = logging.getLogger("crier.analytics")

T = TypeVar("T")

# Targets one run of the finder hands out; the rest wait for the next run.
DUE_BATCH = 5000
# Targets one collect message names (an account's batch).
MESSAGE_TARGETS = 100
# A sent batch is not sent again before this, should its message be lost.
LEASE = timedelta(minutes=15)
# After a transient failure, a reading is tried again this much later.
TRANSIENT_RETRY = timedelta(minutes=5)
# Readings of an account that must be reconnected wait this long between looks.
RECONNECT_RETRY = timedelta(hours=6)
# A limit a metrics call meets is a wait for metrics calls only (publishing goes on):
# kept under this prefix of the platform's name in the holds publishing keeps.
METRICS_HOLD_PREFIX = "metrics."
# An account's audience is read when its last reading is older than this.
ACCOUNT_INTERVAL = timedelta(hours=23)
ACCOUNTS_PER_RUN = 1000
# Adapter.fetch_metrics's code where a platform has no collector.
NOT_SUPPORTED = "metrics_not_supported"
PRUNE_BATCH = 10000
# A burst: at least BURST_TARGETS open targets due between BURST_BEHIND ago (in flight
# still) and BURST_AHEAD from now (a publish message reaches its worker 5 s ahead).
BURST_TARGETS = 50
BURST_BEHIND = timedelta(seconds=30)
BURST_AHEAD = timedelta(seconds=10)
# A collect message that met one is sent again this many seconds later; after MAX_YIELD
# (well inside LEASE, so the finder never sends the same targets meanwhile) it collects
# whatever is publishing: a host that always publishes still gets its figures.
YIELD_SECONDS = 10.0
MAX_YIELD = timedelta(minutes=5)
YIELDED = "yielded_to_publishing"
OPEN_STATUSES = (TargetStatus.SCHEDULED, TargetStatus.QUEUED, TargetStatus.PUBLISHING)


@dataclass(frozen=True)
class MetricsDeps:
    db: Database
    settings: Settings
    celery: Celery
    quotas: SharedQuotas
    adapter_for: Callable[[str], Adapter]
    clock: Callable[[], datetime] = utcnow


@dataclass
class CollectReport:
    """What one collection did: platform calls made, readings written, targets whose
    reading was skipped (not found, refused) or put off (a hold, a failure)."""

    calls: int = 0
    snapshots: int = 0
    skipped: int = 0
    deferred: int = 0
    outcome: str = "ok"

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class _Plan:
    """What a collection will write: readings, and each target's next instant."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    nexts: dict[int, datetime | None] = field(default_factory=dict)


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    step = max(1, size)
    for start in range(0, len(items), step):
        yield list(items[start : start + step])


# -- finding what is due ------------------------------------------------------------------


def find_due_metrics(db: Database, celery: Celery, now: datetime, offset: float = 0.0) -> int:
    """Send a collect message per account batch of the targets due at `now`; the number
    of targets sent. Rows locked by a concurrent run are left to it."""
    with db.session() as session:
        rows = session.execute(
            select(PostTarget.id, PostTarget.account_id)
            .where(PostTarget.next_metrics_at.is_not(None), PostTarget.next_metrics_at <= now)
            .order_by(PostTarget.next_metrics_at)
            .limit(DUE_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        if not rows:
            return 0
        # The lease: a lost message's targets come due again after it.
        session.execute(
            update(PostTarget)
            .where(PostTarget.id.in_([r.id for r in rows]))
            .values(next_metrics_at=now + LEASE, updated_at=PostTarget.updated_at)
            .execution_options(synchronize_session=False)
        )
        session.commit()
    by_account: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_account[row.account_id].append(row.id)
    sent = 0
    found_at = utcnow().timestamp()
    for account_id, target_ids in sorted(by_account.items()):
        for batch in chunks(sorted(target_ids), MESSAGE_TARGETS):
            try:
                celery.send_task(
                    METRICS_COLLECT_TASK,
                    args=[account_id, batch, offset, found_at],
                    queue=METRICS_QUEUE,
                )
            except Exception:  # broker down: the lease brings them back
                log.warning("metrics.send_failed account_id=%s", account_id)
                return sent
            sent += len(batch)
    return sent


# -- collecting one account's batch -------------------------------------------------------


def metrics_hold(quotas: SharedQuotas, platform: str, account_id: int) -> Hold | None:
    """A wait publishing obeys (the platform asked it), or one a metrics call met."""
    holds = [
        quotas.current_wait(platform, account_id),
        quotas.current_wait(METRICS_HOLD_PREFIX + platform, account_id),
    ]
    found = [h for h in holds if h is not None]
    return max(found, key=lambda h: h.until) if found else None


def publishing_burst(session: Session, now: datetime) -> bool:
    """Whether a burst is due around `now` or still in flight (BURST_TARGETS open targets
    in the window), read through the sweeper's index of open targets."""
    found = session.scalars(
        select(PostTarget.id)
        .where(
            PostTarget.status.in_(OPEN_STATUSES),
            PostTarget.next_attempt_at >= now - BURST_BEHIND,
            PostTarget.next_attempt_at <= now + BURST_AHEAD,
        )
        .limit(BURST_TARGETS)
    ).all()
    return len(found) >= BURST_TARGETS


def collect_metrics(
    deps: MetricsDeps,
    account_id: int,
    target_ids: list[int],
    offset: float = 0.0,
    found_at: float | None = None,
) -> CollectReport:
    """`found_at`: when the finder sent the batch (unix seconds), for MAX_YIELD."""
    real_now = deps.clock()
    now = real_now + timedelta(seconds=offset)
    report = CollectReport()
    if found_at is None or real_now.timestamp() - found_at < MAX_YIELD.total_seconds():
        with deps.db.session() as session:
            burst = publishing_burst(session, real_now)
        if burst:
            deps.celery.send_task(
                METRICS_COLLECT_TASK,
                args=[account_id, target_ids, offset, found_at or real_now.timestamp()],
                queue=METRICS_QUEUE,
                countdown=YIELD_SECONDS,
            )
            report.deferred, report.outcome = len(target_ids), YIELDED
            return report
    with deps.db.session() as session:
        account = session.get(Account, account_id)
        targets = session.execute(
            select(PostTarget.id, PostTarget.platform_post_id, PostTarget.published_at)
            .where(
                PostTarget.id.in_(target_ids),
                PostTarget.account_id == account_id,
                PostTarget.status == TargetStatus.PUBLISHED,
                PostTarget.next_metrics_at.is_not(None),
            )
            .order_by(PostTarget.id)
        ).all()
        if account is None or not targets:
            report.outcome = "nothing_due"
            return report
        platform = account.platform
        if account.status != AccountStatus.ACTIVE:
            # Disconnected or disabled: no reading will come. Waiting for a reconnect:
            # looked at again later.
            later = now + RECONNECT_RETRY
            waits = account.status == AccountStatus.NEEDS_RECONNECT
            _write(session, [], {t.id: later if waits else None for t in targets}, platform)
            report.deferred, report.outcome = len(targets), f"account_{account.status}"
            return report
        credentials = account_credentials(deps.settings, account)
    hold = metrics_hold(deps.quotas, platform, account_id)
    if hold is not None:
        until = datetime.fromtimestamp(hold.until, UTC)
        with deps.db.session() as session:
            _write(session, [], {t.id: until for t in targets}, platform)
        report.deferred, report.outcome = len(targets), "held"
        return report
    plan = _read(deps, credentials, platform, list(targets), now, report)
    with deps.db.session() as session:
        _write(session, plan.rows, plan.nexts, platform)
    report.snapshots = len(plan.rows)
    log.info("metrics.collected account_id=%s %s", account_id, report.as_dict())
    return report


def _read(
    deps: MetricsDeps,
    credentials: AccountCredentials,
    platform: str,
    targets: list[Row[Any]],
    now: datetime,
    report: CollectReport,
) -> _Plan:
    adapter = deps.adapter_for(platform)
    ages = deps.settings.metrics_schedule
    plan = _Plan()
    readable = [t for t in targets if t.platform_post_id and t.published_at is not None]
    for target in targets:
        if target not in readable:  # nothing on the platform to ask about
            plan.nexts[target.id] = None
            report.skipped += 1
    batches = list(chunks(readable, adapter.metrics_batch_size))
    for index, batch in enumerate(batches):
        post_ids = [str(t.platform_post_id) for t in batch]
        try:
            found, credentials = _fetch(deps, adapter, credentials, post_ids, report)
        except PlatformError as raw:
            error = as_metrics_error(raw)
            rest = [t for later in batches[index:] for t in later]
            report.outcome = error.code
            if isinstance(error, MetricsPermissionError):
                # The grant lacks the insights permission: this reading is skipped for
                # every post of the account; the schedule goes on.
                log.warning(
                    "metrics.no_permission account_id=%s code=%s",
                    credentials.account_id,
                    error.code,
                )
                for target in rest:
                    plan.nexts[target.id] = next_collection(target.published_at, now, ages)
                report.skipped += len(rest)
                break
            if error.code == NOT_SUPPORTED:
                # A platform without a collector: no reading will ever come.
                for target in rest:
                    plan.nexts[target.id] = None
                report.skipped += len(rest)
                break
            if error.outcome == Outcome.PERMANENT:
                # This batch's posts (deleted, refused): skip this reading, go on.
                for target in batch:
                    plan.nexts[target.id] = next_collection(target.published_at, now, ages)
                report.skipped += len(batch)
                continue
            retry_at = _retry_at(deps, platform, credentials.account_id, error, now)
            for target in rest:
                plan.nexts[target.id] = retry_at
            report.deferred += len(rest)
            break
        for target in batch:
            figures = found.get(str(target.platform_post_id))
            plan.nexts[target.id] = next_collection(target.published_at, now, ages)
            if figures is None:  # gone from the platform
                report.skipped += 1
                continue
            plan.rows.append(_snapshot_row(target, credentials.account_id, platform, figures, now))
    return plan


def _fetch(
    deps: MetricsDeps,
    adapter: Adapter,
    credentials: AccountCredentials,
    post_ids: list[str],
    report: CollectReport,
) -> tuple[dict[str, Metrics], AccountCredentials]:
    """One batch, with one token refresh on an expired token, as publishing does."""
    report.calls += 1 if adapter.metrics_batch_size > 1 else len(post_ids)
    try:
        return adapter.fetch_metrics(credentials, post_ids), credentials
    except AuthExpiredError:
        if not adapter.can_refresh(credentials):
            raise
    fresh = refresh_account(deps.db, deps.settings, adapter, credentials)
    report.calls += 1 if adapter.metrics_batch_size > 1 else len(post_ids)
    return adapter.fetch_metrics(fresh, post_ids), fresh


def _retry_at(
    deps: MetricsDeps, platform: str, account_id: int, error: PlatformError, now: datetime
) -> datetime:
    """When a batch that failed is tried again; a limit becomes a metrics-only hold and a
    dead token marks the account as a publish would."""
    if error.outcome in (Outcome.RATE_LIMITED, Outcome.QUOTA_EXHAUSTED):
        if error.retry_at is not None:
            until = error.retry_at
        else:
            until = now + timedelta(seconds=error.retry_after or 60.0)
        scope = None if error.scope == "app" else account_id
        # Real seconds: the hold lives in Redis, on the real clock.
        wait = max((until - now).total_seconds(), 1.0)
        deps.quotas.impose_wait(METRICS_HOLD_PREFIX + platform, scope, utcnow().timestamp() + wait)
        return until
    if error.outcome in (Outcome.AUTH_EXPIRED, Outcome.AUTH_REVOKED):
        mark_reconnect(deps.db, account_id, error)
        return now + RECONNECT_RETRY
    return now + TRANSIENT_RETRY


def mark_reconnect(db: Database, account_id: int, error: PlatformError) -> None:
    """The account's token died: needs_reconnect and its webhook, as publishing marks it."""
    code = "auth_revoked" if isinstance(error, AuthRevokedError) else "auth_expired"
    with db.session() as session:
        account = session.get(Account, account_id)
        if account is None:
            return
        previous = account.status
        account.status = AccountStatus.NEEDS_RECONNECT
        account.status_reason = f"{code}: {error.message}"
        record_account_disconnected(session, account, previous)
        session.commit()


def _snapshot_row(
    target: Row[Any], account_id: int, platform: str, figures: Metrics, now: datetime
) -> dict[str, Any]:
    return {
        "target_id": target.id,
        "account_id": account_id,
        "platform": platform,
        "collected_at": now,
        "age_seconds": max(0, int((now - target.published_at).total_seconds())),
        "views": figures.views,
        "likes": figures.likes,
        "comments": figures.comments,
        "shares": figures.shares,
        "impressions": figures.impressions,
        "clicks": figures.clicks,
        "saves": figures.saves,
        "raw": figures.raw,
    }


def _write(
    session: Session,
    rows: list[dict[str, Any]],
    nexts: dict[int, datetime | None],
    platform: str,
) -> None:
    """Every reading in one INSERT, every next instant in one executemany UPDATE, one
    commit."""
    if rows:
        session.execute(insert(MetricSnapshot), rows)
    if nexts:
        session.execute(
            update(PostTarget),
            [{"id": target_id, "next_metrics_at": at} for target_id, at in sorted(nexts.items())],
            execution_options={"synchronize_session": False},
        )
    session.commit()


# -- accounts -----------------------------------------------------------------------------


def find_due_account_metrics(
    db: Database, celery: Celery, now: datetime, offset: float = 0.0
) -> int:
    """Send a message per active account without a reading in the last ACCOUNT_INTERVAL."""
    recent = select(AccountMetricSnapshot.account_id).where(
        AccountMetricSnapshot.collected_at > now - ACCOUNT_INTERVAL
    )
    with db.session() as session:
        ids = session.scalars(
            select(Account.id)
            .where(Account.status == AccountStatus.ACTIVE, Account.id.not_in(recent))
            .order_by(Account.id)
            .limit(ACCOUNTS_PER_RUN)
        ).all()
    sent = 0
    for account_id in ids:
        try:
            celery.send_task(ACCOUNT_METRICS_TASK, args=[account_id, offset], queue=METRICS_QUEUE)
        except Exception:
            log.warning("metrics.send_failed account_id=%s", account_id)
            break
        sent += 1
    return sent


def collect_account_metrics(deps: MetricsDeps, account_id: int, offset: float = 0.0) -> str:
    now = deps.clock() + timedelta(seconds=offset)
    with deps.db.session() as session:
        account = session.get(Account, account_id)
        if account is None or account.status != AccountStatus.ACTIVE:
            return "skipped"
        platform = account.platform
        credentials = account_credentials(deps.settings, account)
    if metrics_hold(deps.quotas, platform, account_id) is not None:
        return "held"
    adapter = deps.adapter_for(platform)
    try:
        try:
            figures = adapter.fetch_account_metrics(credentials)
        except AuthExpiredError:
            if not adapter.can_refresh(credentials):
                raise
            fresh = refresh_account(deps.db, deps.settings, adapter, credentials)
            figures = adapter.fetch_account_metrics(fresh)
    except PlatformError as raw:
        error = as_metrics_error(raw)
        if not isinstance(error, MetricsPermissionError) and error.outcome != Outcome.PERMANENT:
            _retry_at(deps, platform, account_id, error, now)
        log.warning("metrics.account_failed account_id=%s code=%s", account_id, error.code)
        return error.code
    if figures is None:
        return "not_reported"
    with deps.db.session() as session:
        _write_account(session, account_id, platform, figures, now)
    return "ok"


def _write_account(
    session: Session, account_id: int, platform: str, figures: AccountMetrics, now: datetime
) -> None:
    previous = session.scalar(
        select(AccountMetricSnapshot.followers)
        .where(
            AccountMetricSnapshot.account_id == account_id,
            AccountMetricSnapshot.collected_at < now,
            AccountMetricSnapshot.followers.is_not(None),
        )
        .order_by(AccountMetricSnapshot.collected_at.desc())
        .limit(1)
    )
    change = (
        figures.followers - previous
        if figures.followers is not None and previous is not None
        else None
    )
    session.add(
        AccountMetricSnapshot(
            account_id=account_id,
            platform=platform,
            collected_at=now,
            followers=figures.followers,
            followers_change=change,
            following=figures.following,
            posts_count=figures.posts_count,
            raw=figures.raw,
        )
    )
    session.commit()


# -- retention ----------------------------------------------------------------------------


def prune_snapshots(db: Database, retention_days: int, now: datetime) -> int:
    """Delete readings older than the retention, a batch at a time; the rows deleted."""
    cutoff = now - timedelta(days=retention_days)
    deleted = 0
    for model in (MetricSnapshot, AccountMetricSnapshot):
        while True:
            with db.session() as session:
                ids = select(model.id).where(model.collected_at < cutoff).limit(PRUNE_BATCH)
                count = session.execute(
                    delete(model)
                    .where(model.id.in_(ids.scalar_subquery()))
                    .execution_options(synchronize_session=False)
                ).rowcount
                session.commit()
            deleted += count
            if count < PRUNE_BATCH:
                break
    return deleted

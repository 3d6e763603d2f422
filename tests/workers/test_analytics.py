"""The metrics collector's plain functions against PostgreSQL, Redis and the sandbox:
scheduling, batching per account, holds, dead tokens, missing permissions, accounts'
daily reading and retention."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select, update

from app.analytics_models import AccountMetricSnapshot, MetricSnapshot
from app.analytics_schedule import next_collection, parse_ages
from app.db import get_db
from app.models import Account, AccountStatus, PostTarget
from app.queues import METRICS_COLLECT_TASK, METRICS_QUEUE
from sandbox.insights import figures
from tests.conftest import Tenant
from tests.workers.conftest import target_row
from tests.workers.test_pipeline import create_target, queue_now
from workers.adapters.base import Adapter
from workers.analytics import (
    BURST_TARGETS,
    MAX_YIELD,
    METRICS_HOLD_PREFIX,
    YIELD_SECONDS,
    YIELDED,
    MetricsDeps,
    collect_account_metrics,
    collect_metrics,
    find_due_account_metrics,
    find_due_metrics,
    prune_snapshots,
    publishing_burst,
)
from workers.pipeline import PipelineDeps, publish_target

HOUR, DAY = 3600, 86400


@dataclass
class Outbox:
    """A Celery stand-in that keeps what would be sent (and each message's options)."""

    sent: list[tuple[str, list[Any]]] = field(default_factory=list)
    options: list[dict[str, Any]] = field(default_factory=list)

    def send_task(self, name: str, args: list[Any], **options: Any) -> None:
        self.sent.append((name, args))
        self.options.append(options)


def metrics_deps(deps: PipelineDeps) -> MetricsDeps:
    return MetricsDeps(deps.db, deps.settings, Outbox(), deps.quotas, deps.adapter_for)  # type: ignore[arg-type]


def published(app: Flask, deps: PipelineDeps, tenant: Tenant, account_id: int, text: str) -> int:
    target_id, token = queue_now(app, create_target(tenant, account_id, text))
    assert publish_target(deps, target_id, token) == "published"
    return target_id


def snapshots(app: Flask, target_id: int) -> list[MetricSnapshot]:
    with get_db(app).session() as session:
        rows = session.scalars(
            select(MetricSnapshot)
            .where(MetricSnapshot.target_id == target_id)
            .order_by(MetricSnapshot.collected_at)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def advance(sandbox: httpx.Client, seconds: float) -> None:
    sandbox.post("/_clock", json={"advance_seconds": seconds}).raise_for_status()


def test_the_schedule_reads_each_age_once() -> None:
    assert parse_ages(" 86400,3600,3600 ") == (3600, 86400)
    with pytest.raises(ValueError, match="not a positive number"):
        parse_ages("3600,soon")
    with pytest.raises(ValueError, match="names no age"):
        parse_ages(" , ")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ages = (HOUR, DAY, 7 * DAY)
    assert next_collection(start, start + timedelta(seconds=HOUR + 5), ages) == start + timedelta(
        seconds=DAY
    )
    # Late (a day and a half): the day's reading is not made again; the week's is next.
    late = start + timedelta(seconds=DAY + DAY // 2)
    assert next_collection(start, late, ages) == start + timedelta(seconds=7 * DAY)
    assert next_collection(start, start + timedelta(days=8), ages) is None


def test_publishing_schedules_the_first_reading(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    target_id = published(app, deps, tenant, make_account(tenant, "x"), "first reading")
    target = target_row(app, target_id)
    assert target.next_metrics_at == target.published_at + timedelta(seconds=HOUR)


@pytest.mark.parametrize(
    ("platform", "token", "external_id"),
    [
        ("telegram", "123456789:AAH-crier_bot", "@crier_news"),
        (
            "discord",
            "https://discord.com/api/webhooks/1400000000000000007/hook-token_7",
            "1300000000000000007",
        ),
    ],
)
def test_a_platform_without_insights_gets_no_reading_scheduled(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    platform: str,
    token: str,
    external_id: str,
) -> None:
    account_id = make_account(
        tenant, platform, access_token=token, refresh_token=None, external_id=external_id
    )
    target_id = published(app, deps, tenant, account_id, "no figures here")
    target = target_row(app, target_id)
    assert target.published_at is not None and target.next_metrics_at is None
    mdeps = metrics_deps(deps)
    assert find_due_metrics(deps.db, mdeps.celery, datetime.now(UTC) + timedelta(days=31)) == 0


def test_due_targets_are_read_in_one_call_per_account_batch(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    x_account = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin", external_id="urn:li:person:7000042")
    x_targets = [published(app, deps, tenant, x_account, f"batch {n}") for n in range(3)]
    li_target = published(app, deps, tenant, linkedin, "batch on linkedin")
    mdeps = metrics_deps(deps)
    now = datetime.now(UTC)
    assert find_due_metrics(deps.db, mdeps.celery, now) == 0  # nothing due for an hour

    advance(sandbox, HOUR)
    later = now + timedelta(seconds=HOUR + 5)
    outbox = mdeps.celery
    assert find_due_metrics(deps.db, outbox, later, HOUR + 5) == 4
    assert sorted(args[:3] for _, args in outbox.sent) == sorted(
        [[x_account, x_targets, HOUR + 5], [linkedin, [li_target], HOUR + 5]]
    )
    # When the finder sent them: how long a batch may step aside for a burst.
    assert all(abs(args[3] - datetime.now(UTC).timestamp()) < 60 for _, args in outbox.sent)
    # Leased: the next run does not send them again.
    assert find_due_metrics(deps.db, Outbox(), later, HOUR + 5) == 0  # type: ignore[arg-type]

    report = collect_metrics(mdeps, x_account, x_targets, HOUR + 5)
    assert (report.calls, report.snapshots) == (1, 3)  # one GET /2/tweets for three posts
    readings = {(r["id"], r["age_seconds"]): r for r in sandbox.get("/_insights").json()}
    for target_id in x_targets:
        [snapshot] = snapshots(app, target_id)
        target = target_row(app, target_id)
        assert HOUR <= snapshot.age_seconds < HOUR + 120
        reading = readings[next(k for k in readings if k[0] == target.platform_post_id)]
        assert reading["figures"] == figures("x", target.platform_post_id, reading["age_seconds"])
        assert snapshot.likes == reading["figures"]["likes"]
        assert snapshot.impressions == reading["figures"]["impressions"]
        assert snapshot.saves == reading["figures"]["saves"]
        assert snapshot.clicks is None  # X has no clicks in public_metrics
        assert target.next_metrics_at == target.published_at + timedelta(seconds=DAY)
    report = collect_metrics(mdeps, linkedin, [li_target], HOUR + 5)
    assert (report.calls, report.snapshots) == (1, 1)
    [snapshot] = snapshots(app, li_target)
    assert snapshot.views is None and snapshot.comments is not None


def _due_now(app: Flask, target_ids: list[int]) -> None:
    with get_db(app).session() as session:
        session.execute(
            update(PostTarget)
            .where(PostTarget.id.in_(target_ids))
            .values(next_metrics_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        session.commit()


def test_a_collection_steps_aside_while_a_burst_publishes(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id = published(app, deps, tenant, account_id, "read after the burst")
    _due_now(app, [target_id])
    burst = [create_target(tenant, account_id, f"burst {n}") for n in range(BURST_TARGETS)]
    with get_db(app).session() as session:
        session.execute(
            update(PostTarget)
            .where(PostTarget.post_id.in_(burst))
            .values(next_attempt_at=datetime.now(UTC) + timedelta(seconds=5))
        )
        session.commit()
    mdeps = metrics_deps(deps)
    outbox = mdeps.celery
    found_at = datetime.now(UTC).timestamp()

    report = collect_metrics(mdeps, account_id, [target_id], 0.0, found_at)

    assert (report.outcome, report.calls, report.deferred) == (YIELDED, 0, 1)
    assert sandbox.get("/_insights").json() == []  # nothing asked of the platform
    assert outbox.sent == [(METRICS_COLLECT_TASK, [account_id, [target_id], 0.0, found_at])]
    assert outbox.options == [{"queue": METRICS_QUEUE, "countdown": YIELD_SECONDS}]
    # Stepped aside for MAX_YIELD already: it collects, burst or not.
    stale = found_at - MAX_YIELD.total_seconds()
    report = collect_metrics(mdeps, account_id, [target_id], 0.0, stale)
    assert (report.outcome, report.snapshots) == ("ok", 1)
    assert len(outbox.sent) == 1
    # One target fewer than a burst: no reason to wait.
    with get_db(app).session() as session:
        session.execute(
            update(PostTarget)
            .where(PostTarget.post_id == burst[0])
            .values(next_attempt_at=datetime.now(UTC) + timedelta(days=1))
        )
        session.commit()
        assert not publishing_burst(session, datetime.now(UTC))


def test_a_rate_limit_holds_metrics_only(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id = published(app, deps, tenant, account_id, "limited")
    _due_now(app, [target_id])
    sandbox.post("/_faults", json={"x": {"metrics_rate_limit_every": 1, "retry_after": 120}})
    mdeps = metrics_deps(deps)
    report = collect_metrics(mdeps, account_id, [target_id])
    assert (report.snapshots, report.deferred) == (0, 1)
    assert deps.quotas.current_wait(METRICS_HOLD_PREFIX + "x", account_id) is not None
    assert deps.quotas.current_wait("x", account_id) is None  # publishing is not held
    assert target_row(app, target_id).next_metrics_at > datetime.now(UTC) + timedelta(seconds=60)
    # While held, no call is made at all.
    sandbox.post("/_faults", json={})
    report = collect_metrics(mdeps, account_id, [target_id])
    assert (report.calls, report.outcome) == (0, "held")


def test_a_revoked_token_marks_the_account(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "linkedin", external_id="urn:li:person:7000043")
    target_id = published(app, deps, tenant, account_id, "revoked later")
    _due_now(app, [target_id])
    sandbox.post("/_faults", json={"linkedin": {"revoked_tokens": ["tok-access"]}})
    report = collect_metrics(metrics_deps(deps), account_id, [target_id])
    assert report.snapshots == 0
    with get_db(app).session() as session:
        account = session.get(Account, account_id)
        assert account is not None and account.status == AccountStatus.NEEDS_RECONNECT


def test_a_missing_permission_skips_the_reading_and_keeps_publishing(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id = published(app, deps, tenant, account_id, "no insights scope")
    _due_now(app, [target_id])
    sandbox.post("/_faults", json={"x": {"metrics_forbidden_tokens": ["tok-access"]}})
    report = collect_metrics(metrics_deps(deps), account_id, [target_id], HOUR + 5)
    assert (report.snapshots, report.skipped) == (0, 1)
    target = target_row(app, target_id)
    assert target.next_metrics_at == target.published_at + timedelta(seconds=DAY)
    with get_db(app).session() as session:
        account = session.get(Account, account_id)
        assert account is not None and account.status == AccountStatus.ACTIVE


def test_accounts_are_read_daily_with_the_change(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    person = make_account(tenant, "linkedin", external_id="urn:li:person:7000044")
    mdeps = metrics_deps(deps)
    now = datetime.now(UTC)
    assert find_due_account_metrics(deps.db, mdeps.celery, now) == 2
    assert collect_account_metrics(mdeps, account_id) == "ok"
    # A LinkedIn member's followers are not in the API: nothing stored, no call.
    assert collect_account_metrics(mdeps, person) == "not_reported"
    outbox = Outbox()
    assert find_due_account_metrics(deps.db, outbox, now, 0) == 1  # only the member again
    advance(sandbox, DAY)
    assert collect_account_metrics(mdeps, account_id, DAY) == "ok"
    with get_db(app).session() as session:
        rows = session.scalars(
            select(AccountMetricSnapshot)
            .where(AccountMetricSnapshot.account_id == account_id)
            .order_by(AccountMetricSnapshot.collected_at)
        ).all()
        assert len(rows) == 2 and rows[0].followers_change is None
        assert rows[1].followers is not None and rows[0].followers is not None
        assert rows[1].followers_change == rows[1].followers - rows[0].followers > 0


def test_old_snapshots_are_pruned(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id = published(app, deps, tenant, account_id, "pruned")
    _due_now(app, [target_id])
    collect_metrics(metrics_deps(deps), account_id, [target_id])
    assert len(snapshots(app, target_id)) == 1
    settings = replace(deps.settings, metrics_retention_days=30)
    assert prune_snapshots(deps.db, settings.metrics_retention_days, datetime.now(UTC)) == 0
    later = datetime.now(UTC) + timedelta(days=31)
    assert prune_snapshots(deps.db, settings.metrics_retention_days, later) == 1
    assert snapshots(app, target_id) == []


def test_a_platform_without_a_collector_is_never_asked_again(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id = published(app, deps, tenant, account_id, "no collector")
    _due_now(app, [target_id])

    class Bare(type(deps.adapter_for("x"))):  # type: ignore[misc]
        fetch_metrics = Adapter.fetch_metrics

    bare = Bare(httpx.Client(), None)
    report = collect_metrics(
        replace(metrics_deps(deps), adapter_for=lambda _: bare), account_id, [target_id]
    )
    assert (report.snapshots, report.skipped, report.outcome) == (0, 1, "metrics_not_supported")
    assert target_row(app, target_id).next_metrics_at is None

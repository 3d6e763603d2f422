"""Celery tasks of the analytics collector: thin wrappers around workers/analytics.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import shared_task

from app.db import utcnow
from app.queues import (
    ACCOUNT_METRICS_DUE_TASK,
    ACCOUNT_METRICS_TASK,
    METRICS_COLLECT_TASK,
    METRICS_DUE_TASK,
    METRICS_PRUNE_TASK,
)
from workers.analytics import (
    MetricsDeps,
    collect_account_metrics,
    collect_metrics,
    find_due_account_metrics,
    find_due_metrics,
    prune_snapshots,
)
from workers.tasks import pipeline_deps


def metrics_deps() -> MetricsDeps:
    """The publishing workers' database, holds and adapters (one per platform and process)."""
    deps = pipeline_deps()
    return MetricsDeps(
        db=deps.db,
        settings=deps.settings,
        celery=deps.celery,
        quotas=deps.quotas,
        adapter_for=deps.adapter_for,
    )


@shared_task(name=METRICS_DUE_TASK, ignore_result=True)
def find_due_metrics_task(clock_offset: float = 0.0) -> int:
    """`clock_offset`: seconds added to the clock (0 from beat; tests that move the
    sandbox's clock send the same)."""
    deps = metrics_deps()
    now = utcnow() + timedelta(seconds=clock_offset)
    return find_due_metrics(deps.db, deps.celery, now, clock_offset)


@shared_task(name=METRICS_COLLECT_TASK, ignore_result=True)
def collect_metrics_task(
    account_id: int,
    target_ids: list[int],
    clock_offset: float = 0.0,
    found_at: float | None = None,
) -> dict[str, Any]:
    deps = metrics_deps()
    return collect_metrics(deps, account_id, target_ids, clock_offset, found_at).as_dict()


@shared_task(name=ACCOUNT_METRICS_DUE_TASK, ignore_result=True)
def find_due_account_metrics_task(clock_offset: float = 0.0) -> int:
    deps = metrics_deps()
    now = utcnow() + timedelta(seconds=clock_offset)
    return find_due_account_metrics(deps.db, deps.celery, now, clock_offset)


@shared_task(name=ACCOUNT_METRICS_TASK, ignore_result=True)
def collect_account_metrics_task(account_id: int, clock_offset: float = 0.0) -> str:
    return collect_account_metrics(metrics_deps(), account_id, clock_offset)


@shared_task(name=METRICS_PRUNE_TASK, ignore_result=True)
def prune_metric_snapshots_task() -> int:
    deps = metrics_deps()
    return prune_snapshots(deps.db, deps.settings.metrics_retention_days, utcnow())

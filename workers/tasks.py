"""Celery tasks: thin wrappers that hand ids to the plain functions of the pipeline."""

from __future__ import annotations

from functools import cache, lru_cache

import httpx
from celery import Task, shared_task
from flask import current_app

from app.db import get_db
from workers.adapters import get_adapter
from workers.adapters.base import Adapter
from workers.celery_app import PUBLISH_TASK, REFRESH_TOKENS_TASK, SWEEP_TASK
from workers.pipeline import PipelineDeps, publish_target
from workers.quotas import SharedQuotas
from workers.sweeper import sweep_due_targets
from workers.tokens import refresh_expiring_tokens


@lru_cache(maxsize=1)
def _http_client(timeout: float) -> httpx.Client:
    # One pooled client per worker process; thread-safe for concurrent publishes.
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        follow_redirects=False,
    )


@cache
def _adapter(platform: str, timeout: float, base_url: str | None) -> Adapter:
    # One per platform per process: adapters keep no per-publish state, and per-account
    # caches (X's users/me) then outlive a task.
    return get_adapter(platform, _http_client(timeout), base_url)


def pipeline_deps() -> PipelineDeps:
    settings = current_app.config["CRIER"]
    return PipelineDeps(
        db=get_db(),
        settings=settings,
        celery=current_app.extensions["celery"],
        quotas=_quotas(settings.redis_url),
        adapter_for=lambda platform: _adapter(
            platform, settings.http_timeout, settings.platform_base_url
        ),
    )


@lru_cache(maxsize=4)
def _quotas(redis_url: str) -> SharedQuotas:
    return SharedQuotas(redis_url)


@shared_task(name=PUBLISH_TASK, bind=True, ignore_result=True)
def publish_target_task(self: Task, target_id: int, dispatch_token: str) -> str:
    return publish_target(pipeline_deps(), target_id, dispatch_token, task_id=self.request.id)


@shared_task(name=SWEEP_TASK, ignore_result=True)
def sweep_due_targets_task() -> dict[str, int]:
    settings = current_app.config["CRIER"]
    return sweep_due_targets(get_db(), settings, current_app.extensions["celery"]).as_dict()


@shared_task(name=REFRESH_TOKENS_TASK, ignore_result=True)
def refresh_expiring_tokens_task() -> dict[str, int]:
    deps = pipeline_deps()
    return refresh_expiring_tokens(deps.db, deps.settings, deps.adapter_for)

"""Removing published copies of a post from platforms (DELETE /posts/{id}?delete_on_platforms).

The API marks each published target `platform_delete_status = pending` and sends one
message per target; this calls the platform's delete through its adapter and records
`deleted` or `failed` with the platform's reason. The write is guarded by `pending`, so
a message delivered twice deletes once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from celery import Celery, shared_task
from flask import current_app
from sqlalchemy import select, update

from app.config import Settings
from app.db import Database, get_db, utcnow
from app.models import Account, PostTarget
from app.queues import PLATFORM_DELETE_RESUME_TASK, PLATFORM_DELETE_TASK
from app.services.post_changes import enqueue_platform_deletes
from workers.adapters import get_adapter
from workers.adapters.base import Adapter, AuthExpiredError, PlatformError
from workers.tasks import platform_http_client
from workers.tokens import account_credentials, refresh_account

log = logging.getLogger("crier.platform_delete")

STALLED_AFTER = timedelta(minutes=10)


def delete_on_platform(
    db: Database, settings: Settings, adapter_for: Callable[[str], Adapter], target_id: int
) -> str:
    with db.session() as session:
        target = session.get(PostTarget, target_id)
        if target is None or target.platform_delete_status != "pending":
            return "skipped"
        account = session.get(Account, target.account_id)
        assert account is not None
        credentials = account_credentials(settings, account)
        post_id = target.platform_post_id or ""
    adapter = adapter_for(credentials.platform)
    error: str | None = None
    try:
        try:
            adapter.delete_post(credentials, post_id)
        except AuthExpiredError:
            if not adapter.supports_refresh:
                raise
            adapter.delete_post(refresh_account(db, settings, adapter, credentials), post_id)
    except PlatformError as failure:
        error = failure.message
    values = (
        # A post taken down has no figures left to read.
        {
            "platform_delete_status": "deleted",
            "platform_deleted_at": utcnow(),
            "next_metrics_at": None,
        }
        if error is None
        else {"platform_delete_status": "failed", "platform_delete_error": error}
    )
    with db.session() as session:
        session.execute(
            update(PostTarget)
            .where(PostTarget.id == target_id, PostTarget.platform_delete_status == "pending")
            .values(**values)
        )
        session.commit()
    log.info("platform delete target_id=%s outcome=%s error=%s", target_id, values, error)
    return "deleted" if error is None else "failed"


def resume_stalled_deletes(db: Database, celery: Celery) -> int:
    cutoff = utcnow() - STALLED_AFTER
    with db.session() as session:
        ids = session.scalars(
            select(PostTarget.id).where(
                PostTarget.platform_delete_status == "pending", PostTarget.updated_at < cutoff
            )
        ).all()
    return enqueue_platform_deletes(celery, list(ids))


@shared_task(name=PLATFORM_DELETE_TASK, ignore_result=True)
def delete_on_platform_task(target_id: int) -> str:
    settings = current_app.config["CRIER"]
    return delete_on_platform(
        get_db(),
        settings,
        lambda platform: get_adapter(
            platform, platform_http_client(settings), settings.platform_base_url, settings
        ),
        target_id,
    )


@shared_task(name=PLATFORM_DELETE_RESUME_TASK, ignore_result=True)
def resume_platform_deletes_task() -> int:
    return resume_stalled_deletes(get_db(), current_app.extensions["celery"])

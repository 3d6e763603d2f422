"""Handing targets to the broker, always after the transaction that made them has committed.

Each enqueue writes a fresh dispatch token on the target and the message carries it; the
worker's claim matches on it, so duplicate, stale and cancelled messages are no-ops. When
the broker cannot be reached the target goes back to `scheduled` and the sweeper retries.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import PostTarget, TargetStatus
from workers.celery_app import PUBLISH_TASK, publish_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueTarget:
    id: int
    platform: str
    due_at: datetime


def due_within_horizon(targets: list[PostTarget], horizon_seconds: int) -> list[DueTarget]:
    limit = utcnow() + timedelta(seconds=horizon_seconds)
    return [
        DueTarget(t.id, t.platform, t.next_attempt_at)
        for t in targets
        if t.status == TargetStatus.SCHEDULED and t.next_attempt_at <= limit
    ]


def enqueue_targets(session: Session, celery: Celery, due: list[DueTarget]) -> int:
    """Mark each target queued with a new token (committed), then send its message.

    Returns how many messages were sent. Must be called outside any open transaction
    that created the targets, i.e. after commit.
    """
    sent = 0
    broker_down = False
    for target in due:
        token = str(uuid.uuid4())
        claimed = session.execute(
            update(PostTarget)
            .where(PostTarget.id == target.id, PostTarget.status == TargetStatus.SCHEDULED)
            .values(status=TargetStatus.QUEUED, dispatch_token=token, queued_at=utcnow())
        ).rowcount
        session.commit()
        if not claimed:
            continue
        if not broker_down:
            try:
                send_publish(celery, target, token)
                sent += 1
                continue
            except Exception as exc:  # kombu raises many kinds; all mean "not sent"
                broker_down = True
                log.warning(
                    "broker unavailable, leaving targets for the sweeper: %s",
                    exc,
                    extra={"target_id": target.id},
                )
        _unqueue(session, target.id, token)
    return sent


def send_publish(celery: Celery, target: DueTarget, token: str) -> None:
    eta = target.due_at if target.due_at > utcnow() else None
    celery.send_task(
        PUBLISH_TASK,
        args=[target.id, token],
        queue=publish_queue(target.platform),
        eta=eta,
        retry=False,
        headers={"crier_target_id": target.id},
    )


def _unqueue(session: Session, target_id: int, token: str) -> None:
    session.execute(
        update(PostTarget)
        .where(
            and_(
                PostTarget.id == target_id,
                PostTarget.status == TargetStatus.QUEUED,
                PostTarget.dispatch_token == token,
            )
        )
        .values(status=TargetStatus.SCHEDULED, dispatch_token=None, queued_at=None)
    )
    session.commit()


def scheduled_targets_of(session: Session, target_ids: list[int]) -> list[PostTarget]:
    if not target_ids:
        return []
    return list(session.scalars(select(PostTarget).where(PostTarget.id.in_(target_ids))))

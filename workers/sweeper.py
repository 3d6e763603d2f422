"""The sweeper: a beat task that keeps PostgreSQL and the broker in agreement.

It enqueues targets entering the horizon, re-sends targets whose message was lost, and
recovers targets whose worker died mid-publish. Rows are taken with FOR UPDATE SKIP
LOCKED in bounded batches through the partial index on open targets, so two sweepers are
harmless and the cost follows the due rows, not the size of the table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import Row, and_, or_, select, update
from sqlalchemy.orm import Session

from app import metrics
from app.config import Settings
from app.db import Database, utcnow
from app.dispatch import Dispatch, DueTarget, mark_queued, send_dispatches
from app.models import PostTarget, PublishAttempt, TargetStatus

log = logging.getLogger("crier.sweeper")

BATCH_SIZE = 500


@dataclass
class SweepReport:
    entered_horizon: int = 0
    requeued_lost: int = 0
    recovered_dead: int = 0
    sent: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _due_rows(session: Session, status: str, condition: Any, order: Any) -> list[Row[Any]]:
    return list(
        session.execute(
            select(
                PostTarget.id,
                PostTarget.platform,
                PostTarget.next_attempt_at,
                PostTarget.dispatch_token,
            )
            .where(PostTarget.status == status, condition)
            .order_by(order)
            .limit(BATCH_SIZE)
            .with_for_update(skip_locked=True)
        ).all()
    )


def _due(rows: list[Row[Any]]) -> list[DueTarget]:
    return [DueTarget(row.id, row.platform, row.next_attempt_at) for row in rows]


def sweep_due_targets(db: Database, settings: Settings, celery: Celery) -> SweepReport:
    report = SweepReport()
    now = utcnow()
    horizon = now + timedelta(seconds=settings.enqueue_horizon)
    with db.session() as session:
        entering = _due_rows(
            session,
            TargetStatus.SCHEDULED,
            PostTarget.next_attempt_at <= horizon,
            PostTarget.next_attempt_at,
        )
        dispatches = mark_queued(session, _due(entering), TargetStatus.SCHEDULED)
        report.entered_horizon = len(dispatches)

        # Queued, due a while ago, not claimed since its last send: the message was
        # probably lost (Redis flushed). It is sent again with the same token, so if the
        # first copy was only slow, whichever arrives first wins and the other is a no-op,
        # and a backlogged queue is never starved by its own resends.
        grace = now - timedelta(seconds=settings.requeue_grace)
        lost = _due_rows(
            session,
            TargetStatus.QUEUED,
            and_(
                PostTarget.next_attempt_at < grace,
                or_(PostTarget.queued_at.is_(None), PostTarget.queued_at < grace),
            ),
            PostTarget.next_attempt_at,
        )
        resent = [Dispatch(DueTarget(r.id, r.platform, now), r.dispatch_token) for r in lost]
        if resent:
            session.execute(
                update(PostTarget)
                .where(PostTarget.id.in_([r.id for r in lost]))
                .values(queued_at=now)
            )
        report.requeued_lost = len(resent)

        # Publishing past its lease: the worker died. The next delivery reconciles first.
        dead = _due_rows(
            session,
            TargetStatus.PUBLISHING,
            PostTarget.lease_expires_at < now,
            PostTarget.lease_expires_at,
        )
        # A new token fences off the worker that may still be alive behind the lease.
        recovered = mark_queued(session, _due(dead), TargetStatus.PUBLISHING)
        for dispatch in recovered:
            session.add(
                PublishAttempt(
                    target_id=dispatch.target.id,
                    attempt_number=0,
                    started_at=now,
                    finished_at=now,
                    outcome="worker_lost",
                    error_code="worker_lost",
                    error_message="The worker stopped answering mid-publish; "
                    "the target will be reconciled with the platform before any resend.",
                )
            )
        report.recovered_dead = len(recovered)
        session.commit()
        # Lost and recovered targets are overdue: send them now, not at their old ETA.
        all_dispatches = (
            dispatches
            + resent
            + [Dispatch(DueTarget(d.target.id, d.target.platform, now), d.token) for d in recovered]
        )
        report.sent = send_dispatches(session, celery, all_dispatches)
    metrics.observe_sweep(report, settings.redis_url)  # issue 12: metrics
    if report.entered_horizon or report.requeued_lost or report.recovered_dead:
        log.info("sweep %s", report.as_dict())
    return report

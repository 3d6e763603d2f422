"""The sweeper: a beat task that keeps PostgreSQL and the broker in agreement.

Each run, from evidence rather than long timers:
- targets entering the horizon are enqueued;
- a worker whose heartbeat stopped is dead: its claims are recovered (reconciled before
  any resend) and the messages it held unclaimed (reserved, ETA) are sent again;
- a broker that lost its data (its epoch key is gone) gets every queued target again that
  no live worker holds;
- a queued target that is overdue, held by no live worker, while its queue is empty,
  lost its message and is sent again. A queue that is merely slow is left alone.
Rows are taken with FOR UPDATE SKIP LOCKED in bounded batches through the partial index
on open targets, so two sweepers are harmless and the cost follows the due rows.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import Row, and_, delete, or_, select, update
from sqlalchemy.orm import Session

from app import metrics
from app.config import Settings
from app.db import Database, utcnow
from app.dispatch import RETRY_HEAD_START, Dispatch, DueTarget, mark_queued, send_dispatches
from app.models import (
    PostTarget,
    PublishAttempt,
    ServiceState,
    TargetStatus,
    WorkerHeartbeat,
)
from workers.broker import BrokerProbe
from workers.preparation import send_due_preparations, send_prepare

log = logging.getLogger("crier.sweeper")

BATCH_SIZE = 500
SWEEP_STATE = "sweeper"


@dataclass
class SweepReport:
    entered_horizon: int = 0
    requeued_lost: int = 0
    recovered_dead: int = 0
    resent_held: int = 0
    resent_after_broker_loss: int = 0
    dead_workers: int = 0
    preparing: int = 0
    sent: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Liveness:
    """What the heartbeats say at the start of a sweep."""

    dead: list[WorkerHeartbeat]
    live_held: set[tuple[int, str]]
    # Silences and leases are judged as of the previous sweep, which found the database
    # answering (None on the first sweep: nothing is judged yet).
    seen_up_at: datetime | None


def _due_rows(
    session: Session, status: str, condition: Any, order: Any, limit: int = BATCH_SIZE
) -> list[Row[Any]]:
    return list(
        session.execute(
            select(
                PostTarget.id,
                PostTarget.platform,
                PostTarget.next_attempt_at,
                PostTarget.dispatch_token,
                PostTarget.irreversible_started_at,
            )
            .where(PostTarget.status == status, condition)
            .order_by(order)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def _due(rows: list[Row[Any]]) -> list[DueTarget]:
    return [DueTarget(row.id, row.platform, row.next_attempt_at) for row in rows]


def _resend_at(row: Row[Any], now: datetime) -> DueTarget:
    """Overdue targets go now; ones still ahead keep their instant."""
    return DueTarget(row.id, row.platform, max(row.next_attempt_at, now))


def _sweep_state(session: Session) -> ServiceState:
    """What the previous sweep saw; locked, so sweepers take turns at deciding."""
    state = session.get(ServiceState, SWEEP_STATE, with_for_update=True)
    if state is None:
        state = ServiceState(name=SWEEP_STATE, value={})
        session.add(state)
    return state


def _previous_sweep(state: ServiceState, now: datetime) -> datetime | None:
    raw = (state.value or {}).get("swept_at")
    state.value = {**(state.value or {}), "swept_at": now.isoformat()}
    return datetime.fromisoformat(raw) if raw else None


def _liveness(session: Session, state: ServiceState, settings: Settings, now: datetime) -> Liveness:
    previous = _previous_sweep(state, now)
    # A worker is dead when it was already silent for worker_timeout at the previous
    # sweep, which found the database answering: after an outage of PostgreSQL itself,
    # every worker gets one sweep's time to beat again before anyone is declared dead.
    seen_up_at = min(previous, now) if previous is not None else None
    cutoff = seen_up_at - timedelta(seconds=settings.worker_timeout) if seen_up_at else None
    dead: list[WorkerHeartbeat] = []
    live_held: set[tuple[int, str]] = set()
    for worker in session.scalars(select(WorkerHeartbeat).with_for_update(skip_locked=True)):
        if cutoff is not None and worker.last_seen_at < cutoff:
            dead.append(worker)
        else:
            live_held.update((int(t), str(token)) for t, token in worker.held or [])
    return Liveness(dead, live_held, seen_up_at)


def _recover_claims(
    session: Session, settings: Settings, liveness: Liveness, now: datetime, report: SweepReport
) -> list[Dispatch]:
    """Claims of dead owners, or whose lease ran out: a new token fences the old worker
    off, and the next delivery reconciles with the platform before any resend."""
    if liveness.seen_up_at is None:
        return []
    dead_owners = [w.owner for w in liveness.dead]
    conditions = [PostTarget.lease_expires_at < liveness.seen_up_at]
    if dead_owners:
        conditions.append(PostTarget.claim_owner.in_(dead_owners))
    rows = _due_rows(session, TargetStatus.PUBLISHING, or_(*conditions), PostTarget.id)
    dispatches = []
    for row in rows:
        token = str(uuid.uuid4())
        due = _resend_at(row, now)
        if row.irreversible_started_at is not None:
            # The dead worker's request may still be landing on the platform: give it
            # time before looking for the post, or the look would miss it and send again.
            # The look is made when the delivery is readied, its head start before the
            # due instant: so the instant is the grace's end plus that head start.
            landed = row.irreversible_started_at + timedelta(seconds=settings.inflight_grace)
            due = DueTarget(
                due.id,
                due.platform,
                max(due.due_at, landed + RETRY_HEAD_START),
                head_start=RETRY_HEAD_START,
            )
        changed = session.execute(
            update(PostTarget)
            .where(PostTarget.id == row.id, PostTarget.status == TargetStatus.PUBLISHING)
            .values(
                status=TargetStatus.QUEUED,
                dispatch_token=token,
                queued_at=now,
                next_attempt_at=due.due_at,
                lease_expires_at=None,
                claim_owner=None,
                worker_losses=PostTarget.worker_losses + 1,
            )
        ).rowcount
        if not changed:
            continue
        session.add(
            PublishAttempt(
                target_id=row.id,
                attempt_number=0,
                started_at=now,
                finished_at=now,
                outcome="worker_lost",
                error_code="worker_lost",
                error_message="The worker died mid-publish; the target will be "
                "reconciled with the platform before any resend.",
            )
        )
        dispatches.append(Dispatch(due, token))
    report.recovered_dead = len(dispatches)
    return dispatches


def _resend_held_by_dead(
    session: Session, liveness: Liveness, now: datetime, report: SweepReport
) -> list[Dispatch]:
    """Messages a dead worker received but never claimed (reserved, waiting for their
    ETA) would come back only after the broker's visibility timeout: send them now, with a
    new token, so the old copies are no-ops if they ever return."""
    held = {int(t): str(token) for w in liveness.dead for t, token in w.held or []}
    if not held:
        return []
    rows = session.execute(
        select(
            PostTarget.id,
            PostTarget.platform,
            PostTarget.next_attempt_at,
            PostTarget.dispatch_token,
        )
        .where(PostTarget.id.in_(list(held)), PostTarget.status == TargetStatus.QUEUED)
        .with_for_update(skip_locked=True)
    ).all()
    due = [
        _resend_at(r, now)
        for r in rows
        if r.dispatch_token == held[r.id] and (r.id, r.dispatch_token) not in liveness.live_held
    ]
    dispatches = mark_queued(session, due, TargetStatus.QUEUED)
    report.resent_held = len(dispatches)
    return dispatches


def _queued_not_held(
    session: Session, liveness: Liveness, condition: Any, limit: int
) -> list[Row[Any]]:
    rows = _due_rows(session, TargetStatus.QUEUED, condition, PostTarget.next_attempt_at, limit)
    return [r for r in rows if (r.id, r.dispatch_token) not in liveness.live_held]


def _resend_same_token(session: Session, rows: list[Row[Any]], now: datetime) -> list[Dispatch]:
    """Same token: if the first copy was only slow, whichever arrives first wins and the
    other is a no-op."""
    if rows:
        session.execute(
            update(PostTarget).where(PostTarget.id.in_([r.id for r in rows])).values(queued_at=now)
        )
    return [Dispatch(_resend_at(r, now), r.dispatch_token) for r in rows]


def sweep_due_targets(
    db: Database, settings: Settings, celery: Celery, broker: BrokerProbe | None = None
) -> SweepReport:
    report = SweepReport()
    broker = broker or BrokerProbe.for_celery(celery)
    now = utcnow()
    horizon = now + timedelta(seconds=settings.enqueue_horizon)
    with db.session() as session:
        state = _sweep_state(session)
        liveness = _liveness(session, state, settings, now)
        report.dead_workers = len(liveness.dead)
        entering = _due_rows(
            session,
            TargetStatus.SCHEDULED,
            PostTarget.next_attempt_at <= horizon,
            PostTarget.next_attempt_at,
        )
        dispatches = mark_queued(session, _due(entering), TargetStatus.SCHEDULED)
        report.entered_horizon = len(dispatches)
        preparations = send_due_preparations(
            session, now, [w.owner for w in liveness.dead], BATCH_SIZE
        )
        report.preparing = len(preparations)
        dispatches += _recover_claims(session, settings, liveness, now, report)
        dispatches += _resend_held_by_dead(session, liveness, now, report)
        if liveness.dead:
            session.execute(
                delete(WorkerHeartbeat).where(
                    WorkerHeartbeat.owner.in_([w.owner for w in liveness.dead])
                )
            )

        lost_data, epoch = broker.lost_its_data(state.value.get("broker_epoch"))
        state.value = {**state.value, "broker_epoch": epoch}
        if lost_data:
            broker.restore_bindings(celery)
            # Everything that sat in the broker is gone: every queued target no live
            # worker holds in memory is sent again, at once, whatever its age.
            already = [d.target.id for d in dispatches] or [0]
            lost = _queued_not_held(session, liveness, PostTarget.id.not_in(already), 100_000)
            resent = _resend_same_token(session, lost, now)
            report.resent_after_broker_loss = len(resent)
        else:
            # Overdue, not claimed since its last send, held by no live worker, and its
            # queue is empty: the message is nowhere. A non-empty queue may still hold it.
            grace = now - timedelta(seconds=settings.requeue_grace)
            overdue = _queued_not_held(
                session,
                liveness,
                and_(
                    PostTarget.next_attempt_at < grace,
                    or_(PostTarget.queued_at.is_(None), PostTarget.queued_at < grace),
                ),
                BATCH_SIZE,
            )
            empty = broker.empty_queues({r.platform for r in overdue})
            resent = _resend_same_token(session, [r for r in overdue if r.platform in empty], now)
            report.requeued_lost = len(resent)
        session.commit()
        report.sent = send_dispatches(session, celery, dispatches + resent)
        for target_id, platform, token in preparations:
            try:
                send_prepare(celery, target_id, platform, token)
            except Exception as exc:  # left pending: sent again after PENDING_TIMEOUT
                log.warning("prepare message not sent target_id=%s: %s", target_id, exc)
                break
    metrics.observe_sweep(report, settings.redis_url)
    if any(v for k, v in report.as_dict().items() if k != "sent"):
        log.info("sweep %s", " ".join(f"{k}={v}" for k, v in report.as_dict().items()))
    return report

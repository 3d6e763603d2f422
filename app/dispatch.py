"""Handing targets to the broker, always after the transaction that made them has committed.

Each enqueue writes a fresh dispatch token on the target and the message carries it; the
worker's claim matches on it, so duplicate, stale and cancelled messages are no-ops. When
the broker cannot be reached the target goes back to `scheduled` and the sweeper retries.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.messages import Owner, publish_message_options, target_owners
from app.models import PostTarget, TargetStatus
from workers.celery_app import PUBLISH_TASK, publish_queue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueTarget:
    id: int
    platform: str
    due_at: datetime


@dataclass(frozen=True)
class Dispatch:
    target: DueTarget
    token: str


def due_within_horizon(targets: list[PostTarget], horizon_seconds: int) -> list[DueTarget]:
    limit = utcnow() + timedelta(seconds=horizon_seconds)
    return [
        DueTarget(t.id, t.platform, t.next_attempt_at)
        for t in targets
        if t.status == TargetStatus.SCHEDULED and t.next_attempt_at <= limit
    ]


def mark_queued(session: Session, due: list[DueTarget], from_status: str) -> list[Dispatch]:
    """Give each target a new token and status `queued`, in the caller's transaction."""
    dispatches = []
    now = utcnow()
    for target in due:
        token = str(uuid.uuid4())
        changed = session.execute(
            update(PostTarget)
            .where(PostTarget.id == target.id, PostTarget.status == from_status)
            .values(
                status=TargetStatus.QUEUED,
                dispatch_token=token,
                queued_at=now,
                lease_expires_at=None,
            )
        ).rowcount
        if changed:
            dispatches.append(Dispatch(target, token))
    return dispatches


class _BrokerBreaker:
    """After a failed send, skip the broker for a few seconds: while Redis is down every
    request would otherwise wait out the connection timeout before falling back."""

    pause_seconds = 5.0

    def __init__(self) -> None:
        self.open_until = 0.0

    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self) -> None:
        self.open_until = time.monotonic() + self.pause_seconds


_breakers: dict[str, _BrokerBreaker] = {}


def broker_breaker(celery: Celery) -> _BrokerBreaker:
    return _breakers.setdefault(str(celery.conf.broker_url), _BrokerBreaker())


def send_dispatches(session: Session, celery: Celery, dispatches: list[Dispatch]) -> int:
    """Send committed dispatches; on a broker error put the rest back for the sweeper."""
    sent = 0
    breaker = broker_breaker(celery)
    owners = target_owners([d.target.id for d in dispatches]) if dispatches else {}
    for index, dispatch in enumerate(dispatches):
        try:
            if breaker.is_open():
                raise ConnectionError("broker marked unavailable after a recent failure")
            owner = owners.get(dispatch.target.id, (None, None))
            send_publish(celery, dispatch.target, dispatch.token, owner)
            sent += 1
        except Exception as exc:  # kombu raises many kinds; all mean "not sent"
            if not breaker.is_open():
                breaker.trip()
            log.warning(
                "broker unavailable, %d targets left for the sweeper: %s",
                len(dispatches) - index,
                exc,
            )
            for unsent in dispatches[index:]:
                unqueue(session, unsent)
            session.commit()
            break
    return sent


def enqueue_targets(session: Session, celery: Celery, due: list[DueTarget]) -> int:
    """Queue targets created by a committed transaction; returns how many were sent."""
    dispatches = mark_queued(session, due, TargetStatus.SCHEDULED)
    session.commit()
    return send_dispatches(session, celery, dispatches)


# Messages reach a worker this long before their instant: the worker readies the delivery
# (claim, credentials, request, quota) and fires it at the instant on its firing line
# (workers.firing), so a burst needs no Celery round trip at the instant itself.
ETA_HEAD_START = timedelta(seconds=2)


def send_publish(celery: Celery, target: DueTarget, token: str, owner: Owner | None = None) -> None:
    eta = target.due_at - ETA_HEAD_START
    eta = eta if eta > utcnow() else None
    celery.send_task(
        PUBLISH_TASK,
        args=[target.id, token],
        queue=publish_queue(target.platform),
        retry=False,
        # issue 12: Flower's name and args (never the token), an ETA the broker can honour
        **publish_message_options(celery, target.id, target.platform, eta, owner),
    )


def unqueue(session: Session, dispatch: Dispatch) -> None:
    session.execute(
        update(PostTarget)
        .where(
            PostTarget.id == dispatch.target.id,
            PostTarget.status == TargetStatus.QUEUED,
            PostTarget.dispatch_token == dispatch.token,
        )
        .values(status=TargetStatus.SCHEDULED, dispatch_token=None, queued_at=None)
    )

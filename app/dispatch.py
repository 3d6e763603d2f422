"""Handing targets to the broker, always after the transaction that made them has committed.

Each enqueue writes a fresh dispatch token on the target and the message carries it; the
worker's claim matches on it, so duplicate, stale and cancelled messages are no-ops. When
the broker cannot be reached the target goes back to `scheduled` and the sweeper retries.
"""

from __future__ import annotations

import logging
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import Celery
from kombu import Producer
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import Integer, String, bindparam, column, update, values
from sqlalchemy.orm import Session

from app.broker_messages import (
    Owner,
    batch_label,
    publish_label,
    publish_message_options,
    target_owners,
)
from app.db import utcnow
from app.models import NewTarget, PostTarget, TargetStatus
from app.queues import PUBLISH_BATCH_TASK, PUBLISH_TASK, publish_queue
from app.redis_publish import OutgoingPublish, redis_publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DueTarget:
    id: int
    platform: str
    due_at: datetime
    # Flower's label (account, post), when the caller has them at hand; else looked up.
    account_id: int | None = None
    post_id: object | None = None
    # How long before due_at the worker gets the message; ETA_HEAD_START unless set.
    head_start: timedelta | None = None

    @property
    def owner(self) -> Owner | None:
        return None if self.account_id is None else (self.account_id, self.post_id)

    @classmethod
    def of(
        cls,
        target: PostTarget | NewTarget,
        due_at: datetime | None = None,
        head_start: timedelta | None = None,
    ) -> DueTarget:
        """A loaded target, labelled, due at `due_at` (its next attempt unless given)."""
        return cls(
            target.id,
            target.platform,
            due_at or target.next_attempt_at,
            target.account_id,
            target.post_id,
            head_start,
        )


@dataclass(frozen=True)
class Dispatch:
    target: DueTarget
    token: str


def due_within_horizon(targets: list[PostTarget], horizon_seconds: int) -> list[DueTarget]:
    limit = utcnow() + timedelta(seconds=horizon_seconds)
    return [
        DueTarget.of(t)
        for t in targets
        if t.status == TargetStatus.SCHEDULED and t.next_attempt_at <= limit
    ]


def queue_new_targets(targets: list[NewTarget], horizon_seconds: int) -> None:
    """New targets due within the horizon are written `queued` with their token in the
    transaction that creates them, so intake costs one write per target, not an insert
    and an update; their messages go out once it commits (`new_dispatches`)."""
    limit = utcnow() + timedelta(seconds=horizon_seconds)
    now = utcnow()
    for target in targets:
        if target.status == TargetStatus.SCHEDULED and target.next_attempt_at <= limit:
            target.status = TargetStatus.QUEUED
            target.dispatch_token = str(uuid.uuid4())
            target.queued_at = now


def new_dispatches(targets: list[NewTarget]) -> list[Dispatch]:
    """The dispatches `queue_new_targets` wrote, once the rows have their ids."""
    return [
        Dispatch(DueTarget.of(t), t.dispatch_token)
        for t in targets
        if t.status == TargetStatus.QUEUED and t.dispatch_token
    ]


def mark_queued(session: Session, due: list[DueTarget], from_status: str) -> list[Dispatch]:
    """Give each target a new token and status `queued`, in the caller's transaction:
    one UPDATE for the batch, which skips a target whose status moved meanwhile."""
    if not due:
        return []
    tokens = {target.id: str(uuid.uuid4()) for target in due}
    # A CTE, not `(VALUES …) AS t (id, token)`: SQLite (the embedded default) has no
    # column list on a derived table.
    fresh = (
        values(column("id", Integer), column("token", String), name="fresh_tokens")
        .data(list(tokens.items()))
        .cte("fresh_tokens")
    )
    changed = set(
        session.execute(
            update(PostTarget)
            .where(PostTarget.id == fresh.c.id, PostTarget.status == bindparam("from_status"))
            .values(
                status=TargetStatus.QUEUED,
                dispatch_token=fresh.c.token,
                queued_at=utcnow(),
                lease_expires_at=None,
            )
            .returning(PostTarget.id)
            .execution_options(synchronize_session=False),
            {"from_status": from_status},
        ).scalars()
    )
    _expire_changed(session, changed)
    return [Dispatch(target, tokens[target.id]) for target in due if target.id in changed]


def _expire_changed(session: Session, target_ids: set[int]) -> None:
    """Loaded targets the batch UPDATE changed are read again on next access."""
    if not target_ids:
        return
    for obj in list(session.identity_map.values()):
        if isinstance(obj, PostTarget) and obj.id in target_ids:
            session.expire(obj, ["status", "dispatch_token", "queued_at", "lease_expires_at"])


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


# One per broker URL, whichever app sends there; each app's found once.
_breakers: dict[str, _BrokerBreaker] = {}
_app_breakers: weakref.WeakKeyDictionary[Celery, _BrokerBreaker] = weakref.WeakKeyDictionary()


def broker_breaker(celery: Celery) -> _BrokerBreaker:
    try:
        return _app_breakers[celery]
    except KeyError:
        pass
    breaker = _breakers.setdefault(str(celery.conf.broker_url), _BrokerBreaker())
    _app_breakers[celery] = breaker
    return breaker


def broker_unreachable(celery: Celery, exc: BaseException) -> bool:
    """Whether a failed send says the broker cannot be reached, which is worth skipping
    it for a while; a message refused on its own (Celery rejecting its delay, a bug) says
    nothing about the broker, and must not send everyone else's to the sweeper."""
    if isinstance(exc, OSError | KombuOperationalError):
        return True
    try:
        errors = celery.connection_for_write().connection_errors
    except Exception:  # cannot even tell: treat as down
        return True
    return isinstance(exc, errors)


# Commands per round trip when the broker takes a pipeline (Redis): each message is two,
# itself and its task-sent event for Flower.
SEND_BATCH_COMMANDS = 1000


# Targets of one queue due now, sent together: one message for up to this many. A worker
# claims them in one transaction, and the broker carries one message, not fifty.
BATCH_MESSAGE_SIZE = 50


def send_dispatches(session: Session, celery: Celery, dispatches: list[Dispatch]) -> int:
    """Send committed dispatches, in pipelined batches where the broker allows (Redis: a
    bulk of 50 posts is one round trip, not a hundred); targets of one queue that are due
    now go in messages of up to BATCH_MESSAGE_SIZE. On a broker error put back for the
    sweeper every one that may not have gone. One that went after all is then stale (its
    token is gone) and sent again by the sweeper: late, never lost or doubled."""
    if not dispatches:
        return 0
    breaker = broker_breaker(celery)
    unlabelled = [d.target.id for d in dispatches if d.target.owner is None]
    owners = target_owners(unlabelled) if unlabelled else {}
    messages = _messages(dispatches)
    ordered = [dispatch for message in messages for dispatch in message]
    published = 0  # sent one by one (no batching): known to be on the broker
    try:
        if breaker.is_open():
            raise ConnectionError("broker marked unavailable after a recent failure")
        publisher = redis_publisher(celery)
        if publisher is not None:
            # Each message is two commands, itself and its task-sent event.
            per_round_trip = SEND_BATCH_COMMANDS // 2
            for start in range(0, len(messages), per_round_trip):
                chunk = messages[start : start + per_round_trip]
                publisher.send([_redis_publish(message, owners) for message in chunk])
                published += sum(len(message) for message in chunk)
            return len(dispatches)
        with celery.producer_or_acquire() as producer, producer.batch(SEND_BATCH_COMMANDS):
            batched = producer.supports_batch_publish
            for message in messages:
                if len(message) > 1:
                    send_publish_batch(celery, message, producer=producer)
                else:
                    [dispatch] = message
                    owner = dispatch.target.owner or owners.get(dispatch.target.id, (None, None))
                    send_publish(celery, dispatch.target, dispatch.token, owner, producer=producer)
                published += 0 if batched else len(message)
    except Exception as exc:  # kombu raises many kinds; all mean "maybe not sent"
        unreachable = broker_unreachable(celery, exc)
        if unreachable and not breaker.is_open():
            breaker.trip()
        unsent = ordered[published:]
        log.warning(
            "%s, %d targets left for the sweeper: %s",
            "broker unavailable" if unreachable else "message refused",
            len(unsent),
            exc,
        )
        for dispatch in unsent:
            unqueue(session, dispatch)
        session.commit()
        return published
    return len(dispatches)


def _redis_publish(message: list[Dispatch], owners: dict[int, Owner]) -> OutgoingPublish:
    """What `send_publish` or `send_publish_batch` would send, for a Redis broker."""
    platform = message[0].target.platform
    queue = publish_queue(platform)
    if len(message) > 1:
        shadow, argsrepr = batch_label(platform, [d.target.id for d in message])
        args = [[[d.target.id, d.token] for d in message]]
        return OutgoingPublish(PUBLISH_BATCH_TASK, args, queue, shadow, argsrepr)
    [dispatch] = message
    target = dispatch.target
    account_id, post_id = target.owner or owners.get(target.id, (None, None))
    shadow, argsrepr = publish_label(platform, target.id, account_id, post_id)
    eta = _eta(target, utcnow())
    return OutgoingPublish(PUBLISH_TASK, [target.id, dispatch.token], queue, shadow, argsrepr, eta)


def _messages(dispatches: list[Dispatch]) -> list[list[Dispatch]]:
    """One message per dispatch with an instant ahead (its ETA); those due now grouped by
    queue, up to BATCH_MESSAGE_SIZE a message."""
    now = utcnow()
    messages: list[list[Dispatch]] = []
    due_now: dict[str, list[Dispatch]] = {}
    for dispatch in dispatches:
        if _eta(dispatch.target, now) is None:
            due_now.setdefault(publish_queue(dispatch.target.platform), []).append(dispatch)
        else:
            messages.append([dispatch])
    for group in due_now.values():
        messages += [
            group[i : i + BATCH_MESSAGE_SIZE] for i in range(0, len(group), BATCH_MESSAGE_SIZE)
        ]
    return messages


def enqueue_targets(session: Session, celery: Celery, due: list[DueTarget]) -> int:
    """Queue targets created by a committed transaction; returns how many were sent."""
    dispatches = mark_queued(session, due, TargetStatus.SCHEDULED)
    session.commit()
    return send_dispatches(session, celery, dispatches)


# Messages reach a worker this long before their instant: the worker readies the delivery
# (claim, credentials, request, quota) and fires it at the instant on its firing line
# (workers.firing), so a burst needs no Celery round trip at the instant itself. Five
# seconds let one worker process ready a burst of 1,000 (make bench); a readied target
# can no longer be edited or cancelled, so this is also how long before its instant a
# post is locked.
ETA_HEAD_START = timedelta(seconds=5)
# A retry is one target, readied in milliseconds: it need not lock its post that long.
RETRY_HEAD_START = timedelta(seconds=1)


def _eta(target: DueTarget, now: datetime) -> datetime | None:
    eta = target.due_at - (target.head_start or ETA_HEAD_START)
    return eta if eta > now else None


def send_publish(
    celery: Celery,
    target: DueTarget,
    token: str,
    owner: Owner | None = None,
    producer: Producer | None = None,
) -> None:
    celery.send_task(
        PUBLISH_TASK,
        args=[target.id, token],
        queue=publish_queue(target.platform),
        retry=False,
        producer=producer,
        # Flower's name and args (never the token), an ETA the broker can honour
        **publish_message_options(
            celery, target.id, target.platform, _eta(target, utcnow()), owner
        ),
    )


def send_publish_batch(
    celery: Celery, dispatches: list[Dispatch], producer: Producer | None = None
) -> None:
    """One message for many targets of one queue, all due now."""
    platform = dispatches[0].target.platform
    shadow, argsrepr = batch_label(platform, [d.target.id for d in dispatches])
    celery.send_task(
        PUBLISH_BATCH_TASK,
        args=[[[d.target.id, d.token] for d in dispatches]],
        queue=publish_queue(platform),
        retry=False,
        producer=producer,
        shadow=shadow,
        argsrepr=argsrepr,
        kwargsrepr="{}",
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

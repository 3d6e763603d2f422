"""Finishing: outcomes written in batches (one transaction, the posts locked in id order,
each target only if its token still holds), the next message, the posts' statuses and
their webhook events; and the hand-back of deliveries readied but never fired.

Separate because these are the writes that race the API and the sweeper: the locking
order and the deadlock retry are read together here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from psycopg.errors import DeadlockDetected, SerializationFailure
from sqlalchemy import func, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, selectinload

from app import metrics
from app.analytics_schedule import first_collection
from app.db import postgresql_driver, utcnow
from app.dispatch import RETRY_HEAD_START, Dispatch, DueTarget, send_dispatches
from app.models import Post, PostTarget, PublishAttempt, TargetStatus
from app.services.post_rows import insert_attempts, target_driver_value
from app.services.posts import derive_post_status, refresh_post_status
from app.services.webhooks import endpoints_memo, record_target_events
from workers.pipeline.context import (
    Decision,
    Delivery,
    PipelineDeps,
    Requeue,
    log,
    log_event,
)

FinishItem = tuple[PostTarget, str, "Requeue | None", "Decision | None"]


# A batch that lost a deadlock is run again: its transaction left nothing behind.
BATCH_TRIES = 3
T = TypeVar("T")


def record_outcomes(
    deps: PipelineDeps, outcomes: list[tuple[Delivery, Decision | None]]
) -> list[str]:
    """Write the outcomes of fired deliveries in one transaction; returns each outcome."""
    items = []
    results = []
    for delivery, decision in outcomes:
        if decision is None:
            results.append("lost_claim")
            continue
        target, context = delivery.target, delivery.context
        decision.handle = context.pending_handle
        if context.premarked and not context.marked and target.irreversible_started_at is None:
            # Marked ahead, but the adapter never reached the call: nothing went out.
            decision.clear_irreversible = True
        decision.attempt = PublishAttempt(
            target_id=target.id,
            attempt_number=target.attempts + (1 if decision.counts_attempt else 0),
            task_id=delivery.task_id,
            started_at=delivery.started_at or utcnow(),
            finished_at=utcnow(),
            outcome=decision.outcome,
            http_status=decision.http_status,
            latency_ms=int((time.monotonic() - (delivery.started or time.monotonic())) * 1000),
            error_code=decision.error_code,
            error_message=decision.error_message,
            wait_seconds=decision.wait_seconds,
            details=decision.details or None,
        )
        items.append((target, delivery.token, decision.next, decision))
        results.append(decision.outcome)
    written: set[int] = set()
    try:
        if items:
            written = finish_retrying(deps, items)
    finally:
        for delivery, _ in outcomes:
            deps.claims.released(delivery.target.id)
    for n, (delivery, decision) in enumerate(outcomes):
        if decision is None:
            continue
        if delivery.target.id not in written:
            # Handed on while this delivery waited for its answer (a worker cut off from
            # the database, declared dead): its outcome was refused, so it reports none.
            results[n] = "lost_claim"
            metrics.observe_publish(delivery.target.platform, "lost_claim")
            continue
        outcome = results[n]
        log_event(
            f"publish.{outcome}",
            **delivery.fields,
            error_code=decision.error_code,
            wait_s=round(decision.wait_seconds, 3) if decision.wait_seconds else None,
            latency_ms=decision.attempt.latency_ms if decision.attempt else None,
        )
        metrics.observe_publish(
            delivery.target.platform,
            outcome,
            # Lateness at the irreversible call, against the instant it was due.
            metrics.seconds_between(delivery.target.next_attempt_at, delivery.context.marked_at),
            time.monotonic() - (delivery.started or time.monotonic()),
        )
    return results


def hand_back(deps: PipelineDeps, deliveries: list[Delivery]) -> None:
    """Deliveries readied but not fired when their worker stops: unclaimed, with a new
    token, and sent again for their instant."""
    now = utcnow()
    dispatches = []
    with deps.db.session() as session:
        for delivery in deliveries:
            target = delivery.target
            token = str(uuid.uuid4())
            changed = session.execute(
                update(PostTarget)
                .where(
                    PostTarget.id == target.id,
                    PostTarget.dispatch_token == delivery.token,
                    PostTarget.status == TargetStatus.PUBLISHING,
                )
                .values(
                    status=TargetStatus.QUEUED,
                    dispatch_token=token,
                    queued_at=now,
                    claim_owner=None,
                    lease_expires_at=None,
                    # Marked ahead only: the call was never made.
                    irreversible_started_at=target.irreversible_started_at,
                )
            ).rowcount
            if changed:
                dispatches.append(Dispatch(DueTarget.of(target, delivery.due), token))
            deps.claims.released(target.id)
        session.commit()
        send_dispatches(session, deps.celery, dispatches)
    log_event("publish.handed_back", count=len(dispatches))


def again_after_deadlock(run: Callable[[], T], batch: str) -> T:
    for attempt in range(1, BATCH_TRIES + 1):
        try:
            return run()
        except OperationalError as exc:
            if attempt == BATCH_TRIES or not isinstance(
                exc.orig, DeadlockDetected | SerializationFailure
            ):
                raise
            log.warning("%s lost a deadlock, running it again", batch)
    raise AssertionError("unreachable")


def finish_retrying(deps: PipelineDeps, items: list[FinishItem]) -> set[int]:
    def write() -> set[int]:
        with deps.db.session() as session:
            return _finish(deps, session, items)

    return again_after_deadlock(write, f"outcome batch of {len(items)}")


def _finish(deps: PipelineDeps, session: Session, items: list[FinishItem]) -> set[int]:
    """One transaction for many targets: their posts locked (in id order, as the API
    locks them), each target updated only if its token still holds, the attempt rows,
    and the posts' statuses. Returns the targets written; the others were handed on."""
    session.rollback()
    post_ids = sorted({target.post_id for target, *_ in items})
    session.execute(
        select(Post.id).where(Post.id.in_(post_ids)).order_by(Post.id).with_for_update()
    )
    now = utcnow()
    dispatches: list[Dispatch] = []
    attempts: list[PublishAttempt] = []
    ended: dict[uuid.UUID, list[int]] = {}
    written: set[int] = set()
    # Targets in id order, as every other batch locks them.
    ordered = sorted(items, key=lambda item: item[0].id)
    planned = [
        _outcome_values(deps, target, requeue, decision, now)
        for target, _, requeue, decision in ordered
    ]
    changed_ids = _update_targets(
        session,
        [
            (
                target.id,
                token,
                TargetStatus.QUEUED if decision is None else TargetStatus.PUBLISHING,
                values,
            )
            for (target, token, _, decision), (values, _) in zip(ordered, planned, strict=True)
        ],
    )
    for (target, _, _, decision), (_, dispatch) in zip(ordered, planned, strict=True):
        if target.id not in changed_ids:
            refused = decision.outcome if decision is not None else "requeue"
            log_event("publish.lost_claim", target_id=target.id, refused=refused)
            continue
        written.add(target.id)
        if dispatch is not None:
            dispatches.append(dispatch)
        if decision is not None and decision.attempt is not None:
            attempts.append(decision.attempt)
        if decision is not None and decision.status is not None:
            ended.setdefault(target.post_id, []).append(target.id)
    insert_attempts(session, attempts)
    _refresh_posts(session, post_ids, ended, now)
    session.commit()
    if dispatches:
        send_dispatches(session, deps.celery, dispatches)
    return written


@dataclass
class _TargetState:
    status: str
    attempts: int
    platform_post_id: str | None


@dataclass
class _PostState:
    publish_now: bool
    targets: list[_TargetState] = field(default_factory=list)


# Each post's targets, and whether its organisation has an active webhook endpoint.
_POST_STATES_SQL = (
    "SELECT p.id, p.publish_now, EXISTS (SELECT 1 FROM webhook_endpoints e"
    " WHERE e.organisation_id = p.organisation_id AND e.is_active),"
    " t.status, t.attempts, t.platform_post_id"
    " FROM posts p JOIN post_targets t ON t.post_id = p.id WHERE p.id = ANY(%s)"
)
# A post's status derived again; its first publish time, from its published targets'.
_POST_STATUS_SQL = (
    "UPDATE posts SET status = %s, updated_at = %s, published_at = COALESCE(published_at,"
    " (SELECT min(COALESCE(t.published_at, %s)) FROM post_targets t"
    " WHERE t.post_id = posts.id AND t.status = %s)) WHERE id = %s"
)


def _refresh_posts(
    session: Session, post_ids: list[uuid.UUID], ended: dict[uuid.UUID, list[int]], now: datetime
) -> None:
    """The posts' statuses derived again under their locks, with the webhook events of
    the targets and posts that reached an end state. On PostgreSQL a post whose
    organisation has no active endpoint (no event to write) is read and written as rows
    through the driver: loading every post and its targets into the ORM took 7 % of a
    publishing worker's CPU publishing posts sent now. The others, and every post
    elsewhere, go through the ORM (`refresh_post_status`)."""
    driver = postgresql_driver(session)
    heard = post_ids
    if driver is not None:
        states: dict[uuid.UUID, _PostState] = {}
        heard_ids: set[uuid.UUID] = set()
        rows = driver.execute(_POST_STATES_SQL, (post_ids,)).fetchall()
        for post_id, publish_now, has_endpoints, *target in rows:
            if has_endpoints:
                heard_ids.add(post_id)
            else:
                states.setdefault(post_id, _PostState(publish_now)).targets.append(
                    _TargetState(*target)
                )
        if states:
            published = TargetStatus.PUBLISHED.value
            with driver.cursor() as cursor:
                cursor.executemany(
                    _POST_STATUS_SQL,
                    [
                        (str(derive_post_status(state)), now, now, published, post_id)
                        for post_id, state in sorted(states.items())
                    ],
                )
        heard = sorted(heard_ids)
    if not heard:
        return
    posts = session.scalars(
        select(Post)
        .where(Post.id.in_(heard))
        .options(selectinload(Post.targets))
        .execution_options(populate_existing=True)
    ).all()
    with endpoints_memo(session):
        for post in posts:
            # Webhooks: each account's outcome event joins this transaction's outbox.
            if post.id in ended:
                record_target_events(session, post, ended[post.id])
            refresh_post_status(post)


class _Increment:
    """SET column = column + 1."""


class _FirstSet:
    """SET column = COALESCE(column, value): the first value written stays."""

    def __init__(self, value: Any) -> None:
        self.value = value


ONE_MORE = _Increment()
TargetUpdate = tuple[int, str, TargetStatus, dict[str, Any]]


def _update_targets(session: Session, updates: list[TargetUpdate]) -> set[int]:
    """Each (target id, token, from status, values) applied, in the order given, only if
    the target still holds that token and status; returns the ids changed. On PostgreSQL
    each run of UPDATEs of one shape goes as one `executemany` through the driver,
    pipelined: one round trip, where building and running a Core statement a target
    took a quarter of a publishing worker's CPU publishing posts sent now. Elsewhere, one
    Core UPDATE a target."""
    driver = postgresql_driver(session)
    if driver is None:
        return {
            target_id
            for target_id, token, from_status, values in updates
            if session.execute(
                update(PostTarget)
                .where(
                    PostTarget.id == target_id,
                    PostTarget.dispatch_token == token,
                    PostTarget.status == from_status,
                )
                .values(**{key: _core_value(key, value) for key, value in values.items()})
                # The targets were loaded by other sessions: nothing here to keep in step.
                .execution_options(synchronize_session=False)
            ).rowcount
        }
    # Runs of one shape, in the order given (id order: the order every batch locks in).
    runs: list[tuple[tuple[tuple[str, str], ...], list[list[Any]]]] = []
    for target_id, token, from_status, values in updates:
        shape = tuple((key, _kind(value)) for key, value in values.items())
        params = [
            target_driver_value(key, value.value if isinstance(value, _FirstSet) else value)
            for key, value in values.items()
            if not isinstance(value, _Increment)
        ]
        if not runs or runs[-1][0] != shape:
            runs.append((shape, []))
        runs[-1][1].append([*params, target_id, token, from_status.value])
    changed: set[int] = set()
    for shape, rows in runs:
        with driver.cursor() as cursor:
            cursor.executemany(_update_sql(shape), rows, returning=True)
            while True:
                changed.update(row[0] for row in cursor.fetchall())
                if not cursor.nextset():
                    break
    return changed


def _kind(value: Any) -> str:
    if isinstance(value, _Increment):
        return "increment"
    return "first" if isinstance(value, _FirstSet) else "set"


def _core_value(key: str, value: Any) -> Any:
    if isinstance(value, _Increment):
        return getattr(PostTarget, key) + 1
    if isinstance(value, _FirstSet):
        return func.coalesce(getattr(PostTarget, key), value.value)
    return value


@lru_cache(maxsize=64)
def _update_sql(shape: tuple[tuple[str, str], ...]) -> str:
    sets = {
        "increment": "{0} = {0} + 1",
        "first": "{0} = COALESCE({0}, %s)",
        "set": "{0} = %s",
    }
    assignments = ", ".join(sets[kind].format(key) for key, kind in shape)
    return (
        f"UPDATE post_targets SET {assignments} WHERE id = %s"
        " AND dispatch_token IS NOT DISTINCT FROM %s AND status = %s RETURNING id"
    )


def _outcome_values(
    deps: PipelineDeps,
    target: PostTarget,
    requeue: Requeue | None,
    decision: Decision | None,
    now: datetime,
) -> tuple[dict[str, Any], Dispatch | None]:
    values: dict[str, Any] = {"lease_expires_at": None, "claim_owner": None}
    dispatch = None
    if decision is not None:
        if decision.counts_attempt:
            values["attempts"] = ONE_MORE
        if decision.clear_irreversible:
            values["irreversible_started_at"] = None
        values["error_code"] = decision.error_code
        values["error_message"] = decision.error_message
        if decision.handle is not None:
            values["platform_handle"] = decision.handle
    if decision is not None and decision.status is not None:
        values["status"] = decision.status
        values["dispatch_token"] = None
        if decision.result is not None:
            values.update(
                platform_post_id=decision.result.platform_post_id,
                url=decision.result.url,
                # A thread's post went live (and was recorded) before its items.
                published_at=_FirstSet(now),
                # Analytics: its platform's figures are first read this long after
                # (never, where the platform has no collector).
                next_metrics_at=first_collection(now, deps.settings.metrics_schedule)
                if deps.adapter_for(target.platform).collects_metrics
                else None,
                error_code=None,
                error_message=None,
            )
    elif requeue is not None:
        horizon = now + timedelta(seconds=deps.settings.enqueue_horizon)
        values["next_attempt_at"] = requeue.at
        if requeue.at <= horizon:
            new_token = str(uuid.uuid4())
            values.update(status=TargetStatus.QUEUED, dispatch_token=new_token, queued_at=now)
            due = DueTarget.of(target, requeue.at, head_start=RETRY_HEAD_START)
            dispatch = Dispatch(due, new_token)
        else:
            # Long waits go back to PostgreSQL; the sweeper enqueues them when due.
            values.update(status=TargetStatus.SCHEDULED, dispatch_token=None, queued_at=None)
    return values, dispatch

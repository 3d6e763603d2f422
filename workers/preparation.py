"""Prepare ahead: the steps that make nothing public, done before the instant.

From a target's `prepare_due_at` (its instant less a window per media kind) the sweeper
sends a prepare message. The worker runs the adapter's own `publish()` with a context that
stops it just before the irreversible request (`PreparingContext`), saving every handle on
the way: uploads, containers, the platform's processing. At the instant the publish
resumes from those handles, so only the irreversible call is left.

A preparation is fenced by its own token: an edit, a cancel or the publish itself clears
it, and whatever the overtaken preparation still writes changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, joinedload

from app.db import utcnow
from app.dispatch import ETA_HEAD_START
from app.models import DiscardedHandle, PostTarget, PrepareState, TargetStatus
from app.queues import PREPARE_TASK, publish_queue
from app.services.posts import PREPARE_MIN_LEAD
from workers.adapters.base import Outcome, PlatformError, PreparingContext, ReadyToPublish
from workers.pipeline import PipelineDeps, build_request, log_event
from workers.retry import retry_policy
from workers.tokens import account_credentials

log = logging.getLogger("crier.preparation")

OPEN = (TargetStatus.SCHEDULED, TargetStatus.QUEUED)
# A prepare message unanswered this long was lost (a flushed broker): it is sent again.
PENDING_TIMEOUT = timedelta(seconds=60)
# Too close to the instant, the publish does the whole flow itself: a preparation would
# only race it.
MIN_LEAD = PREPARE_MIN_LEAD


class PreparationOvertaken(Exception):
    """An edit, a cancel or the publish itself took the target over."""


class PreparationContext(PreparingContext):
    """Saves each handle at once, fenced by the preparation's token."""

    def __init__(self, deps: PipelineDeps, target_id: int, token: str) -> None:
        super().__init__()
        self.deps = deps
        self.target_id = target_id
        self.token = token

    def save_handle(self, handle: dict[str, Any]) -> None:
        super().save_handle(handle)
        if not _write(self.deps, self.target_id, self.token, platform_handle=dict(handle)):
            raise PreparationOvertaken()


def _write(deps: PipelineDeps, target_id: int, token: str, **values: Any) -> bool:
    with deps.db.session() as session:
        changed = session.execute(
            update(PostTarget)
            .where(
                PostTarget.id == target_id,
                PostTarget.prepare_token == token,
                PostTarget.status.in_(OPEN),
            )
            .values(**values)
        ).rowcount
        session.commit()
    return bool(changed)


def prepare_target(
    deps: PipelineDeps, target_id: int, token: str, task_id: str | None = None
) -> str:
    """Run one preparation; returns what happened (for logs and tests)."""
    fields = {"target_id": target_id, "task_id": task_id}
    with deps.db.session() as session:
        target = session.get(
            PostTarget,
            target_id,
            options=[joinedload(PostTarget.post), joinedload(PostTarget.account)],
        )
        if target is None or target.prepare_token != token or target.status not in OPEN:
            log_event("prepare.skipped", **fields)
            return "stale"
        started = session.execute(
            update(PostTarget)
            .where(PostTarget.id == target_id, PostTarget.prepare_token == token)
            .values(
                prepare_state=PrepareState.PREPARING,
                prepared_at=utcnow(),
                claim_owner=deps.claims.owner,
            )
        ).rowcount
        session.commit()
        if not started:
            return "stale"
        fields["platform"] = target.platform
        log_event("prepare.started", **fields)
        adapter = deps.adapter_for(target.platform)
        context = PreparationContext(deps, target.id, token)
        try:
            if not adapter.can_prepare:
                raise PlatformError(
                    f"{target.platform} cannot stage a post ahead", code="cannot_prepare"
                )
            request = build_request(deps, session, target)
            session.commit()
            adapter.publish(request, context)
        except ReadyToPublish:
            expires = adapter.prepared_until(context.handle or {})
            return _prepared(deps, target, token, expires, context.handle, fields)
        except PreparationOvertaken:
            log_event("prepare.overtaken", **fields)
            return "overtaken"
        except PlatformError as error:
            return _failed(deps, target, token, error, fields)
        except Exception as exc:  # a bug must not strand the target: the instant redoes it
            log.exception("prepare.crashed target_id=%s", target_id)
            error = PlatformError(f"internal error: {type(exc).__name__}", code="internal_error")
            return _failed(deps, target, token, error, fields)
    # publish() returned without ever asking to mark the irreversible request: the post is
    # out. Marked, so the publish at the instant finds and adopts it instead of posting.
    log.error("prepare.published_early target_id=%s: adapter skipped its mark", target_id)
    _write(
        deps,
        target_id,
        token,
        prepare_state=PrepareState.FAILED,
        irreversible_started_at=utcnow(),
        claim_owner=None,
    )
    return "published_early"


def _prepared(
    deps: PipelineDeps,
    target: PostTarget,
    token: str,
    expires: float | None,
    handle: dict[str, Any] | None,
    fields: dict[str, Any],
) -> str:
    """Saved with its prepare stamp. A handle that expires on the platform before the
    instant (a container after 24 h, X media) is prepared again once it has."""
    values: dict[str, Any] = {
        "prepare_state": PrepareState.PREPARED,
        "prepared_at": utcnow(),
        "claim_owner": None,
        "platform_handle": handle,
    }
    if expires is not None and expires < (target.next_attempt_at - ETA_HEAD_START).timestamp():
        again = datetime.fromtimestamp(expires, UTC)
        values.update(prepare_state=None, prepare_token=None, prepare_due_at=again)
    _write(deps, target.id, token, **values)
    log_event("prepare.prepared", **fields)
    return "prepared"


def _failed(
    deps: PipelineDeps,
    target: PostTarget,
    token: str,
    error: PlatformError,
    fields: dict[str, Any],
) -> str:
    """Retried while the instant is still far enough ahead; else the publish at the
    instant does the whole flow itself, with the usual retries, and reports the error."""
    now = utcnow()
    if error.outcome in (Outcome.TRANSIENT, Outcome.RATE_LIMITED, Outcome.QUOTA_EXHAUSTED):
        delay = error.retry_after or retry_policy(target.platform, deps.settings).backoff(1)
        again = now + timedelta(seconds=delay)
        if again < target.next_attempt_at - ETA_HEAD_START:
            _write(
                deps,
                target.id,
                token,
                prepare_state=None,
                prepare_token=None,
                prepare_due_at=again,
                claim_owner=None,
            )
            log_event("prepare.retry", **fields, error_code=error.code)
            return "retry"
    _write(
        deps,
        target.id,
        token,
        prepare_state=PrepareState.FAILED,
        prepared_at=now,
        claim_owner=None,
        error_code=f"prepare_{error.code}" if not error.code.startswith("prepare") else error.code,
        error_message=f"Preparing ahead failed: {error.message}. It is tried again at the "
        "scheduled time.",
    )
    log_event("prepare.failed", **fields, error_code=error.code)
    return "failed"


def send_due_preparations(
    session: Session, now: Any, dead_owners: list[str], limit: int
) -> list[tuple[int, str, str]]:
    """Mark the targets whose preparation is due (and those whose preparer died or whose
    message was lost) as pending with a fresh token; returns (id, platform, token) to send
    once the caller has committed."""
    due = session.execute(
        select(PostTarget.id, PostTarget.platform)
        .where(
            PostTarget.prepare_due_at <= now,
            PostTarget.prepare_state.is_(None),
            PostTarget.status.in_(OPEN),
            PostTarget.next_attempt_at > now + MIN_LEAD,
        )
        .order_by(PostTarget.prepare_due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    stuck_conditions = [
        (PostTarget.prepare_state == PrepareState.PENDING)
        & (PostTarget.prepared_at < now - PENDING_TIMEOUT)
    ]
    if dead_owners:
        stuck_conditions.append(
            (PostTarget.prepare_state == PrepareState.PREPARING)
            & PostTarget.claim_owner.in_(dead_owners)
        )
    stuck = session.execute(
        select(PostTarget.id, PostTarget.platform)
        .where(PostTarget.status.in_(OPEN), or_(*stuck_conditions))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sends = []
    for row in [*due, *stuck]:
        token = str(uuid.uuid4())
        session.execute(
            update(PostTarget)
            .where(PostTarget.id == row.id)
            .values(
                prepare_state=PrepareState.PENDING,
                prepare_token=token,
                prepared_at=now,
                claim_owner=None,
            )
        )
        sends.append((row.id, row.platform, token))
    return sends


def send_prepare(celery: Any, target_id: int, platform: str, token: str) -> None:
    celery.send_task(
        PREPARE_TASK, args=[target_id, token], queue=publish_queue(platform), retry=False
    )


DISCARD_BATCH = 50
DISCARD_MAX_ATTEMPTS = 8


def discard_handles(deps: PipelineDeps) -> dict[str, int]:
    """Delete on the platforms what prepares left for edited or cancelled content
    (app.services.posts.discard_prepared wrote them down); retried with backoff."""
    report = {"discarded": 0, "retry": 0, "gave_up": 0}
    now = utcnow()
    with deps.db.session() as session:
        rows = session.scalars(
            select(DiscardedHandle)
            .where(DiscardedHandle.finished_at.is_(None), DiscardedHandle.next_try_at <= now)
            .order_by(DiscardedHandle.next_try_at)
            .limit(DISCARD_BATCH)
            .with_for_update(skip_locked=True, of=DiscardedHandle)
            .options(joinedload(DiscardedHandle.account, innerjoin=True))
        ).all()
        for row in rows:
            try:
                credentials = account_credentials(deps.settings, row.account)
                deleted = deps.adapter_for(row.platform).discard_prepared(credentials, row.handle)
            except PlatformError as error:
                row.attempts += 1
                if error.outcome == Outcome.PERMANENT or row.attempts >= DISCARD_MAX_ATTEMPTS:
                    row.finished_at, row.outcome = now, f"gave up: {error.code}"
                    report["gave_up"] += 1
                else:
                    delay = retry_policy(row.platform, deps.settings).backoff(row.attempts)
                    row.next_try_at = now + timedelta(seconds=delay)
                    row.outcome = f"retrying: {error.code}"
                    report["retry"] += 1
                continue
            row.finished_at, row.outcome = now, f"deleted {deleted}"
            report["discarded"] += 1
        session.commit()
    if any(report.values()):
        log_event("prepare.discarded", **report)
    return report

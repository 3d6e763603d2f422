"""Domain verbs on an existing post: change it, schedule a draft, cancel or delete it,
retry what failed. They flush; callers commit.

Apart from creation (`app.services.posts`) because each of these first settles what may
already be under way on a platform: a target being published is neither edited nor
cancelled behind the platform's back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import access
from app.access import Scope
from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, DomainError, ValidationError
from app.models import AccountStatus, Post, PostStatus, PostTarget, TargetStatus
from app.platform_rules import ErrorBag, check_platform_rules, known_text_limits
from app.queues import MAINTENANCE_QUEUE, PLATFORM_DELETE_TASK
from app.schedule import parse_schedule, resolve_timezone
from app.services.posts import (
    check_extras,
    check_post_follow_ups,
    discard_prepared,
    load_accounts,
    load_media,
    refresh_post_status,
    set_prepare_due,
)


def _organisation(scope: Scope) -> Scope:
    """For what a post already holds: re-read (its status), not judged anew against the
    key, so a post made under older rules can still be changed or scheduled."""
    return Scope(scope.organisation_id)


def _media_keys(post: Post) -> list[uuid.UUID]:
    return [uuid.UUID(m) for m in post.media_ids]


def _changeable_targets(post: Post) -> list[PostTarget]:
    return [
        t
        for t in post.targets
        if t.status in (TargetStatus.DRAFT, TargetStatus.SCHEDULED, TargetStatus.QUEUED)
        or _readied(t)
    ]


def _readied(target: PostTarget) -> bool:
    """Claimed by a worker and waiting for its instant, not yet fenced for the call that
    makes it public: an edit or a cancel takes it back. The worker's fence (or its own
    mark before the call) is conditional on the token this changes, under the row lock
    `access.post(lock=True)` holds, so whichever commits first wins and the other sees it
    (docs/delivery.md, "Fire at the instant")."""
    return (
        target.status == TargetStatus.PUBLISHING
        and target.irreversible_started_at is None
        # Nothing of it is on the platform yet.
        and not target.platform_post_id
    )


def _take_back(target: PostTarget, status: str) -> None:
    """The target leaves its worker (if one holds it) for `status`; messages and readied
    deliveries with its old token become no-ops."""
    target.status = status
    target.dispatch_token = None
    target.queued_at = None
    target.claim_owner = None
    target.lease_expires_at = None


def _refuse_if_publishing(post: Post, action: str) -> None:
    """A target whose publish request may already have reached the platform (marked for
    the irreversible call, answered or not) is neither cancelled nor edited behind the
    platform's back: its outcome is settled first (reconciled with the platform)."""
    in_flight = [
        t
        for t in post.targets
        if (
            t.status in (TargetStatus.PUBLISHING, TargetStatus.SCHEDULED, TargetStatus.QUEUED)
            and t.irreversible_started_at
        )
        # A thread (or first comment) partly live: its post is out, what follows is not.
        or (t.platform_post_id and t.status not in (TargetStatus.PUBLISHED, TargetStatus.CANCELLED))
    ]
    if in_flight:
        names = ", ".join(f"{t.platform} account {t.account_id}" for t in in_flight)
        raise Conflict(
            f"This post is being published to {names} right now (a publish request may "
            f"already have reached the platform), so it cannot be {action} yet. Crier is "
            "settling the outcome with the platform; try again in a few seconds.",
            code="post_publishing",
        )


def update_post(
    session: Session, scope: Scope, post_id: str, data: dict[str, Any], settings: Settings
) -> Post:
    """PATCH: allowed while nothing of the post has started publishing. What it newly
    references must be the key's to see and fit the post's profile, as at creation."""
    post = access.post(session, scope, post_id, lock=True)
    if post.status == PostStatus.CANCELLED:
        raise Conflict("This post was cancelled and cannot be changed.", code="post_cancelled")
    if "draft" in data:
        raise ValidationError(
            "draft cannot be changed here; schedule a draft with POST /posts/{id}/schedule.",
            details={"draft": ["Use POST /posts/{id}/schedule."]},
        )
    is_draft = post.status == PostStatus.DRAFT
    _refuse_if_publishing(post, "changed")
    untouchable = [
        t
        for t in post.targets
        if t.status
        not in (
            TargetStatus.DRAFT,
            TargetStatus.SCHEDULED,
            TargetStatus.QUEUED,
            TargetStatus.CANCELLED,
        )
        and not _readied(t)
    ]
    if untouchable or any(t.attempts for t in post.targets):
        raise Conflict(
            "Publishing of this post has started; it can no longer be changed.",
            code="post_already_published",
        )
    now = utcnow()
    errors = ErrorBag()
    # The zone only says how to read a wall-clock scheduled_at; alone it moves nothing.
    zone = resolve_timezone(data.get("timezone", post.timezone))
    if "scheduled_at" in data:
        scheduled_at, publish_now = parse_schedule(data["scheduled_at"], zone.key, now)
        post.scheduled_at, post.publish_now = scheduled_at, publish_now
    post.timezone = zone.key
    if "content" in data:
        post.content = data["content"]
    if "platform_content" in data:
        post.platform_content = data["platform_content"] or {}
    check_extras(session, scope, data, errors, post.profile_id)
    if is_draft:
        post.publish_now = False
    if "media_ids" in data:
        media = load_media(session, scope, data["media_ids"] or [], errors, post.profile_id)
        post.media_ids = [str(m.id) for m in media]
    else:  # what the post holds already is read again (its status), not judged anew
        media = load_media(session, _organisation(scope), _media_keys(post), errors)
    live = [t for t in post.targets if t.status != TargetStatus.CANCELLED]
    accounts = [t.account for t in live]
    if "account_ids" in data:
        accounts = load_accounts(session, scope, data["account_ids"], errors, post.profile_id)
    if not post.content.strip() and not media:
        errors.add("content", "content must not be empty when no media is attached.")
    if not errors.errors:
        check_platform_rules(
            post.content,
            (a.platform for a in accounts),
            media,
            post.platform_content,
            errors,
            known_text_limits(accounts),
        )
        check_post_follow_ups(
            session,
            scope,
            [a.platform for a in accounts],
            post.platform_content,
            errors,
            post.profile_id,
        )
    errors.raise_if_any()
    # Set once they are known to exist: an unknown campaign would otherwise reach the
    # database (its foreign key) at the next autoflush, as a 500.
    if "campaign_id" in data:
        post.campaign_id = data["campaign_id"]
    if "cover_photo" in data:
        post.cover_photo = str(data["cover_photo"]) if data["cover_photo"] else None

    wanted = {a.id: a for a in accounts}
    for target in post.targets:
        if target.account_id not in wanted:
            session.delete(target)
    post.targets = [t for t in post.targets if t.account_id in wanted]
    present = {t.account_id for t in post.targets}
    for account in accounts:
        if account.id not in present:
            post.targets.append(
                PostTarget(
                    account_id=account.id,
                    platform=account.platform,
                    attempts=0,
                    next_attempt_at=post.scheduled_at,
                )
            )
    # What the platform prepared (containers, uploads) was made for the old content.
    content_changed = any(k in data for k in ("content", "media_ids", "platform_content"))
    # Every target starts over with no token: messages already sent become stale no-ops.
    for target in post.targets:
        _take_back(target, TargetStatus.DRAFT if is_draft else TargetStatus.SCHEDULED)
        target.next_attempt_at = post.scheduled_at
        if content_changed:
            discard_prepared(session, target)
    if content_changed or "scheduled_at" in data or "account_ids" in data:
        # What was prepared is dropped with its handle; a new window follows the schedule.
        set_prepare_due(post, media, settings)
    refresh_post_status(post)
    session.flush()
    return post


def enqueue_platform_deletes(celery: Any, target_ids: list[int]) -> int:
    """After commit. A message that cannot be sent is resent by the periodic resume."""
    sent = 0
    for target_id in target_ids:
        try:
            celery.send_task(PLATFORM_DELETE_TASK, args=[target_id], queue=MAINTENANCE_QUEUE)
            sent += 1
        except Exception:  # broker down: resume_stalled_deletes sends it later
            break
    return sent


def delete_post(
    session: Session, scope: Scope, post_id: str, platforms: set[str]
) -> tuple[Post, list[PostTarget]]:
    """DELETE with delete_on_platforms: cancel what is unpublished, and mark published
    copies on those platforms for deletion by a worker. Returns the marked targets."""
    post = access.post(session, scope, post_id, lock=True)
    _refuse_if_publishing(post, "cancelled")
    cancellable = _changeable_targets(post)
    to_delete = [
        t
        for t in post.targets
        if t.status == TargetStatus.PUBLISHED
        and t.platform in platforms
        and t.platform_post_id
        and t.platform_delete_status in (None, "failed")
    ]
    if not cancellable and not to_delete:
        return cancel_post(session, scope, post_id), []
    for target in cancellable:
        _take_back(target, TargetStatus.CANCELLED)
        discard_prepared(session, target)
    for target in to_delete:
        target.platform_delete_status = "pending"
        target.platform_delete_error = None
    refresh_post_status(post)
    session.flush()
    return post, to_delete


def cancel_post(session: Session, scope: Scope, post_id: str) -> Post:
    post = access.post(session, scope, post_id, lock=True)
    _refuse_if_publishing(post, "cancelled")
    cancellable = _changeable_targets(post)
    if not cancellable:
        if post.status == PostStatus.CANCELLED:
            raise Conflict("This post is already cancelled.", code="post_already_cancelled")
        raise Conflict(
            "Nothing left to cancel: every account of this post has been published or has "
            "finished.",
            code="post_already_published",
        )
    for target in cancellable:
        _take_back(target, TargetStatus.CANCELLED)
        discard_prepared(session, target)
    refresh_post_status(post)
    session.flush()
    return post


def _requeue_failed(target: PostTarget, now: datetime) -> None:
    target.status = TargetStatus.SCHEDULED
    target.attempts = 0
    target.error_code = None
    target.error_message = None
    target.dispatch_token = None
    target.next_attempt_at = now


def retry_post(
    session: Session, scope: Scope, post_id: str, account_ids: list[int] | None = None
) -> tuple[Post, list[PostTarget]]:
    post = access.post(session, scope, post_id, lock=True)
    failed = [t for t in post.targets if t.status == TargetStatus.FAILED]
    if account_ids:
        unknown = sorted(set(account_ids) - {t.account_id for t in post.targets})
        if unknown:
            message = f"Not an account of this post: {', '.join(map(str, unknown))}."
            raise ValidationError(message, details={"account_ids": [message]})
        failed = [t for t in failed if t.account_id in set(account_ids)]
    if not failed:
        raise Conflict("This post has no failed accounts to retry.", code="nothing_to_retry")
    now = utcnow()
    for target in failed:
        if target.account.status != AccountStatus.ACTIVE:
            raise DomainError(
                f"Account {target.account_id} needs reconnecting before it can be retried.",
                code="account_needs_reconnect",
                status=409,
            )
        _requeue_failed(target, now)
    refresh_post_status(post)
    session.flush()
    return post, failed


RETRY_FAILED_LIMIT = 1000


@dataclass
class RetryFailedResult:
    posts: list[Post]
    retried: list[PostTarget]
    skipped: list[tuple[PostTarget, str]]


def retry_failed(session: Session, scope: Scope, filters: dict[str, Any]) -> RetryFailedResult:
    """POST /posts/retry-failed: failed targets matching every filter, among the posts
    the key sees, go back to the queue."""
    query = (
        select(PostTarget.id, PostTarget.post_id)
        .join(Post, Post.id == PostTarget.post_id)
        .where(*scope.where(Post), PostTarget.status == TargetStatus.FAILED)
    )
    if filters.get("post_ids"):
        query = query.where(PostTarget.post_id.in_(filters["post_ids"]))
    if filters.get("account_id"):
        query = query.where(PostTarget.account_id == filters["account_id"])
    if filters.get("platform"):
        query = query.where(PostTarget.platform == filters["platform"])
    if filters.get("failed_after"):
        query = query.where(PostTarget.updated_at >= filters["failed_after"])
    if filters.get("failed_before"):
        query = query.where(PostTarget.updated_at < filters["failed_before"])
    if filters.get("max_attempts") is not None:
        query = query.where(PostTarget.attempts <= filters["max_attempts"])
    rows = session.execute(
        query.order_by(PostTarget.post_id, PostTarget.id).limit(RETRY_FAILED_LIMIT)
    ).all()
    wanted = {target_id for target_id, _post_id in rows}
    result = RetryFailedResult([], [], [])
    now = utcnow()
    for post_id in dict.fromkeys(post_id for _target_id, post_id in rows):
        post = access.post(session, scope, post_id, lock=True)
        changed = False
        for target in post.targets:
            if target.id not in wanted or target.status != TargetStatus.FAILED:
                continue
            if target.account.status != AccountStatus.ACTIVE:
                reason = (
                    "account needs reconnecting"
                    if target.account.status == AccountStatus.NEEDS_RECONNECT
                    else f"account is {target.account.status}"
                )
                result.skipped.append((target, reason))
                continue
            _requeue_failed(target, now)
            result.retried.append(target)
            changed = True
        if changed:
            refresh_post_status(post)
            result.posts.append(post)
    session.flush()
    return result


def schedule_draft(
    session: Session, scope: Scope, post_id: str, data: dict[str, Any], settings: Settings
) -> Post:
    """POST /posts/{id}/schedule: a draft goes live, now or at its time, on accounts the
    key sees and of the post's profile (as at creation); its media is prepared ahead as a
    post created scheduled would be."""
    post = access.post(session, scope, post_id, lock=True)
    if post.status != PostStatus.DRAFT:
        raise Conflict(
            f"Only a draft can be scheduled; this post is {post.status}.", code="post_not_draft"
        )
    now = utcnow()
    tz_name = data.get("timezone") or post.timezone
    if data.get("publish_now"):
        scheduled_at, publish_now = parse_schedule(None, tz_name, now)
    elif data.get("scheduled_at"):
        scheduled_at, publish_now = parse_schedule(data["scheduled_at"], tz_name, now)
    else:
        message = "Give scheduled_for (or scheduled_at), or publish_now: true."
        raise ValidationError(message, details={"scheduled_for": [message]})
    errors = ErrorBag()
    account_ids = data.get("account_ids") or [t.account_id for t in post.targets]
    accounts = load_accounts(session, scope, account_ids, errors, post.profile_id)
    media = load_media(session, _organisation(scope), _media_keys(post), errors)
    if not errors.errors:
        check_platform_rules(
            post.content,
            (a.platform for a in accounts),
            media,
            post.platform_content,
            errors,
            known_text_limits(accounts),
        )
    errors.raise_if_any()
    wanted = {a.id for a in accounts}
    for target in list(post.targets):
        if target.account_id not in wanted:
            session.delete(target)
    post.targets = [t for t in post.targets if t.account_id in wanted]
    present = {t.account_id for t in post.targets}
    post.targets.extend(
        PostTarget(account_id=a.id, platform=a.platform, attempts=0, next_attempt_at=scheduled_at)
        for a in accounts
        if a.id not in present
    )
    post.scheduled_at, post.publish_now = scheduled_at, publish_now
    post.timezone = resolve_timezone(tz_name).key
    for target in post.targets:
        target.status = TargetStatus.SCHEDULED
        target.dispatch_token = None
        target.next_attempt_at = scheduled_at
    set_prepare_due(post, media, settings)
    refresh_post_status(post)
    session.flush()
    return post

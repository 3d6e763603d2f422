"""Publishing one post target: claim, holds, adapter call, outcome, and what comes next.

Plain functions over explicit dependencies, so they run the same under a Celery worker
and in tests. Every write after the claim is guarded by the dispatch token: a worker that
lost its claim (its lease expired and the sweeper handed the target on) changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from celery import Celery
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app import metrics
from app.config import Settings
from app.db import Database, utcnow
from app.dispatch import Dispatch, DueTarget, send_dispatches
from app.models import (
    Account,
    AccountStatus,
    Media,
    Post,
    PostTarget,
    PublishAttempt,
    TargetStatus,
)
from app.services.accounts import account_tokens
from app.services.media import media_path, signed_media_url
from app.services.posts import (
    ErrorBag,
    check_platform_rules,
    platform_settings,
    platform_text,
    refresh_post_status,
)
from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    AuthExpiredError,
    AuthRevokedError,
    DuplicateError,
    MediaItem,
    Outcome,
    PermanentError,
    PlatformError,
    PublishRequest,
    PublishResult,
    ReconcileStatus,
)
from workers.quotas import Hold, SharedQuotas
from workers.retry import retry_policy
from workers.tokens import refresh_account

log = logging.getLogger("crier.pipeline")

# A message may fire slightly before its ETA; earlier than this and it is put back.
EARLY_TOLERANCE = timedelta(seconds=1)


@dataclass
class PipelineDeps:
    db: Database
    settings: Settings
    celery: Celery
    quotas: SharedQuotas
    adapter_for: Callable[[str], Adapter]


class LostClaim(Exception):
    """The target was handed to another delivery while this one was working."""


def log_event(event: str, **fields: Any) -> None:
    """One line per event, `key=value` pairs: ids only, never tokens or post text."""
    rendered = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    log.info("%s %s", event, rendered, extra={"crier": {"event": event, **fields}})  # issue 12


@dataclass
class TargetContext:
    """PublishContext for one claimed target.

    Handles saved before the irreversible mark are kept in memory and written with the
    mark (or with the attempt's outcome): losing them in a crash only means redoing
    steps that made nothing public. From the mark on, every handle is committed at once.
    """

    deps: PipelineDeps
    target_id: int
    token: str
    pending_handle: dict[str, Any] | None = None
    marked: bool = False
    marked_at: datetime | None = None

    def _update(self, **values: Any) -> None:
        lease = utcnow() + timedelta(seconds=self.deps.settings.publish_lease)
        with self.deps.db.session() as session:
            changed = session.execute(
                update(PostTarget)
                .where(
                    PostTarget.id == self.target_id,
                    PostTarget.dispatch_token == self.token,
                    PostTarget.status == TargetStatus.PUBLISHING,
                )
                .values(lease_expires_at=lease, **values)
            ).rowcount
            session.commit()
        if not changed:
            raise LostClaim(f"target {self.target_id} was handed on")

    def save_handle(self, handle: dict[str, Any]) -> None:
        self.pending_handle = dict(handle)
        if self.marked:
            self._update(platform_handle=self.pending_handle)
            self.pending_handle = None

    def mark_irreversible(self) -> None:
        # The earliest unresolved start: reconciliation must look back to the first try.
        values: dict[str, Any] = {
            "irreversible_started_at": func.coalesce(PostTarget.irreversible_started_at, utcnow())
        }
        if self.pending_handle is not None:
            values["platform_handle"] = self.pending_handle
        self._update(**values)
        self.pending_handle = None
        self.marked = True
        self.marked_at = self.marked_at or utcnow()


# --------------------------------------------------------------------------- entry point


def publish_target(
    deps: PipelineDeps, target_id: int, token: str, task_id: str | None = None
) -> str:
    """Run one delivery of a target; returns what happened (for logs and tests)."""
    with deps.db.session() as session:
        # One round trip for the target, its post and its account.
        target = session.get(
            PostTarget,
            target_id,
            options=[joinedload(PostTarget.post), joinedload(PostTarget.account)],
        )
        if target is None or target.status != TargetStatus.QUEUED or target.dispatch_token != token:
            log_event(
                "publish.skipped",
                target_id=target_id,
                task_id=task_id,
                status=target.status if target else "missing",
            )
            return "stale"
        early_by = (target.next_attempt_at - utcnow()).total_seconds()
        due_at = target.next_attempt_at  # issue 12: metrics
        if early_by > EARLY_TOLERANCE.total_seconds():
            _finish(deps, session, target, token, _Requeue(at=target.next_attempt_at), None)
            log_event("publish.early", target_id=target_id, task_id=task_id)
            return "early"
        if early_by > 0:
            # Timers fire a little early at times; never publish before the instant.
            session.rollback()
            time.sleep(early_by)
        if not _claim(deps, session, target, token):
            return "stale"
        fields = {
            "post_id": str(target.post_id),
            "target_id": target.id,
            "platform": target.platform,
            "attempt": target.attempts + 1,
            "task_id": task_id,
        }
        log_event("publish.claimed", **fields)
        started = time.monotonic()
        started_at = utcnow()
        context = TargetContext(deps, target.id, token)
        try:
            decision = _run(deps, session, target, context)
        except LostClaim:
            log_event("publish.lost_claim", **fields)
            return "lost_claim"
        except Exception as exc:  # an adapter bug must not strand the target
            log.exception("publish.crashed target_id=%s", target_id)
            decision = _transient_decision(
                deps,
                target,
                PlatformError(f"internal error: {type(exc).__name__}", code="internal_error"),
                maybe_posted=context.marked or target.irreversible_started_at is not None,
            )
        decision.handle = context.pending_handle
        decision.attempt = PublishAttempt(
            target_id=target.id,
            attempt_number=target.attempts + (1 if decision.counts_attempt else 0),
            task_id=task_id,
            started_at=started_at,
            finished_at=utcnow(),
            outcome=decision.outcome,
            http_status=decision.http_status,
            latency_ms=int((time.monotonic() - started) * 1000),
            error_code=decision.error_code,
            error_message=decision.error_message,
            wait_seconds=decision.wait_seconds,
            details=decision.details or None,
        )
        _finish(deps, session, target, token, decision.next, decision)
        log_event(
            f"publish.{decision.outcome}",
            **fields,
            error_code=decision.error_code,
            wait_s=round(decision.wait_seconds, 3) if decision.wait_seconds else None,
            latency_ms=decision.attempt.latency_ms,  # issue 12: structured logs
        )
        # issue 12: metrics
        metrics.observe_publish(
            fields["platform"],
            decision.outcome,
            metrics.seconds_between(due_at, context.marked_at),
            time.monotonic() - started,
        )
        return decision.outcome


def _claim(deps: PipelineDeps, session: Session, target: PostTarget, token: str) -> bool:
    """One conditional UPDATE decides which delivery wins (DESIGN.md "Dispatch token")."""
    now = utcnow()
    lease = now + timedelta(seconds=deps.settings.publish_lease)
    # The post row first (the API's cancel and PATCH lock in the same order). A claimed
    # target always makes its post "publishing", so no need to derive it from the rest.
    session.execute(
        update(Post).where(Post.id == target.post_id).values(status="publishing", updated_at=now)
    )
    claimed = session.execute(
        update(PostTarget)
        .where(
            PostTarget.id == target.id,
            PostTarget.status == TargetStatus.QUEUED,
            PostTarget.dispatch_token == token,
        )
        .values(status=TargetStatus.PUBLISHING, lease_expires_at=lease)
    ).rowcount
    if not claimed:
        session.rollback()
        return False
    session.commit()
    # What the claim wrote, without reading the row back.
    set_committed_value(target, "status", TargetStatus.PUBLISHING)
    set_committed_value(target, "lease_expires_at", lease)
    return True


def _lock_post(session: Session, post_id: uuid.UUID) -> None:
    # Post row first, then its targets: the API's cancel and PATCH lock in the same order.
    session.execute(select(Post.id).where(Post.id == post_id).with_for_update())


def _refresh_post(session: Session, post_id: uuid.UUID) -> None:
    post = session.scalar(
        select(Post)
        .where(Post.id == post_id)
        .options(selectinload(Post.targets))
        .execution_options(populate_existing=True)
    )
    if post is not None:
        refresh_post_status(post)


# ------------------------------------------------------------------------------ decisions


@dataclass
class _Requeue:
    at: datetime


@dataclass
class _Decision:
    outcome: str
    status: str | None = None  # final status, or None when the target goes back to wait
    next: _Requeue | None = None
    counts_attempt: bool = True
    error_code: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    wait_seconds: float | None = None
    result: PublishResult | None = None
    # Only a refusal before this attempt's irreversible call proves nothing went out.
    clear_irreversible: bool = False
    details: dict[str, Any] | None = None
    attempt: PublishAttempt | None = None
    handle: dict[str, Any] | None = None  # saved by the adapter, not yet written


def _run(
    deps: PipelineDeps, session: Session, target: PostTarget, context: TargetContext
) -> _Decision:
    hold = deps.quotas.current_wait(target.platform, target.account_id)
    if hold is not None:
        return _hold_decision(hold, "rate_limited")
    try:
        request = _build_request(deps, session, target)
    except PlatformError as error:
        return _classify(deps, target, error)
    # Never sit idle in a transaction while a platform answers.
    session.commit()
    adapter = deps.adapter_for(target.platform)
    if target.irreversible_started_at is not None:
        # A previous delivery may have made the post public without hearing back.
        try:
            found = _reconcile(adapter, request)
        except PlatformError as error:
            # Cannot ask right now: try again later, the marker stays until we know.
            return _classify(deps, target, error, maybe_posted=True)
        if found is not None:
            return found
    hold = deps.quotas.take_publish_slot(target.platform, target.account_id)
    if hold is not None:
        return _hold_decision(hold, "quota_wait")
    decision = _publish(deps, session, target, adapter, request, context)
    if decision.status == TargetStatus.UNCONFIRMED and context.marked:
        # Out of retries after a request that may have gone out: look once more.
        since = target.irreversible_started_at or context.marked_at
        return _settle(adapter, replace(request, irreversible_started_at=since), decision)
    return decision


def _settle(adapter: Adapter, request: PublishRequest, decision: _Decision) -> _Decision:
    try:
        found = _reconcile(adapter, request)
    except PlatformError:
        return decision
    if found is None:  # the platform says it is not there: a plain failure
        return replace(decision, outcome="failed", status=TargetStatus.FAILED)
    return found if found.status == TargetStatus.PUBLISHED else decision


def _publish(
    deps: PipelineDeps,
    session: Session,
    target: PostTarget,
    adapter: Adapter,
    request: PublishRequest,
    context: TargetContext,
) -> _Decision:
    """The platform call, with one token refresh on an auth error."""
    refreshed = False
    while True:
        try:
            result = adapter.publish(request, context)
            _respect_reported_usage(deps, target, result)
            return _Decision(
                outcome="published",
                status=TargetStatus.PUBLISHED,
                result=result,
                details=result.details or None,
            )
        except AuthExpiredError as error:
            can_refresh = adapter.supports_refresh and (
                request.account.refresh_token or adapter.refreshes_access_token
            )
            if refreshed or not can_refresh:
                return _auth_failure(deps, session, target, error)
            try:
                fresh = refresh_account(deps.db, deps.settings, adapter, request.account)
            except AuthRevokedError as revoked:
                return _auth_failure(deps, session, target, revoked)
            except PlatformError as refresh_error:
                return _classify(deps, target, refresh_error)
            request = replace(request, account=fresh)
            refreshed = True
            log_event("publish.token_refreshed", target_id=target.id, platform=target.platform)
        except DuplicateError as error:
            if target.irreversible_started_at is not None:
                # "Duplicate" after our own unanswered attempt: that post is probably ours.
                try:
                    found = _reconcile(adapter, request)
                except PlatformError:
                    found = None
                if found is not None and found.status == TargetStatus.PUBLISHED:
                    return found
            return _classify(deps, target, error, **_after(context, target))
        except PlatformError as error:
            return _classify(deps, target, error, **_after(context, target))
        except httpx.TransportError as error:
            network = PlatformError(f"network error: {type(error).__name__}", code="network_error")
            return _classify(deps, target, network, **_after(context, target))


def _respect_reported_usage(deps: PipelineDeps, target: PostTarget, result: PublishResult) -> None:
    """A platform that says "0 left until T" on success gets no call before T from anyone."""
    usage = (result.details or {}).get("rate_limit") or {}
    try:
        remaining = float(usage["remaining"])
        reset_at = float(usage["reset_at"])
    except (KeyError, TypeError, ValueError):
        return
    if remaining <= 0 and reset_at > time.time():
        deps.quotas.impose_wait(target.platform, target.account_id, reset_at)


def _reconcile(adapter: Adapter, request: PublishRequest) -> _Decision | None:
    outcome = adapter.reconcile(request)
    if outcome.status == ReconcileStatus.FOUND and outcome.result is not None:
        return _Decision(
            outcome="reconciled_published",
            status=TargetStatus.PUBLISHED,
            result=outcome.result,
            counts_attempt=False,
            details={"reconciled": True, **outcome.result.details},
        )
    if outcome.status == ReconcileStatus.UNKNOWN:
        return _Decision(
            outcome="unconfirmed",
            status=TargetStatus.UNCONFIRMED,
            counts_attempt=False,
            error_code="unconfirmed",
            error_message=(
                "A publish was interrupted and the platform cannot tell whether the post "
                f"went out; it was not sent again. {outcome.reason}".strip()
            ),
            clear_irreversible=False,
        )
    return None  # not found: publish again


def _hold_decision(hold: Hold, outcome: str) -> _Decision:
    at = datetime.fromtimestamp(hold.until, UTC)
    wait = max(hold.until - time.time(), 0.0)
    return _Decision(
        outcome=outcome,
        next=_Requeue(at),
        counts_attempt=False,
        error_code=outcome,
        error_message=hold.reason,
        wait_seconds=wait,
    )


def _after(context: TargetContext, target: PostTarget) -> dict[str, bool]:
    """What a failed publish call leaves known: refused outright, or possibly public."""
    return {
        "refused": not context.marked,
        "maybe_posted": context.marked or target.irreversible_started_at is not None,
    }


def _classify(
    deps: PipelineDeps,
    target: PostTarget,
    error: PlatformError,
    *,
    refused: bool = False,
    maybe_posted: bool = False,
) -> _Decision:
    common = {
        "error_code": error.code,
        "error_message": error.message,
        "http_status": error.http_status,
    }
    if error.outcome in (Outcome.RATE_LIMITED, Outcome.QUOTA_EXHAUSTED):
        now = time.time()
        if error.retry_at is not None:
            until = error.retry_at.timestamp()
        else:
            until = now + (error.retry_after if error.retry_after is not None else 60.0)
        deps.quotas.impose_wait(
            target.platform, None if error.scope == "app" else target.account_id, until
        )
        return _Decision(
            outcome=error.outcome.value,
            next=_Requeue(datetime.fromtimestamp(until, UTC)),
            counts_attempt=False,
            wait_seconds=max(until - now, 0.0),
            clear_irreversible=refused,
            **common,
        )
    if error.outcome == Outcome.TRANSIENT:
        return _transient_decision(deps, target, error, maybe_posted=maybe_posted)
    return _Decision(outcome=error.outcome.value, status=TargetStatus.FAILED, **common)


def _transient_decision(
    deps: PipelineDeps, target: PostTarget, error: PlatformError, *, maybe_posted: bool
) -> _Decision:
    """Back off and retry; the irreversible marker stays, so the retry reconciles first."""
    policy = retry_policy(target.platform)
    attempts = target.attempts + 1
    common = {"error_code": error.code, "http_status": error.http_status}
    if policy.exhausted(attempts):
        if maybe_posted:
            return _Decision(
                outcome="unconfirmed",
                status=TargetStatus.UNCONFIRMED,
                error_message=(
                    f"{error.message} (gave up after {attempts} attempts; a request may have "
                    f"reached {target.platform}, so it was not sent again)"
                ),
                **common,
            )
        return _Decision(
            outcome="failed",
            status=TargetStatus.FAILED,
            error_message=f"{error.message} (gave up after {attempts} attempts)",
            **common,
        )
    delay = policy.backoff(attempts)
    return _Decision(
        outcome="transient",
        next=_Requeue(utcnow() + timedelta(seconds=delay)),
        wait_seconds=delay,
        error_message=error.message,
        **common,
    )


def _auth_failure(
    deps: PipelineDeps, session: Session, target: PostTarget, error: PlatformError
) -> _Decision:
    code = "auth_revoked" if isinstance(error, AuthRevokedError) else "auth_expired"
    with deps.db.session() as account_session:
        account = account_session.get(Account, target.account_id)
        if account is not None:
            account.status = AccountStatus.NEEDS_RECONNECT
            account.status_reason = f"{code}: {error.message}"
            account_session.commit()
    return _Decision(
        outcome=code,
        status=TargetStatus.FAILED,
        error_code=code,
        error_message=f"{error.message} — reconnect the account.",
        http_status=error.http_status,
    )


# --------------------------------------------------------------------------- finishing


def _finish(
    deps: PipelineDeps,
    session: Session,
    target: PostTarget,
    token: str,
    requeue: _Requeue | None,
    decision: _Decision | None,
) -> None:
    """One transaction: post lock, guarded target update, attempt row, post status."""
    session.rollback()
    _lock_post(session, target.post_id)
    now = utcnow()
    values: dict[str, Any] = {"lease_expires_at": None}
    from_status = TargetStatus.QUEUED if decision is None else TargetStatus.PUBLISHING
    dispatches: list[Dispatch] = []
    if decision is not None:
        if decision.counts_attempt:
            values["attempts"] = PostTarget.attempts + 1
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
                published_at=now,
                error_code=None,
                error_message=None,
            )
    elif requeue is not None:
        horizon = now + timedelta(seconds=deps.settings.enqueue_horizon)
        values["next_attempt_at"] = requeue.at
        if requeue.at <= horizon:
            new_token = str(uuid.uuid4())
            values.update(status=TargetStatus.QUEUED, dispatch_token=new_token, queued_at=now)
            dispatches.append(
                Dispatch(DueTarget(target.id, target.platform, requeue.at), new_token)
            )
        else:
            # Long waits go back to PostgreSQL; the sweeper enqueues them when due.
            values.update(status=TargetStatus.SCHEDULED, dispatch_token=None, queued_at=None)
    changed = session.execute(
        update(PostTarget)
        .where(
            PostTarget.id == target.id,
            PostTarget.dispatch_token == token,
            PostTarget.status == from_status,
        )
        .values(**values)
    ).rowcount
    if not changed:
        session.rollback()
        log_event("publish.lost_claim", target_id=target.id)
        return
    if decision is not None and decision.attempt is not None:
        session.add(decision.attempt)
    session.flush()
    _refresh_post(session, target.post_id)
    session.commit()
    if dispatches:
        send_dispatches(session, deps.celery, dispatches)


# ------------------------------------------------------------------------------ request


def _build_request(deps: PipelineDeps, session: Session, target: PostTarget) -> PublishRequest:
    post, account = target.post, target.account
    assert post is not None and account is not None
    access, refresh = account_tokens(deps.settings, account)
    media_rows = {
        str(m.id): m
        for m in session.scalars(
            select(Media).where(Media.id.in_([uuid.UUID(i) for i in post.media_ids]))
        )
    }
    missing = [i for i in post.media_ids if i not in media_rows]
    if missing:
        raise _MediaMissing(f"media {', '.join(missing)} no longer exists")
    # The same rules table intake used: a post the platform would refuse fails here,
    # with intake's message, instead of spending a call (rules can change after intake).
    problems = ErrorBag()
    check_platform_rules(
        post.content,
        [target.platform],
        [media_rows[i] for i in post.media_ids],
        post.platform_content,
        problems,
    )
    if problems.errors:
        path, messages = next(iter(problems.errors.items()))
        raise PermanentError(f"{path}: {messages[0]}", code="content_rejected")
    media = [_media_item(deps.settings, media_rows[i]) for i in post.media_ids]
    return PublishRequest(
        target_id=target.id,
        platform=target.platform,
        account=AccountCredentials(
            account_id=account.id,
            platform=account.platform,
            name=account.name,
            external_id=account.external_id,
            access_token=access,
            refresh_token=refresh,
            token_expires_at=account.token_expires_at,
            settings=dict(account.settings or {}),
        ),
        text=platform_text(target.platform, post.content, post.platform_content),
        settings=platform_settings(target.platform, post.platform_content),
        media=media,
        handle=target.platform_handle,
        irreversible_started_at=target.irreversible_started_at,
    )


class _MediaMissing(PlatformError):
    outcome = Outcome.PERMANENT

    def __init__(self, message: str) -> None:
        super().__init__(message, code="media_missing")


def _media_item(settings: Settings, media: Media) -> MediaItem:
    return MediaItem(
        id=str(media.id),
        kind=media.kind,
        mime_type=media.mime_type,
        size_bytes=media.size_bytes,
        path=str(media_path(settings, media)),
        public_url=signed_media_url(settings, media),
        filename=media.filename,
        width=media.width,
        height=media.height,
        duration_seconds=media.duration_seconds,
    )

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
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from celery import Celery
from psycopg.errors import DeadlockDetected, SerializationFailure
from sqlalchemy import Boolean, Integer, String, case, column, func, select, update, values
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from app import metrics
from app.config import Settings
from app.db import Database, utcnow
from app.dispatch import (
    ETA_HEAD_START,
    RETRY_HEAD_START,
    Dispatch,
    DueTarget,
    send_dispatches,
)
from app.models import (
    Account,
    AccountStatus,
    Media,
    Post,
    PostTarget,
    PublishAttempt,
    TargetStatus,
)
from app.services.media import media_path, signed_media_url
from app.services.posts import (
    ErrorBag,
    check_platform_rules,
    platform_settings,
    platform_text,
    refresh_post_status,
)
from app.services.webhooks import (
    endpoints_memo,
    record_account_disconnected,
    record_target_events,
)
from workers.adapters.base import (
    PREPARED_KEY,
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
from workers.liveness import LiveClaims, process_claims
from workers.quotas import Hold, SharedQuotas
from workers.retry import retry_policy
from workers.tokens import account_credentials, refresh_account

log = logging.getLogger("crier.pipeline")

MIN_RATE_LIMIT_WAIT = 1.0


@dataclass
class PipelineDeps:
    db: Database
    settings: Settings
    celery: Celery
    quotas: SharedQuotas
    adapter_for: Callable[[str], Adapter]
    # This process's claims, renewed by its heartbeat (workers.liveness).
    claims: LiveClaims = field(default_factory=process_claims)


class LostClaim(Exception):
    """The target was handed to another delivery while this one was working."""


def log_event(event: str, **fields: Any) -> None:
    """One line per event, `key=value` pairs: ids only, never tokens or post text."""
    rendered = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    log.info("%s %s", event, rendered, extra={"crier": {"event": event, **fields}})


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
    # A handle saved after the mark means the irreversible request was answered "done".
    saved_after_mark: bool = False
    premarked: bool = False

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
            self.saved_after_mark = True
            self._update(platform_handle=self.pending_handle)
            self.pending_handle = None

    @staticmethod
    def earliest_start() -> Any:
        # The earliest unresolved start: reconciliation must look back to the first try.
        return func.coalesce(PostTarget.irreversible_started_at, utcnow())

    def mark_irreversible(self) -> None:
        if self.premarked and self.deps.claims.alive_for_sure(self.deps.settings.worker_timeout):
            # Marked at the claim, and this process's heartbeat proves the claim still
            # stands: the call needs no write at the instant. A handle made at the call
            # itself goes in with the outcome; a crash before that only means the
            # reconciliation looks for the post without it (it does for any premark).
            pass
        elif self.pending_handle is not None:
            # Handles of steps done at the call itself go in with the mark.
            self._update(
                irreversible_started_at=self.earliest_start(),
                platform_handle=self.pending_handle,
            )
            self.pending_handle = None
        else:
            # Not marked ahead, or no proof of life: the write is the fence (LostClaim).
            self._update(irreversible_started_at=self.earliest_start())
        self.marked = True
        self.marked_at = self.marked_at or utcnow()


# --------------------------------------------------------------------------- entry point

# A message reaches its worker this long before its instant (app.dispatch.ETA_HEAD_START):
# the delivery is readied and waits on the firing line. Earlier than this, and it is put
# back for its instant.
EARLY_TOLERANCE = ETA_HEAD_START + timedelta(seconds=1)


@dataclass
class Delivery:
    """A claimed target, readied before its instant: loaded, with credentials, the built
    request and the quota taken, or with the decision that ends it without a call."""

    target: PostTarget
    token: str
    task_id: str | None
    due: datetime
    context: TargetContext
    fields: dict[str, Any]
    request: PublishRequest | None = None
    decision: _Decision | None = None
    started: float = 0.0
    started_at: datetime | None = None


def publish_target(
    deps: PipelineDeps, target_id: int, token: str, task_id: str | None = None
) -> str:
    """Run one delivery of a target in this thread; returns what happened."""
    delivery = ready_delivery(deps, target_id, token, task_id)
    if isinstance(delivery, str):
        return delivery
    wait = (delivery.due - utcnow()).total_seconds()
    if wait > 0:
        time.sleep(wait)
    decision = fire_delivery(deps, delivery)
    return record_outcomes(deps, [(delivery, decision)])[0]


def ready_delivery(
    deps: PipelineDeps, target_id: int, token: str, task_id: str | None = None
) -> Delivery | str:
    """Everything that can be done before the instant: load, claim, credentials, request,
    quota. Returns the delivery to fire at `due`, or what happened instead."""
    claimed = claim_deliveries(deps, [(target_id, token, task_id)])[0]
    return claimed if isinstance(claimed, str) else ready_claimed(deps, claimed)


def claim_deliveries(
    deps: PipelineDeps, wanted: list[tuple[int, str, str | None]]
) -> list[Delivery | str]:
    """Load and claim many targets (id, dispatch token, task id) in one transaction: a
    burst readied ahead costs a few statements per batch, not per target. Each result is
    the claimed delivery, to be readied by `ready_claimed`, or what happened instead.

    It locks posts in id order, as the API and the outcome writer do, but the sweeper's
    and the heartbeat's target updates take no post lock first: a deadlock is possible."""
    results, early = _again_after_deadlock(
        lambda: _claim_deliveries(deps, wanted), f"claim batch of {len(wanted)}"
    )
    if early:
        try:
            _finish_retrying(deps, early)
        except Exception:  # the claims stand; the sweeper resends what stayed queued
            log.exception("early messages of %d targets not put back", len(early))
    return results


def _claim_deliveries(
    deps: PipelineDeps, wanted: list[tuple[int, str, str | None]]
) -> tuple[list[Delivery | str], list[FinishItem]]:
    """The claims, committed, and the targets whose messages came early (not claimed)."""
    results: dict[int, Delivery | str] = {}
    early: list[FinishItem] = []
    with deps.db.session() as session:
        # One round trip for the targets, their posts and their accounts.
        loaded = {
            target.id: target
            for target in session.scalars(
                select(PostTarget)
                .where(PostTarget.id.in_({target_id for target_id, _, _ in wanted}))
                .options(joinedload(PostTarget.post), joinedload(PostTarget.account))
            ).unique()
        }
        now = utcnow()
        to_claim: list[tuple[int, PostTarget, str, str | None, bool]] = []
        seen: set[int] = set()  # a message twice in one batch: the second is stale
        for n, (target_id, token, task_id) in enumerate(wanted):
            target = loaded.get(target_id)
            if (
                target is None
                or target.status != TargetStatus.QUEUED
                or target.dispatch_token != token
                or target_id in seen
            ):
                log_event(
                    "publish.skipped",
                    target_id=target_id,
                    task_id=task_id,
                    status=target.status if target else "missing",
                )
                results[n] = "stale"
            elif (target.next_attempt_at - now).total_seconds() > EARLY_TOLERANCE.total_seconds():
                early.append((target, token, _Requeue(at=target.next_attempt_at), None))
                log_event("publish.early", target_id=target_id, task_id=task_id)
                results[n] = "early"
            else:
                premark = not target.post.media_ids or _prepared(target)
                to_claim.append((n, target, token, task_id, premark))
            seen.add(target_id)
        claimed = _claim(deps, session, [(t, token, mark) for _, t, token, _, mark in to_claim])
    for n, target, token, task_id, premark in to_claim:
        if target.id not in claimed:
            results[n] = "stale"
            continue
        delivery = Delivery(
            target=target,
            token=token,
            task_id=task_id,
            due=max(target.next_attempt_at, now),
            context=TargetContext(deps, target.id, token, premarked=premark),
            fields={
                "post_id": str(target.post_id),
                "target_id": target.id,
                "platform": target.platform,
                "attempt": target.attempts + 1,
                "task_id": task_id,
            },
        )
        log_event("publish.claimed", **delivery.fields)
        results[n] = delivery
    return [results[n] for n in range(len(wanted))], early


def ready_claimed(deps: PipelineDeps, delivery: Delivery) -> Delivery | str:
    """The rest of readying a claimed delivery, on the caller's thread: holds, the built
    request, a look on the platform after an unanswered earlier try."""
    with deps.db.session() as session:
        try:
            _ready(deps, session, delivery)
        except LostClaim:
            deps.claims.released(delivery.target.id)
            log_event("publish.lost_claim", **delivery.fields)
            return "lost_claim"
        except Exception as exc:  # a bug must not strand the target
            log.exception("publish.crashed target_id=%s", delivery.target.id)
            delivery.decision = _internal_error(deps, delivery, exc)
        session.commit()
    return delivery


def fire_delivery(deps: PipelineDeps, delivery: Delivery) -> _Decision | None:
    """At the instant: the platform call, and nothing else. None when the claim was lost."""
    delivery.started = time.monotonic()
    delivery.started_at = utcnow()
    if delivery.decision is not None:
        return delivery.decision
    target, request, context = delivery.target, delivery.request, delivery.context
    assert request is not None
    adapter = deps.adapter_for(target.platform)
    try:
        # Our own caps count the moment of the call, so they are taken at the instant.
        hold = deps.quotas.take_publish_slot(target.platform, target.account_id)
        if hold is not None:
            return _hold_decision(hold, "quota_wait")
        decision = _publish(deps, target, adapter, request, context)
        if decision.status == TargetStatus.UNCONFIRMED and context.marked:
            # Out of retries after a request that may have gone out: look once more.
            since = target.irreversible_started_at or context.marked_at
            decision = _settle(adapter, replace(request, irreversible_started_at=since), decision)
    except LostClaim:
        log_event("publish.lost_claim", **delivery.fields)
        return None
    except Exception as exc:  # an adapter bug must not strand the target
        log.exception("publish.crashed target_id=%s", target.id)
        decision = _internal_error(deps, delivery, exc)
    return decision


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


def _prepared(target: PostTarget) -> bool:
    """Prepared ahead, and no delivery has begun the irreversible call since."""
    return bool((target.platform_handle or {}).get(PREPARED_KEY)) and (
        target.irreversible_started_at is None
    )


def _internal_error(deps: PipelineDeps, delivery: Delivery, exc: Exception) -> _Decision:
    return _transient_decision(
        deps,
        delivery.target,
        PlatformError(f"internal error: {type(exc).__name__}", code="internal_error"),
        maybe_posted=delivery.context.marked or delivery.target.irreversible_started_at is not None,
    )


def record_outcomes(
    deps: PipelineDeps, outcomes: list[tuple[Delivery, _Decision | None]]
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
            written = _finish_retrying(deps, items)
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


def _claim(
    deps: PipelineDeps, session: Session, wanted: list[tuple[PostTarget, str, bool]]
) -> set[int]:
    """Conditional UPDATEs decide which delivery wins (docs/delivery.md, "Dispatch tokens"); returns
    the ids of the targets claimed, committed.

    With `premark`, nothing is left to do before a target's irreversible call, and the
    claim marks it for that call too: the call then needs no write of its own. A crash in
    between only costs a look on the platform before the resend."""
    if not wanted:
        return set()
    now = utcnow()
    lease = now + timedelta(seconds=deps.settings.publish_lease)
    # The posts first, in id order (the API's cancel and PATCH, and the outcome writer,
    # lock in the same order).
    session.execute(
        select(Post.id)
        .where(Post.id.in_({target.post_id for target, _, _ in wanted}))
        .order_by(Post.id)
        .with_for_update()
    )
    claims = (
        values(
            column("id", Integer),
            column("token", String),
            column("premark", Boolean),
            name="claims",
        )
        .data(
            [
                (target.id, token, premark)
                for target, token, premark in sorted(wanted, key=lambda item: item[0].id)
            ]
        )
        # A CTE names its columns on SQLite (the embedded default) too.
        .cte("claims")
    )
    claimed = set(
        session.scalars(
            update(PostTarget)
            .where(
                PostTarget.id == claims.c.id,
                PostTarget.status == TargetStatus.QUEUED,
                PostTarget.dispatch_token == claims.c.token,
            )
            .values(
                status=TargetStatus.PUBLISHING,
                lease_expires_at=lease,
                claim_owner=deps.claims.owner,
                # A preparation still under way writes nothing from now on.
                prepare_token=None,
                irreversible_started_at=case(
                    (claims.c.premark, TargetContext.earliest_start()),
                    else_=PostTarget.irreversible_started_at,
                ),
            )
            .returning(PostTarget.id)
            # The loaded targets keep the marker they had: what an earlier try left unknown.
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        session.rollback()
        return claimed
    # A claimed target always makes its post "publishing", so no need to derive it.
    session.execute(
        update(Post)
        .where(Post.id.in_({t.post_id for t, _, _ in wanted if t.id in claimed}))
        .values(status="publishing", updated_at=now)
    )
    session.commit()
    for target, token, _ in wanted:
        if target.id in claimed:
            # From here the heartbeat keeps the claim alive for as long as this process lives.
            deps.claims.claimed(target.id, token)
            # What the claim wrote, without reading the row back.
            set_committed_value(target, "status", TargetStatus.PUBLISHING)
            set_committed_value(target, "lease_expires_at", lease)
    return claimed


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


def _ready(deps: PipelineDeps, session: Session, delivery: Delivery) -> None:
    """Decide before the instant whatever can be decided; else build the request and mark
    the target, so that nothing is left to write between the instant and the call."""
    target = delivery.target
    if target.worker_losses >= deps.settings.max_worker_losses:
        delivery.decision = _poisoned(deps, session, target)
        return
    hold = deps.quotas.current_wait(target.platform, target.account_id)
    if hold is not None and hold.until > delivery.due.timestamp():
        if hold.until - delivery.due.timestamp() <= ETA_HEAD_START.total_seconds():
            # A wait the platform imposed that ends just after the instant: the claim
            # is kept and the call fires as soon as the wait is over.
            delivery.due = datetime.fromtimestamp(hold.until, UTC)
        else:
            delivery.decision = _hold_decision(hold, "rate_limited")
            return
    try:
        request = build_request(deps, session, target)
    except PlatformError as error:
        delivery.decision = _classify(deps, target, error)
        return
    # Never sit idle in a transaction while a platform answers.
    session.commit()
    if target.irreversible_started_at is not None:
        # A previous delivery may have made the post public without hearing back.
        try:
            found = _reconcile(deps.adapter_for(target.platform), request)
        except PlatformError as error:
            # Cannot ask right now: try again later, the marker stays until we know.
            delivery.decision = _classify(deps, target, error, maybe_posted=True)
            return
        if found is not None:
            delivery.decision = found
            return
    delivery.request = _look_ahead(deps, request)


def _look_ahead(deps: PipelineDeps, request: PublishRequest) -> PublishRequest:
    """What publish() would look at on the platform before its irreversible request (a
    prepared container's status), looked at now, so the instant has only that request."""
    try:
        return deps.adapter_for(request.platform).check_prepared(request)
    except (PlatformError, httpx.TransportError):
        return request  # publish() looks again at the instant, and handles what it finds


def _poisoned(deps: PipelineDeps, session: Session, target: PostTarget) -> _Decision:
    """Deliveries of this target kept killing their worker (out of memory, a crash in a
    media library): stop, after one last look on the platform if a request went out."""
    losses = target.worker_losses
    failed = _Decision(
        outcome="worker_lost",
        status=TargetStatus.FAILED,
        counts_attempt=False,
        error_code="worker_lost",
        error_message=(
            f"The worker publishing this target died {losses} times (for instance out of "
            "memory, or a crash while processing its media), so it was not tried again."
        ),
    )
    if target.irreversible_started_at is None:
        return failed
    try:
        request = build_request(deps, session, target)
        session.commit()
        found = _reconcile(deps.adapter_for(target.platform), request)
    except PlatformError as error:
        found = _Decision(
            outcome="unconfirmed",
            status=TargetStatus.UNCONFIRMED,
            counts_attempt=False,
            error_code="worker_lost",
            error_message=f"{failed.error_message} Whether the platform has the post could "
            f"not be checked: {error.message}",
        )
    if found is None:
        return failed
    if found.status == TargetStatus.UNCONFIRMED:
        return replace(found, error_message=f"{failed.error_message} {found.error_message}")
    return found


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
            try:
                _respect_reported_usage(deps, target, result)
            except Exception:
                # The platform has the post: bookkeeping must never turn that into a retry.
                log.exception("publish.bookkeeping_failed target_id=%s", target.id)
            return _Decision(
                outcome="published",
                status=TargetStatus.PUBLISHED,
                result=result,
                details=result.details or None,
            )
        except AuthExpiredError as error:
            if refreshed or not adapter.can_refresh(request.account):
                return _auth_failure(deps, target, error)
            try:
                fresh = refresh_account(deps.db, deps.settings, adapter, request.account)
            except AuthRevokedError as revoked:
                return _auth_failure(deps, target, revoked)
            except PlatformError as refresh_error:
                return _classify(deps, target, refresh_error)
            request = replace(request, account=fresh)
            refreshed = True
            log_event("publish.token_refreshed", target_id=target.id, platform=target.platform)
        except AuthRevokedError as error:
            # Revoked outright (no refresh can help): the account needs reconnecting.
            return _auth_failure(deps, target, error)
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
        # Marked, and nothing reported done since: an answer is the irreversible
        # request's own, so a rate limit there proves it was turned away.
        "answered_at_the_call": context.marked and not context.saved_after_mark,
        "maybe_posted": context.marked or target.irreversible_started_at is not None,
    }


def _classify(
    deps: PipelineDeps,
    target: PostTarget,
    error: PlatformError,
    *,
    refused: bool = False,
    answered_at_the_call: bool = False,
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
        # A reset the platform names in whole seconds may already be past: it just said
        # no, so it is asked again a moment later, not at once.
        until = max(until, now + MIN_RATE_LIMIT_WAIT)
        deps.quotas.impose_wait(
            target.platform, None if error.scope == "app" else target.account_id, until
        )
        return _Decision(
            outcome=error.outcome.value,
            next=_Requeue(datetime.fromtimestamp(until, UTC)),
            counts_attempt=False,
            wait_seconds=max(until - now, 0.0),
            clear_irreversible=refused or (answered_at_the_call and error.http_status is not None),
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


def _auth_failure(deps: PipelineDeps, target: PostTarget, error: PlatformError) -> _Decision:
    code = "auth_revoked" if isinstance(error, AuthRevokedError) else "auth_expired"
    with deps.db.session() as account_session:
        account = account_session.get(Account, target.account_id)
        if account is not None:
            previous_status = account.status
            account.status = AccountStatus.NEEDS_RECONNECT
            account.status_reason = f"{code}: {error.message}"
            record_account_disconnected(account_session, account, previous_status)
            account_session.commit()
    return _Decision(
        outcome=code,
        status=TargetStatus.FAILED,
        error_code=code,
        error_message=f"{error.message} — reconnect the account.",
        http_status=error.http_status,
    )


# --------------------------------------------------------------------------- finishing


FinishItem = tuple[PostTarget, str, "_Requeue | None", "_Decision | None"]

# A batch that lost a deadlock is run again: its transaction left nothing behind.
BATCH_TRIES = 3
T = TypeVar("T")


def _again_after_deadlock(run: Callable[[], T], batch: str) -> T:
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


def _finish_retrying(deps: PipelineDeps, items: list[FinishItem]) -> set[int]:
    def write() -> set[int]:
        with deps.db.session() as session:
            return _finish(deps, session, items)

    return _again_after_deadlock(write, f"outcome batch of {len(items)}")


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
    for target, token, requeue, decision in sorted(items, key=lambda item: item[0].id):
        values, dispatch = _outcome_values(deps, target, requeue, decision, now)
        from_status = TargetStatus.QUEUED if decision is None else TargetStatus.PUBLISHING
        changed = session.execute(
            update(PostTarget)
            .where(
                PostTarget.id == target.id,
                PostTarget.dispatch_token == token,
                PostTarget.status == from_status,
            )
            .values(**values)
            # The targets were loaded by other sessions: nothing here to keep in step.
            .execution_options(synchronize_session=False)
        ).rowcount
        if not changed:
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
    session.add_all(attempts)
    session.flush()
    posts = session.scalars(
        select(Post)
        .where(Post.id.in_(post_ids))
        .options(selectinload(Post.targets))
        .execution_options(populate_existing=True)
    ).all()
    with endpoints_memo(session):
        for post in posts:
            # Webhooks: each account's outcome event joins this transaction's outbox.
            if post.id in ended:
                record_target_events(session, post, ended[post.id])
            refresh_post_status(post)
    session.commit()
    if dispatches:
        send_dispatches(session, deps.celery, dispatches)
    return written


def _outcome_values(
    deps: PipelineDeps,
    target: PostTarget,
    requeue: _Requeue | None,
    decision: _Decision | None,
    now: datetime,
) -> tuple[dict[str, Any], Dispatch | None]:
    values: dict[str, Any] = {"lease_expires_at": None, "claim_owner": None}
    dispatch = None
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
            due = DueTarget.of(target, requeue.at, head_start=RETRY_HEAD_START)
            dispatch = Dispatch(due, new_token)
        else:
            # Long waits go back to PostgreSQL; the sweeper enqueues them when due.
            values.update(status=TargetStatus.SCHEDULED, dispatch_token=None, queued_at=None)
    return values, dispatch


# ------------------------------------------------------------------------------ request


def build_request(deps: PipelineDeps, session: Session, target: PostTarget) -> PublishRequest:
    post, account = target.post, target.account
    assert post is not None and account is not None
    media_rows = (
        {
            str(m.id): m
            for m in session.scalars(
                select(Media).where(Media.id.in_([uuid.UUID(i) for i in post.media_ids]))
            )
        }
        if post.media_ids
        else {}
    )
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
    # cover_photo: the video's cover image, for platforms that take one.
    cover_row = session.get(Media, uuid.UUID(post.cover_photo)) if post.cover_photo else None
    return PublishRequest(
        target_id=target.id,
        platform=target.platform,
        account=account_credentials(deps.settings, account),
        text=platform_text(target.platform, post.content, post.platform_content),
        settings=platform_settings(target.platform, post.platform_content),
        media=media,
        handle=target.platform_handle,
        irreversible_started_at=target.irreversible_started_at,
        cover=_media_item(deps.settings, cover_row) if cover_row is not None else None,
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

"""Readying a claimed delivery before its instant: the poison check, holds, the built
request, a look on the platform after an unanswered earlier try, and the look-ahead.

Separate from the call itself so that the instant has nothing left to do but the call:
everything here may take time, and none of it may happen between the instant and the
irreversible request.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.dispatch import ETA_HEAD_START
from app.models import PostTarget, PostTargetStep, StepStatus, TargetStatus
from workers.adapters.base import PlatformError, PublishRequest, PublishResult
from workers.pipeline.claim import claim_deliveries
from workers.pipeline.context import (
    Decision,
    Delivery,
    LostClaim,
    PipelineDeps,
    log,
    log_event,
)
from workers.pipeline.fire import classify, hold_decision, internal_error, reconcile
from workers.pipeline.request import build_request
from workers.quotas import Hold


def ready_delivery(
    deps: PipelineDeps, target_id: int, token: str, task_id: str | None = None
) -> Delivery | str:
    """Everything that can be done before the instant: load, claim, credentials, request,
    quota. Returns the delivery to fire at `due`, or what happened instead."""
    claimed = claim_deliveries(deps, [(target_id, token, task_id)])[0]
    return claimed if isinstance(claimed, str) else ready_claimed(deps, claimed)


def ready_claimed(
    deps: PipelineDeps, delivery: Delivery, holds: tuple[Hold | None] | None = None
) -> Delivery | str:
    """The rest of readying a claimed delivery, on the caller's thread: holds, the built
    request, a look on the platform after an unanswered earlier try. `holds`: the wait
    imposed on its account, when already asked for (`ready_many`)."""
    with deps.db.session() as session:
        try:
            _ready(deps, session, delivery, holds)
        except LostClaim:
            deps.claims.released(delivery.target.id)
            log_event("publish.lost_claim", **delivery.fields)
            return "lost_claim"
        except Exception as exc:  # a bug must not strand the target
            log.exception("publish.crashed target_id=%s", delivery.target.id)
            delivery.decision = internal_error(deps, delivery, exc)
        _commit_if_begun(session)
    return delivery


def _commit_if_begun(session: Session) -> None:
    """Commit what was read or written, if anything was: a text post's delivery is
    readied from what its claim loaded, and committing a session that never began a
    transaction still costs SQLAlchemy's bookkeeping (7 % of a publishing worker's CPU
    publishing posts sent now)."""
    if session.in_transaction():
        session.commit()


def ready_many(deps: PipelineDeps, deliveries: list[Delivery]) -> list[Delivery | str]:
    """Ready claimed deliveries one after another, their accounts' waits asked for in one
    round trip (a message of many targets due now)."""
    accounts = [(d.target.platform, d.target.account_id) for d in deliveries]
    holds = deps.quotas.current_waits(accounts) if accounts else []
    return [ready_claimed(deps, d, (hold,)) for d, hold in zip(deliveries, holds, strict=True)]


def _ready(
    deps: PipelineDeps, session: Session, delivery: Delivery, holds: tuple[Hold | None] | None
) -> None:
    """Decide before the instant whatever can be decided; else build the request and mark
    the target, so that nothing is left to write between the instant and the call."""
    target = delivery.target
    if target.worker_losses >= deps.settings.max_worker_losses and not _all_live(session, target):
        delivery.decision = _poisoned(deps, session, target)
        return
    if holds is None:
        holds = (deps.quotas.current_wait(target.platform, target.account_id),)
    hold = holds[0]
    if hold is not None and hold.until > delivery.due.timestamp():
        if hold.until - delivery.due.timestamp() <= ETA_HEAD_START.total_seconds():
            # A wait the platform imposed that ends just after the instant: the claim
            # is kept and the call fires as soon as the wait is over.
            delivery.due = datetime.fromtimestamp(hold.until, UTC)
        else:
            delivery.decision = hold_decision(hold, "rate_limited")
            return
    try:
        request = build_request(deps, session, target)
    except PlatformError as error:
        delivery.decision = classify(deps, target, error)
        return
    # Never sit idle in a transaction while a platform answers.
    _commit_if_begun(session)
    if target.platform_post_id and request.follow_ups:
        # The post is live; what follows it is left (first comment, thread items).
        delivery.request = request
        delivery.live = PublishResult(target.platform_post_id, target.url)
        return
    if target.irreversible_started_at is not None:
        # A previous delivery may have made the post public without hearing back.
        try:
            found = reconcile(deps.adapter_for(target.platform), request)
        except PlatformError as error:
            # Cannot ask right now: try again later, the marker stays until we know.
            delivery.decision = classify(deps, target, error, maybe_posted=True)
            return
        if found is not None and found.result is not None and request.follow_ups:
            # Found live: what follows it is still to post.
            delivery.request = request
            delivery.live = found.result
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


def _all_live(session: Session, target: PostTarget) -> bool:
    """The post and everything after it are on the platform: only the outcome is left to
    write, and no call is made, so whatever killed the workers cannot strike again."""
    if not target.platform_post_id:
        return False
    left = session.scalar(
        select(PostTargetStep.id)
        .where(PostTargetStep.target_id == target.id, PostTargetStep.status != StepStatus.PUBLISHED)
        .limit(1)
    )
    return left is None


def _poisoned(deps: PipelineDeps, session: Session, target: PostTarget) -> Decision:
    """Deliveries of this target kept killing their worker (out of memory, a crash in a
    media library): stop, after one last look on the platform if a request went out."""
    losses = target.worker_losses
    failed = Decision(
        outcome="worker_lost",
        status=TargetStatus.FAILED,
        counts_attempt=False,
        error_code="worker_lost",
        error_message=(
            f"The worker publishing this target died {losses} times (for instance out of "
            "memory, or a crash while processing its media), so it was not tried again."
        ),
    )
    if target.irreversible_started_at is None or target.platform_post_id:
        # Nothing sent, or the post is known live (failed with it: a retry resumes).
        return failed
    try:
        request = build_request(deps, session, target)
        session.commit()
        found = reconcile(deps.adapter_for(target.platform), request)
    except PlatformError as error:
        found = Decision(
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

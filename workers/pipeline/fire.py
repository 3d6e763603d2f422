"""Firing: the platform call at the instant, and the decision its answer leads to
(published, reconciled, held, retried, failed, account disconnected).

Separate because this is where a post may become public: the error classification and
the reconciliation rules that decide whether a request is ever sent again live here, next
to the call they judge.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx

from app.db import utcnow
from app.models import Account, AccountStatus, PostTarget, TargetStatus
from app.services.webhooks import record_account_disconnected
from workers.adapters.base import (
    Adapter,
    AuthExpiredError,
    AuthRevokedError,
    DuplicateError,
    Outcome,
    PlatformError,
    PublishRequest,
    PublishResult,
    ReconcileStatus,
)
from workers.pipeline.context import (
    Decision,
    Delivery,
    LostClaim,
    PipelineDeps,
    Requeue,
    TargetContext,
    log,
    log_event,
)
from workers.pipeline.steps import run_follow_ups
from workers.quotas import Hold
from workers.retry import retry_policy
from workers.tokens import refresh_account

MIN_RATE_LIMIT_WAIT = 1.0


def fire_delivery(deps: PipelineDeps, delivery: Delivery) -> Decision | None:
    """At the instant: the platform call, and nothing else. None when the claim was lost."""
    delivery.started = time.monotonic()
    delivery.started_at = utcnow()
    if delivery.decision is not None:
        return delivery.decision
    target, request, context = delivery.target, delivery.request, delivery.context
    assert request is not None
    adapter = deps.adapter_for(target.platform)
    try:
        if delivery.live is not None:
            # The post is out: only its first comment and thread items are left.
            live = Decision(
                outcome="published", status=TargetStatus.PUBLISHED, result=delivery.live
            )
            return run_follow_ups(deps, delivery, adapter, request, live, classify)
        # Our own caps count the moment of the call, so they are taken at the instant.
        hold = deps.quotas.take_publish_slot(target.platform, target.account_id)
        if hold is not None:
            return hold_decision(hold, "quota_wait")
        decision = _publish(deps, target, adapter, request, context)
        if decision.status == TargetStatus.UNCONFIRMED and context.marked:
            # Out of retries after a request that may have gone out: look once more.
            since = target.irreversible_started_at or context.marked_at
            decision = _settle(adapter, replace(request, irreversible_started_at=since), decision)
        if request.follow_ups and decision.status == TargetStatus.PUBLISHED:
            # The post is out: its first comment and thread follow it at once.
            decision = run_follow_ups(deps, delivery, adapter, request, decision, classify)
    except LostClaim:
        log_event("publish.lost_claim", **delivery.fields)
        return None
    except Exception as exc:  # an adapter bug must not strand the target
        log.exception("publish.crashed target_id=%s", target.id)
        decision = internal_error(deps, delivery, exc)
    return decision


def internal_error(deps: PipelineDeps, delivery: Delivery, exc: Exception) -> Decision:
    return _transient_decision(
        deps,
        delivery.target,
        PlatformError(f"internal error: {type(exc).__name__}", code="internal_error"),
        maybe_posted=delivery.context.marked or delivery.target.irreversible_started_at is not None,
    )


def _publish(
    deps: PipelineDeps,
    target: PostTarget,
    adapter: Adapter,
    request: PublishRequest,
    context: TargetContext,
) -> Decision:
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
            return Decision(
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
                return classify(deps, target, refresh_error)
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
                    found = reconcile(adapter, request)
                except PlatformError:
                    found = None
                if found is not None and found.status == TargetStatus.PUBLISHED:
                    return found
            return classify(deps, target, error, **_after(context, target))
        except PlatformError as error:
            return classify(deps, target, error, **_after(context, target))
        except httpx.TransportError as error:
            network = PlatformError(f"network error: {type(error).__name__}", code="network_error")
            return classify(deps, target, network, **_after(context, target))


def _settle(adapter: Adapter, request: PublishRequest, decision: Decision) -> Decision:
    try:
        found = reconcile(adapter, request)
    except PlatformError:
        return decision
    if found is None:  # the platform says it is not there: a plain failure
        return replace(decision, outcome="failed", status=TargetStatus.FAILED)
    return found if found.status == TargetStatus.PUBLISHED else decision


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


def reconcile(adapter: Adapter, request: PublishRequest) -> Decision | None:
    outcome = adapter.reconcile(request)
    if outcome.status == ReconcileStatus.FOUND and outcome.result is not None:
        return Decision(
            outcome="reconciled_published",
            status=TargetStatus.PUBLISHED,
            result=outcome.result,
            counts_attempt=False,
            details={"reconciled": True, **outcome.result.details},
        )
    if outcome.status == ReconcileStatus.UNKNOWN:
        return Decision(
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


def hold_decision(hold: Hold, outcome: str) -> Decision:
    at = datetime.fromtimestamp(hold.until, UTC)
    wait = max(hold.until - time.time(), 0.0)
    return Decision(
        outcome=outcome,
        next=Requeue(at),
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


def classify(
    deps: PipelineDeps,
    target: PostTarget,
    error: PlatformError,
    *,
    refused: bool = False,
    answered_at_the_call: bool = False,
    maybe_posted: bool = False,
) -> Decision:
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
        return Decision(
            outcome=error.outcome.value,
            next=Requeue(datetime.fromtimestamp(until, UTC)),
            counts_attempt=False,
            wait_seconds=max(until - now, 0.0),
            clear_irreversible=refused or (answered_at_the_call and error.http_status is not None),
            **common,
        )
    if error.outcome == Outcome.TRANSIENT:
        return _transient_decision(deps, target, error, maybe_posted=maybe_posted)
    return Decision(outcome=error.outcome.value, status=TargetStatus.FAILED, **common)


def _transient_decision(
    deps: PipelineDeps, target: PostTarget, error: PlatformError, *, maybe_posted: bool
) -> Decision:
    """Back off and retry; the irreversible marker stays, so the retry reconciles first."""
    policy = retry_policy(target.platform, deps.settings)
    attempts = target.attempts + 1
    common = {"error_code": error.code, "http_status": error.http_status}
    if policy.exhausted(attempts):
        if maybe_posted:
            return Decision(
                outcome="unconfirmed",
                status=TargetStatus.UNCONFIRMED,
                error_message=(
                    f"{error.message} (gave up after {attempts} attempts; a request may have "
                    f"reached {target.platform}, so it was not sent again)"
                ),
                **common,
            )
        return Decision(
            outcome="failed",
            status=TargetStatus.FAILED,
            error_message=f"{error.message} (gave up after {attempts} attempts)",
            **common,
        )
    delay = policy.backoff(attempts)
    return Decision(
        outcome="transient",
        next=Requeue(utcnow() + timedelta(seconds=delay)),
        wait_seconds=delay,
        error_message=error.message,
        **common,
    )


def _auth_failure(deps: PipelineDeps, target: PostTarget, error: PlatformError) -> Decision:
    code = "auth_revoked" if isinstance(error, AuthRevokedError) else "auth_expired"
    with deps.db.session() as account_session:
        account = account_session.get(Account, target.account_id)
        if account is not None:
            previous_status = account.status
            account.status = AccountStatus.NEEDS_RECONNECT
            account.status_reason = f"{code}: {error.message}"
            record_account_disconnected(account_session, account, previous_status)
            account_session.commit()
    return Decision(
        outcome=code,
        status=TargetStatus.FAILED,
        error_code=code,
        error_message=f"{error.message} — reconnect the account.",
        http_status=error.http_status,
    )

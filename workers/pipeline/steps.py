"""What follows a post: its first comment and its thread's items, posted in order once
the post is live, each replying to the one before (docs/delivery.md, "Threads and first
comments").

Each item is a row of `post_target_steps`. Its handle and the moment its request began
are committed before that request, and its platform id as soon as it is answered, before
the next item is sent: a crash, a lost answer or a retry resumes at the first item not
yet on the platform, after looking on the platform for the one whose answer was lost. No
item is ever posted twice.

Separate because these writes come after the post is public, in the delivery that made
it so or in any later one (a retry, a recovered claim), and are fenced by the same
dispatch token as every other write of the delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from app.db import utcnow
from app.models import PostTarget, PostTargetStep, StepStatus, TargetStatus
from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    AuthExpiredError,
    FollowUp,
    PlatformError,
    PublishRequest,
    PublishResult,
    ReconcileStatus,
)
from workers.pipeline.context import Decision, Delivery, LostClaim, PipelineDeps, log_event
from workers.tokens import refresh_account

# classify(deps, target, error, maybe_posted=...) from the fire phase, handed in so that
# the two modules do not import each other.
Judge = Callable[..., Decision]


@dataclass(frozen=True)
class StepRow:
    """A step as read at the start of the delivery."""

    id: int
    position: int
    status: str
    platform_id: str | None
    url: str | None
    handle: dict[str, Any] | None
    started_at: Any


class StepContext:
    """PublishContext for one item: every write is committed at once, and only while the
    delivery's claim on its target stands (LostClaim otherwise)."""

    def __init__(self, deps: PipelineDeps, target_id: int, token: str, step_id: int) -> None:
        self.deps = deps
        self.target_id = target_id
        self.token = token
        self.step_id = step_id
        self.marked = False

    def write(self, target: dict[str, Any] | None = None, **values: Any) -> None:
        """The step's `values` (and the target's), if the claim still stands."""
        lease = utcnow() + timedelta(seconds=self.deps.settings.publish_lease)
        with self.deps.db.session() as session:
            held = session.execute(
                update(PostTarget)
                .where(
                    PostTarget.id == self.target_id,
                    PostTarget.dispatch_token == self.token,
                    PostTarget.status == TargetStatus.PUBLISHING,
                )
                .values(lease_expires_at=lease, **(target or {}))
            ).rowcount
            if not held:
                session.rollback()
                raise LostClaim(f"target {self.target_id} was handed on")
            session.execute(
                update(PostTargetStep).where(PostTargetStep.id == self.step_id).values(**values)
            )
            if values.get("status") == StepStatus.PUBLISHED:
                # Progress: a delivery that gets items out is no poison, whatever killed
                # its worker before.
                session.execute(
                    update(PostTarget)
                    .where(PostTarget.id == self.target_id)
                    .values(worker_losses=0)
                )
            session.commit()

    def save_handle(self, handle: dict[str, Any]) -> None:
        self.write(handle=dict(handle))

    def mark_irreversible(self) -> None:
        now = utcnow()
        self.write(
            # A dead worker's request for this item may still be landing: the sweeper
            # gives it CRIER_INFLIGHT_GRACE from now before the item is looked for.
            target={"irreversible_started_at": now},
            status=StepStatus.SENDING,
            started_at=func.coalesce(PostTargetStep.started_at, now),
        )
        self.marked = True


def commit_live_post(deps: PipelineDeps, delivery: Delivery, result: PublishResult) -> None:
    """The post is public: its id goes in before any item is sent (they reply to it)."""
    target = delivery.target
    if target.platform_post_id == result.platform_post_id:
        return
    delivery.context._update(
        platform_post_id=result.platform_post_id,
        url=result.url,
        published_at=func.coalesce(PostTarget.published_at, utcnow()),
        # Progress, as an item out is: what killed its workers before is no poison.
        worker_losses=0,
    )
    target.platform_post_id, target.url = result.platform_post_id, result.url


def run_follow_ups(
    deps: PipelineDeps,
    delivery: Delivery,
    adapter: Adapter,
    request: PublishRequest,
    main: Decision,
    judge: Judge,
) -> Decision:
    """Post the items not yet on the platform, in order; `main` is the post's own
    published decision, returned once every item is live, else the decision the first
    item that could not be posted leads to (the post stays live either way)."""
    assert main.result is not None
    commit_live_post(deps, delivery, main.result)
    rows = _steps(deps, delivery, request)
    parent = previous = main.result
    done: list[dict[str, Any]] = []
    refreshed = False
    for item in request.follow_ups:
        row = rows[item.position]
        parent = previous if item.kind == "thread_item" else main.result
        if row.status == StepStatus.PUBLISHED and row.platform_id:
            result = PublishResult(row.platform_id, row.url)
        else:
            item = replace(item, handle=row.handle, started_at=row.started_at)
            context = StepContext(deps, delivery.target.id, delivery.token, row.id)
            outcome = _post_item(deps, delivery, adapter, request, parent, item, row, context)
            if isinstance(outcome, AuthExpiredError) and not refreshed:
                # Refused for an expired token: refreshed once, then the item again.
                fresh = _refreshed(deps, adapter, request)
                if fresh is not None:
                    request, refreshed = replace(request, account=fresh), True
                    # Marked by the refused try: the platform is asked first again.
                    if context.marked:
                        row = replace(row, status=StepStatus.SENDING)
                    outcome = _post_item(
                        deps, delivery, adapter, request, parent, item, row, context
                    )
            if isinstance(outcome, PlatformError):
                return _stopped(deps, delivery, item, row, context, outcome, judge, done)
            result = outcome
        done.append({"position": item.position, "id": result.platform_post_id})
        if item.kind == "thread_item":
            previous = result
    details = {**(main.details or {}), "follow_ups": len(done)}
    return replace(main, details=details)


def _post_item(
    deps: PipelineDeps,
    delivery: Delivery,
    adapter: Adapter,
    request: PublishRequest,
    parent: PublishResult,
    item: FollowUp,
    row: StepRow,
    context: StepContext,
) -> PublishResult | PlatformError:
    """One item: looked for first if an earlier attempt may have sent it, else sent. The
    answer, or the error that stopped it."""
    try:
        if row.status in (StepStatus.SENDING, StepStatus.UNCONFIRMED):
            found = adapter.find_follow_up(request, parent, item)
            if found.status == ReconcileStatus.FOUND and found.result is not None:
                _published(context, parent, found.result)
                log_event(
                    "publish.follow_up_adopted",
                    target_id=delivery.target.id,
                    position=item.position,
                )
                return found.result
            if found.status == ReconcileStatus.UNKNOWN:
                return _Unknown(item, found.reason)
        context.write(
            status=StepStatus.PENDING,
            reply_to=parent.platform_post_id,
            error_code=None,
            error_message=None,
        )
        if item.kind == "comment":
            result = adapter.publish_comment(request, parent, item, context)
        else:
            result = adapter.publish_reply(request, parent, item, context)
        _published(context, parent, result)
        log_event("publish.follow_up", target_id=delivery.target.id, position=item.position)
        return result
    except PlatformError as error:
        return error
    except httpx.TransportError as error:
        return PlatformError(f"network error: {type(error).__name__}", code="network_error")


def _refreshed(
    deps: PipelineDeps, adapter: Adapter, request: PublishRequest
) -> AccountCredentials | None:
    """The account's credentials after a token refresh; None when it cannot be refreshed
    (the item's error then stands, and says so)."""
    if not adapter.can_refresh(request.account):
        return None
    try:
        return refresh_account(deps.db, deps.settings, adapter, request.account)
    except PlatformError:
        return None


def _published(context: StepContext, parent: PublishResult, result: PublishResult) -> None:
    context.write(
        status=StepStatus.PUBLISHED,
        reply_to=parent.platform_post_id,
        platform_id=result.platform_post_id,
        url=result.url,
        published_at=utcnow(),
        error_code=None,
        error_message=None,
    )


class _Unknown(PlatformError):
    """The platform cannot tell whether an item whose answer was lost is there."""

    def __init__(self, item: FollowUp, reason: str) -> None:
        super().__init__(
            f"the platform cannot tell whether it went out, so it was not sent again. {reason}",
            code="unconfirmed",
        )


def _stopped(
    deps: PipelineDeps,
    delivery: Delivery,
    item: FollowUp,
    row: StepRow,
    context: StepContext,
    error: PlatformError,
    judge: Judge,
    done: list[dict[str, Any]],
) -> Decision:
    """The item could not be posted: the target's decision names it; the item's row
    keeps the error (and `sending`, while its request may have gone out)."""
    target = delivery.target
    may_be_out = context.marked or row.status in (StepStatus.SENDING, StepStatus.UNCONFIRMED)
    if isinstance(error, _Unknown):
        decision = Decision(
            outcome="unconfirmed",
            status=TargetStatus.UNCONFIRMED,
            counts_attempt=False,
            error_code="unconfirmed",
            error_message=error.message,
        )
    else:
        decision = judge(deps, target, error, maybe_posted=may_be_out)
    live = ", ".join(str(d["position"]) for d in done if d["position"]) or "none"
    message = f"The {item.label} could not be posted: {decision.error_message or error.message}"
    if decision.status == TargetStatus.FAILED:
        message += (
            f" The post is live (thread items live: {live}); retrying the post "
            f"(POST /posts/{{id}}/retry) continues from the {item.label}."
        )
    step_status: str | None = None
    if decision.status == TargetStatus.FAILED:
        step_status = StepStatus.FAILED
    elif decision.status == TargetStatus.UNCONFIRMED:
        step_status = StepStatus.UNCONFIRMED
    values: dict[str, Any] = {"error_code": error.code, "error_message": error.message}
    if step_status is not None:
        values["status"] = step_status
    try:
        context.write(**values)
    except LostClaim:
        raise
    log_event(
        "publish.follow_up_stopped",
        target_id=target.id,
        position=item.position,
        error_code=error.code,
    )
    return replace(decision, error_message=message, result=None)


def _steps(deps: PipelineDeps, delivery: Delivery, request: PublishRequest) -> dict[int, StepRow]:
    """The target's step rows by position, the missing ones made (pending) first."""
    target_id = delivery.target.id
    columns = (
        PostTargetStep.id,
        PostTargetStep.position,
        PostTargetStep.status,
        PostTargetStep.platform_id,
        PostTargetStep.url,
        PostTargetStep.handle,
        PostTargetStep.started_at,
    )
    query = select(*columns).where(PostTargetStep.target_id == target_id)
    with deps.db.session() as session:
        have = {row.position: StepRow(*row) for row in session.execute(query)}
        missing = [item for item in request.follow_ups if item.position not in have]
        if missing:
            now = utcnow()
            session.add_all(
                PostTargetStep(
                    target_id=target_id,
                    position=item.position,
                    kind=item.kind,
                    status=StepStatus.PENDING,
                    created_at=now,
                    updated_at=now,
                )
                for item in missing
            )
            session.commit()
            have = {row.position: StepRow(*row) for row in session.execute(query)}
    return have

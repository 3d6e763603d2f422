"""Claiming: a batch of queued targets taken to `publishing` by conditional UPDATEs.

The claim decides which delivery of a target wins (its dispatch token), so it is kept
apart from everything that follows it: a reader checks the locking order and the fence
here, in one place.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, String, column, select, update, values
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.db import postgresql_driver, utcnow
from app.dispatch import ETA_HEAD_START
from app.models import Post, PostTarget, TargetStatus
from app.services.post_rows import target_driver_value
from workers.adapters.base import PREPARED_KEY
from workers.pipeline.context import (
    Delivery,
    PipelineDeps,
    Requeue,
    TargetContext,
    log,
    log_event,
)
from workers.pipeline.finish import FinishItem, again_after_deadlock, finish_retrying

# A message reaches its worker this long before its instant (app.dispatch.ETA_HEAD_START):
# the delivery is readied and waits on the firing line. Earlier than this, and it is put
# back for its instant.
EARLY_TOLERANCE = ETA_HEAD_START + timedelta(seconds=1)


def claim_deliveries(
    deps: PipelineDeps, wanted: list[tuple[int, str, str | None]]
) -> list[Delivery | str]:
    """Load and claim many targets (id, dispatch token, task id) in one transaction: a
    burst readied ahead costs a few statements per batch, not per target. Each result is
    the claimed delivery, to be readied by `ready_claimed`, or what happened instead.

    It locks posts in id order, as the API and the outcome writer do, but the sweeper's
    and the heartbeat's target updates take no post lock first: a deadlock is possible."""
    results, early = again_after_deadlock(
        lambda: _claim_deliveries(deps, wanted), f"claim batch of {len(wanted)}"
    )
    if early:
        try:
            finish_retrying(deps, early)
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
                early.append((target, token, Requeue(at=target.next_attempt_at), None))
                log_event("publish.early", target_id=target_id, task_id=task_id)
                results[n] = "early"
            else:
                fence = not target.post.media_ids or _prepared(target)
                to_claim.append((n, target, token, task_id, fence))
            seen.add(target_id)
        claimed = _claim(deps, session, [t for _, t, _, _, _ in to_claim], to_claim)
    for n, target, token, task_id, fence in to_claim:
        if target.id not in claimed:
            results[n] = "stale"
            continue
        delivery = Delivery(
            target=target,
            token=token,
            task_id=task_id,
            due=max(target.next_attempt_at, now),
            context=TargetContext(deps, target.id, token),
            fence=fence,
            fields={
                "post_id": str(target.post_id),
                "target_id": target.id,
                "platform": target.platform,
                "attempt": target.attempts + 1,
                "task_id": task_id,
            },
        )
        # The outcome's line says all this line says; at a burst's rate, a line a
        # target costs the publishing worker a few per cent of its CPU.
        log_event("publish.claimed", level=logging.DEBUG, **delivery.fields)
        results[n] = delivery
    return [results[n] for n in range(len(wanted))], early


def _claim(
    deps: PipelineDeps,
    session: Session,
    targets: list[PostTarget],
    wanted: list[tuple[int, PostTarget, str, str | None, bool]],
) -> set[int]:
    """Conditional UPDATEs decide which delivery wins (docs/delivery.md, "Dispatch tokens"); returns
    the ids of the targets claimed, committed.

    The claim does not mark a target for its irreversible call: until the fence just
    before the instant (workers.pipeline.fence), or the adapter's own mark, an edit or a
    cancel may still take the target back."""
    if not wanted:
        return set()
    now = utcnow()
    lease = now + timedelta(seconds=deps.settings.publish_lease)
    # The posts first, in id order (the API's cancel and PATCH, and the outcome writer,
    # lock in the same order).
    session.execute(
        select(Post.id)
        .where(Post.id.in_({target.post_id for target in targets}))
        .order_by(Post.id)
        .with_for_update()
    )
    pairs = sorted((target.id, token) for _, target, token, _, _ in wanted)
    claimed = _take(session, pairs, lease, deps.claims.owner)
    if not claimed:
        session.rollback()
        return claimed
    # A claimed target always makes its post "publishing", so no need to derive it.
    session.execute(
        update(Post)
        .where(Post.id.in_({t.post_id for t in targets if t.id in claimed}))
        .values(status="publishing", updated_at=now)
    )
    session.commit()
    for _, target, token, _, _ in wanted:
        if target.id in claimed:
            # From here the heartbeat keeps the claim alive for as long as this process lives.
            deps.claims.claimed(target.id, token)
            # What the claim wrote, without reading the row back.
            set_committed_value(target, "status", TargetStatus.PUBLISHING)
            set_committed_value(target, "lease_expires_at", lease)
    return claimed


# The same conditional UPDATE, one statement whatever the batch's size, so PostgreSQL and
# the driver prepare it once: built by SQLAlchemy with a VALUES list, each batch compiled
# anew, which took an eighth of a publishing worker's CPU publishing posts sent now.
_TAKE_SQL = (
    "UPDATE post_targets SET status = %s, lease_expires_at = %s, claim_owner = %s,"
    " prepare_token = NULL"
    " FROM unnest(%s::bigint[], %s::text[]) AS claims(id, token)"
    " WHERE post_targets.id = claims.id AND post_targets.status = %s"
    " AND post_targets.dispatch_token = claims.token RETURNING post_targets.id"
)


def _take(session: Session, pairs: list[tuple[int, str]], lease: datetime, owner: str) -> set[int]:
    """The targets among (id, token) pairs still queued with that token, now claimed by
    `owner` until `lease` (uncommitted); returns their ids."""
    driver = postgresql_driver(session)
    if driver is not None:
        params = (
            TargetStatus.PUBLISHING.value,
            target_driver_value("lease_expires_at", lease),
            owner,
            [target_id for target_id, _ in pairs],
            [token for _, token in pairs],
            TargetStatus.QUEUED.value,
        )
        return {row[0] for row in driver.execute(_TAKE_SQL, params).fetchall()}
    return update_where_token_holds(
        session,
        pairs,
        TargetStatus.QUEUED,
        status=TargetStatus.PUBLISHING,
        lease_expires_at=lease,
        claim_owner=owner,
        # A preparation still under way writes nothing from now on.
        prepare_token=None,
    )


def update_where_token_holds(
    session: Session, pairs: list[tuple[int, str]], from_status: TargetStatus, **changes: Any
) -> set[int]:
    """`changes` written to each target of the (id, token) pairs that still holds that
    token and `from_status`, in one Core statement (uncommitted); returns the ids changed.
    The form for a database other than PostgreSQL, where a batch's statement is written
    for the driver."""
    pairs_cte = (
        values(column("id", Integer), column("token", String), name="pairs")
        .data(pairs)
        # A CTE names its columns on SQLite (the embedded default) too.
        .cte("pairs")
    )
    return set(
        session.scalars(
            update(PostTarget)
            .where(
                PostTarget.id == pairs_cte.c.id,
                PostTarget.status == from_status,
                PostTarget.dispatch_token == pairs_cte.c.token,
            )
            .values(**changes)
            .returning(PostTarget.id)
            .execution_options(synchronize_session=False)
        )
    )


def _prepared(target: PostTarget) -> bool:
    """Prepared ahead, and no delivery has begun the irreversible call since."""
    return bool((target.platform_handle or {}).get(PREPARED_KEY)) and (
        target.irreversible_started_at is None
    )

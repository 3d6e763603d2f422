"""The fence just before the instant: one conditional UPDATE for every readied delivery
due then, so that an edit or a cancel made while a delivery waits on the firing line
takes it back, and a delivery that fires is known to hold its claim.

Separate because this write is what makes `200 cancelled` mean "never sent": a cancel
changes the target's token under its row lock, so either it commits first and the fence
finds the token gone (the delivery is dropped, nothing is called), or the fence commits
first and marks the target, and the cancel then answers `409 post_publishing`.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Integer, String, column, update, values

from app.db import utcnow
from app.models import PostTarget, TargetStatus
from workers.pipeline.context import Delivery, PipelineDeps, TargetContext, log_event
from workers.pipeline.finish import again_after_deadlock

# Deliveries are fenced this long before their instant: the write is done when the
# instant comes, so the calls of a burst do not wait for it. Until then an edit or a
# cancel still takes the delivery back.
FENCE_AHEAD = timedelta(seconds=0.5)


def fenceable(delivery: Delivery) -> bool:
    """Readied with nothing left before its irreversible call (a text post, or one
    prepared ahead): the fence marks it for that call, which then writes nothing."""
    return (
        delivery.decision is None
        and delivery.request is not None
        and delivery.fence
        # Already public: only its first comment or thread items are left, each marked
        # on its own (workers.pipeline.steps).
        and delivery.live is None
    )


def fence_deliveries(
    deps: PipelineDeps, deliveries: list[Delivery]
) -> tuple[list[Delivery], list[Delivery]]:
    """Mark the targets of `deliveries` for their irreversible call in one transaction,
    each only if its claim still holds (status `publishing`, same token); returns those
    still held, to fire, and those taken back by an edit or a cancel, to drop."""
    if not deliveries:
        return [], []
    by_id = {d.target.id: d for d in deliveries}
    held_ids = again_after_deadlock(
        lambda: _fence(deps, [(d.target.id, d.token) for d in by_id.values()]),
        f"fence of {len(by_id)}",
    )
    held, taken = [], []
    for delivery in deliveries:
        if delivery.target.id in held_ids and by_id[delivery.target.id] is delivery:
            # Marked by the fence: the call needs no write of its own.
            delivery.context.premarked = True
            held.append(delivery)
        else:
            log_event("publish.taken_back", **delivery.fields)
            taken.append(delivery)
    return held, taken


def _fence(deps: PipelineDeps, wanted: list[tuple[int, str]]) -> set[int]:
    now = utcnow()
    fences = (
        values(column("id", Integer), column("token", String), name="fences")
        # Targets in id order, as every other batch locks them.
        .data(sorted(wanted))
        .cte("fences")
    )
    with deps.db.session() as session:
        held = set(
            session.scalars(
                update(PostTarget)
                .where(
                    PostTarget.id == fences.c.id,
                    PostTarget.status == TargetStatus.PUBLISHING,
                    PostTarget.dispatch_token == fences.c.token,
                )
                .values(
                    irreversible_started_at=TargetContext.earliest_start(),
                    lease_expires_at=now + timedelta(seconds=deps.settings.publish_lease),
                )
                .returning(PostTarget.id)
                .execution_options(synchronize_session=False)
            )
        )
        session.commit()
    return held

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

from app.db import postgresql_driver, utcnow
from app.models import TargetStatus
from app.services.post_rows import target_driver_value
from workers.pipeline.claim import update_where_token_holds
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


# One statement whatever the batch's size, so PostgreSQL and the driver prepare it once
# (a VALUES list is compiled by SQLAlchemy anew for each batch).
_FENCE_SQL = (
    "UPDATE post_targets SET irreversible_started_at = COALESCE(irreversible_started_at, %s),"
    " lease_expires_at = %s"
    " FROM unnest(%s::bigint[], %s::text[]) AS fences(id, token)"
    " WHERE post_targets.id = fences.id AND post_targets.status = %s"
    " AND post_targets.dispatch_token = fences.token RETURNING post_targets.id"
)


def _fence(deps: PipelineDeps, wanted: list[tuple[int, str]]) -> set[int]:
    now = utcnow()
    lease = now + timedelta(seconds=deps.settings.publish_lease)
    # Targets in id order, as every other batch locks them.
    wanted = sorted(wanted)
    with deps.db.session() as session:
        driver = postgresql_driver(session)
        if driver is not None:
            params = (
                target_driver_value("irreversible_started_at", now),
                target_driver_value("lease_expires_at", lease),
                [target_id for target_id, _ in wanted],
                [token for _, token in wanted],
                TargetStatus.PUBLISHING.value,
            )
            held = {row[0] for row in driver.execute(_FENCE_SQL, params).fetchall()}
        else:
            held = update_where_token_holds(
                session,
                wanted,
                TargetStatus.PUBLISHING,
                irreversible_started_at=TargetContext.earliest_start(),
                lease_expires_at=lease,
            )
        session.commit()
    return held

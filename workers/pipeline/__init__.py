"""Publishing one post target: claim, holds, adapter call, outcome, and what comes next.

Plain functions over explicit dependencies, so they run the same under a Celery worker
and in tests. Every write after the claim is guarded by the dispatch token: a worker that
lost its claim (its lease expired and the sweeper handed the target on) changes nothing.

One module per phase of a delivery, in the order a target goes through them:

- `claim`: the batch that takes targets from `queued` to `publishing` (conditional UPDATEs);
- `ready`: what can be done before the instant (poison check, holds, the request, a look
  on the platform after an unanswered try, the look-ahead);
- `fence`: the batch write just before the instant that an edit or a cancel loses to;
- `fire`: the platform call at the instant, and the decision its answer leads to;
- `finish`: the outcomes written in batches, the next message, the webhook events;
- `request`: the PublishRequest an adapter gets, built from the post and its media;
- `context`: the types every phase shares.
"""

from __future__ import annotations

import time

from app.db import utcnow
from workers.pipeline.claim import EARLY_TOLERANCE, claim_deliveries
from workers.pipeline.context import (
    Decision,
    Delivery,
    LostClaim,
    PipelineDeps,
    Requeue,
    TargetContext,
    log_event,
)
from workers.pipeline.fence import FENCE_AHEAD, fence_deliveries, fenceable
from workers.pipeline.finish import hand_back, record_outcomes
from workers.pipeline.fire import fire_delivery
from workers.pipeline.ready import ready_claimed, ready_delivery, ready_many
from workers.pipeline.request import build_request

__all__ = [
    "EARLY_TOLERANCE",
    "FENCE_AHEAD",
    "Decision",
    "Delivery",
    "LostClaim",
    "PipelineDeps",
    "Requeue",
    "TargetContext",
    "build_request",
    "claim_deliveries",
    "fence_deliveries",
    "fenceable",
    "fire_delivery",
    "hand_back",
    "log_event",
    "publish_target",
    "ready_claimed",
    "ready_delivery",
    "ready_many",
    "record_outcomes",
]


def publish_target(
    deps: PipelineDeps, target_id: int, token: str, task_id: str | None = None
) -> str:
    """Run one delivery of a target in this thread; returns what happened."""
    delivery = ready_delivery(deps, target_id, token, task_id)
    if isinstance(delivery, str):
        return delivery
    if fenceable(delivery):
        wait = (delivery.due - FENCE_AHEAD - utcnow()).total_seconds()
        if wait > 0:
            time.sleep(wait)
        held, _ = fence_deliveries(deps, [delivery])
        if not held:  # taken back by an edit or a cancel: nothing is called
            return record_outcomes(deps, [(delivery, None)])[0]
    wait = (delivery.due - utcnow()).total_seconds()
    if wait > 0:
        time.sleep(wait)
    decision = fire_delivery(deps, delivery)
    return record_outcomes(deps, [(delivery, decision)])[0]

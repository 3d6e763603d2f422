"""What every phase of a delivery shares: the dependencies, the claimed target's context,
the delivery carried from claim to outcome, and the decision a phase hands to the next.

Separate so that each phase imports these types without importing another phase.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import func, update

from app.config import Settings
from app.db import Database, utcnow
from app.models import PostTarget, PublishAttempt, TargetStatus
from workers.adapters.base import Adapter, PublishRequest, PublishResult
from workers.liveness import LiveClaims, process_claims
from workers.quotas import SharedQuotas

log = logging.getLogger("crier.pipeline")


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


def log_event(event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """One line per event, `key=value` pairs: ids only, never tokens or post text."""
    if not log.isEnabledFor(level):
        return
    rendered = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    log.log(level, "%s %s", event, rendered, extra={"crier": {"event": event, **fields}})


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
            # Marked by the fence just before the instant, and this process's heartbeat
            # proves the claim still stands: the call needs no write at the instant. A
            # handle made at the call itself goes in with the outcome; a crash before that
            # only means the reconciliation looks for the post without it.
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


@dataclass
class Requeue:
    at: datetime


@dataclass
class Decision:
    outcome: str
    status: str | None = None  # final status, or None when the target goes back to wait
    next: Requeue | None = None
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
    decision: Decision | None = None
    started: float = 0.0
    started_at: datetime | None = None
    # Nothing left before the irreversible call (no media, or prepared ahead): fenced
    # in a batch just before the instant (workers.pipeline.fence), not at the call.
    fence: bool = False
    # The post is already public (an earlier delivery made it so, or a look on the
    # platform found it): only what follows it (first comment, thread) is left.
    live: PublishResult | None = None

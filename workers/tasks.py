"""Celery tasks: thin wrappers that hand ids to the plain functions of the pipeline."""

from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Any

import httpx
from celery import Task, shared_task
from flask import current_app

from app.config import Settings
from app.db import get_db
from app.http_deadline import deadline_client
from app.queues import (
    DISCARD_TASK,
    PREPARE_TASK,
    PUBLISH_BATCH_TASK,
    PUBLISH_TASK,
    REFRESH_TOKENS_TASK,
    SWEEP_TASK,
)
from workers.adapters import get_adapter
from workers.adapters.base import Adapter
from workers.firing import BatchCaller, BatchWriter, FiringLine, InstantBatches
from workers.pipeline import (
    FENCE_AHEAD,
    Delivery,
    PipelineDeps,
    claim_deliveries,
    fence_deliveries,
    fenceable,
    fire_delivery,
    hand_back,
    ready_claimed,
    ready_many,
    record_outcomes,
)
from workers.preparation import discard_handles, prepare_target
from workers.quotas import SharedQuotas
from workers.sweeper import sweep_due_targets
from workers.tokens import refresh_expiring_tokens

log = logging.getLogger("crier.tasks")
_adapters_lock = threading.Lock()
_http_clients: dict[tuple[float, float, float], httpx.Client] = {}
_adapters: dict[tuple[str, Settings], Adapter] = {}


def _client_key(settings: Settings) -> tuple[float, float, float]:
    return (settings.http_timeout, settings.platform_call_deadline, settings.upload_min_rate)


def platform_http_client(settings: Settings) -> httpx.Client:
    """One pooled client per worker process; thread-safe for concurrent publishes. Each
    platform call ends within CRIER_PLATFORM_CALL_DEADLINE (an upload: plus its size at
    CRIER_UPLOAD_MIN_RATE), however slowly the platform answers."""
    key = _client_key(settings)
    with _adapters_lock:
        client = _http_clients.get(key)
        if client is None:
            # Made once under the lock: a burst's first tasks would otherwise each build
            # a client (and its TLS context, tens of milliseconds of CPU) at once.
            client = _http_clients[key] = deadline_client(
                settings.platform_call_deadline,
                bytes_per_second=settings.upload_min_rate,
                timeout=httpx.Timeout(settings.http_timeout, connect=10.0),
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=200),
            )
        return client


def _adapter(platform: str, settings: Settings) -> Adapter:
    """One per platform per process: adapters keep no per-publish state, and per-account
    caches (X's users/me) then outlive a task. Built from the settings, which carry the
    platform's base URL, app credentials and API version."""
    key = (platform, settings)
    adapter = _adapters.get(key)
    if adapter is None:
        client = platform_http_client(settings)
        with _adapters_lock:
            adapter = _adapters.setdefault(
                key, get_adapter(platform, client, settings.platform_base_url, settings)
            )
    return adapter


def warm_up(platforms: list[str]) -> None:
    """Before the first burst: the HTTP client (its TLS context) and the adapters, so the
    first due targets do not all build them at once."""
    deps = pipeline_deps()
    for platform in platforms:
        deps.adapter_for(platform)


def pipeline_deps() -> PipelineDeps:
    settings = current_app.config["CRIER"]
    return PipelineDeps(
        db=get_db(),
        settings=settings,
        celery=current_app.extensions["celery"],
        quotas=_quotas(settings.redis_url, tuple(sorted(settings.publish_caps.items()))),
        adapter_for=lambda platform: _adapter(platform, settings),
    )


@lru_cache(maxsize=4)
def _quotas(redis_url: str, publish_caps: tuple[tuple[str, tuple[Any, ...]], ...]) -> SharedQuotas:
    return SharedQuotas(redis_url, dict(publish_caps))


@shared_task(name=PUBLISH_TASK, bind=True, ignore_result=True)
def publish_target_task(self: Task, target_id: int, dispatch_token: str) -> str:
    deps = pipeline_deps()
    # The claim joins those of the pool's other threads in one transaction.
    claimed = claiming(deps)((target_id, dispatch_token, self.request.id))
    if isinstance(claimed, str):
        return claimed
    delivery = ready_claimed(deps, claimed)
    return delivery if isinstance(delivery, str) else _line_up(deps, delivery)


@shared_task(name=PUBLISH_BATCH_TASK, bind=True, ignore_result=True)
def publish_targets_task(self: Task, targets: list[list[Any]]) -> dict[str, int]:
    """Many targets of one queue due now (a bulk published now, a sweep's resends): claimed
    in one transaction, readied here, then fenced and fired together on the line."""
    deps = pipeline_deps()
    task_id = self.request.id
    wanted = [(int(target_id), str(token), task_id) for target_id, token in targets]
    claimed = claim_deliveries(deps, wanted)
    outcomes: dict[str, int] = {}
    for result in [c for c in claimed if isinstance(c, str)] + ready_many(
        deps, [c for c in claimed if not isinstance(c, str)]
    ):
        outcome = result if isinstance(result, str) else _line_up(deps, result)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _line_up(deps: PipelineDeps, delivery: Delivery) -> str:
    """Hand a readied delivery to the fence and the firing line."""
    _, writer, fences = firing(deps)
    if delivery.decision is not None:
        # Settled without a call (a hold, a reconciled post): no instant to wait for, so
        # it is written here and the task reports the outcome (Flower shows it).
        decision = fire_delivery(deps, delivery)
        writer.put((delivery, decision))
        return decision.outcome if decision is not None else "lost_claim"
    if fenceable(delivery):
        # Fenced with the others due then, just before the instant (at once when due
        # already: publish now), then fired at the instant on the firing line.
        fences.schedule((delivery.due - FENCE_AHEAD).timestamp(), delivery)
    else:
        # Work left before the call (uploads): the adapter's own mark is its fence.
        schedule_fire(deps, delivery)
    return "ready"


def schedule_fire(deps: PipelineDeps, delivery: Delivery) -> None:
    """Fire at its instant (at once if due already) on this process's firing line."""
    line, writer, _ = firing(deps)
    line.schedule(
        delivery.due.timestamp(),
        lambda: writer.put((delivery, fire_delivery(deps, delivery))),
        delivery,
    )


def _fence_and_fire(deps: PipelineDeps, deliveries: list[Delivery]) -> None:
    """The fence thread's batch: one write for every delivery due now, then each that is
    still held goes to the firing line; those taken back by an edit or a cancel are
    dropped (their outcome is "lost_claim", which writes nothing)."""
    _, writer, _ = firing(deps)
    try:
        held, taken = fence_deliveries(deps, deliveries)
    except Exception:
        # Not fenced: each call then writes its own mark first, which fences it alone.
        log.exception("fence of %d deliveries failed; each is fenced at its call", len(deliveries))
        held, taken = deliveries, []
    for delivery in taken:
        writer.put((delivery, None))
    for delivery in held:
        schedule_fire(deps, delivery)


_firing: tuple[FiringLine, BatchWriter, InstantBatches] | None = None
_claiming: BatchCaller | None = None
_firing_lock = threading.Lock()


def claiming(deps: PipelineDeps) -> BatchCaller:
    """This process's claimer: (target id, token, task id) in, claimed delivery out."""
    global _claiming
    with _firing_lock:
        if _claiming is None:
            _claiming = BatchCaller(lambda batch: claim_deliveries(deps, batch), name="claims")
        return _claiming


def firing(deps: PipelineDeps) -> tuple[FiringLine, BatchWriter, InstantBatches]:
    """This process's firing line, outcome writer and fence, made on first use."""
    global _firing
    with _firing_lock:
        if _firing is None:
            line = FiringLine(deps.settings.fire_threads)
            writer = BatchWriter(lambda batch: record_outcomes(deps, batch), busy=line.busy)
            fences = InstantBatches(lambda batch: _fence_and_fire(deps, batch), name="fence")
            _firing = (line, writer, fences)
        return _firing


def stop_firing() -> None:
    """On a warm shutdown: deliveries not fired yet go back to the queue; fired ones have
    their outcomes written before the process leaves."""
    if _firing is None:
        return
    line, writer, fences = _firing
    unfenced = fences.stop()
    unfired = line.stop()
    writer.flush()
    if unfenced or unfired:
        hand_back(pipeline_deps(), unfenced + unfired)


@shared_task(name=PREPARE_TASK, bind=True, ignore_result=True)
def prepare_target_task(self: Task, target_id: int, prepare_token: str) -> str:
    return prepare_target(pipeline_deps(), target_id, prepare_token, task_id=self.request.id)


@shared_task(name=DISCARD_TASK, ignore_result=True)
def discard_prepared_handles_task() -> dict[str, int]:
    return discard_handles(pipeline_deps())


@shared_task(name=SWEEP_TASK, ignore_result=True)
def sweep_due_targets_task() -> dict[str, int]:
    settings = current_app.config["CRIER"]
    return sweep_due_targets(get_db(), settings, current_app.extensions["celery"]).as_dict()


@shared_task(name=REFRESH_TOKENS_TASK, ignore_result=True)
def refresh_expiring_tokens_task() -> dict[str, int]:
    deps = pipeline_deps()
    return refresh_expiring_tokens(deps.db, deps.settings, deps.adapter_for)

"""Prometheus metrics: what the pipeline counts as it works, and what the web process reads
from PostgreSQL, Redis and the broker when it is scraped.

Counters and histograms live in the process that observes them. Under gunicorn or a
prefork pool set PROMETHEUS_MULTIPROC_DIR (an empty directory per process group, before
the process starts): prometheus-client then keeps the values in files there and a scrape
adds up every process. Without it each process serves its own values.

Web: `GET /metrics` (counters of the web process plus the state read at scrape time).
Worker: `CRIER_METRICS_PORT` serves the worker's counters on that port.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.db import get_db, utcnow
from app.models import Account, AccountStatus, Platform, PostTarget, TargetStatus
from app.queues import publish_queue, queue_names
from app.redis_client import redis_client

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings

log = logging.getLogger(__name__)

BEAT_TICK_KEY = "crier:metrics:beat_last_tick"

LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

PUBLISH_LATENESS = Histogram(
    "crier_publish_lateness_seconds",
    "Seconds from a target's due instant to its irreversible platform call.",
    ["platform"],
    buckets=LATENESS_BUCKETS,
)
PUBLISH_OUTCOMES = Counter(
    "crier_publish_outcomes",
    "Deliveries of a publish message by platform, outcome and class.",
    ["platform", "outcome", "class"],
)
PUBLISH_ATTEMPTS = Counter(
    "crier_publish_attempts",
    "Deliveries that claimed their target and ran (holds and retries included).",
    ["platform"],
)
PUBLISHING_SECONDS = Histogram(
    "crier_target_publishing_seconds",
    "Seconds a target spent in `publishing` during one delivery.",
    ["platform"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
HOLDS = Counter(
    "crier_holds",
    "Deliveries put back to wait for a platform rate limit or a quota.",
    ["platform", "kind"],
)
TOKEN_REFRESHES = Counter(
    "crier_token_refreshes",
    "OAuth token refreshes by platform and result (ok, revoked, error).",
    ["platform", "result"],
)
SWEEPS = Counter("crier_sweeper_runs", "Sweeper runs.")
SWEEP_RECOVERED = Counter(
    "crier_sweeper_targets",
    "Targets the sweeper handled: entered_horizon, requeued_lost, recovered_dead, sent.",
    ["kind"],
)

AI_CAPTION_REQUESTS = Counter(
    "crier_ai_caption_requests",
    "POST /ai/generate-caption by outcome: ok, or the error code (ai_timeout, ...).",
    ["outcome"],
)
AI_CAPTIONS = Counter("crier_ai_captions", "Captions generated (credits spent).")

_CLASSES = {
    "published": "success",
    "reconciled_published": "success",
    "transient": "transient",
    "rate_limited": "hold",
    "quota_exhausted": "hold",
    "quota_wait": "hold",
    "unconfirmed": "unconfirmed",
    "stale": "skipped",
    "early": "skipped",
    "lost_claim": "skipped",
}


def outcome_class(outcome: str) -> str:
    """success, transient, hold, unconfirmed, skipped, or permanent (every failure)."""
    return _CLASSES.get(outcome, "permanent")


# --------------------------------------------------------------------- called by workers


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start is not None and end is not None else None


def observe_publish(
    platform: str,
    outcome: str,
    lateness_s: float | None = None,
    publishing_s: float | None = None,
) -> None:
    """One delivery of a publish message ended with `outcome`; `lateness_s` when it made
    the irreversible call, `publishing_s` when it held the target in `publishing`."""
    try:
        kind = outcome_class(outcome)
        PUBLISH_OUTCOMES.labels(platform, outcome, kind).inc()
        if kind != "skipped":
            PUBLISH_ATTEMPTS.labels(platform).inc()
        if kind == "hold":
            HOLDS.labels(platform, outcome).inc()
        if lateness_s is not None:
            PUBLISH_LATENESS.labels(platform).observe(max(lateness_s, 0.0))
        if publishing_s is not None:
            PUBLISHING_SECONDS.labels(platform).observe(max(publishing_s, 0.0))
    except Exception:  # metrics must never break a publish
        log.debug("metrics: observe_publish failed", exc_info=True)


def observe_token_refresh(platform: str, result: str) -> None:
    try:
        TOKEN_REFRESHES.labels(platform, result).inc()
    except Exception:
        log.debug("metrics: observe_token_refresh failed", exc_info=True)


def observe_sweep(report: Any, redis_url: str | None = None) -> None:
    """A sweeper run (beat sends it): counts what it recovered and stamps beat's tick."""
    try:
        SWEEPS.inc()
        for kind, value in report.as_dict().items():
            if value:
                SWEEP_RECOVERED.labels(kind).inc(int(value))
        if redis_url:
            redis_client(redis_url).set(BEAT_TICK_KEY, time.time())
    except Exception:
        log.debug("metrics: observe_sweep failed", exc_info=True)


# ------------------------------------------------------------------------- exposition


class _ProcessCollector(Collector):
    """This process's own metrics (the global registry), when not in multiprocess mode."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def process_registry(multiprocess_dir: str | None) -> CollectorRegistry:
    """A registry of the counters: every process's under multiprocess mode (the
    PROMETHEUS_MULTIPROC_DIR prometheus_client writes them to), else ours."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir:
        multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)
    else:
        registry.register(_ProcessCollector())
    return registry


def start_worker_metrics_server(settings: Settings, addr: str = "0.0.0.0") -> None:
    """Serve this worker's counters on CRIER_METRICS_PORT, when it is set."""
    port = settings.metrics_port
    if port is None:
        return
    registry = process_registry(settings.prometheus_multiproc_dir)
    start_http_server(port, addr=addr, registry=registry)
    log.info("metrics served on port %s", port)


def render_metrics(app: Flask) -> bytes:
    registry = process_registry(app.config["CRIER"].prometheus_multiproc_dir)
    registry.register(StateCollector(app))
    return generate_latest(registry)


# ----------------------------------------------------------------- state at scrape time


class StateReading:
    """The last reading of the state, shared by this process's scrapes for a few seconds.

    One scrape reads (three GROUP BY queries, the broker, Redis) while the scrapes that
    arrive meanwhile wait for it and reuse its answer, so a burst of scrapes, or several
    Prometheus servers, cost one reading per CRIER_METRICS_CACHE_SECONDS.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fresh_until = 0.0
        self.metrics: list[Metric] = []

    def get(self, ttl: float, read: Callable[[], list[Metric]]) -> list[Metric]:
        with self.lock:
            now = time.monotonic()
            if now >= self.fresh_until:
                self.metrics = read()
                self.fresh_until = now + ttl
            return self.metrics


def state_reading(app: Flask) -> StateReading:
    reading = app.extensions.get("crier.metrics_state")
    if reading is None:
        reading = app.extensions.setdefault("crier.metrics_state", StateReading())
    return reading


def forget_state(app: Flask) -> None:
    """Drop the cached reading: the next scrape reads afresh."""
    app.extensions.pop("crier.metrics_state", None)


class StateCollector(Collector):
    """Targets by status, accounts by status, broker queue depth and the age of the oldest
    due message, and beat's last tick: read when Prometheus scrapes the web process."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        ttl = self.app.config["CRIER"].metrics_cache_seconds
        yield from state_reading(self.app).get(ttl, self.read)

    def read(self) -> list[Metric]:
        return [*self._database(), *self._broker(), *self._beat()]

    def _database(self) -> Iterator[Metric]:

        targets = GaugeMetricFamily(
            "crier_targets", "Post targets by platform and status.", labels=["platform", "status"]
        )
        accounts = GaugeMetricFamily(
            "crier_accounts", "Accounts by platform and status.", labels=["platform", "status"]
        )
        oldest = GaugeMetricFamily(
            "crier_queue_oldest_message_age_seconds",
            "Age of the oldest due message waiting for a worker, per queue "
            "(queued targets past their instant).",
            labels=["queue"],
        )
        up = GaugeMetricFamily("crier_database_up", "Whether the scrape could read PostgreSQL.")

        try:
            with self.app.app_context(), get_db(self.app).session() as session:
                counts = {
                    (platform, status): n
                    for platform, status, n in session.execute(
                        select(PostTarget.platform, PostTarget.status, func.count()).group_by(
                            PostTarget.platform, PostTarget.status
                        )
                    )
                }
                account_counts = {
                    (platform, status): n
                    for platform, status, n in session.execute(
                        select(Account.platform, Account.status, func.count()).group_by(
                            Account.platform, Account.status
                        )
                    )
                }
                now = utcnow()
                waiting = dict(
                    session.execute(
                        select(PostTarget.platform, func.min(PostTarget.next_attempt_at))
                        .where(
                            PostTarget.status == TargetStatus.QUEUED,
                            PostTarget.next_attempt_at <= now,
                        )
                        .group_by(PostTarget.platform)
                    ).all()
                )
        except Exception:
            log.warning("metrics: database unreadable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for platform in Platform:
            for status in TargetStatus:
                targets.add_metric(
                    [platform.value, status.value], counts.get((platform.value, status.value), 0)
                )
            for account_status in AccountStatus:
                accounts.add_metric(
                    [platform.value, account_status.value],
                    account_counts.get((platform.value, account_status.value), 0),
                )
            due = waiting.get(platform.value)
            age = max((now - due).total_seconds(), 0.0) if due is not None else 0.0
            oldest.add_metric([publish_queue(platform.value)], age)
        yield from (up, targets, accounts, oldest)

    def _broker(self) -> Iterator[Metric]:

        depth = GaugeMetricFamily(
            "crier_queue_depth",
            "Messages ready in each broker queue (not those a worker holds).",
            labels=["queue"],
        )
        up = GaugeMetricFamily("crier_broker_up", "Whether the scrape could read the broker.")
        celery = self.app.extensions["celery"]
        try:
            with celery.connection_for_read() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
                channel = conn.default_channel
                redis = conn.transport.driver_type == "redis"
                for name in queue_names():
                    if redis:
                        depth.add_metric([name], channel.client.llen(name))
                    else:
                        try:
                            ok = channel.queue_declare(name, passive=True)
                            depth.add_metric([name], ok.message_count)
                        except Exception:  # not declared yet: no worker ever started
                            channel = conn.channel()
                            depth.add_metric([name], 0)
        except Exception:
            log.warning("metrics: broker unreadable", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield depth

    def _beat(self) -> Iterator[Metric]:

        tick = GaugeMetricFamily(
            "crier_beat_last_tick_timestamp_seconds",
            "When a sweep scheduled by beat last ran (Unix time); 0 if never.",
        )
        try:
            raw = redis_client(self.app.config["CRIER"].redis_url).get(BEAT_TICK_KEY)
            tick.add_metric([], float(raw) if raw else 0.0)
        except Exception:
            log.warning("metrics: redis unreadable", exc_info=True)
            return
        yield tick

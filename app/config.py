"""Settings, read from the environment once and shared by the API, the workers and the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_SQLITE_PATH = Path("var") / "crier.sqlite3"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


def _env_ports(name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    ports = tuple(int(part) for part in raw.split(",") if part.strip())
    if not ports or any(not 0 < port < 65536 for port in ports):
        raise ValueError(f"{name} must list TCP ports (1-65535), comma separated: {raw!r}")
    return ports


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # The Celery broker when set (amqp://… for RabbitMQ); Redis at redis_url otherwise.
    # Quotas, holds and the limiter stay in Redis either way.
    broker_url: str | None = None
    # One or more secrets, comma separated, newest first; no default (app/security.py).
    secret_key: str = ""
    platform_base_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    rate_limit: str = "600/minute;20000/day"
    posts_rate_limit: str = "120/minute;5000/day"
    # Targets due within this many seconds are enqueued with an ETA; later ones wait in
    # PostgreSQL for the sweeper (docs/delivery.md, "Horizon").
    enqueue_horizon: int = 600
    sweep_interval: float = 5.0
    # A queued target this long past its due time, held by no live worker while its queue
    # is empty, has lost its message and is sent again.
    requeue_grace: float = 10.0
    # Seconds a claim lives without its worker's heartbeat; the heartbeat renews it.
    publish_lease: float = 30.0
    # How often each worker process renews its claims and reports what it holds, and
    # how long a silent worker is given before it is presumed dead.
    heartbeat_interval: float = 2.0
    worker_timeout: float = 10.0
    # Deliveries that may each kill their worker before the target is given up.
    max_worker_losses: int = 3
    # A dead worker's publish request may still be landing: this long after it started,
    # the platform is asked whether the post is there (before that it could miss it).
    inflight_grace: float = 15.0
    # Threads per worker process that fire readied deliveries at their instant: as many
    # as the HTTP client keeps connections, so the calls of a burst leave together.
    fire_threads: int = 200
    # Redis transport redelivers unacked messages after this; must stay well above the horizon.
    visibility_timeout: int = 7200
    media_dir: str = "var/media"
    # s3://bucket/prefix keeps media in object storage (app/storage.py); local disk if unset.
    media_storage: str | None = None
    s3_endpoint_url: str | None = None
    max_upload_bytes: int = 512 * 1024 * 1024
    idempotency_ttl: int = 24 * 3600
    http_timeout: float = 30.0
    # Total wall-clock deadlines of one outbound call (app/http_deadline.py), however
    # slowly the other side answers: a platform API call (token refreshes included; an
    # upload adds its size at upload_min_rate bytes per second), an OAuth exchange on the
    # connect callback, and the whole fetch of a media import.
    platform_call_deadline: float = 60.0
    upload_min_rate: float = 256 * 1024
    oauth_deadline: float = 30.0
    media_import_deadline: float = 600.0
    # Tries a media import gets when each one ends its worker (killed, out of memory)
    # before it is marked failed.
    media_import_max_tries: int = 3
    # Lets webhooks and media imports reach loopback/private addresses, on any port
    # (tests, `crier dev`).
    allow_private_urls: bool = False
    # Ports webhooks and media imports may connect to (CRIER_OUTBOUND_PORTS, comma separated).
    outbound_ports: tuple[int, ...] = (80, 443)
    # Webhook delivery: each attempt's total deadline, attempts in flight per endpoint, the retry
    # schedule (exponential with jitter, about a day by default), and the run of
    # consecutive failures after which an endpoint is disabled.
    webhook_timeout: float = 10.0
    webhook_concurrency: int = 4
    webhook_max_attempts: int = 15
    webhook_retry_base: float = 30.0
    webhook_retry_cap: float = 4 * 3600.0
    webhook_disable_after: int = 50
    webhook_drain_interval: float = 2.0
    # Events whose deliveries are all finished are deleted after this many days.
    webhook_retention_days: int = 30
    # When set, GET /metrics asks for `Authorization: Bearer <token>` (open otherwise).
    metrics_token: str | None = None
    # How long a scrape's reading of PostgreSQL, the broker and Redis is reused by the
    # scrapes that follow in the same process: a storm costs one reading per interval.
    metrics_cache_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        defaults = cls()
        return cls(
            database_url=normalise_database_url(env.get("DATABASE_URL") or defaults.database_url),
            redis_url=env.get("REDIS_URL") or defaults.redis_url,
            broker_url=env.get("CELERY_BROKER_URL") or None,
            secret_key=env.get("CRIER_SECRET_KEY") or defaults.secret_key,
            platform_base_url=(env.get("CRIER_PLATFORM_BASE_URL") or "").rstrip("/") or None,
            public_base_url=(env.get("CRIER_PUBLIC_URL") or defaults.public_base_url).rstrip("/"),
            rate_limit=env.get("CRIER_RATE_LIMIT") or defaults.rate_limit,
            posts_rate_limit=env.get("CRIER_POSTS_RATE_LIMIT") or defaults.posts_rate_limit,
            enqueue_horizon=_env_int("ENQUEUE_HORIZON", defaults.enqueue_horizon),
            sweep_interval=_env_float("CRIER_SWEEP_INTERVAL", defaults.sweep_interval),
            requeue_grace=_env_float("CRIER_REQUEUE_GRACE", defaults.requeue_grace),
            publish_lease=_env_float("CRIER_PUBLISH_LEASE", defaults.publish_lease),
            heartbeat_interval=_env_float("CRIER_HEARTBEAT_INTERVAL", defaults.heartbeat_interval),
            worker_timeout=_env_float("CRIER_WORKER_TIMEOUT", defaults.worker_timeout),
            max_worker_losses=_env_int("CRIER_MAX_WORKER_LOSSES", defaults.max_worker_losses),
            inflight_grace=_env_float("CRIER_INFLIGHT_GRACE", defaults.inflight_grace),
            fire_threads=_env_int("CRIER_FIRE_THREADS", defaults.fire_threads),
            visibility_timeout=_env_int("CRIER_VISIBILITY_TIMEOUT", defaults.visibility_timeout),
            media_dir=env.get("CRIER_MEDIA_DIR") or defaults.media_dir,
            media_storage=env.get("CRIER_MEDIA_STORAGE") or None,
            s3_endpoint_url=env.get("CRIER_S3_ENDPOINT_URL") or None,
            max_upload_bytes=_env_int("CRIER_MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
            http_timeout=_env_float("CRIER_HTTP_TIMEOUT", defaults.http_timeout),
            platform_call_deadline=_env_float(
                "CRIER_PLATFORM_CALL_DEADLINE", defaults.platform_call_deadline
            ),
            upload_min_rate=_env_float("CRIER_UPLOAD_MIN_RATE", defaults.upload_min_rate),
            oauth_deadline=_env_float("CRIER_OAUTH_DEADLINE", defaults.oauth_deadline),
            media_import_deadline=_env_float(
                "CRIER_MEDIA_IMPORT_DEADLINE", defaults.media_import_deadline
            ),
            media_import_max_tries=_env_int(
                "CRIER_MEDIA_IMPORT_MAX_TRIES", defaults.media_import_max_tries
            ),
            allow_private_urls=env.get("CRIER_ALLOW_PRIVATE_URLS", "").strip().lower()
            in ("1", "true", "yes"),
            outbound_ports=_env_ports("CRIER_OUTBOUND_PORTS", defaults.outbound_ports),
            webhook_timeout=_env_float("CRIER_WEBHOOK_TIMEOUT", defaults.webhook_timeout),
            webhook_concurrency=_env_int("CRIER_WEBHOOK_CONCURRENCY", defaults.webhook_concurrency),
            webhook_max_attempts=_env_int(
                "CRIER_WEBHOOK_MAX_ATTEMPTS", defaults.webhook_max_attempts
            ),
            webhook_retry_base=_env_float(
                "CRIER_WEBHOOK_RETRY_BASE_SECONDS", defaults.webhook_retry_base
            ),
            webhook_retry_cap=_env_float(
                "CRIER_WEBHOOK_RETRY_CAP_SECONDS", defaults.webhook_retry_cap
            ),
            webhook_disable_after=_env_int(
                "CRIER_WEBHOOK_DISABLE_AFTER", defaults.webhook_disable_after
            ),
            webhook_drain_interval=_env_float(
                "CRIER_WEBHOOK_DRAIN_INTERVAL", defaults.webhook_drain_interval
            ),
            webhook_retention_days=_env_int(
                "CRIER_WEBHOOK_RETENTION_DAYS", defaults.webhook_retention_days
            ),
            metrics_token=(env.get("CRIER_METRICS_TOKEN") or "").strip() or None,
            metrics_cache_seconds=_env_float(
                "CRIER_METRICS_CACHE_SECONDS", defaults.metrics_cache_seconds
            ),
        )

    def with_overrides(self, overrides: dict[str, Any] | None) -> Settings:
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        updated = replace(self, **overrides)
        return replace(updated, database_url=normalise_database_url(updated.database_url))


# Seconds before its instant that a target's media is prepared on the platform: long
# enough for uploads and the platform's processing (CRIER_PREPARE_WINDOW_IMAGE / _VIDEO).
PREPARE_WINDOWS = {"image": 300.0, "video": 1800.0}


def prepare_window(kind: str) -> float:
    return _env_float(f"CRIER_PREPARE_WINDOW_{kind.upper()}", PREPARE_WINDOWS[kind])


def normalise_database_url(url: str) -> str:
    """Accept the URLs hosting platforms hand out and pin the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url

"""Settings, read from the environment once and shared by the API, the workers and the CLI.

Every variable Crier reads is declared here, on a field of `Settings`: its name, the
meaning the operations guide shows, how its text is parsed. Nothing else in `app/` or
`workers/` reads the environment; values are passed from here to where they are used.
`app/variables.py` makes the guide's table from these declarations and names, at
start-up, any `CRIER_*` variable that Crier does not read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from limits import RateLimitItem, parse_many

from app.analytics_schedule import AGES_MEANING, DEFAULT_AGES, RETENTION, parse_ages
from app.config_fields import Variable as Variable
from app.config_fields import env
from app.config_values import (
    normalise_database_url,
    optional_text,
    parse_log_format,
    parse_ports,
    truthy,
)
from app.platforms import PLATFORM_KEYS

DEFAULT_SQLITE_PATH = Path("var") / "crier.sqlite3"
PLATFORM = "<PLATFORM>"


@dataclass(frozen=True)
class PlatformApp:
    """Crier's app at a platform (CRIER_<PLATFORM>_CLIENT_ID / _CLIENT_SECRET), as set."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RetryOverride:
    """A platform's retry values set in the environment; None keeps the policy's own."""

    max_attempts: int | None = None
    base_seconds: float | None = None
    cap_seconds: float | None = None


RETRY_NAMES = {"max_attempts": int, "base_seconds": float, "cap_seconds": float}


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        metadata=env(
            "DATABASE_URL",
            "`postgresql+psycopg://…` (plain `postgres://` is accepted)",
            shown="SQLite `var/crier.sqlite3`",
            parse=normalise_database_url,
        ),
    )
    redis_url: str = field(
        default="redis://127.0.0.1:6379/0",
        metadata=env(
            "REDIS_URL",
            "broker and shared limiter state",
            shown="`redis://127.0.0.1:6379/0` (`crier dev`: embedded)",
        ),
    )
    broker_url: str | None = field(
        default=None,
        metadata=env(
            "CELERY_BROKER_URL",
            "`amqp://…` runs the queues on RabbitMQ; Redis keeps quotas, holds and the limiter",
            shown="unset (Redis at `REDIS_URL`)",
            parse=optional_text,
        ),
    )
    log_format: str = field(
        default="keyvalue",
        metadata=env(
            "CRIER_LOG_FORMAT",
            "`json`: one JSON object per line (python-json-logger)",
            parse=parse_log_format,
        ),
    )
    metrics_port: int | None = field(
        default=None,
        metadata=env(
            "CRIER_METRICS_PORT", "a worker serves its Prometheus metrics on this port", parse=int
        ),
    )
    # Read by prometheus_client itself too: each process writes its counters there.
    prometheus_multiproc_dir: str | None = field(
        default=None,
        metadata=env(
            "PROMETHEUS_MULTIPROC_DIR",
            "an empty directory per process group: gunicorn's (or a prefork pool's) processes "
            "add up their metrics there",
            parse=optional_text,
        ),
    )
    # One or more secrets, comma separated, newest first; no default (app/security.py).
    secret_key: str = field(
        default="",
        metadata=env(
            "CRIER_SECRET_KEY",
            "required: encrypts platform tokens at rest and signs media links; several keys, "
            "comma separated, newest first (see [security.md](security.md))",
            shown="none (`crier dev` and the tests make their own)",
        ),
    )
    platform_base_url: str | None = field(
        default=None,
        metadata=env(
            "CRIER_PLATFORM_BASE_URL",
            "send adapter requests to `{base}/{platform}{real path}` (the sandbox); the platform "
            "is the host's, so Instagram accounts connected through Facebook Login go to "
            "`{base}/facebook/v25.0/…`",
            parse=lambda raw: raw.rstrip("/") or None,
        ),
    )
    public_base_url: str = field(
        default="http://127.0.0.1:8000",
        metadata=env(
            "CRIER_PUBLIC_URL",
            "base of the signed media links that platforms pull, of connect links and of the "
            "OAuth callbacks",
            parse=lambda raw: raw.rstrip("/"),
        ),
    )
    rate_limit: str = field(
        default="600/minute;20000/day",
        metadata=env("CRIER_RATE_LIMIT", "per API key, every endpoint (`limits` notation)"),
    )
    posts_rate_limit: str = field(
        default="120/minute;5000/day",
        metadata=env("CRIER_POSTS_RATE_LIMIT", "per API key, creating posts"),
    )
    # Targets due within this many seconds are enqueued with an ETA; later ones wait in
    # PostgreSQL for the sweeper (docs/delivery.md, "Horizon").
    enqueue_horizon: int = field(
        default=600,
        metadata=env(
            "ENQUEUE_HORIZON", "seconds ahead that targets are enqueued with an ETA", parse=int
        ),
    )
    sweep_interval: float = field(
        default=5.0,
        metadata=env("CRIER_SWEEP_INTERVAL", "seconds between sweeps", parse=float),
    )
    requeue_grace: float = field(
        default=10.0,
        metadata=env(
            "CRIER_REQUEUE_GRACE",
            "a queued target this overdue, held by no live worker, with its queue empty, has "
            "lost its message",
            parse=float,
        ),
    )
    publish_lease: float = field(
        default=30.0,
        metadata=env(
            "CRIER_PUBLISH_LEASE",
            "seconds a claim lives without its worker's heartbeat",
            parse=float,
        ),
    )
    # How often each worker process renews its claims and reports what it holds, and
    # how long a silent worker is given before it is presumed dead.
    heartbeat_interval: float = field(
        default=2.0,
        metadata=env(
            "CRIER_HEARTBEAT_INTERVAL",
            "seconds between a worker's heartbeats (lease renewal, held messages)",
            parse=float,
        ),
    )
    worker_timeout: float = field(
        default=10.0,
        metadata=env(
            "CRIER_WORKER_TIMEOUT",
            "a worker silent this long is dead: its claims and held messages are recovered",
            parse=float,
        ),
    )
    # Threads per worker process that fire readied deliveries at their instant: as many
    # as the HTTP client keeps connections, so the calls of a burst leave together.
    fire_threads: int = field(
        default=200,
        metadata=env(
            "CRIER_FIRE_THREADS",
            "threads per worker process that fire readied deliveries at their instant",
            parse=int,
        ),
    )
    prepare_window_image: float = field(
        default=300.0,
        metadata=env(
            "CRIER_PREPARE_WINDOW_IMAGE",
            "seconds before the instant that media is prepared on the platform",
            parse=float,
        ),
    )
    prepare_window_video: float = field(
        default=1800.0, metadata=env("CRIER_PREPARE_WINDOW_VIDEO", "", parse=float)
    )
    max_worker_losses: int = field(
        default=3,
        metadata=env(
            "CRIER_MAX_WORKER_LOSSES",
            "deliveries that may end with their worker dead before the target fails `worker_lost`",
            parse=int,
        ),
    )
    inflight_grace: float = field(
        default=15.0,
        metadata=env(
            "CRIER_INFLIGHT_GRACE",
            "a dead worker's publish request may still be landing: its target is looked for on "
            "the platform this long after the request began",
            parse=float,
        ),
    )
    # Backoff for every platform (RetryPolicy in workers/retry.py keeps each platform's
    # own defaults: 5, 5, 900; YouTube and TikTok 6, 15, 1800).
    retry_max_attempts: int | None = field(
        default=None,
        metadata=env(
            "CRIER_RETRY_MAX_ATTEMPTS",
            "backoff (also per platform: `CRIER_<PLATFORM>_RETRY_…`)",
            shown="`5`",
            parse=int,
        ),
    )
    retry_base_seconds: float | None = field(
        default=None, metadata=env("CRIER_RETRY_BASE_SECONDS", "", shown="`5`", parse=float)
    )
    retry_cap_seconds: float | None = field(
        default=None, metadata=env("CRIER_RETRY_CAP_SECONDS", "", shown="`900`", parse=float)
    )
    # Per platform, by platform key; read before the CRIER_RETRY_* values.
    platform_retry: Mapping[str, RetryOverride] = field(
        default_factory=dict,
        hash=False,
        metadata=env(
            tuple(f"CRIER_{PLATFORM}_RETRY_{name.upper()}" for name in RETRY_NAMES),
            "backoff of one platform",
            listed=False,
        ),
    )
    # Our per-account caps where set, by platform key (`limits` notation; empty: none).
    publish_caps: Mapping[str, tuple[RateLimitItem, ...]] = field(
        default_factory=dict,
        hash=False,
        metadata=env(
            f"CRIER_{PLATFORM}_PUBLISH_CAPS",
            "our per-account caps, e.g. `50/day`",
            shown="from `app/platforms.py`",
        ),
    )
    platform_apps: Mapping[str, PlatformApp] = field(
        default_factory=dict,
        hash=False,
        metadata=env(
            (f"CRIER_{PLATFORM}_CLIENT_ID", f"CRIER_{PLATFORM}_CLIENT_SECRET"),
            "Crier's app at each platform (WordPress: its WordPress.com app): connect links "
            "and token refresh; the platform's redirect URI is "
            "`{CRIER_PUBLIC_URL}/oauth/<platform>/callback`",
            shown="unset (`crier dev` with the sandbox: set)",
        ),
    )
    linkedin_version: str = field(
        default="202609",
        metadata=env(
            "CRIER_LINKEDIN_VERSION",
            "LinkedIn's monthly API version (`YYYYMM`, `LinkedIn-Version`); versions live about "
            "a year, so this moves one without a release",
        ),
    )
    telegram_bot_token: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "CRIER_TELEGRAM_BOT_TOKEN",
            "Crier's Telegram bot (from @BotFather): connect links add a channel where this "
            "bot is an administrator; accounts added with their own bot token use theirs",
            parse=optional_text,
        ),
    )
    telegram_upload_media: bool = field(
        default=False,
        metadata=env(
            "CRIER_TELEGRAM_UPLOAD_MEDIA",
            "`1` uploads media to Telegram instead of sending the signed link (when Telegram "
            "cannot reach `CRIER_PUBLIC_URL`)",
            parse=truthy,
        ),
    )
    discord_bot_token: str | None = field(
        default=None,
        repr=False,
        metadata=env(
            "CRIER_DISCORD_BOT_TOKEN",
            "Crier's Discord bot (of the app `CRIER_DISCORD_CLIENT_ID` names): connect links "
            'with `"login": "bot"` add it to a server and connect its text channels; in the '
            "channels of webhook accounts it reads their recent messages to reconcile a post "
            "whose answer was lost",
            parse=optional_text,
        ),
    )
    visibility_timeout: int = field(
        default=7200,
        metadata=env(
            "CRIER_VISIBILITY_TIMEOUT",
            "seconds before the Redis transport sends an unacknowledged message again; well "
            "above `ENQUEUE_HORIZON`",
            parse=int,
        ),
    )
    media_dir: str = field(
        default="var/media", metadata=env("CRIER_MEDIA_DIR", "where uploads are stored")
    )
    media_storage: str | None = field(
        default=None,
        metadata=env(
            "CRIER_MEDIA_STORAGE",
            "`s3://bucket/prefix`: media in object storage through boto3 (credentials from the "
            "usual `AWS_*` sources)",
            shown="unset (local disk)",
            parse=optional_text,
        ),
    )
    s3_endpoint_url: str | None = field(
        default=None,
        metadata=env(
            "CRIER_S3_ENDPOINT_URL",
            "an S3-compatible store (MinIO, Ceph…)",
            shown="unset (AWS)",
            parse=optional_text,
        ),
    )
    max_upload_bytes: int = field(
        default=512 * 1024 * 1024,
        metadata=env("CRIER_MAX_UPLOAD_BYTES", "the largest media upload accepted", parse=int),
    )
    idempotency_ttl: int = 24 * 3600
    http_timeout: float = field(
        default=30.0,
        metadata=env(
            "CRIER_HTTP_TIMEOUT",
            "seconds a platform call waits for each read or write (the connect: 10)",
            parse=float,
        ),
    )
    # Total wall-clock deadlines of one outbound call (app/http_deadline.py), however
    # slowly the other side answers: a platform API call (token refreshes included; an
    # upload adds its size at upload_min_rate bytes per second), an OAuth exchange on the
    # connect callback, and the whole fetch of a media import.
    platform_call_deadline: float = field(
        default=60.0,
        metadata=env(
            "CRIER_PLATFORM_CALL_DEADLINE",
            "total seconds one platform call may take, connect to last byte",
            parse=float,
        ),
    )
    upload_min_rate: float = field(
        default=256 * 1024,
        metadata=env(
            "CRIER_UPLOAD_MIN_RATE",
            "bytes per second an upload is allowed on top of the call's deadline",
            parse=float,
        ),
    )
    oauth_deadline: float = field(
        default=30.0,
        metadata=env(
            "CRIER_OAUTH_DEADLINE",
            "total seconds of a token exchange, refresh or revoke",
            parse=float,
        ),
    )
    media_import_deadline: float = field(
        default=600.0,
        metadata=env(
            "CRIER_MEDIA_IMPORT_DEADLINE",
            "total seconds of one import's fetch; tries before an import that keeps stopping "
            "its worker ends `failed`",
            parse=float,
        ),
    )
    media_import_max_tries: int = field(
        default=3, metadata=env("CRIER_MEDIA_IMPORT_MAX_TRIES", "", parse=int)
    )
    allow_private_urls: bool = field(
        default=False,
        metadata=env(
            "CRIER_ALLOW_PRIVATE_URLS",
            "`1` lets webhooks, media imports and WordPress sites reach loopback/private "
            "addresses on any port (development and tests only)",
            parse=lambda raw: raw.strip().lower() in ("1", "true", "yes"),
        ),
    )
    outbound_ports: tuple[int, ...] = field(
        default=(80, 443),
        metadata=env(
            "CRIER_OUTBOUND_PORTS",
            "the ports webhooks, media imports and WordPress sites may reach",
            parse=parse_ports,
        ),
    )
    # Webhook delivery: each attempt's total deadline, attempts in flight per endpoint, the retry
    # schedule (exponential with jitter, about a day by default), and the run of
    # consecutive failures after which an endpoint is disabled.
    webhook_timeout: float = field(
        default=10.0,
        metadata=env(
            "CRIER_WEBHOOK_TIMEOUT",
            "an attempt's total deadline; in flight per endpoint",
            parse=float,
        ),
    )
    webhook_concurrency: int = field(
        default=4, metadata=env("CRIER_WEBHOOK_CONCURRENCY", "", parse=int)
    )
    webhook_max_attempts: int = field(
        default=15,
        metadata=env("CRIER_WEBHOOK_MAX_ATTEMPTS", "webhook retries (about a day)", parse=int),
    )
    webhook_retry_base: float = field(
        default=30.0, metadata=env("CRIER_WEBHOOK_RETRY_BASE_SECONDS", "", parse=float)
    )
    webhook_retry_cap: float = field(
        default=4 * 3600.0, metadata=env("CRIER_WEBHOOK_RETRY_CAP_SECONDS", "", parse=float)
    )
    webhook_disable_after: int = field(
        default=50,
        metadata=env(
            "CRIER_WEBHOOK_DISABLE_AFTER",
            "consecutive failures that disable an endpoint; seconds between outbox drains",
            parse=int,
        ),
    )
    webhook_drain_interval: float = field(
        default=2.0, metadata=env("CRIER_WEBHOOK_DRAIN_INTERVAL", "", parse=float)
    )
    webhook_retention_days: int = field(
        default=30,
        metadata=env(
            "CRIER_WEBHOOK_RETENTION_DAYS",
            "events whose deliveries are all finished are pruned after this (hourly)",
            parse=int,
        ),
    )
    metrics_token: str | None = field(
        default=None,
        metadata=env(
            "CRIER_METRICS_TOKEN",
            "when set, `GET /metrics` needs `Authorization: Bearer <token>`; seconds a scrape's "
            "reading of the state is reused",
            parse=lambda raw: raw.strip() or None,
        ),
    )
    metrics_cache_seconds: float = field(
        default=5.0, metadata=env("CRIER_METRICS_CACHE_SECONDS", "", parse=float)
    )
    # Analytics (docs/analytics.md): when a published target's metrics are read.
    metrics_schedule: tuple[int, ...] = field(
        default=DEFAULT_AGES, metadata=env("CRIER_METRICS_SCHEDULE", AGES_MEANING, parse=parse_ages)
    )
    metrics_retention_days: int = field(default=400, metadata=env(RETENTION, "", parse=int))
    # The model behind POST /ai/generate-caption: any OpenAI-compatible chat-completions
    # endpoint (OpenAI, Ollama, vLLM, llama.cpp; docs/ai.md). Without a base URL and a
    # model the route answers 501; the key is a secret (never logged).
    ai_base_url: str | None = field(
        default=None,
        metadata=env(
            "CRIER_AI_BASE_URL",
            "an OpenAI-compatible endpoint (`…/v1`) for AI captions, its model and its key "
            "(see [ai.md](ai.md))",
            shown="unset (`crier dev`: the sandbox's `/openai/v1`)",
            parse=lambda raw: raw.strip().rstrip("/") or None,
        ),
    )
    ai_model: str | None = field(
        default=None, metadata=env("CRIER_AI_MODEL", "", parse=optional_text)
    )
    ai_api_key: str | None = field(
        default=None, repr=False, metadata=env("CRIER_AI_API_KEY", "", parse=optional_text)
    )
    ai_deadline: float = field(
        default=30.0,
        metadata=env(
            "CRIER_AI_DEADLINE",
            "total seconds of one caption request (retries included); captions each "
            "organisation may generate per calendar month (UTC)",
            parse=float,
        ),
    )
    ai_monthly_credits: int = field(
        default=100, metadata=env("CRIER_AI_MONTHLY_CREDITS", "", parse=int)
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Every field from the environment (or `environ`); unset or empty keeps the default."""
        source = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            variable = item.metadata.get("env")
            if variable is None or PLATFORM in variable.names[0]:
                continue
            raw = source.get(variable.names[0])
            if raw in (None, ""):
                continue
            value = (variable.parse or str)(raw)
            if value is not None or item.default is None:
                values[item.name] = value
        values["platform_retry"] = _platform_retry(source)
        values["publish_caps"] = _publish_caps(source)
        values["platform_apps"] = _platform_apps(source)
        return cls(**values)

    def with_overrides(self, overrides: dict[str, Any] | None) -> Settings:
        if not overrides:
            return self
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        updated = replace(self, **overrides)
        return replace(updated, database_url=normalise_database_url(updated.database_url))

    def prepare_window(self, kind: str) -> float:
        """Seconds before its instant that a target with `kind` media is prepared."""
        return self.prepare_window_video if kind == "video" else self.prepare_window_image

    def platform_app(self, platform: str) -> PlatformApp:
        return self.platform_apps.get(platform) or PlatformApp()


def _platform_retry(source: Mapping[str, str]) -> Mapping[str, RetryOverride]:
    found: dict[str, RetryOverride] = {}
    for platform in PLATFORM_KEYS:
        values: dict[str, Any] = {}
        for name, kind in RETRY_NAMES.items():
            raw = source.get(f"CRIER_{platform.upper()}_RETRY_{name.upper()}")
            if raw:
                values[name] = kind(raw)
        if values:
            found[platform] = RetryOverride(**values)
    return MappingProxyType(found)


def _publish_caps(source: Mapping[str, str]) -> Mapping[str, tuple[RateLimitItem, ...]]:
    found: dict[str, tuple[RateLimitItem, ...]] = {}
    for platform in PLATFORM_KEYS:
        raw = source.get(f"CRIER_{platform.upper()}_PUBLISH_CAPS")
        if raw is not None:
            # Set but empty: no caps at all for the platform.
            found[platform] = tuple(parse_many(raw)) if raw.strip() else ()
    return MappingProxyType(found)


def _platform_apps(source: Mapping[str, str]) -> Mapping[str, PlatformApp]:
    found: dict[str, PlatformApp] = {}
    for platform in PLATFORM_KEYS:
        prefix = f"CRIER_{platform.upper()}_"
        client_id, secret = source.get(prefix + "CLIENT_ID"), source.get(prefix + "CLIENT_SECRET")
        if client_id is not None or secret is not None:
            found[platform] = PlatformApp(client_id, secret)
    return MappingProxyType(found)


def crier_variables() -> dict[str, str]:
    """The CRIER_* variables set, for the start-up report of unknown ones (app/variables.py)."""
    return {key: value for key, value in os.environ.items() if key.startswith("CRIER_")}


FLOWER_PREFIX = "FLOWER_"


def flower_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Flower's own FLOWER_* options, which `crier flower` checks before starting it."""
    source = os.environ if environ is None else environ
    return {key: value for key, value in source.items() if key.startswith(FLOWER_PREFIX)}

"""Settings, read from the environment once and shared by the API, the workers and the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_SQLITE_PATH = Path("var") / "crier.sqlite3"


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # One or more secrets, comma separated, newest first; no default (app/security.py).
    secret_key: str = ""
    platform_base_url: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    rate_limit: str = "600/minute;20000/day"
    posts_rate_limit: str = "120/minute;5000/day"
    # Targets due within this many seconds are enqueued with an ETA; later ones wait in
    # PostgreSQL for the sweeper (DESIGN.md "ETA within a horizon").
    enqueue_horizon: int = 600
    sweep_interval: float = 5.0
    # A queued target this long past its due time is presumed to have lost its message.
    requeue_grace: int = 120
    publish_lease: int = 300
    # Redis transport redelivers unacked messages after this; must stay well above the horizon.
    visibility_timeout: int = 7200
    media_dir: str = "var/media"
    max_upload_bytes: int = 512 * 1024 * 1024
    idempotency_ttl: int = 24 * 3600
    http_timeout: float = 30.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        defaults = cls()
        return cls(
            database_url=normalise_database_url(env.get("DATABASE_URL") or defaults.database_url),
            redis_url=env.get("REDIS_URL") or defaults.redis_url,
            secret_key=env.get("CRIER_SECRET_KEY") or defaults.secret_key,
            platform_base_url=(env.get("CRIER_PLATFORM_BASE_URL") or "").rstrip("/") or None,
            public_base_url=(env.get("CRIER_PUBLIC_URL") or defaults.public_base_url).rstrip("/"),
            rate_limit=env.get("CRIER_RATE_LIMIT") or defaults.rate_limit,
            posts_rate_limit=env.get("CRIER_POSTS_RATE_LIMIT") or defaults.posts_rate_limit,
            enqueue_horizon=_env_int("ENQUEUE_HORIZON", defaults.enqueue_horizon),
            sweep_interval=_env_float("CRIER_SWEEP_INTERVAL", defaults.sweep_interval),
            requeue_grace=_env_int("CRIER_REQUEUE_GRACE", defaults.requeue_grace),
            publish_lease=_env_int("CRIER_PUBLISH_LEASE", defaults.publish_lease),
            visibility_timeout=_env_int("CRIER_VISIBILITY_TIMEOUT", defaults.visibility_timeout),
            media_dir=env.get("CRIER_MEDIA_DIR") or defaults.media_dir,
            max_upload_bytes=_env_int("CRIER_MAX_UPLOAD_BYTES", defaults.max_upload_bytes),
            http_timeout=_env_float("CRIER_HTTP_TIMEOUT", defaults.http_timeout),
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


def normalise_database_url(url: str) -> str:
    """Accept the URLs hosting platforms hand out and pin the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url

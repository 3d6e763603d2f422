"""API keys cached in Redis for at most a second, so a request finds its key and counts
its rate limits in one round trip (`RequestLimiter.check_key`), not a PostgreSQL query.

The bound is what makes a revocation safe without telling anyone: an entry lives at most
`KEY_CACHE_SECONDS` from the moment its row was read, so a key revoked by any means (the
API, the CLI, SQL) stops working in every process within that second. The API and the CLI
also drop the entry when they revoke, so there it stops at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import redis

from app.models import ApiKey
from app.redis_client import redis_client

log = logging.getLogger(__name__)

KEY_CACHE_SECONDS = 1.0
_PREFIX = "crier:keys:"


def cache_key(key_hash: str) -> str:
    return f"{_PREFIX}{key_hash}"


@dataclass(frozen=True)
class CachedKey:
    """What a request needs of its key row."""

    id: int
    organisation_id: int
    scopes: tuple[str, ...]
    profile_id: int | None
    last_used_at: float | None  # seconds since the epoch

    @classmethod
    def of(cls, row: ApiKey) -> CachedKey:
        used = row.last_used_at.timestamp() if row.last_used_at is not None else None
        return cls(row.id, row.organisation_id, tuple(row.scopes or ()), row.profile_id, used)

    def encode(self) -> str:
        return json.dumps(
            [self.id, self.organisation_id, list(self.scopes), self.profile_id, self.last_used_at]
        )

    @classmethod
    def decode(cls, text: str | bytes) -> CachedKey:
        key_id, organisation_id, scopes, profile_id, used = orjson.loads(text)
        return cls(key_id, organisation_id, tuple(scopes), profile_id, used)

    def last_used(self) -> datetime | None:
        return None if self.last_used_at is None else datetime.fromtimestamp(self.last_used_at, UTC)


def forget(redis_url: str, key_hash: str) -> None:
    """Drop a key's entry (after its revocation or a change committed). Redis away: the
    entry ends by itself within KEY_CACHE_SECONDS."""
    try:
        redis_client(redis_url).delete(cache_key(key_hash))
    except (redis.RedisError, OSError) as exc:
        log.warning("key cache entry not dropped, it ends within a second: %s", exc)

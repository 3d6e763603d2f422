"""Per-API-key request limits, kept in Redis through the `limits` library.

The limiter fails open: when Redis cannot be reached a request is let through and the
outage is logged, because refusing every caller is worse than a few extra requests.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from app.redis_client import connection_pool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LimitState:
    limit: int
    remaining: int
    reset_at: float
    allowed: bool


class RequestLimiter:
    def __init__(self, redis_url: str, general: str, posts: str) -> None:
        self.general = parse_many(general)
        self.posts = parse_many(posts)
        storage = RedisStorage(
            redis_url, connection_pool=connection_pool(redis_url), key_prefix="crier:limits"
        )
        self.strategy = SlidingWindowCounterRateLimiter(storage)
        self._last_outage_log = 0.0

    def check(self, key_id: str, creates_posts: bool) -> LimitState | None:
        """Count one request; None when Redis is away (fail open)."""
        scoped: list[tuple[str, RateLimitItem]] = [("all", item) for item in self.general]
        if creates_posts:
            scoped += [("posts", item) for item in self.posts]
        return self._hit(key_id, scoped, cost=1)

    def charge_posts(self, key_id: str, count: int) -> LimitState | None:
        """Count `count` more posts against the posts limit (a bulk request's items)."""
        if count <= 0:
            return None
        return self._hit(key_id, [("posts", item) for item in self.posts], cost=count)

    def _hit(
        self, key_id: str, scoped: list[tuple[str, RateLimitItem]], cost: int
    ) -> LimitState | None:
        try:
            tightest: LimitState | None = None
            for scope, item in scoped:
                allowed = self.strategy.hit(item, scope, key_id, cost=cost)
                stats = self.strategy.get_window_stats(item, scope, key_id)
                state = LimitState(item.amount, max(stats.remaining, 0), stats.reset_time, allowed)
                if not allowed:
                    return state
                if tightest is None or state.remaining < tightest.remaining:
                    tightest = state
            return tightest
        except (redis.RedisError, OSError) as exc:
            now = time.monotonic()
            if now - self._last_outage_log > 30:
                self._last_outage_log = now
                log.warning("rate limiter unavailable, letting requests through: %s", exc)
            return None


def retry_after_seconds(state: LimitState) -> int:
    return max(1, math.ceil(state.reset_at - time.time()))

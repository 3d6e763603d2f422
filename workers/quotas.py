"""Waits and quotas shared by every worker through Redis.

Two kinds: waits a platform imposed (429 Retry-After, quota resets), stored as an
"until" instant per account or per app; and our own caps (posts per 24 h, requests per
window) counted with the `limits` library's moving window before a platform is called.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from limits import RateLimitItemPerDay, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from app.platforms import PLATFORMS
from app.redis_client import connection_pool

WAIT_PREFIX = "crier:wait"


def _wait_key(platform: str, account_id: int | None) -> str:
    scope = f"account:{account_id}" if account_id is not None else "app"
    return f"{WAIT_PREFIX}:{platform}:{scope}"


@dataclass(frozen=True)
class Hold:
    until: float  # epoch seconds
    reason: str


class SharedQuotas:
    def __init__(self, redis_url: str) -> None:
        self.redis = redis.Redis(connection_pool=connection_pool(redis_url, timeout=2.0))
        storage = RedisStorage(
            redis_url, connection_pool=connection_pool(redis_url, timeout=2.0), key_prefix="crier:quota"
        )
        self.limiter = MovingWindowRateLimiter(storage)

    # ----------------------------------------------------------------- imposed waits
    def impose_wait(self, platform: str, account_id: int | None, until: float) -> None:
        """Remember a platform's "not before"; a later instant never shortens an existing one."""
        key = _wait_key(platform, account_id)
        # ZADD GT keeps the longest wait when several workers learn of limits at once.
        self.redis.zadd(key, {"until": until}, gt=True)
        longest = self.redis.zscore(key, "until") or until
        self.redis.pexpireat(key, int(longest * 1000) + 1000)

    def current_wait(self, platform: str, account_id: int) -> Hold | None:
        now = time.time()
        holds = []
        for scope_account, label in ((account_id, "account"), (None, "app")):
            score = self.redis.zscore(_wait_key(platform, scope_account), "until")
            if score is not None and score > now:
                holds.append(Hold(score, f"{platform} asked us to wait ({label} limit)"))
        return max(holds, key=lambda h: h.until) if holds else None

    # -------------------------------------------------------------------- our caps
    def take_publish_slot(self, platform: str, account_id: int) -> Hold | None:
        """Count one publish against the account's caps; a Hold when a cap is reached."""
        rules = PLATFORMS[platform]
        items = []
        if rules.daily_post_cap:
            items.append(("day", RateLimitItemPerDay(rules.daily_post_cap)))
        if rules.window_requests:
            amount, seconds = rules.window_requests
            items.append(("window", RateLimitItemPerSecond(amount, seconds)))
        identity = str(account_id)
        for scope, item in items:
            if not self.limiter.test(item, platform, scope, identity):
                stats = self.limiter.get_window_stats(item, platform, scope, identity)
                return Hold(stats.reset_time, f"{rules.label} cap of {item} reached for this account")
        for scope, item in items:
            if not self.limiter.hit(item, platform, scope, identity):
                stats = self.limiter.get_window_stats(item, platform, scope, identity)
                return Hold(stats.reset_time, f"{rules.label} cap of {item} reached for this account")
        return None

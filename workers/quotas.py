"""Waits and quotas shared by every worker through Redis.

Two kinds: waits a platform imposed (429 Retry-After, quota resets), stored as an
"until" instant per account or per app; and our own caps (posts per 24 h, requests per
window) counted with the `limits` library's moving window before a platform is called.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import redis
from limits import RateLimitItem, RateLimitItemPerDay, RateLimitItemPerSecond
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
    def __init__(
        self, redis_url: str, publish_caps: Mapping[str, tuple[RateLimitItem, ...]] | None = None
    ) -> None:
        # Caps set for some platforms (Settings.publish_caps); the others' come from the table.
        self.publish_caps = dict(publish_caps or {})
        self.redis = redis.Redis(connection_pool=connection_pool(redis_url, timeout=2.0))
        storage = RedisStorage(
            redis_url,
            connection_pool=connection_pool(redis_url, timeout=2.0),
            key_prefix="crier:quota",
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
        return self.current_waits([(platform, account_id)])[0]

    def current_waits(self, wanted: list[tuple[str, int]]) -> list[Hold | None]:
        """The longest wait imposed on each (platform, account), its own or its app's: one
        round trip for all, as a batch of deliveries is readied together."""
        scopes = ((True, "account"), (False, "app"))
        # Both scopes of every delivery in one round trip: a burst's thousand ask.
        pipe = self.redis.pipeline(transaction=False)
        for platform, account_id in wanted:
            for own, _ in scopes:
                pipe.zscore(_wait_key(platform, account_id if own else None), "until")
        scores = pipe.execute()
        now = time.time()
        result: list[Hold | None] = []
        for n, (platform, _) in enumerate(wanted):
            holds = [
                Hold(score, f"{platform} asked us to wait ({label} limit)")
                for score, (_, label) in zip(scores[2 * n : 2 * n + 2], scopes, strict=True)
                if score is not None and score > now
            ]
            result.append(max(holds, key=lambda h: h.until) if holds else None)
        return result

    # -------------------------------------------------------------------- our caps
    def take_publish_slot(self, platform: str, account_id: int) -> Hold | None:
        """Count one publish against the account's caps; a Hold when a cap is reached."""
        items = publish_caps(platform, self.publish_caps)
        identity = str(account_id)
        label = PLATFORMS[platform].label
        # Test all first so a refused publish does not use up another window's slot.
        for item in items:
            if not self.limiter.test(item, platform, identity):
                return self._hold(item, platform, identity, label)
        for item in items:
            if not self.limiter.hit(item, platform, identity):
                return self._hold(item, platform, identity, label)
        return None

    def _hold(self, item: RateLimitItem, platform: str, identity: str, label: str) -> Hold:
        stats = self.limiter.get_window_stats(item, platform, identity)
        return Hold(stats.reset_time, f"{label} cap of {item} reached for this account")


def publish_caps(
    platform: str, overrides: Mapping[str, tuple[RateLimitItem, ...]] | None = None
) -> list[RateLimitItem]:
    """Per-account caps from the platform table, or those set in
    CRIER_<PLATFORM>_PUBLISH_CAPS (`limits` notation, e.g. `3/10 seconds;50/day`) to match
    a platform's real answer; set but empty, none at all."""
    override = (overrides or {}).get(platform)
    if override is not None:
        return list(override)
    rules = PLATFORMS[platform]
    items: list[RateLimitItem] = []
    if rules.daily_post_cap:
        items.append(RateLimitItemPerDay(rules.daily_post_cap))
    if rules.window_requests:
        amount, seconds = rules.window_requests
        items.append(RateLimitItemPerSecond(amount, seconds))
    return items

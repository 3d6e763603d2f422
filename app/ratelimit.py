"""Per-API-key request limits, kept in Redis through the `limits` library.

The limiter fails open: when Redis cannot be reached a request is let through and the
outage is logged, because refusing every caller is worse than a few extra requests.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from math import floor, inf
from typing import Any

import redis
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from app.key_cache import CachedKey, cache_key
from app.redis_client import connection_pool, redis_client, round_trip

log = logging.getLogger(__name__)


# One round trip for a request: its key's cache entry (app.key_cache), stored first when
# ARGV[1] brings one, and, if there is an entry, a hit on each of its limits in turn, the
# same sliding windows, keys and arithmetic as `limits` (SlidingWindowCounterRateLimiter on
# RedisStorage), up to the first that refuses. KEYS[1]: the entry. ARGV: the entry to
# store or '', its lifetime in ms, the limit keys' prefix, then for each limit the parts
# of its key before and after the key id, its amount, its window (s) and the cost.
# Returns the entry (or false), then for each limit hit: allowed (1/0), the previous
# window's count and ms left, the current window's count and ms left.
CHECK_KEY_SCRIPT = """
if ARGV[1] ~= '' then
    redis.call('set', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
end
local entry = redis.call('get', KEYS[1])
if not entry then
    return {false}
end
local key_id = tostring(cjson.decode(entry)[1])
local out = {entry}
local n = 4
while ARGV[n] do
    local key = ARGV[3] .. ':{' .. ARGV[n] .. key_id .. ARGV[n + 1] .. '}'
    local previous, current = key .. '/-1', key
    local limit = tonumber(ARGV[n + 2])
    local expiry = tonumber(ARGV[n + 3]) * 1000
    local amount = tonumber(ARGV[n + 4])
    local current_ttl = tonumber(redis.call('pttl', current))
    if current_ttl > 0 and current_ttl < expiry then
        redis.call('rename', current, previous)
        redis.call('set', current, 0, 'PX', current_ttl + expiry)
    end
    local previous_count = tonumber(redis.call('get', previous)) or 0
    local previous_ttl = math.max(tonumber(redis.call('pttl', previous)) or 0, 0)
    local current_count = tonumber(redis.call('get', current)) or 0
    current_ttl = math.max(tonumber(redis.call('pttl', current)) or 0, 0)
    local weighted = math.floor(previous_count * previous_ttl / expiry) + current_count
    local allowed = amount <= limit and weighted + amount <= limit
    if allowed then
        if redis.call('exists', current) == 1 then
            current_count = redis.call('incrby', current, amount)
        else
            redis.call('set', current, amount, 'PX', expiry * 2)
            current_count = amount
        end
        current_ttl = math.max(tonumber(redis.call('pttl', current)) or 0, 0)
    end
    table.insert(out, allowed and 1 or 0)
    table.insert(out, previous_count)
    table.insert(out, previous_ttl)
    table.insert(out, current_count)
    table.insert(out, current_ttl)
    if not allowed then
        break
    end
    n = n + 5
end
return out
"""
_KEY_ID = "\x00key\x00"


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
        self._redis = redis_client(redis_url)
        self._check_key = self._redis.register_script(CHECK_KEY_SCRIPT)
        self._prefix = storage.key_prefix
        self._args = {
            creates: self._limit_args([("all", i) for i in self.general] + posts)
            for creates, posts in ((False, []), (True, [("posts", i) for i in self.posts]))
        }

    @staticmethod
    def _limit_args(scoped: list[tuple[str, RateLimitItem]]) -> list[str | int | float]:
        args: list[str | int | float] = []
        for scope, item in scoped:
            before, after = item.key_for(scope, _KEY_ID).split(_KEY_ID)
            args += [before, after, item.amount, item.get_expiry(), 1]
        return args

    def check_key(
        self, key_hash: str, creates_posts: bool, entry: CachedKey | None = None, ttl_ms: int = 0
    ) -> tuple[CachedKey | None, LimitState | None] | None:
        """The key's cache entry (storing `entry` first, for `ttl_ms`) and, when there is
        one, one request counted against its limits, as `check` counts it: one round trip.
        None when Redis is away (fail open: the caller reads the key from PostgreSQL)."""
        try:
            reply = self._run_check_key(
                cache_key(key_hash),
                [
                    entry.encode() if entry is not None else "",
                    max(ttl_ms, 1),
                    self._prefix,
                    *self._args[creates_posts],
                ],
            )
        except (redis.RedisError, OSError) as exc:
            self._outage(exc)
            return None
        if not reply or reply[0] is None:
            return None, None
        cached = CachedKey.decode(reply[0])
        scoped = [*self.general, *(self.posts if creates_posts else [])]
        tightest: LimitState | None = None
        for n, item in enumerate(scoped[: (len(reply) - 1) // 5]):
            allowed, previous, previous_ms, current, current_ms = reply[1 + 5 * n : 6 + 5 * n]
            state = _state(
                item, bool(allowed), previous, previous_ms / 1000, current, current_ms / 1000
            )
            if not state.allowed:
                return cached, state
            if tightest is None or state.remaining < tightest.remaining:
                tightest = state
        return cached, tightest

    def _run_check_key(self, key: str, args: list[Any]) -> Any:
        """EVALSHA in one round trip (app.redis_client.round_trip); where Redis lost the
        script (a restart), redis-py's Script loads it again and runs it."""
        try:
            [reply] = round_trip(self._redis, [("EVALSHA", self._check_key.sha, 1, key, *args)])
        except redis.exceptions.NoScriptError:
            return self._check_key(keys=[key], args=args)
        return reply

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
            self._outage(exc)
            return None

    def _outage(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_outage_log > 30:
            self._last_outage_log = now
            log.warning("rate limiter unavailable, letting requests through: %s", exc)


def _state(
    item: RateLimitItem,
    allowed: bool,
    previous: int,
    previous_expires_in: float,
    current: int,
    current_expires_in: float,
) -> LimitState:
    """What `SlidingWindowCounterRateLimiter.get_window_stats` tells of the windows."""
    expiry = item.get_expiry()
    remaining = max(0, item.amount - floor(previous * previous_expires_in / expiry + current))
    now = time.time()
    if not (previous or current):
        return LimitState(item.amount, remaining, now, allowed)
    previous_reset_in = previous_expires_in % (expiry / previous) if previous else inf
    current_reset_in = current_expires_in % expiry if current else inf
    return LimitState(
        item.amount, remaining, now + min(previous_reset_in, current_reset_in), allowed
    )


def retry_after_seconds(state: LimitState) -> int:
    return max(1, math.ceil(state.reset_at - time.time()))

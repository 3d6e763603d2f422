"""One Redis connection pool per process, with short timeouts so an outage fails fast."""

from __future__ import annotations

from functools import lru_cache

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


@lru_cache(maxsize=8)
def connection_pool(url: str, timeout: float = 0.5) -> redis.ConnectionPool:
    return redis.ConnectionPool.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def redis_client(url: str, timeout: float = 0.5) -> redis.Redis:
    return redis.Redis(connection_pool=connection_pool(url, timeout))

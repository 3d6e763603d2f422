"""One Redis connection pool per process, with short timeouts so an outage fails fast."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

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


def round_trip(client: redis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """`commands` sent together and their replies read, on one pooled connection: what a
    non-transactional pipeline does, without building one (its command stack, callbacks
    and reset were a quarter of the CPU of a message's two commands). An error reply raises
    `redis.ResponseError`; after any error the connection is dropped, never reused with
    replies unread."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command(connection.pack_commands(commands))
        return [connection.read_response() for _ in commands]
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)

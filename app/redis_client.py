"""One Redis connection pool per process, with short timeouts so an outage fails fast."""

from __future__ import annotations

import os
import select
import socket
import weakref
from collections import deque
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
    """`commands` sent together and their replies read, on one connection of the client's
    pool: what a non-transactional pipeline does, without building one (its command
    stack, callbacks and reset were a quarter of the CPU of a message's two commands), and
    without the pool's checkout (`_IdleConnections`). An error reply raises
    `redis.ResponseError`; after any error the connection is dropped, never reused with
    replies unread."""
    idle = _idle_connections(client.connection_pool)
    connection = idle.take()
    try:
        connection.send_packed_command(connection.pack_commands(commands), check_health=False)
        replies = [connection.read_response() for _ in commands]
    except BaseException:
        connection.disconnect()
        raise
    idle.give_back(connection)
    return replies


class _IdleConnections:
    """Connections of a pool's kind kept for `round_trip`, outside the pool. The pool's
    checkout takes a lock and, to make sure no stale reply waits, switches the socket to
    non-blocking and back around a read: about a third of a round trip's CPU. Here a
    connection only ever goes back with every reply read, so one poll is enough to see
    that the server has not closed it meanwhile (a restart, a timeout)."""

    def __init__(self, pool: redis.ConnectionPool) -> None:
        self.pool = pool
        self.pid = os.getpid()
        self.connections: deque[Any] = deque()

    def take(self) -> Any:
        if self.pid != os.getpid():
            # A forked child must not share its parent's sockets: it makes its own.
            self.pid, self.connections = os.getpid(), deque()
        try:
            connection = self.connections.pop()
        except IndexError:
            return self.pool.connection_class(**self.pool.connection_kwargs)
        sock = connection._sock
        if sock is None or _readable(sock):
            connection.disconnect()  # connected again by its next command
        return connection

    def give_back(self, connection: Any) -> None:
        self.connections.append(connection)


def _readable(sock: socket.socket) -> bool:
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


_idle: weakref.WeakKeyDictionary[redis.ConnectionPool, _IdleConnections] = (
    weakref.WeakKeyDictionary()
)


def _idle_connections(pool: redis.ConnectionPool) -> _IdleConnections:
    try:
        return _idle[pool]
    except KeyError:
        return _idle.setdefault(pool, _IdleConnections(pool))

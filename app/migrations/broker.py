"""Upgrade steps for the broker, run once by `crier migrate` beside the schema upgrade."""

from __future__ import annotations

import redis

# Versions before each queue had its own exchange bound every queue to the `maintenance`
# exchange with the key `maintenance`; kombu keeps Redis bindings in this set.
STALE_BINDINGS_KEY = "_kombu.binding.maintenance"
_BINDING_SEP = "\x06\x16"  # kombu's field separator in Redis binding sets


def uses_redis(broker_url: str) -> bool:
    return broker_url.split("://", 1)[0] in ("redis", "rediss")


def drop_stale_bindings(broker_url: str, timeout: float = 3.0) -> int:
    """Drop the `maintenance` bindings of every other queue, left on Redis by versions
    before per-queue exchanges; returns how many. Messages no longer go through them
    (each goes straight to its queue), so they are only clutter: an upgrade drops them
    once. Raises redis.RedisError when the broker does not answer within `timeout`."""
    if not uses_redis(broker_url):
        return 0
    client = redis.Redis.from_url(
        broker_url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        stale = [
            member
            for member in client.smembers(STALE_BINDINGS_KEY)
            if member.decode(errors="replace").split(_BINDING_SEP)[-1] != "maintenance"
        ]
        if stale:
            client.srem(STALE_BINDINGS_KEY, *stale)
        return len(stale)
    finally:
        client.close()

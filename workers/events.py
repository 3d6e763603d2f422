"""Task events (`-E`, for Flower) are published by the worker's event loop alone.

Celery buffers a worker's task events and has its event loop publish them, but a pool
thread that finds the buffer full (24 events: a burst of tasks finishing together)
publishes them itself. With publisher confirms (RabbitMQ, app.queues) that thread then
reads the event connection for its confirm, holding the dispatcher's lock, while the
loop reads the same socket for broker heartbeats. The loop can take the confirm (or half
a frame): the thread then waits on a socket with nothing more to come, and the loop,
at its next event, waits for the lock. Nothing is acknowledged, no ETA comes due and no
message is received until the connection drops, a minute or more later.

Unbounded, the buffer is flushed by the loop alone, the connection's only reader; the
loop flushes it after every event it is told of, so it does not grow.
"""

from __future__ import annotations

import sys
from typing import Any

from celery import bootsteps


class EventsFlushedByTheLoop(bootsteps.StartStopStep):
    """After each (re)start of the event dispatcher: only the loop flushes its buffer."""

    requires = ("celery.worker.consumer.events:Events",)

    def start(self, c: Any) -> None:
        dispatcher = getattr(c, "event_dispatcher", None)
        if getattr(c, "hub", None) is not None and dispatcher is not None:
            dispatcher.buffer_limit = sys.maxsize

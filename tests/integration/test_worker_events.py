"""A threads-pool worker's task events on RabbitMQ, with publisher confirms: a burst of
tasks finishing together must never block the worker's event loop (workers/events.py)."""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace

from celery import Celery
from kombu.asynchronous import Hub
from vine import promise

from app.config import Settings
from app.queues import celery_config
from workers.events import EventsFlushedByTheLoop

THREADS = 16
EVENTS_EACH = 300


def test_a_burst_of_task_events_never_blocks_the_event_loop(
    redis_url: str, rabbitmq_url: str
) -> None:
    celery = Celery("events-test", set_as_current=False)
    celery.config_from_object(celery_config(Settings(redis_url=redis_url, broker_url=rabbitmq_url)))
    assert celery.conf.broker_transport_options.get("confirm_publish")
    hub = Hub()
    # As celery.worker.consumer.events.Events.start sets up a worker with an event loop.
    conn = celery.connection_for_write(heartbeat=120)
    conn.ensure_connection()
    consumer = SimpleNamespace(hub=hub, event_dispatcher=None)
    flush = promise(lambda: consumer.event_dispatcher.flush())
    consumer.event_dispatcher = celery.events.Dispatcher(
        conn,
        hostname="events-test",
        buffer_group=["task"],
        on_send_buffered=lambda: hub.call_soon(flush),
    )
    conn.transport.register_with_event_loop(conn.connection, hub)
    EventsFlushedByTheLoop(consumer).start(consumer)
    dispatcher = consumer.event_dispatcher

    def pool_thread() -> None:  # task-started/-succeeded events of a pool's threads
        for _ in range(EVENTS_EACH):
            dispatcher.send("task-succeeded", uuid=str(uuid.uuid4()))
            time.sleep(0.001)

    threads = [threading.Thread(target=pool_thread, daemon=True) for _ in range(THREADS)]
    progress = [time.monotonic()]

    errors: list[BaseException] = []

    def event_loop() -> None:  # the worker's main thread: its own events, then the hub
        loop = hub.create_loop()
        try:
            while any(t.is_alive() for t in threads):
                dispatcher.send("task-received", uuid=str(uuid.uuid4()))
                next(loop)
                progress[0] = time.monotonic()
        except BaseException as exc:  # two readers on one socket: a torn frame
            errors.append(exc)

    looping = threading.Thread(target=event_loop, daemon=True)
    try:
        for thread in threads:
            thread.start()
        looping.start()
        deadline = time.monotonic() + 60
        while looping.is_alive() and time.monotonic() < deadline:
            looping.join(0.5)
            stalled = time.monotonic() - progress[0]
            assert stalled < 5, f"the event loop has been blocked for {stalled:.1f}s"
        assert not looping.is_alive()
        assert errors == []
        assert not any(t.is_alive() for t in threads)
        # The loop published them all: nothing is left behind in the buffer.
        for _ in range(3):
            next(hub.create_loop())
        assert not any(dispatcher._group_buffer.values())
    finally:
        conn.close()  # a blocked thread's read ends with the connection
        hub.close()

"""Every queue has an exchange and a routing key of its own: a message reaches exactly the
queue it was sent to, on Redis and on RabbitMQ (routing declared explicitly)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from amqp.exceptions import PreconditionFailed
from celery import Celery
from kombu import Connection, Exchange, Queue
from kombu.transport.native_delayed_delivery import (
    bind_queue_to_native_delayed_delivery_exchange,
    declare_native_delayed_delivery_exchanges_and_queues,
)

from app.broker_messages import broker_delay
from app.config import Settings
from app.dispatch import ETA_HEAD_START, DueTarget, send_publish
from app.migrations.broker import drop_stale_bindings
from app.models import Platform
from app.queues import (
    MAINTENANCE_QUEUE,
    PUBLISH_TASK,
    SWEEP_TASK,
    celery_config,
    publish_queue,
)

QUEUES = [publish_queue(p.value) for p in Platform] + [MAINTENANCE_QUEUE]
SEP = "\x06\x16"  # kombu's field separator in Redis binding sets


def routing_app(redis_url: str, broker_url: str | None) -> Celery:
    celery = Celery("routing-test", set_as_current=False)
    celery.config_from_object(celery_config(Settings(redis_url=redis_url, broker_url=broker_url)))
    return celery


def declare_like_a_worker(celery: Celery, conn: Connection) -> None:
    channel = conn.default_channel
    for queue in celery.amqp.queues.values():
        queue.bind(channel).declare()


def depths(conn: Connection) -> dict[str, int]:
    channel = conn.default_channel
    if conn.transport.driver_type == "redis":  # an empty list is no key at all
        return {name: channel.client.llen(name) for name in QUEUES}
    return {name: channel.queue_declare(name, passive=True).message_count for name in QUEUES}


def send_one_of_each(celery: Celery, conn: Connection) -> None:
    # As app.dispatch does (by queue name), as beat does (by task route), and a raw
    # publish to one queue's exchange with its key.
    celery.send_task(PUBLISH_TASK, args=[1, "token"], queue=publish_queue("linkedin"))
    celery.send_task(SWEEP_TASK)
    name = publish_queue("x")
    conn.Producer().publish(
        {"raw": True}, exchange=Exchange(name), routing_key=name, serializer="json"
    )


EXPECTED = {name: 0 for name in QUEUES} | {
    publish_queue("linkedin"): 1,
    MAINTENANCE_QUEUE: 1,
    publish_queue("x"): 1,
}


@pytest.fixture
def redis_celery(redis_url: str) -> Iterator[tuple[Celery, Connection]]:
    client = redis.Redis.from_url(redis_url)
    for name in QUEUES:
        client.delete(name, f"_kombu.binding.{name}")
    celery = routing_app(redis_url, None)
    with celery.connection_for_write() as conn:
        declare_like_a_worker(celery, conn)
        yield celery, conn
    for name in QUEUES:
        client.delete(name, f"_kombu.binding.{name}")


def test_redis_bindings_name_one_queue_each(
    redis_url: str, redis_celery: tuple[Celery, Connection]
) -> None:
    client = redis.Redis.from_url(redis_url)
    for name in QUEUES:
        members = {m.decode() for m in client.smembers(f"_kombu.binding.{name}")}
        # routing key, pattern (none for a direct exchange), queue: one binding each,
        # where every queue used to be bound to `maintenance` with the key `maintenance`.
        assert members == {SEP.join([name, "", name])}, name


def test_redis_message_lands_in_its_queue_only(redis_celery: tuple[Celery, Connection]) -> None:
    celery, conn = redis_celery
    send_one_of_each(celery, conn)
    assert depths(conn) == EXPECTED


@pytest.fixture
def rabbit_celery(redis_url: str, rabbitmq_url: str) -> Iterator[tuple[Celery, Connection]]:
    celery = routing_app(redis_url, rabbitmq_url)
    with celery.connection_for_write() as conn:
        declare_like_a_worker(celery, conn)
        for name in QUEUES:
            conn.default_channel.queue_purge(name)
        yield celery, conn
        for name in QUEUES:
            conn.default_channel.queue_delete(name)


def test_rabbitmq_message_lands_in_its_queue_only(
    rabbit_celery: tuple[Celery, Connection],
) -> None:
    celery, conn = rabbit_celery
    send_one_of_each(celery, conn)
    time.sleep(0.3)  # publisher confirms are on, but counts settle asynchronously
    assert depths(conn) == EXPECTED


def test_rabbitmq_queues_are_quorum_queues(rabbit_celery: tuple[Celery, Connection]) -> None:
    _, conn = rabbit_celery
    # Redeclaring as a classic queue conflicts with the quorum queue that exists.
    channel = conn.channel()
    with pytest.raises(PreconditionFailed, match="x-queue-type"):
        Queue(publish_queue("x"), Exchange(publish_queue("x"), type="topic")).bind(
            channel
        ).declare()


def test_rabbitmq_eta_waits_in_the_broker_not_the_worker(
    rabbit_celery: tuple[Celery, Connection],
) -> None:
    """Native delayed delivery: the message sits in RabbitMQ's delay queues and reaches
    its queue at its instant, so no worker holds it (and its prefetch slot) meanwhile."""
    celery, conn = rabbit_celery
    declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum")
    for queue in celery.amqp.queues.values():
        bind_queue_to_native_delayed_delivery_exchange(conn, queue)
    name = publish_queue("x")
    celery.send_task(
        PUBLISH_TASK,
        args=[1, "token"],
        queue=name,
        eta=datetime.now(UTC) + timedelta(seconds=3),
    )
    time.sleep(1)
    assert depths(conn)[name] == 0
    deadline = time.monotonic() + 10
    while depths(conn)[name] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert depths(conn) == {n: 0 for n in QUEUES} | {name: 1}


def test_rabbitmq_sub_second_eta_is_sent(rabbit_celery: tuple[Celery, Connection]) -> None:
    """Celery refuses a native delay under one second (`countdown must be a positive
    number`); app.broker_messages.broker_delay keeps such sends working."""
    celery, conn = rabbit_celery
    declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum")
    for queue in celery.amqp.queues.values():
        bind_queue_to_native_delayed_delivery_exchange(conn, queue)
    name = publish_queue("x")
    for wait in (0.3, 0.8):
        eta = datetime.now(UTC) + timedelta(seconds=wait)
        with pytest.raises(ValueError, match="countdown"):
            celery.send_task(PUBLISH_TASK, args=[1, "token"], queue=name, eta=eta)
        celery.send_task(PUBLISH_TASK, args=[1, "token"], queue=name, **broker_delay(celery, eta))
    deadline = time.monotonic() + 5
    while depths(conn)[name] < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert depths(conn)[name] == 2


def test_redis_bindings_left_by_older_versions_are_dropped(
    redis_url: str, redis_celery: tuple[Celery, Connection]
) -> None:
    """Every queue used to be bound to `maintenance` with the key `maintenance`. On Redis
    a message now goes straight to its queue, so such bindings copy nothing; they are
    dropped all the same, once, by `crier migrate`."""
    celery, conn = redis_celery
    client = redis.Redis.from_url(redis_url)
    binding = f"_kombu.binding.{MAINTENANCE_QUEUE}"
    client.sadd(binding, *(SEP.join([MAINTENANCE_QUEUE, "", name]) for name in QUEUES))
    celery.send_task(SWEEP_TASK)
    assert depths(conn) == {name: 0 for name in QUEUES} | {MAINTENANCE_QUEUE: 1}
    client.delete(*QUEUES)
    assert drop_stale_bindings(redis_url) == len(QUEUES) - 1
    assert {m.decode() for m in client.smembers(binding)} == {
        SEP.join([MAINTENANCE_QUEUE, "", MAINTENANCE_QUEUE])
    }
    celery.send_task(SWEEP_TASK)
    assert depths(conn) == {name: 0 for name in QUEUES} | {MAINTENANCE_QUEUE: 1}


def test_redis_messages_need_no_binding_keys(
    redis_url: str, redis_celery: tuple[Celery, Connection]
) -> None:
    """A flushed Redis loses kombu's binding keys while clients still think them declared:
    a message must reach its queue all the same, not kombu's dead-letter list."""
    celery, conn = redis_celery
    client = redis.Redis.from_url(redis_url)
    client.delete(*[key for key in client.scan_iter("_kombu.binding.*")])
    celery.send_task(PUBLISH_TASK, args=[1, "token"], queue=publish_queue("linkedin"))
    celery.send_task(SWEEP_TASK)
    expected = {name: 0 for name in QUEUES} | {
        publish_queue("linkedin"): 1,
        MAINTENANCE_QUEUE: 1,
    }
    assert depths(conn) == expected


@pytest.mark.parametrize("wait", [0.8, 1.06, 1.9])
def test_rabbitmq_delay_is_sent_however_late_the_sender_reads_the_clock(
    rabbit_celery: tuple[Celery, Connection], monkeypatch: pytest.MonkeyPatch, wait: float
) -> None:
    """A sender held up between deciding the delay and Celery's own look at the clock (a
    busy two-core box does that for tens of milliseconds): a wait just over one second
    must not become Celery's `countdown must be a positive number`, which left the target
    to the sweeper and closed the broker to every send for seconds."""
    celery, conn = rabbit_celery
    declare_native_delayed_delivery_exchanges_and_queues(conn, "quorum")
    for queue in celery.amqp.queues.values():
        bind_queue_to_native_delayed_delivery_exchange(conn, queue)
    clock = celery.now
    monkeypatch.setattr(celery, "now", lambda: clock() + timedelta(milliseconds=100))
    due = datetime.now(UTC) + ETA_HEAD_START + timedelta(seconds=wait)
    send_publish(celery, DueTarget(1, "x", due, 42, "post"), "token")
    name = publish_queue("x")
    deadline = time.monotonic() + 5
    while depths(conn)[name] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert depths(conn)[name] == 1

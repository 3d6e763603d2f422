"""What the sweeper can learn from the broker itself: did it lose its data, and which
publish queues are empty right now.

A Redis broker that is flushed, restarted without persistence or failed over to an empty
replica loses its queued messages silently. An epoch key written into it disappears with
them: when the key is gone, everything queued must be sent again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

import redis
from celery import Celery

from app.queues import publish_queue
from app.redis_client import redis_client

log = logging.getLogger("crier.broker")

EPOCH_KEY = "crier:broker_epoch"


class BrokerProbe:
    def __init__(self, client: redis.Redis | None, celery: Celery | None = None) -> None:
        # The broker's Redis, or None for RabbitMQ: its queues are durable (no epoch to
        # watch), and their depths are read through the Celery app's connection.
        self.client = client
        self.celery = celery

    @classmethod
    def for_celery(cls, celery: Celery) -> BrokerProbe:
        url = str(celery.conf.broker_url or "")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return cls(None, celery)
        return cls(redis_client(url, timeout=2.0))

    def lost_its_data(self, known_epoch: str | None) -> tuple[bool, str | None]:
        """Whether the broker lost its data since a sweep last saw `known_epoch` there,
        and the epoch it holds now (written afresh when missing). A broker never seen
        before has lost nothing we know of: it only gets its epoch."""
        if self.client is None:
            return False, known_epoch
        try:
            current = self.client.get(EPOCH_KEY)
            if current is None:
                self.client.set(EPOCH_KEY, uuid.uuid4().hex, nx=True)
                current = self.client.get(EPOCH_KEY)
        except redis.RedisError as exc:
            # Unreachable: nothing can be sent now anyway; the next sweep decides.
            log.warning("broker epoch unreadable: %s", exc)
            return False, known_epoch
        epoch = current.decode() if isinstance(current, bytes) else current
        lost = known_epoch is not None and epoch != known_epoch
        if lost:
            log.warning("broker epoch changed: the broker lost its data; resending queued")
        return lost, epoch

    def restore_bindings(self, celery: Celery) -> None:
        """Declare every queue again: a flushed Redis loses kombu's binding keys, and a
        RabbitMQ queue deleted by hand drops whatever is routed to it meanwhile."""
        try:
            with celery.connection_for_write() as connection:
                channel = connection.default_channel
                for queue in celery.conf.task_queues or ():
                    queue(channel).declare()
        except Exception as exc:
            log.warning("could not declare the queues again: %s", exc)

    def empty_queues(self, platforms: Iterable[str]) -> set[str]:
        """Platforms whose publish queue holds no message at all."""
        names = sorted(set(platforms))
        if not names:
            return set()
        if self.client is None:
            return self._empty_amqp_queues(names)
        try:
            pipe = self.client.pipeline(transaction=False)
            for platform in names:
                pipe.llen(publish_queue(platform))
            lengths = pipe.execute()
        except redis.RedisError as exc:
            log.warning("queue lengths unreadable: %s", exc)
            return set()
        return {p for p, length in zip(names, lengths, strict=True) if length == 0}

    def _empty_amqp_queues(self, platforms: list[str]) -> set[str]:
        """RabbitMQ: a passive declare answers each queue's message count."""
        if self.celery is None:
            return set()
        empty = set()
        try:
            with self.celery.connection_for_write() as connection:
                channel = connection.default_channel
                for platform in platforms:
                    declared = channel.queue_declare(queue=publish_queue(platform), passive=True)
                    if declared.message_count == 0:
                        empty.add(platform)
        except Exception as exc:  # a queue deleted by hand, or the broker down
            log.warning("queue depths unreadable, declaring the queues again: %s", exc)
            self.restore_bindings(self.celery)
            return set()
        return empty

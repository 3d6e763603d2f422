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

from app.redis_client import redis_client
from workers.celery_app import publish_queue

log = logging.getLogger("crier.broker")

EPOCH_KEY = "crier:broker_epoch"


class BrokerProbe:
    def __init__(self, client: redis.Redis | None) -> None:
        # None when the broker is not Redis: its queues are durable, nothing to probe.
        self.client = client

    @classmethod
    def for_celery(cls, celery: Celery) -> BrokerProbe:
        url = str(celery.conf.broker_url or "")
        if not url.startswith(("redis://", "rediss://", "unix://")):
            return cls(None)
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
        """Declare every queue again: kombu's Redis transport keeps the exchange-to-queue
        bindings as keys, and a message routed through a lost binding goes nowhere."""
        if self.client is None:
            return
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
        if self.client is None or not names:
            return set()
        try:
            pipe = self.client.pipeline(transaction=False)
            for platform in names:
                pipe.llen(publish_queue(platform))
            lengths = pipe.execute()
        except redis.RedisError as exc:
            log.warning("queue lengths unreadable: %s", exc)
            return set()
        return {p for p, length in zip(names, lengths, strict=True) if length == 0}

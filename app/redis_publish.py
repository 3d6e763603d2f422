"""Publish messages put on a Redis broker in one round trip, framed as kombu frames them.

Celery builds each message (`amqp.as_task_v2`: headers, body, and the task-sent event
Flower shows); only the framing kombu's Redis transport adds (base64 body, delivery info,
a delivery tag) is written here, by orjson, and the message and its event go out with
LPUSH and PUBLISH in one round trip. Through `Producer.publish` the same message cost
about 0.35 ms of CPU (copies, declarations, a Redis client per batch), a third of a
whole create.

tests/api/test_redis_publish.py holds the framing to what kombu itself writes, and every
integration test's worker consumes these messages.
"""

from __future__ import annotations

import base64
import os
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import redis
from celery import Celery
from celery.events.event import Event
from celery.utils.nodenames import anon_nodename
from celery.utils.time import utcoffset
from kombu.utils.json import JSONEncoder

from app.redis_client import redis_client, round_trip

# kombu's Redis transport waits this long to connect (app.queues); here a command gets no
# longer either, and a send that fails leaves its targets to the sweeper, never resent.
BROKER_TIMEOUT = 2.0
EVENT_EXCHANGE = "celeryev"


@dataclass(frozen=True)
class OutgoingPublish:
    """One publish message: its task, arguments, queue, Flower's labels and its ETA."""

    task: str
    args: list[Any]
    queue: str
    shadow: str
    argsrepr: str
    eta: datetime | None = None


class RedisPublisher:
    """Frames and sends publish messages for one Celery app whose broker is Redis."""

    def __init__(self, celery: Celery) -> None:
        self.celery = celery
        self.broker_url = str(celery.conf.broker_url)
        self.client: redis.Redis = redis_client(self.broker_url, BROKER_TIMEOUT)
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        # kombu's fanout prefix: the db number, so two dbs' events never mix.
        self.event_channel = f"/{db}.{EVENT_EXCHANGE}/task.sent"
        self.hostname = anon_nodename()

    def send(self, messages: list[OutgoingPublish]) -> None:
        """All of them in one round trip; raises what redis-py raises (maybe not sent)."""
        commands: list[tuple[Any, ...]] = []
        for message in messages:
            task_message, event = self.frame(message)
            commands.append(("LPUSH", message.queue, task_message))
            commands.append(("PUBLISH", self.event_channel, event))
        round_trip(self.client, commands)

    def frame(self, message: OutgoingPublish) -> tuple[bytes, bytes]:
        """(the task message, its task-sent event), as kombu's Redis transport writes them."""
        task_id = str(uuid.uuid4())
        headers, properties, body, sent_event = self.celery.amqp.as_task_v2(
            task_id,
            message.task,
            args=message.args,
            kwargs={},
            eta=message.eta,
            shadow=message.shadow,
            argsrepr=message.argsrepr,
            kwargsrepr="{}",
            reply_to=self.celery.thread_oid,
            ignore_result=None,
            create_sent_event=True,
        )
        task_message = {
            "body": _base64(body),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": headers,
            "properties": {
                **properties,
                "argsrepr": message.argsrepr,
                "kwargsrepr": "{}",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": message.queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        sent_event.update({"queue": message.queue, "exchange": "", "routing_key": message.queue})
        event = Event(
            "task-sent",
            hostname=self.hostname,
            utcoffset=utcoffset(),
            pid=os.getpid(),
            clock=self.celery.clock.forward(),
            **sent_event,
        )
        event_message = {
            "body": _base64(event),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": self.hostname},
            "properties": {
                "delivery_mode": 1,
                "delivery_info": {"exchange": EVENT_EXCHANGE, "routing_key": "task.sent"},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        return _json(task_message), _json(event_message)


# What JSON has no type for (a datetime, a Decimal) is written by kombu's own encoder.
_KOMBU_DEFAULT = JSONEncoder().default


def _json(value: Any) -> bytes:
    """JSON as kombu writes it, by orjson: the same values in C."""
    return orjson.dumps(value, default=_KOMBU_DEFAULT, option=orjson.OPT_PASSTHROUGH_DATETIME)


def _base64(value: Any) -> str:
    return base64.b64encode(_json(value)).decode("ascii")


# Per app, worked out at its first send: reading Celery's settings on every send cost more
# than framing the message.
_publishers: weakref.WeakKeyDictionary[Celery, RedisPublisher | None] = weakref.WeakKeyDictionary()


def redis_publisher(celery: Celery) -> RedisPublisher | None:
    """The app's publisher, or None where kombu must frame the message: a broker that is
    not plain Redis, or settings that change the frame (a key prefix, another serializer,
    compression, events off)."""
    try:
        return _publishers[celery]
    except KeyError:
        pass
    conf = celery.conf
    url = str(conf.broker_url or "")
    options = conf.broker_transport_options or {}
    publisher = None
    if not (
        url.split("://", 1)[0] not in ("redis", "rediss")
        or options.get("global_keyprefix")
        or options.get("fanout_prefix") is False
        or options.get("fanout_patterns") is False
        or conf.task_serializer != "json"
        or conf.task_compression
        or conf.task_protocol != 2
        or not conf.task_send_sent_event
    ):
        publisher = RedisPublisher(celery)
    _publishers[celery] = publisher
    return publisher

"""Publish messages framed for Redis by app.redis_publish are what kombu itself writes:
the same keys, headers, properties and body, and the same task-sent event for Flower."""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from celery import Celery

from app.config import Settings
from app.queues import PUBLISH_BATCH_TASK, PUBLISH_TASK, celery_config
from app.redis_client import redis_client, round_trip
from app.redis_publish import OutgoingPublish, redis_publisher

# Fresh for every message: they can only be alike in shape.
MESSAGE_IDS = {"id", "root_id", "correlation_id", "delivery_tag"}
EVENT_FIELDS = {"uuid", "root_id", "timestamp", "clock"}


def celery_for(broker_url: str) -> Celery:
    celery = Celery("redis-publish-test", set_as_current=False)
    celery.config_from_object(celery_config(Settings(broker_url=broker_url)))
    return celery


def without(mapping: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in keys}


def decoded(raw: bytes) -> tuple[dict[str, Any], Any]:
    message = json.loads(raw)
    body = json.loads(base64.b64decode(message["body"]))
    message["headers"] = without(message.get("headers") or {}, MESSAGE_IDS)
    message["properties"] = without(message["properties"], MESSAGE_IDS)
    del message["body"]
    return message, body


def sent_both_ways(redis_url: str, outgoing: OutgoingPublish) -> list[Any]:
    """[(kombu's message, body, event), (ours, body, event)] for the same publish, on a
    queue of its own: no worker sharing the Redis db takes them, and events other
    processes send there (heartbeats, other publishes) are told apart by the label."""
    celery = celery_for(redis_url)
    client = redis.Redis.from_url(redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    listener = client.pubsub()
    listener.subscribe(f"/{db}.celeryev/task.sent")
    listener.get_message(timeout=1)
    try:
        with celery.producer_or_acquire() as producer:
            celery.send_task(
                outgoing.task,
                args=outgoing.args,
                queue=outgoing.queue,
                retry=False,
                producer=producer,
                shadow=outgoing.shadow,
                argsrepr=outgoing.argsrepr,
                kwargsrepr="{}",
                eta=outgoing.eta,
            )
        publisher = redis_publisher(celery)
        assert publisher is not None
        publisher.send([outgoing])
        events = []
        deadline = time.monotonic() + 5
        while len(events) < 2 and time.monotonic() < deadline:
            found = listener.get_message(timeout=0.5)
            if found and found["type"] == "message":
                event = json.loads(found["data"])
                body = json.loads(base64.b64decode(event["body"]))
                if body.get("queue") == outgoing.queue:
                    events.append((found["channel"], event))
        messages = list(reversed(client.lrange(outgoing.queue, 0, -1)))
        assert len(messages) == 2 and len(events) == 2
        return [(*decoded(raw), event) for raw, event in zip(messages, events, strict=True)]
    finally:
        listener.close()
        client.delete(outgoing.queue, *client.keys(f"_kombu.binding*{outgoing.queue}"))


def event_fields(event: tuple[bytes, dict[str, Any]]) -> tuple[bytes, dict[str, Any], Any]:
    channel, message = event
    body = json.loads(base64.b64decode(message.pop("body")))
    message["properties"] = without(message["properties"], MESSAGE_IDS)
    return channel, message, without(body, EVENT_FIELDS)


def test_a_publish_with_an_eta_is_framed_as_kombu_frames_it(redis_url: str) -> None:
    eta = datetime.now(UTC) + timedelta(minutes=5)
    queue = f"test.frame.{uuid.uuid4().hex}"
    outgoing = OutgoingPublish(
        PUBLISH_TASK, [41, "token"], queue, "publish x account=3 post=9f…", "target=41", eta
    )
    (theirs, their_body, their_event), (ours, our_body, our_event) = sent_both_ways(
        redis_url, outgoing
    )
    assert ours == theirs
    assert our_body == their_body == [[41, "token"], {}, our_body[2]]
    assert ours["headers"]["eta"] == eta.isoformat()
    assert ours["headers"]["shadow"] == "publish x account=3 post=9f…"
    assert event_fields(our_event) == event_fields(their_event)


def test_a_batch_due_now_is_framed_as_kombu_frames_it(redis_url: str) -> None:
    queue = f"test.frame.{uuid.uuid4().hex}"
    outgoing = OutgoingPublish(
        PUBLISH_BATCH_TASK, [[[1, "a"], [2, "b"]]], queue, "publish 2", "targets=1,2"
    )
    (theirs, their_body, their_event), (ours, our_body, our_event) = sent_both_ways(
        redis_url, outgoing
    )
    assert ours == theirs
    assert our_body == their_body
    assert ours["headers"]["eta"] is None
    assert event_fields(our_event) == event_fields(their_event)


def test_other_brokers_are_left_to_kombu() -> None:
    assert redis_publisher(celery_for("amqp://guest:guest@127.0.0.1:5672//")) is None
    assert redis_publisher(celery_for("redis://127.0.0.1:6379/0")) is not None


def test_an_error_reply_in_a_round_trip_leaves_no_reply_unread(redis_url: str) -> None:
    client = redis_client(redis_url)
    client.set("round-trip:text", "x")
    try:
        with pytest.raises(redis.ResponseError):
            # LPUSH on a string is refused; the PING after it is answered but never read.
            round_trip(client, [("LPUSH", "round-trip:text", "a"), ("PING",)])
        for _ in range(3):
            assert round_trip(client, [("PING",), ("GET", "round-trip:text")]) == [
                b"PONG",
                b"x",
            ]
    finally:
        client.delete("round-trip:text")


def test_a_connection_the_server_closed_is_replaced_before_it_is_used(redis_url: str) -> None:
    """round_trip keeps its connections outside the pool: one Redis closed meanwhile (a
    restart, a timeout, CLIENT KILL) is seen before a command is sent on it."""
    client = redis_client(redis_url)
    [first] = round_trip(client, [("CLIENT", "ID")])
    other = redis.Redis.from_url(redis_url)
    other.execute_command("CLIENT", "KILL", "ID", first)
    deadline = time.monotonic() + 5
    while str(first) in {entry["id"] for entry in other.client_list()}:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    [second] = round_trip(client, [("CLIENT", "ID")])
    assert second != first
    assert round_trip(client, [("PING",)]) == [b"PONG"]

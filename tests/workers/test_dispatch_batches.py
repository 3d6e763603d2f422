"""Sending dispatches in pipelined batches (app.dispatch.send_dispatches) on the real
Redis broker: one round trip for many, and after a failed one nothing lost or doubled."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import select

from app import dispatch as dispatch_module
from app import redis_publish
from app.db import get_db
from app.dispatch import Dispatch, DueTarget, broker_breaker, mark_queued, send_dispatches
from app.models import PostTarget, TargetStatus
from app.queues import PUBLISH_BATCH_TASK
from app.redis_publish import RedisPublisher
from tests.conftest import Tenant
from tests.workers.test_pipeline import create_target
from workers.pipeline import PipelineDeps, publish_target


def queued_targets(
    app: Flask, post_ids: list[str], ahead: float = 0.0
) -> tuple[list[Any], list[Any]]:
    """The posts' targets due now (or `ahead` seconds from now), queued with fresh tokens
    (committed, not yet sent)."""
    with get_db(app).session() as session:
        rows = session.scalars(select(PostTarget).where(PostTarget.post_id.in_(post_ids))).all()
        now = datetime.now(UTC) + timedelta(seconds=ahead)
        for row in rows:
            row.next_attempt_at = now
        session.flush()
        dispatches = mark_queued(session, [DueTarget.of(r, now) for r in rows], "scheduled")
        session.commit()
    return rows, dispatches


def publish_messages(app: Flask) -> int:
    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    return client.llen("publish.x")


def _pairs(dispatches: list[Any]) -> list[tuple[int, str]]:
    return [(d.target.id, d.token) for d in dispatches]


@pytest.fixture(autouse=True)
def closed_breaker(app: Flask) -> Any:
    breaker = broker_breaker(app.extensions["celery"])
    breaker.open_until = 0.0
    yield
    breaker.open_until = 0.0


def test_many_dispatches_go_in_one_pipelined_round_trip(
    app: Flask, tenant: Tenant, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id = make_account(tenant, "x")
    posts = [create_target(tenant, account_id, f"Batched {n}") for n in range(31)]
    # Due ahead: one message each, with its ETA.
    _, dispatches = queued_targets(app, posts, ahead=60)
    with get_db(app).session() as session:  # the first send declares the queue's binding
        assert send_dispatches(session, app.extensions["celery"], dispatches[:1]) == 1
    round_trips: list[int] = []
    send = redis_publish.round_trip

    def counting(client: Any, commands: list[Any]) -> Any:
        round_trips.append(len(commands))
        return send(client, commands)

    monkeypatch.setattr(redis_publish, "round_trip", counting)
    with get_db(app).session() as session:
        assert send_dispatches(session, app.extensions["celery"], dispatches[1:]) == 30
    # The 30 messages and their 30 task-sent events, in one round trip.
    assert round_trips == [60]
    assert publish_messages(app) == 31


def test_targets_due_now_go_many_to_a_message(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    """A bulk published now: one message for up to fifty targets of a queue, each claimed
    by its own token, so a stale one in the batch changes nothing."""
    account_id = make_account(tenant, "x")
    posts = [create_target(tenant, account_id, f"Now {n}") for n in range(60)]
    _, dispatches = queued_targets(app, posts)
    with get_db(app).session() as session:
        assert send_dispatches(session, app.extensions["celery"], dispatches) == 60
    assert publish_messages(app) == 2  # 50 and 10
    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    bodies = [json.loads(raw) for raw in client.lrange("publish.x", 0, -1)]
    assert {body["headers"]["task"] for body in bodies} == {PUBLISH_BATCH_TASK}
    # Flower sees ids, never a token.
    assert all(token not in json.dumps(bodies[0]["headers"]) for _, token in _pairs(dispatches))


def test_a_batch_that_fails_after_it_went_out_loses_nothing_and_doubles_nothing(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The commands go, then the connection drops before the answer: whether the
    messages went is unknown, so every target goes back to the sweeper, and a message
    that did go is stale."""
    account_id = make_account(tenant, "x")
    posts = [create_target(tenant, account_id, f"Unsure {n}") for n in range(3)]
    rows, dispatches = queued_targets(app, posts)
    send = redis_publish.round_trip

    def lost_answer(client: Any, commands: list[Any]) -> Any:
        send(client, commands)
        raise redis.ConnectionError("connection dropped before the answer")

    monkeypatch.setattr(redis_publish, "round_trip", lost_answer)
    with get_db(app).session() as session:
        assert send_dispatches(session, app.extensions["celery"], dispatches) == 0
    monkeypatch.undo()
    assert publish_messages(app) == 1  # they went after all, in one message
    with get_db(app).session() as session:
        states = session.execute(
            select(PostTarget.status, PostTarget.dispatch_token).where(
                PostTarget.id.in_([r.id for r in rows])
            )
        ).all()
    assert states == [(TargetStatus.SCHEDULED, None)] * 3  # the sweeper sends them again
    for dispatch in dispatches:  # the messages that went change nothing
        assert publish_target(deps, dispatch.target.id, dispatch.token) == "stale"


def test_a_message_refused_on_its_own_leaves_the_broker_open_to_the_next(
    app: Flask, tenant: Tenant, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send that fails for a reason of its own (Celery refusing the message's delay) is
    left to the sweeper, but says nothing about the broker: the next post's messages go
    at once, not to the sweeper for the seconds an unreachable broker is skipped."""
    account_id = make_account(tenant, "x")
    posts = [create_target(tenant, account_id, f"Refused {n}") for n in range(2)]
    rows, dispatches = queued_targets(app, posts)
    refused = dispatches[0].target.id
    frame = dispatch_module._redis_publish

    def refuse_one(message: list[Dispatch], *args: Any) -> Any:
        if message[0].target.id == refused:
            raise ValueError("countdown must be a positive number")
        return frame(message, *args)

    monkeypatch.setattr(dispatch_module, "_redis_publish", refuse_one)
    celery = app.extensions["celery"]
    with get_db(app).session() as session:
        assert send_dispatches(session, celery, dispatches[:1]) == 0
    with get_db(app).session() as session:
        assert send_dispatches(session, celery, dispatches[1:]) == 1
    assert publish_messages(app) == 1
    with get_db(app).session() as session:
        statuses = dict(
            session.execute(
                select(PostTarget.id, PostTarget.status).where(
                    PostTarget.id.in_([r.id for r in rows])
                )
            ).all()
        )
    assert statuses == {refused: TargetStatus.SCHEDULED, dispatches[1].target.id: "queued"}


def test_an_unreachable_broker_is_skipped_for_a_while(
    app: Flask, tenant: Tenant, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection error does say the broker is down: the sends after it within the
    pause skip the broker (no connection timeout per request) and go to the sweeper."""
    account_id = make_account(tenant, "x")
    posts = [create_target(tenant, account_id, f"Unreachable {n}") for n in range(2)]
    _, dispatches = queued_targets(app, posts)

    def unreachable(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(RedisPublisher, "send", unreachable)
    celery = app.extensions["celery"]
    with get_db(app).session() as session:
        assert send_dispatches(session, celery, dispatches[:1]) == 0
    monkeypatch.undo()
    with get_db(app).session() as session:
        assert send_dispatches(session, celery, dispatches[1:]) == 0
    assert publish_messages(app) == 0

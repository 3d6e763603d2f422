"""Outcome writes of a batch: each target changed only while its token and status hold,
runs of one shape pipelined through the driver, in the order given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import update

from app.db import get_db
from app.models import PostTarget, TargetStatus
from tests.conftest import Tenant
from tests.workers.conftest import target_row
from tests.workers.test_pipeline import create_target, queue_now
from workers.pipeline.finish import ONE_MORE, _FirstSet, _update_targets


def test_each_target_is_written_only_while_its_token_holds(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    queued = [queue_now(app, create_target(tenant, account_id, f"Outcome {n}")) for n in range(4)]
    earlier = datetime.now(UTC) - timedelta(hours=1)
    (first, first_token), (second, second_token), (third, _), (fourth, fourth_token) = queued
    with get_db(app).session() as session:
        # One already went live once (a thread's post): its time must stay.
        session.execute(
            update(PostTarget).where(PostTarget.id == first).values(published_at=earlier)
        )
        session.commit()
    now = datetime.now(UTC)

    def published(post_id: str) -> dict[str, Any]:
        return {
            "claim_owner": None,
            "attempts": ONE_MORE,
            "status": TargetStatus.PUBLISHED,
            "dispatch_token": None,
            "platform_post_id": post_id,
            "published_at": _FirstSet(now),
            "platform_handle": {"step": post_id},
        }

    later = now + timedelta(minutes=5)
    retry = {"claim_owner": None, "next_attempt_at": later, "status": TargetStatus.SCHEDULED}
    queued_status = TargetStatus.QUEUED
    with get_db(app).session() as session:
        session.begin()
        changed = _update_targets(
            session,
            [
                (first, first_token, queued_status, published("p-1")),
                (second, second_token, queued_status, retry),
                (third, "a-token-handed-on", queued_status, published("p-3")),
                (fourth, fourth_token, queued_status, published("p-4")),
            ],
        )
        session.commit()
    assert changed == {first, second, fourth}

    one = target_row(app, first)
    assert (one.status, one.attempts, one.platform_post_id) == ("published", 1, "p-1")
    assert one.published_at == earlier and one.dispatch_token is None
    assert one.platform_handle == {"step": "p-1"}
    two = target_row(app, second)
    assert (two.status, two.attempts, two.next_attempt_at) == ("scheduled", 0, later)
    three = target_row(app, third)
    assert (three.status, three.attempts, three.platform_post_id) == ("queued", 0, None)
    four = target_row(app, fourth)
    assert (four.status, four.attempts, four.published_at) == ("published", 1, now)

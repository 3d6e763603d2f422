"""A batch of outcomes derives its posts' statuses again: as rows through the driver for
an organisation no webhook endpoint hears, through the ORM (with the events) for one
that has an endpoint. Both give the status `derive_post_status` gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app.db import get_db
from app.models import Post, PostTarget, WebhookEvent
from tests.conftest import Tenant
from tests.workers.test_pipeline import far_future
from tests.workers.test_webhooks import hook
from workers.pipeline.finish import _refresh_posts

EARLY = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LATE = EARLY + timedelta(hours=1)

# Each case: the three targets' (status, attempts, platform post id, published at), and
# the post's status and first publish time then.
CASES = [
    (
        [("published", 1, "a", LATE), ("published", 1, "b", EARLY), ("published", 2, "c", None)],
        "published",
        EARLY,
    ),
    ([("published", 1, "a", LATE), ("failed", 3, None, None), ("cancelled", 0, None, None)],
     "partially_published", LATE),
    ([("failed", 1, "thread", None), ("failed", 1, None, None), ("failed", 2, None, None)],
     "partially_published", None),
    ([("queued", 0, None, None), ("published", 1, "a", LATE), ("scheduled", 0, None, None)],
     "publishing", LATE),
    ([("scheduled", 0, None, None), ("scheduled", 0, None, None), ("cancelled", 0, None, None)],
     "scheduled", None),
    ([("scheduled", 1, None, None), ("queued", 0, None, None), ("scheduled", 0, None, None)],
     "publishing", None),
    ([("cancelled", 0, None, None)] * 3, "cancelled", None),
    ([("failed", 3, None, None), ("cancelled", 0, None, None), ("failed", 1, None, None)],
     "failed", None),
    ([("unconfirmed", 1, None, None), ("failed", 1, None, None), ("cancelled", 0, None, None)],
     "partially_published", None),
]  # fmt: skip


def three_target_post(tenant: Tenant, accounts: list[int], text: str) -> uuid.UUID:
    response = tenant.api.post(
        "/posts",
        json={"content": text, "account_ids": accounts, "scheduled_at": far_future()},
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["data"]["post_id"])


def set_targets(app: Flask, post_id: uuid.UUID, states: list[tuple[Any, ...]]) -> None:
    with get_db(app).session() as session:
        ids = session.scalars(
            select(PostTarget.id).where(PostTarget.post_id == post_id).order_by(PostTarget.id)
        ).all()
        for target_id, (status, attempts, platform_post_id, published_at) in zip(
            ids, states, strict=True
        ):
            session.execute(
                update(PostTarget)
                .where(PostTarget.id == target_id)
                .values(
                    status=status,
                    attempts=attempts,
                    platform_post_id=platform_post_id,
                    published_at=published_at,
                )
            )
        session.execute(
            update(Post).where(Post.id == post_id).values(status="publishing", published_at=None)
        )
        session.commit()


def refresh(app: Flask, post_ids: list[uuid.UUID], ended: dict[uuid.UUID, list[int]]) -> None:
    with get_db(app).session() as session:
        session.begin()
        _refresh_posts(session, sorted(post_ids), ended, datetime.now(UTC))
        session.commit()


@pytest.mark.parametrize(("states", "status", "published_at"), CASES)
def test_rows_give_the_status_the_targets_say(
    app: Flask,
    tenant: Tenant,
    make_account: Any,
    states: list[tuple[Any, ...]],
    status: str,
    published_at: datetime | None,
) -> None:
    accounts = [make_account(tenant, "x", name=f"x{n}") for n in range(3)]
    post_id = three_target_post(tenant, accounts, "Refresh rows")
    set_targets(app, post_id, states)
    before = datetime.now(UTC)
    refresh(app, [post_id], {})
    with get_db(app).session() as session:
        post = session.get(Post, post_id)
        assert post is not None
        assert (post.status, post.published_at) == (status, published_at)
        assert post.updated_at >= before


def test_an_organisation_with_an_endpoint_gets_its_events(
    app: Flask, make_tenant: Any, make_account: Any
) -> None:
    heard, quiet = make_tenant("heard"), make_tenant("quiet")
    hook(heard, "http://127.0.0.1:9/never", events=["post.published"])
    posts = {}
    for tenant in (heard, quiet):
        accounts = [make_account(tenant, "x", name=f"x{n}") for n in range(3)]
        posts[tenant.organisation_id] = three_target_post(tenant, accounts, "Refresh events")
        set_targets(app, posts[tenant.organisation_id], [("published", 1, "a", EARLY)] * 3)
    refresh(app, list(posts.values()), {})
    with get_db(app).session() as session:
        for tenant in (heard, quiet):
            post = session.get(Post, posts[tenant.organisation_id])
            assert post is not None
            assert (post.status, post.published_at) == ("published", EARLY)
        # Only the organisation with an endpoint has an event: its post took the ORM path.
        events = session.execute(select(WebhookEvent.organisation_id, WebhookEvent.type)).all()
    assert [tuple(row) for row in events] == [(heard.organisation_id, "post.published")]

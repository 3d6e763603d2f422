"""New posts written as rows (app.services.post_rows): on PostgreSQL through the driver in
one statement, on SQLite through the unit of work; both must leave the same rows, and the
objects must read as those rows (target ids, column defaults)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text

from app import create_app
from app.db import get_db
from app.migrations import upgrade_database
from app.models import (
    NewPost,
    NewTarget,
    Organisation,
    Post,
    PostStatus,
    PostTarget,
    TargetStatus,
)
from app.services.accounts import add_account
from app.services.keys import create_api_key
from app.services.post_rows import insert_new_posts


@pytest.fixture(params=["postgresql", "sqlite"])
def any_app(
    request: pytest.FixtureRequest, app: Flask, app_settings: dict[str, Any], tmp_path: Path
) -> Iterator[Flask]:
    if request.param == "postgresql":
        yield app
        return
    url = f"sqlite:///{tmp_path / 'rows.sqlite3'}"
    upgrade_database(url)
    embedded = create_app({**app_settings, "database_url": url})
    yield embedded
    get_db(embedded).dispose()


def new_post(organisation_id: int, accounts: list[tuple[int, str]], n: int) -> NewPost:
    at = datetime.now(UTC) + timedelta(minutes=10)
    now = datetime.now(UTC)
    return NewPost(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        profile_id=None,
        content=f"Row post {n}",
        scheduled_at=at,
        publish_now=False,
        timezone="Europe/Paris",
        platform_content={"x": {"content": "shorter"}},
        media_ids=[],
        status=PostStatus.SCHEDULED,
        campaign_id=None,
        cover_photo=None,
        created_at=now,
        targets=[
            NewTarget(
                account_id=account_id,
                platform=platform,
                status=TargetStatus.SCHEDULED,
                next_attempt_at=at,
                created_at=now,
            )
            for account_id, platform in accounts
        ],
    )


def written(target: Any) -> tuple[Any, ...]:
    return (
        target.id,
        target.account_id,
        target.platform,
        target.status,
        target.attempts,
        target.worker_losses,
    )


def test_posts_and_targets_are_written_as_the_objects_say(any_app: Flask) -> None:
    with any_app.app_context(), get_db(any_app).session() as session:
        _key, api_key = create_api_key(session, name="rows", organisation_name="rows")
        organisation = session.get(Organisation, api_key.organisation_id)
        accounts = [
            add_account(
                session,
                any_app.config["CRIER"],
                platform=platform,
                name=f"{platform} rows",
                access_token="tok",
                external_id=f"{platform}-{uuid.uuid4().hex[:8]}",
                organisation=organisation,
            )
            for platform in ("x", "linkedin", "threads")
        ]
        session.commit()
        pairs = [(a.id, a.platform) for a in accounts]
        # Three posts at once, as a bulk create writes them; their targets interleave.
        posts = [new_post(api_key.organisation_id, pairs[n:] + pairs[:n], n) for n in range(3)]
        insert_new_posts(session, posts)
        session.commit()
        targets = [t for post in posts for t in post.targets]
        assert len({t.id for t in targets}) == 9
        assert all(t.attempts == 0 and t.worker_losses == 0 for t in targets)
        assert all(t.status == TargetStatus.SCHEDULED and t.created_at for t in targets)
        session.expunge_all()
        for post in posts:
            row = session.get(Post, post.id)
            assert row is not None
            assert (row.content, row.timezone, row.status) == (
                post.content,
                "Europe/Paris",
                PostStatus.SCHEDULED,
            )
            assert row.platform_content == {"x": {"content": "shorter"}} and row.media_ids == []
            assert row.scheduled_at == post.scheduled_at
            assert {written(t) for t in row.targets} == {written(t) for t in post.targets}
            assert all(t.next_attempt_at == post.scheduled_at for t in row.targets)
        # Nothing set reads as SQL NULL, never as a JSON null.
        handles = session.execute(
            select(PostTarget.id)
            .where(PostTarget.id.in_([t.id for t in targets]))
            .where(text("platform_handle IS NULL"))
        ).all()
        assert len(handles) == 9

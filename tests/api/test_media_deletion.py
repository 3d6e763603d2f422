"""Deleting media is atomic with respect to the posts that use it (real PostgreSQL locks).

The media row is locked before the in-use check and the file is removed only after the
commit: a post created at the same moment either sees the media gone or blocks the
deletion, and a rolled-back deletion leaves both row and file.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.access import Scope
from app.db import get_db
from app.schemas import CreatePostSchema
from app.services import media as media_service
from app.services import posts as post_service
from tests.api.helpers import assert_error, future, sql, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes


def stored_file(app: Flask, media_id: str) -> Path:
    [row] = sql(app, "SELECT storage_key FROM media WHERE id = :m", m=media_id)
    return Path(app.config["CRIER"].media_dir) / row["storage_key"]


def in_background(call: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: result.update(response=call()), daemon=True)
    thread.start()
    return thread, result


def test_a_deletion_waits_for_a_post_being_created_with_the_media(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    media_id = upload(tenant.api, "race.jpg", jpeg_bytes())
    path = stored_file(app, media_id)
    data = CreatePostSchema().load(
        {
            "content": "racing the delete",
            "account_ids": [account_id],
            "media_ids": [media_id],
            "scheduled_at": future(),
        }
    )
    with app.app_context(), get_db(app).session() as session:
        post_service.create_post(  # holds FOR SHARE
            session, Scope(tenant.organisation_id), data, settings=app.config["CRIER"]
        )
        thread, result = in_background(lambda: tenant.api.delete(f"/media/{media_id}"))
        time.sleep(1.0)
        assert thread.is_alive(), "the deletion did not wait for the post's transaction"
        session.commit()
    thread.join(timeout=30)
    assert_error(result["response"], 409, "media_in_use")
    assert path.exists()
    assert sql(app, "SELECT count(*) AS n FROM media") == [{"n": 1}]


def test_a_post_waits_for_a_deletion_and_then_finds_no_media(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    media_id = upload(tenant.api, "gone.jpg", jpeg_bytes())
    path = stored_file(app, media_id)
    body = {"content": "too late", "account_ids": [account_id], "media_ids": [media_id]}
    with app.app_context(), get_db(app).session() as session:
        deleted = media_service.delete_media(
            session, app.config["CRIER"], Scope(tenant.organisation_id), media_id
        )
        assert path.exists(), "the file went before the commit"
        assert path == Path(app.config["CRIER"].media_dir) / str(deleted.storage_key)
        thread, result = in_background(lambda: tenant.api.post("/posts", json=body))
        time.sleep(1.0)
        assert thread.is_alive(), "the post did not wait for the deletion's transaction"
        session.commit()
    media_service.remove_media_file(app.config["CRIER"], deleted.storage_key)
    thread.join(timeout=30)
    error = assert_error(result["response"], 400, "validation_error")
    assert "Media not found" in error["message"]
    assert not path.exists()
    assert sql(app, "SELECT count(*) AS n FROM posts") == [{"n": 0}]


def test_a_rolled_back_deletion_keeps_row_and_file(app: Flask, tenant: Tenant) -> None:
    media_id = upload(tenant.api, "kept.jpg", jpeg_bytes())
    path = stored_file(app, media_id)
    with app.app_context(), get_db(app).session() as session:
        media_service.delete_media(
            session, app.config["CRIER"], Scope(tenant.organisation_id), media_id
        )
        session.rollback()
    assert path.exists()
    assert sql(app, "SELECT id FROM media") == [{"id": uuid.UUID(media_id)}]
    response = tenant.api.delete(f"/media/{media_id}")
    assert response.status_code == 200
    assert not path.exists()


def test_a_post_created_over_http_holds_its_media_until_it_commits(
    app: Flask, tenant: Tenant, make_account: Any, monkeypatch: Any
) -> None:
    """A create without an Idempotency-Key writes on an autocommit connection only when
    it uses no media: with media, the FOR SHARE lock must last until the post's row is
    written, or a deletion could slip in between."""
    account_id = make_account(tenant, "x")
    media_id = upload(tenant.api, "held.jpg", jpeg_bytes())
    seen: list[str] = []
    write = post_service.insert_new_posts

    def probing_write(session: Any, posts: Any) -> None:
        with get_db(app).engine.connect() as other:
            try:
                other.execute(
                    text("SELECT id FROM media WHERE id = :m FOR UPDATE NOWAIT"), {"m": media_id}
                )
                seen.append("free")
            except OperationalError:
                seen.append("locked")
        write(session, posts)

    monkeypatch.setattr(post_service, "insert_new_posts", probing_write)
    # The key's first requests read it from the database; the create must find it cached
    # and its session unbegun, as under load.
    for _ in range(2):
        assert tenant.api.get("/media").status_code == 200
    body = {"content": "held", "account_ids": [account_id], "media_ids": [media_id]}
    response = tenant.api.post("/posts", json=body)
    assert response.status_code == 201, response.text
    # Written once, or again after its cached accounts were found changed: locked each time.
    assert seen and set(seen) == {"locked"}

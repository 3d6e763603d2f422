"""Prepare ahead: preparation as a plain function against PostgreSQL, Redis and the
sandbox; the publish at the instant resumes from what was prepared."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import select, update

from app.config import Settings
from app.db import get_db, utcnow
from app.dispatch import ETA_HEAD_START
from app.models import Account, DiscardedHandle, Media, Post, PostTarget, TargetStatus
from app.services.posts import set_prepare_due
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes, mp4_bytes
from tests.workers.conftest import target_row
from tests.workers.test_pipeline import current_token, ledger, queue_now
from workers.adapters import get_adapter
from workers.adapters.instagram import GRAPH_VERSION
from workers.pipeline import (
    Delivery,
    PipelineDeps,
    fire_delivery,
    publish_target,
    ready_delivery,
    record_outcomes,
)
from workers.preparation import discard_handles, prepare_target
from workers.retry import retry_policy
from workers.sweeper import sweep_due_targets
from workers.tokens import account_credentials


def image_post(tenant: Tenant, account_id: int, text: str, minutes: float) -> tuple[str, str]:
    media = tenant.api.post("/media/upload", files={"file": ("still.jpg", jpeg_bytes())})
    assert media.status_code == 201, media.text
    at = (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()
    response = tenant.api.post(
        "/posts",
        json={
            "content": text,
            "account_ids": [account_id],
            "media_ids": [media.json()["data"]["id"]],
            "scheduled_at": at,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]["post_id"], media.json()["data"]["id"]


def the_target(app: Flask, post_id: str) -> PostTarget:
    with get_db(app).session() as session:
        target = session.scalar(select(PostTarget).where(PostTarget.post_id == post_id))
        session.expunge(target)
        return target


def sweep_prepares(app: Flask) -> str:
    """One sweep with the target's preparation due now; returns the prepare token."""
    with get_db(app).session() as session:
        session.execute(update(PostTarget).values(prepare_due_at=datetime.now(UTC)))
        session.commit()
    report = sweep_due_targets(get_db(app), app.config["CRIER"], app.extensions["celery"])
    assert report.preparing == 1
    with get_db(app).session() as session:
        return session.scalar(select(PostTarget.prepare_token))


def shown(tenant: Tenant, post_id: str) -> str:
    return tenant.api.get(f"/posts/{post_id}").json()["data"]["targets"][0]["status"]


def test_preparation_is_due_by_media_kind_and_platform(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    x = make_account(tenant, "x")
    post_id, _ = image_post(tenant, x, "an image", minutes=60)
    target = the_target(app, post_id)
    # Images are prepared 5 minutes ahead by default; text has nothing to prepare.
    assert target.prepare_due_at == target.next_attempt_at - timedelta(minutes=5)
    text = tenant.api.post(
        "/posts",
        json={
            "content": "words only",
            "account_ids": [x],
            "scheduled_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        },
    )
    assert the_target(app, text.json()["data"]["post_id"]).prepare_due_at is None


def test_a_scheduled_draft_is_prepared_ahead_like_a_scheduled_post(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    x = make_account(tenant, "x")
    media = tenant.api.post("/media/upload", files={"file": ("still.jpg", jpeg_bytes())})
    draft = tenant.api.post(
        "/posts",
        json={
            "content": "a draft with an image",
            "account_ids": [x],
            "media_ids": [media.json()["data"]["id"]],
            "draft": True,
        },
    )
    assert draft.status_code == 201, draft.text
    post_id = draft.json()["data"]["post_id"]
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    scheduled = tenant.api.post(f"/posts/{post_id}/schedule", json={"scheduled_for": at})
    assert scheduled.status_code == 200, scheduled.text
    target = the_target(app, post_id)
    assert target.prepare_due_at == target.next_attempt_at - timedelta(minutes=5)


def test_the_windows_are_those_of_the_settings_handed_in() -> None:
    due = utcnow() + timedelta(hours=1)
    target = PostTarget(platform="instagram", status=TargetStatus.SCHEDULED, next_attempt_at=due)
    post = Post(targets=[target])
    set_prepare_due(post, [Media(kind="video")], Settings(prepare_window_video=90.0))
    assert target.prepare_due_at == due - timedelta(seconds=90)
    set_prepare_due(post, [Media(kind="image")], Settings(prepare_window_image=30.0))
    assert target.prepare_due_at == due - timedelta(seconds=30)


def test_a_prepared_target_publishes_with_what_was_prepared(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    post_id, _ = image_post(tenant, account_id, "prepared ahead", minutes=60)
    token = sweep_prepares(app)
    assert shown(tenant, post_id) == "preparing"
    assert prepare_target(deps, the_target(app, post_id).id, token) == "prepared"
    target = the_target(app, post_id)
    assert target.prepare_state == "prepared" and target.status == "scheduled"
    prepared_media = target.platform_handle["media_ids"]
    assert prepared_media
    assert ledger(sandbox) == []  # nothing public yet
    assert shown(tenant, post_id) == "prepared"
    target_id, dispatch_token = queue_now(app, post_id)
    assert publish_target(deps, target_id, dispatch_token) == "published"
    [entry] = ledger(sandbox)
    # The media uploaded while preparing went out with the post: nothing uploaded twice.
    assert entry["params"]["media"]["media_ids"] == prepared_media
    assert target_row(app, target_id).status == "published"


def test_an_edit_drops_the_preparation_and_a_late_preparer_writes_nothing(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    post_id, _ = image_post(tenant, account_id, "old words", minutes=60)
    token = sweep_prepares(app)
    edited = tenant.api.patch(f"/posts/{post_id}", json={"content": "new words"})
    assert edited.status_code == 200, edited.text
    # The preparation the sweeper sent is overtaken: it prepares nothing.
    assert prepare_target(deps, the_target(app, post_id).id, token) == "stale"
    target = the_target(app, post_id)
    assert target.prepare_state is None and target.platform_handle is None
    assert target.prepare_due_at is not None  # prepared again in its window
    # Prepared, then edited: the handle made for the old words is dropped.
    token = sweep_prepares(app)
    assert prepare_target(deps, target.id, token) == "prepared"
    tenant.api.patch(f"/posts/{post_id}", json={"content": "newer words"})
    target = the_target(app, post_id)
    assert target.prepare_state is None and target.platform_handle is None
    assert shown(tenant, post_id) == "scheduled"


def test_a_failed_preparation_is_retried_before_the_instant(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    post_id, _ = image_post(tenant, account_id, "flaky upload", minutes=60)
    token = sweep_prepares(app)
    sandbox.post("/_faults", json={"x": {"error_rate": 1.0, "error_status": 503}})
    failed_at = datetime.now(UTC)
    assert prepare_target(deps, the_target(app, post_id).id, token) == "retry"
    target = the_target(app, post_id)
    assert target.prepare_state is None and target.prepare_token is None
    # Full jitter: the retry is due anywhere from the failure to the ceiling of the first
    # backoff (a draw near zero is due at once), and always before the instant's head start.
    policy = retry_policy("x", deps.settings)
    ceiling = min(policy.base_seconds, policy.cap_seconds)
    assert failed_at <= target.prepare_due_at <= datetime.now(UTC) + timedelta(seconds=ceiling)
    assert target.prepare_due_at < target.next_attempt_at - ETA_HEAD_START
    sandbox.post("/_faults", json={})
    token = sweep_prepares(app)
    assert prepare_target(deps, target.id, token) == "prepared"


def test_the_publish_overtakes_a_preparation_still_under_way(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    post_id, _ = image_post(tenant, account_id, "overtaken", minutes=60)
    token = sweep_prepares(app)
    target_id, dispatch_token = queue_now(app, post_id)
    assert publish_target(deps, target_id, dispatch_token) == "published"
    # The preparation message arrives after the publish claimed the target.
    assert prepare_target(deps, target_id, token) == "stale"
    assert len(ledger(sandbox)) == 1
    assert current_token(app, target_id) is None


def test_what_was_staged_for_edited_content_is_deleted_on_the_platform(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """YouTube stages a video as private: an edit drops it, and it is deleted there."""
    account_id = make_account(tenant, "youtube", external_id="UCsandbox0000000000000042")
    video = tenant.api.post("/media/upload", files={"file": ("clip.mp4", mp4_bytes())})
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = tenant.api.post(
        "/posts",
        json={
            "content": "old description",
            "account_ids": [account_id],
            "media_ids": [video.json()["data"]["id"]],
            "scheduled_at": at,
            "platform_content": {"youtube": {"settings": {"title": "Staged"}}},
        },
    )
    post_id = created.json()["data"]["post_id"]
    token = sweep_prepares(app)
    assert prepare_target(deps, the_target(app, post_id).id, token) == "prepared"
    staged = the_target(app, post_id).platform_handle["video_id"]
    adapter = deps.adapter_for("youtube")
    with get_db(app).session() as session:
        credentials = account_credentials(deps.settings, session.get(Account, account_id))

    def on_youtube() -> bool:
        response = adapter.http.get(
            adapter.url("/youtube/v3/videos"),
            params={"id": staged, "part": "status"},
            headers={"Authorization": f"Bearer {credentials.access_token}"},
        )
        return bool(response.json()["items"])

    assert on_youtube()
    edited = tenant.api.patch(f"/posts/{post_id}", json={"content": "new description"})
    assert edited.status_code == 200, edited.text
    assert discard_handles(deps) == {"discarded": 1, "retry": 0, "gave_up": 0}
    assert not on_youtube()
    with get_db(app).session() as session:
        [row] = session.scalars(select(DiscardedHandle)).all()
        assert row.finished_at is not None and row.outcome == "deleted 1"
    assert ledger(sandbox) == []


def test_a_prepared_container_is_looked_at_when_readied_not_at_the_instant(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    sandbox_url: str,
) -> None:
    """Readying, seconds ahead, reads the Instagram container's status; at the instant
    the first request is `media_publish`, the one that makes the post public."""
    account_id = make_account(tenant, "instagram")
    post_id, _ = image_post(tenant, account_id, "a container ahead", minutes=60)
    token = sweep_prepares(app)
    assert prepare_target(deps, the_target(app, post_id).id, token) == "prepared"
    sent: list[str] = []
    hooks = {"request": [lambda request: sent.append(f"{request.method} {request.url.path}")]}
    with httpx.Client(timeout=10, event_hooks=hooks) as http:
        counting = replace(
            deps, adapter_for=lambda platform: get_adapter(platform, http, sandbox_url)
        )
        target_id, dispatch_token = queue_now(app, post_id)
        delivery = ready_delivery(counting, target_id, dispatch_token)
        assert isinstance(delivery, Delivery)
        readying = list(sent)
        sent.clear()
        decision = fire_delivery(counting, delivery)
        at_the_instant = list(sent)
        assert record_outcomes(counting, [(delivery, decision)]) == ["published"]
    container = the_target(app, post_id).platform_handle["container_id"]
    assert readying == [f"GET /instagram/{GRAPH_VERSION}/{container}"]
    assert at_the_instant[0].endswith("/media_publish"), at_the_instant
    assert len(ledger(sandbox)) == 1

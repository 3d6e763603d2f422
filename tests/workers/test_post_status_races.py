"""A post's status never lags its targets, whichever writers meet on it.

Each writer that ends a target derives its post's status from the targets it reads. Two
of them working on one post at once, each reading before the other commits, would each
derive from a view without the other's change, and the later commit would leave a status
neither view supports (write skew under READ COMMITTED). Every such writer locks the post
first, so they take turns. Here an account is removed while another account's delivery
of the same post is being answered: the removal waits, uncommitted, while the outcome is
written, exactly between the two steps where the skew happened.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import event, select, text

from app.db import get_db
from app.dispatch import DueTarget, mark_queued
from app.models import Account, Post, PostTarget, Profile, TargetStatus
from app.services.accounts import cancel_account_targets
from app.services.posts import derive_post_status
from app.services.profiles import create_profile, delete_profile
from tests.conftest import Tenant
from tests.workers.test_pipeline import far_future
from workers.pipeline import Delivery, PipelineDeps, fire_delivery, ready_delivery, record_outcomes


def two_account_post(tenant: Tenant, accounts: list[int]) -> str:
    response = tenant.api.post(
        "/posts",
        json={"content": "Two accounts", "account_ids": accounts, "scheduled_at": far_future()},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["post_id"])


def claimed_delivery(app: Flask, deps: PipelineDeps, post_id: str, account_id: int) -> Delivery:
    """The account's target of the post, due now, claimed and readied by a worker."""
    with get_db(app).session() as session:
        target = session.scalar(
            select(PostTarget).where(
                PostTarget.post_id == post_id, PostTarget.account_id == account_id
            )
        )
        now = datetime.now(UTC)
        target.next_attempt_at = now
        session.flush()
        [dispatch] = mark_queued(session, [DueTarget(target.id, "x", now)], "scheduled")
        session.commit()
    delivery = ready_delivery(deps, dispatch.target.id, dispatch.token)
    assert isinstance(delivery, Delivery), delivery
    return delivery


def waiting_on_a_lock(app: Flask) -> bool:
    with get_db(app).engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
        )


def outcome_while(app: Flask, deps: PipelineDeps, delivery: Delivery, removal: Any) -> None:
    """`removal(session)` runs; once it has derived the post's status from the targets it
    read, just before it writes that status, the delivery's outcome is published and
    written on another thread (or waits for the removal's locks); then the removal goes
    on and commits."""
    results: list[Any] = []

    def answer() -> None:
        try:
            results.append(record_outcomes(deps, [(delivery, fire_delivery(deps, delivery))]))
        except BaseException as exc:  # reported below
            results.append(exc)

    writer = threading.Thread(target=answer)

    def meanwhile(session: Any, *_: Any) -> None:
        if writer.ident is not None or not any(isinstance(o, Post) for o in session.dirty):
            return
        writer.start()
        deadline = time.monotonic() + 20
        while writer.is_alive() and not waiting_on_a_lock(app):
            assert time.monotonic() < deadline, "the outcome writer neither finished nor waited"
            time.sleep(0.02)

    with get_db(app).session() as session:
        event.listen(session, "before_flush", meanwhile)
        removal(session)
        assert writer.ident is not None, "the removal wrote nothing"
        session.commit()
    writer.join(timeout=30)
    assert results == [["published"]], results


def status_and_targets(app: Flask, post_id: str) -> tuple[str, str, list[str]]:
    with get_db(app).session() as session:
        post = session.get(Post, post_id)
        assert post is not None
        return post.status, derive_post_status(post), [t.status for t in post.targets]


def test_an_account_removed_while_another_publishes_leaves_the_post_right(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    removed, publishing = make_account(tenant, "x", "removed"), make_account(tenant, "x")
    post_id = two_account_post(tenant, [removed, publishing])
    delivery = claimed_delivery(app, deps, post_id, publishing)

    def remove(session: Any) -> None:
        account = session.get(Account, removed)
        assert len(cancel_account_targets(session, account, "The account was removed.")) == 1

    outcome_while(app, deps, delivery, remove)
    status, derived, targets = status_and_targets(app, post_id)
    assert sorted(targets) == [TargetStatus.CANCELLED, TargetStatus.PUBLISHED]
    assert status == derived == "published"


def test_a_profile_deleted_while_another_account_publishes_leaves_the_post_right(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    removed, publishing = make_account(tenant, "x", "removed"), make_account(tenant, "x")
    with get_db(app).session() as session:
        profile = create_profile(session, tenant.organisation_id, {"name": "Client"})
        session.flush()
        session.get(Account, removed).profile_id = profile.id
        session.commit()
        profile_id = profile.id
    post_id = two_account_post(tenant, [removed, publishing])
    delivery = claimed_delivery(app, deps, post_id, publishing)

    def delete(session: Any) -> None:
        delete_profile(session, session.get(Profile, profile_id))

    outcome_while(app, deps, delivery, delete)
    status, derived, targets = status_and_targets(app, post_id)
    assert sorted(targets) == [TargetStatus.CANCELLED, TargetStatus.PUBLISHED]
    assert status == derived == "published"

"""The sweeper as a plain function against PostgreSQL: what it picks up, and how it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, text, update

from app.db import get_db
from app.models import PostTarget, PublishAttempt
from tests.conftest import Tenant
from workers.sweeper import sweep_due_targets


def make_targets(tenant: Tenant, account_id: int, count: int) -> None:
    later = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    for n in range(count):
        response = tenant.api.post(
            "/posts",
            json={"content": f"sweep {n}", "account_ids": [account_id], "scheduled_at": later},
        )
        assert response.status_code == 201


def target_ids(app: Flask) -> list[int]:
    with get_db(app).session() as session:
        return list(session.scalars(select(PostTarget.id).order_by(PostTarget.id)))


def update_target(app: Flask, target_id: int, **values: Any) -> None:
    with get_db(app).session() as session:
        session.execute(update(PostTarget).where(PostTarget.id == target_id).values(**values))
        session.commit()


def rows(app: Flask) -> dict[int, PostTarget]:
    with get_db(app).session() as session:
        found = {t.id: t for t in session.scalars(select(PostTarget))}
        for row in found.values():
            session.expunge(row)
        return found


def test_sweep_enqueues_resends_and_recovers(app: Flask, tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 4)
    far, entering, lost, dead = target_ids(app)
    now = datetime.now(UTC)
    update_target(app, entering, next_attempt_at=now + timedelta(minutes=3))
    update_target(
        app,
        lost,
        status="queued",
        dispatch_token="old-lost",
        next_attempt_at=now - timedelta(hours=1),
        queued_at=now - timedelta(hours=1),
    )
    update_target(
        app,
        dead,
        status="publishing",
        dispatch_token="old-dead",
        next_attempt_at=now - timedelta(minutes=10),
        lease_expires_at=now - timedelta(seconds=1),
        irreversible_started_at=now - timedelta(minutes=9),
    )
    settings = app.config["CRIER"]
    report = sweep_due_targets(get_db(app), settings, app.extensions["celery"])
    assert report.as_dict() == {
        "entered_horizon": 1,
        "requeued_lost": 1,
        "recovered_dead": 1,
        "sent": 3,
    }
    after = rows(app)
    assert after[far].status == "scheduled" and after[far].dispatch_token is None
    assert after[entering].status == "queued" and after[entering].dispatch_token
    # A lost message is sent again with its token: a slow first copy stays valid.
    assert after[lost].status == "queued" and after[lost].dispatch_token == "old-lost"
    assert after[lost].queued_at > now - timedelta(seconds=5)
    # A dead worker's target gets a new token, fencing off that worker.
    assert after[dead].status == "queued" and after[dead].dispatch_token not in (None, "old-dead")
    # The recovered target keeps its marker: its next delivery reconciles before sending.
    assert after[dead].irreversible_started_at is not None
    with get_db(app).session() as session:
        [lost_log] = session.scalars(select(PublishAttempt)).all()
    assert lost_log.target_id == dead and lost_log.outcome == "worker_lost"
    # A second sweep right away finds nothing to do.
    again = sweep_due_targets(get_db(app), settings, app.extensions["celery"])
    assert again.as_dict() == {
        "entered_horizon": 0,
        "requeued_lost": 0,
        "recovered_dead": 0,
        "sent": 0,
    }


def test_sweep_reads_open_targets_through_the_partial_index(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    """The cost follows the due rows: finished targets are not even in the index."""
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 3)
    with get_db(app).engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_post_targets_open_due'")
        ).scalar_one()
        assert "WHERE" in definition and "'published'" not in definition
        conn.execute(text("SET enable_seqscan = off"))
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                text(
                    "EXPLAIN SELECT id FROM post_targets WHERE status = 'scheduled' "
                    "AND next_attempt_at <= now() + interval '10 minutes' "
                    "ORDER BY next_attempt_at LIMIT 500 FOR UPDATE SKIP LOCKED"
                )
            )
        )
    assert "ix_post_targets_open_due" in plan, plan

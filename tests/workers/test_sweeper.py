"""The sweeper as a plain function against PostgreSQL: what it picks up, and how it reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, text, update

from app.db import get_db
from app.models import PostTarget, PublishAttempt, ServiceState, WorkerHeartbeat
from app.redis_client import redis_client
from tests.conftest import Tenant
from workers.broker import EPOCH_KEY
from workers.sweeper import SWEEP_STATE, SweepReport, sweep_due_targets


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


def sweep(app: Flask) -> SweepReport:
    return sweep_due_targets(get_db(app), app.config["CRIER"], app.extensions["celery"])


def report(**counts: int) -> dict[str, int]:
    keys = (
        "entered_horizon",
        "requeued_lost",
        "recovered_dead",
        "resent_held",
        "resent_after_broker_loss",
        "dead_workers",
        "preparing",
        "sent",
    )
    return {key: counts.get(key, 0) for key in keys}


def previous_sweep_at(app: Flask, moment: datetime) -> None:
    with get_db(app).session() as session:
        state = session.get(ServiceState, SWEEP_STATE)
        state.value = {**state.value, "swept_at": moment.isoformat()}
        session.commit()


def add_worker(app: Flask, owner: str, last_seen: datetime, held: list[list[Any]]) -> None:
    with get_db(app).session() as session:
        session.add(
            WorkerHeartbeat(owner=owner, hostname=owner, pid=1, last_seen_at=last_seen, held=held)
        )
        session.commit()


def queue_length(app: Flask, platform: str = "x") -> int:
    return int(redis_client(app.config["CRIER"].redis_url).llen(f"publish.{platform}"))


def test_first_sweep_marks_the_broker_and_recovers_nothing(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    """No previous sweep: no silence can be trusted yet, and a fresh broker gets its epoch."""
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 1)
    [dead] = target_ids(app)
    now = datetime.now(UTC)
    update_target(
        app,
        dead,
        status="publishing",
        dispatch_token="old",
        lease_expires_at=now - timedelta(minutes=5),
    )
    assert sweep(app).as_dict() == report(resent_after_broker_loss=0)
    assert redis_client(app.config["CRIER"].redis_url).get(EPOCH_KEY)
    assert rows(app)[dead].status == "publishing"


def test_sweep_enqueues_resends_and_recovers(app: Flask, tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 4)
    sweep(app)  # the broker's epoch and the previous sweep's time
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
        lease_expires_at=now - timedelta(seconds=5),
        irreversible_started_at=now - timedelta(minutes=9),
    )
    previous_sweep_at(app, now - timedelta(seconds=1))
    assert sweep(app).as_dict() == report(
        entered_horizon=1, requeued_lost=1, recovered_dead=1, sent=3
    )
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
    assert after[dead].worker_losses == 1 and after[dead].claim_owner is None
    with get_db(app).session() as session:
        [lost_log] = session.scalars(select(PublishAttempt)).all()
    assert lost_log.target_id == dead and lost_log.outcome == "worker_lost"
    # A second sweep right away finds nothing to do.
    assert sweep(app).as_dict() == report()


def test_dead_worker_claims_and_held_messages_are_sent_again_live_ones_are_not(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 4)
    claimed, held_by_dead, held_by_live, claimed_by_live = target_ids(app)
    sweep(app)
    now = datetime.now(UTC)
    soon = now + timedelta(seconds=40)
    # The lease is still long: only the owner's silence says it is dead.
    lease = now + timedelta(minutes=5)
    update_target(
        app,
        claimed,
        status="publishing",
        dispatch_token="c",
        claim_owner="dead@h:1",
        next_attempt_at=now,
        lease_expires_at=lease,
    )
    update_target(
        app,
        claimed_by_live,
        status="publishing",
        dispatch_token="d",
        claim_owner="live@h:2",
        next_attempt_at=now,
        lease_expires_at=lease,
    )
    for target_id, token in ((held_by_dead, "e"), (held_by_live, "f")):
        update_target(
            app,
            target_id,
            status="queued",
            dispatch_token=token,
            next_attempt_at=soon,
            queued_at=now,
        )
    settings = app.config["CRIER"]
    silent_since = now - timedelta(seconds=settings.worker_timeout + 5)
    add_worker(app, "dead@h:1", silent_since, [[held_by_dead, "e"]])
    add_worker(app, "live@h:2", now, [[held_by_live, "f"]])
    previous_sweep_at(app, now - timedelta(seconds=1))

    assert sweep(app).as_dict() == report(recovered_dead=1, resent_held=1, dead_workers=1, sent=2)
    after = rows(app)
    assert after[claimed].status == "queued" and after[claimed].dispatch_token != "c"
    assert after[claimed].worker_losses == 1
    # A held ETA message is sent again for its own instant, with a new token.
    assert after[held_by_dead].status == "queued"
    assert after[held_by_dead].dispatch_token not in (None, "e")
    assert after[held_by_dead].next_attempt_at == soon.replace(
        microsecond=after[held_by_dead].next_attempt_at.microsecond
    )
    # What a live worker holds or has claimed is left alone.
    assert after[held_by_live].dispatch_token == "f"
    assert after[claimed_by_live].status == "publishing"
    with get_db(app).session() as session:
        owners = set(session.scalars(select(WorkerHeartbeat.owner)))
    assert owners == {"live@h:2"}


def test_after_a_database_outage_silent_workers_get_one_sweep_to_beat_again(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 1)
    [claimed] = target_ids(app)
    sweep(app)
    now = datetime.now(UTC)
    outage_began = now - timedelta(minutes=2)
    update_target(
        app,
        claimed,
        status="publishing",
        dispatch_token="c",
        claim_owner="w@h:1",
        lease_expires_at=outage_began + timedelta(seconds=30),
    )
    add_worker(app, "w@h:1", outage_began, [])
    previous_sweep_at(app, outage_began)
    # The first sweep after the outage: nobody is declared dead yet.
    assert sweep(app).as_dict() == report()
    assert rows(app)[claimed].status == "publishing"


def test_a_flushed_broker_gets_every_queued_target_not_held_by_a_live_worker(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 3)
    waiting, due_later, held = target_ids(app)
    sweep(app)
    now = datetime.now(UTC)
    update_target(
        app, waiting, status="queued", dispatch_token="a", next_attempt_at=now, queued_at=now
    )
    update_target(
        app,
        due_later,
        status="queued",
        dispatch_token="b",
        next_attempt_at=now + timedelta(minutes=3),
        queued_at=now,
    )
    update_target(
        app, held, status="queued", dispatch_token="c", next_attempt_at=now, queued_at=now
    )
    add_worker(app, "live@h:1", now, [[held, "c"]])
    previous_sweep_at(app, now - timedelta(seconds=1))
    redis_client(app.config["CRIER"].redis_url).flushdb()
    # Fresh messages, not older than any grace: the missing epoch is the evidence.
    assert sweep(app).as_dict() == report(resent_after_broker_loss=2, sent=2)
    assert queue_length(app) == 2
    after = rows(app)
    assert after[waiting].dispatch_token == "a" and after[due_later].dispatch_token == "b"
    # Once the epoch is back, nothing more is resent.
    assert sweep(app).as_dict() == report()


def test_a_slow_backlog_is_not_resent(app: Flask, tenant: Tenant, make_account: Any) -> None:
    """Overdue targets whose queue still holds messages are waiting, not lost."""
    account_id = make_account(tenant, "x")
    make_targets(tenant, account_id, 5)
    ids = target_ids(app)
    sweep(app)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    for target_id in ids:
        update_target(
            app,
            target_id,
            status="queued",
            dispatch_token=f"t{target_id}",
            next_attempt_at=long_ago,
            queued_at=long_ago,
        )
    client = redis_client(app.config["CRIER"].redis_url)
    client.rpush("publish.x", "a message the worker has not reached yet")
    assert sweep(app).as_dict() == report()
    client.delete("publish.x")
    assert sweep(app).as_dict() == report(requeued_lost=5, sent=5)


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

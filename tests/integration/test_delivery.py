"""The delivery guarantees with real worker processes, real Redis and real PostgreSQL, with
Redis and then RabbitMQ as the Celery broker."""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.dispatch import DueTarget, mark_queued, send_publish
from app.models import PostTarget, PublishAttempt, TargetStatus
from devtools.scratch import PG_ADMIN_URL
from tests.conftest import CLAIM_KEY, Tenant
from tests.integration.conftest import Stack, broker_queues, delete_amqp_queues, wait_until


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str | None:
    """Every test here runs once on each broker; quotas, holds and the limiter stay in
    Redis either way."""
    if request.param == "redis":
        return None
    return request.getfixturevalue("rabbitmq_url")


def queue_depth(app: Flask, name: str) -> int:
    """Messages ready in a broker queue (not counting those a worker holds)."""
    celery = app.extensions["celery"]
    with celery.connection_for_read() as conn:
        if conn.transport.driver_type == "redis":
            return conn.default_channel.client.llen(name)
        return conn.default_channel.queue_declare(name, passive=True).message_count


def on_rabbitmq(app: Flask) -> bool:
    return str(app.extensions["celery"].conf.broker_url).startswith("amqp")


def lose_every_message(app: Flask) -> None:
    """What losing the broker's data does: Redis flushed, or RabbitMQ's queues dropped."""
    if on_rabbitmq(app):
        delete_amqp_queues(str(app.extensions["celery"].conf.broker_url))
        return
    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    client.flushdb()
    client.set(CLAIM_KEY, "flushed-by-test")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def create(tenant: Tenant, account_ids: list[int], text: str, at: datetime | None = None) -> str:
    body: dict[str, Any] = {"content": text, "account_ids": account_ids}
    if at is not None:
        body["scheduled_at"] = iso(at)
    response = tenant.api.post("/posts", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]["post_id"]


def targets(app: Flask) -> list[PostTarget]:
    with get_db(app).session() as session:
        rows = list(session.scalars(select(PostTarget).order_by(PostTarget.id)))
        for row in rows:
            session.expunge(row)
        return rows


def attempts(app: Flask) -> list[PublishAttempt]:
    with get_db(app).session() as session:
        rows = list(session.scalars(select(PublishAttempt).order_by(PublishAttempt.id)))
        for row in rows:
            session.expunge(row)
        return rows


def all_final(app: Flask, count: int) -> bool:
    rows = targets(app)
    return len(rows) == count and all(
        r.status in ("published", "failed", "unconfirmed") for r in rows
    )


def ledger(sandbox: httpx.Client) -> list[dict[str, Any]]:
    return sandbox.get("/_ledger").json()


def arrived(sandbox: httpx.Client, platform: str) -> int:
    """Publishing requests that reached the sandbox, answered or still held there."""
    return int(sandbox.get("/_arrived").json().get(platform, 0))


def test_burst_is_published_at_its_instant_never_early(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker(concurrency=16)
    accounts = [make_account(tenant, "x", access_token=f"x-token-{i}") for i in range(3)] + [
        make_account(
            tenant, "linkedin", access_token=f"li-token-{i}", external_id=f"urn:li:person:b{i}"
        )
        for i in range(2)
    ]
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    for n in range(8):
        create(tenant, accounts, f"Burst post {n}", due)
    wait_until(lambda: all_final(app, 40), timeout=60)
    rows = targets(app)
    assert {r.status for r in rows} == {"published"}
    entries = ledger(sandbox)
    assert len(entries) == 40
    lateness = sorted((parse_ts(e["received_at"]) - due).total_seconds() for e in entries)
    print(
        f"\nburst of 40: lateness min {lateness[0]:.3f}s median "
        f"{statistics.median(lateness):.3f}s max {lateness[-1]:.3f}s"
    )
    assert lateness[0] >= 0, "a post was published before its scheduled instant"


def test_transient_errors_and_rate_limits_each_post_published_once(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    sandbox.post(
        "/_faults",
        json={
            "x": {"error_rate": 0.3, "error_status": 503, "rate_limit_every": 4, "retry_after": 2}
        },
    )
    # Each call fails at random three times in ten: with the default five attempts, one of
    # six posts runs out of them about once in seventy runs (0.3^5 each). Twelve make that
    # one in three hundred thousand; rate limits never count as attempts.
    stack.worker(concurrency=8, extra_env={"CRIER_RETRY_MAX_ATTEMPTS": "12"})
    account_id = make_account(tenant, "x")
    for n in range(6):
        create(tenant, [account_id], f"Flaky post {n}")
    wait_until(lambda: all_final(app, 6), timeout=90)
    assert {r.status for r in targets(app)} == {"published"}
    texts = [e["text"] for e in ledger(sandbox)]
    assert sorted(texts) == sorted(f"Flaky post {n}" for n in range(6))
    log = attempts(app)
    limited = [a for a in log if a.outcome == "rate_limited"]
    assert limited, "the sandbox answered 429s; the attempts log must show the waits"
    for attempt in limited:
        assert attempt.wait_seconds is not None and attempt.wait_seconds > 0
        later = [a for a in log if a.target_id == attempt.target_id and a.id > attempt.id]
        resumed = [a for a in later if a.outcome != "rate_limited"]
        if resumed:
            gap = (resumed[0].started_at - attempt.finished_at).total_seconds()
            assert gap >= attempt.wait_seconds - 0.5


def test_quota_is_shared_by_two_worker_processes(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    caps = {"CRIER_X_PUBLISH_CAPS": "2/3 seconds"}
    stack.worker("w1", concurrency=4, extra_env=caps)
    stack.worker("w2", concurrency=4, extra_env=caps)
    account_id = make_account(tenant, "x")
    for n in range(6):
        create(tenant, [account_id], f"Capped post {n}")
    wait_until(lambda: all_final(app, 6), timeout=60)
    times = sorted(parse_ts(e["received_at"]).timestamp() for e in ledger(sandbox))
    assert len(times) == 6
    # No three publishes inside one 3-second window, whichever worker made them.
    for first, third in zip(times, times[2:], strict=False):
        assert third - first >= 3 - 0.3
    waits = [a for a in attempts(app) if a.outcome == "quota_wait"]
    assert waits


def test_same_message_twice_publishes_once(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker()
    account_id = make_account(tenant, "x")
    create(tenant, [account_id], "Delivered twice", datetime.now(UTC) + timedelta(days=2))
    with get_db(app).session() as session:
        target = session.scalar(select(PostTarget))
        now = datetime.now(UTC)
        target.next_attempt_at = now
        [dispatch] = mark_queued(session, [DueTarget(target.id, "x", now)], TargetStatus.SCHEDULED)
        session.commit()
    for _ in range(3):
        send_publish(app.extensions["celery"], dispatch.target, dispatch.token)
    wait_until(lambda: all_final(app, 1), timeout=30)
    time.sleep(1.5)
    assert len(ledger(sandbox)) == 1


def test_rescheduled_or_cancelled_messages_publish_nothing(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker()
    account_id = make_account(tenant, "x")
    soon = datetime.now(UTC) + timedelta(seconds=3)
    moved = create(tenant, [account_id], "Moved to later", soon)
    cancelled = create(tenant, [account_id], "Cancelled", soon)
    assert {t.status for t in targets(app)} == {"queued"}  # both sent with an ETA
    later = iso(datetime.now(UTC) + timedelta(days=2))
    assert tenant.api.patch(f"/posts/{moved}", json={"scheduled_at": later}).status_code == 200
    assert tenant.api.delete(f"/posts/{cancelled}").status_code == 200
    time.sleep(5)
    assert ledger(sandbox) == []
    statuses = {str(t.post_id): t.status for t in targets(app)}
    assert statuses == {moved: "scheduled", cancelled: "cancelled"}


def test_worker_killed_mid_publish_ends_published_once(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    lease = {"CRIER_PUBLISH_LEASE": "4"}
    sandbox.post("/_faults", json={"x": {"latency_ms": 1500}})
    victim = stack.worker("victim", extra_env=lease)
    account_id = make_account(tenant, "x")
    create(tenant, [account_id], "Survives a SIGKILL")
    # The tweet's POST has reached the sandbox, which holds it 1.5 s.
    wait_until(lambda: arrived(sandbox, "x") == 1, timeout=20, interval=0.05)
    time.sleep(0.5)
    victim.kill(signal.SIGKILL)
    # The sandbox still receives the in-flight request: the post exists, unheard.
    wait_until(lambda: len(ledger(sandbox)) == 1, timeout=10)
    sandbox.post("/_faults", json={})
    stack.worker("rescuer", extra_env=lease)
    stack.beat(extra_env=lease)
    wait_until(lambda: all_final(app, 1), timeout=60)
    [target] = targets(app)
    entries = ledger(sandbox)
    assert target.status == "published"
    assert len(entries) == 1 and target.platform_post_id == entries[0]["id"]
    outcomes = [a.outcome for a in attempts(app)]
    assert "worker_lost" in outcomes and "reconciled_published" in outcomes


def test_redis_flushed_while_queued_sweeper_restores(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    for n in range(3):
        create(tenant, [account_id], f"Lost message {n}", datetime.now(UTC) + timedelta(seconds=1))
    assert {t.status for t in targets(app)} == {"queued"}
    lose_every_message(app)
    stack.worker()
    stack.beat()
    wait_until(lambda: all_final(app, 3), timeout=60)
    assert {t.status for t in targets(app)} == {"published"}
    assert sorted(e["text"] for e in ledger(sandbox)) == [f"Lost message {n}" for n in range(3)]


def cut_broker_connections(app: Flask) -> None:
    """What a broker restart does to its clients: every connection is dropped at once.
    RabbitMQ: close the scratch vhost's connections. Redis: kill the suite db's clients."""
    if on_rabbitmq(app):
        vhost = str(app.extensions["celery"].conf.broker_url).rsplit("/", 1)[1]
        subprocess.run(
            ["rabbitmqctl", "-q", "close_all_connections", "--vhost", vhost, "broker restart"],
            check=True,
            timeout=60,
        )
        return
    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    me = str(client.client_id())
    for entry in client.client_list():
        if str(entry["db"]) == str(db) and str(entry["id"]) != me:
            client.client_kill_filter(_id=entry["id"])


def test_broker_connections_cut_mid_burst_each_post_published_once(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    worker = stack.worker(concurrency=8)
    stack.beat()
    account_id = make_account(tenant, "x")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    for n in range(8):
        create(tenant, [account_id], f"Across a broker restart {n}", due)
    time.sleep(1.5)  # held by the worker (Redis) or in RabbitMQ's delay queues
    cut_broker_connections(app)
    worker.wait_for("Connection to broker lost", timeout=15)
    wait_until(lambda: all_final(app, 8), timeout=90)
    assert {t.status for t in targets(app)} == {"published"}
    entries = ledger(sandbox)
    assert sorted(e["text"] for e in entries) == [f"Across a broker restart {n}" for n in range(8)]
    assert min(parse_ts(e["received_at"]) for e in entries) >= due


def test_workers_survive_lost_database_connections(
    app: Flask,
    app_settings: dict[str, Any],
    stack: Stack,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    stack.worker()
    account_id = make_account(tenant, "x")
    create(tenant, [account_id], "Before the outage")
    wait_until(lambda: all_final(app, 1), timeout=30)
    # What a PostgreSQL restart does to clients: every server connection is cut. Each
    # backend is waited for (up to 5 s) until it has gone: pg_terminate_backend alone
    # returns before the backend has told its client, and a request sent in between
    # meets a server still shutting down, not one that has finished.
    database = app_settings["database_url"].rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        cut = conn.execute(
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()[0]
    assert cut >= 1
    create(tenant, [account_id], "After the outage")
    wait_until(lambda: all_final(app, 2), timeout=30)
    assert {t.status for t in targets(app)} == {"published"}
    assert len(ledger(sandbox)) == 2


def test_far_future_post_costs_no_worker_memory(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any
) -> None:
    stack.worker()
    account_id = make_account(tenant, "x")
    create(tenant, [account_id], "Next week", datetime.now(UTC) + timedelta(days=3))
    [target] = targets(app)
    assert target.status == "scheduled" and target.dispatch_token is None
    assert all(queue_depth(app, name) == 0 for name in broker_queues())
    if not on_rabbitmq(app):
        assert redis.Redis.from_url(app.config["CRIER"].redis_url).hlen("unacked") == 0
    scheduled = app.extensions["celery"].control.inspect(timeout=3).scheduled() or {}
    assert scheduled and all(tasks == [] for tasks in scheduled.values())


def _cluster_version() -> str | None:
    """The local cluster if it is managed by pg_ctlcluster (Debian), else None."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return versions[-1] if versions else None


@pytest.mark.skipif(
    _cluster_version() is None or os.environ.get("CRIER_TEST_PG_RESTART") == "0",
    reason="PostgreSQL is not managed by pg_ctlcluster here",
)
@pytest.mark.exclusive  # the restart breaks every other test's connections
def test_workers_recover_from_a_postgresql_restart(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker()
    stack.beat()
    account_id = make_account(tenant, "x")
    due = datetime.now(UTC) + timedelta(seconds=2)
    for n in range(3):
        create(tenant, [account_id], f"Across a restart {n}", due)
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", str(_cluster_version()), "main", "restart"],
        check=True,
        timeout=120,
    )
    wait_until(
        lambda: subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode == 0,
        timeout=60,
    )
    create(tenant, [account_id], "After the restart")
    wait_until(lambda: all_final(app, 4), timeout=90, interval=0.5)
    assert {t.status for t in targets(app)} == {"published"}
    assert sorted(e["text"] for e in ledger(sandbox)) == sorted(
        [f"Across a restart {n}" for n in range(3)] + ["After the restart"]
    )


def test_a_restarted_worker_hands_back_its_eta_tasks(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    first = stack.worker("first")
    account_id = make_account(tenant, "x")
    # Far enough that the messages are not yet due to be readied (ETA_HEAD_START) when
    # the first worker stops.
    due = datetime.now(UTC) + timedelta(seconds=12)
    for n in range(3):
        create(tenant, [account_id], f"Held across a restart {n}", due)

    def held_by_workers() -> int:
        inspect = app.extensions["celery"].control.inspect(timeout=2)
        return sum(len(tasks) for tasks in (inspect.scheduled() or {}).values())

    if on_rabbitmq(app):
        # Native delayed delivery: RabbitMQ keeps the messages until their instant, so
        # no worker holds them and a restart has nothing to hand back.
        time.sleep(2)
        assert held_by_workers() == 0
        first.stop()
    else:
        assert wait_until(lambda: held_by_workers() == 3, timeout=20)
        first.stop()  # SIGTERM: a warm shutdown gives the held messages back to the broker
        assert queue_depth(app, "publish.x") == 3
    stack.worker("second")
    wait_until(lambda: all_final(app, 3), timeout=30)
    entries = ledger(sandbox)
    assert len(entries) == 3
    assert min(parse_ts(e["received_at"]) for e in entries) >= due


def test_a_stopped_worker_hands_back_deliveries_readied_for_their_instant(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """Readied ahead of the instant, the deliveries are claimed and their messages acked;
    a warm shutdown must give them back rather than take them along."""
    first = stack.worker("first")
    account_id = make_account(tenant, "x")
    due = datetime.now(UTC) + timedelta(seconds=6)
    for n in range(3):
        create(tenant, [account_id], f"Readied then handed back {n}", due)
    wait_until(lambda: {t.status for t in targets(app)} == {"publishing"}, timeout=10)
    first.stop()
    handed_back = targets(app)
    assert {t.status for t in handed_back} == {"queued"}
    assert all(t.claim_owner is None and t.irreversible_started_at is None for t in handed_back)
    assert "publish.handed_back count=3" in first.log()
    stack.worker("second")
    wait_until(lambda: all_final(app, 3), timeout=30)
    entries = ledger(sandbox)
    assert len(entries) == 3
    assert min(parse_ts(e["received_at"]) for e in entries) >= due

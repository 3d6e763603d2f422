"""Recovery in seconds, with real worker processes, PostgreSQL and Redis.

Claims live exactly as long as their worker: a dead worker's claims and the messages it
held are recovered as soon as its heartbeat is missed; a broker that lost its data is
noticed from its epoch key; long uploads never lose their claim. Timings are printed, not
asserted beyond the bounds docs/delivery.md states.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.models import WorkerHeartbeat
from tests.conftest import CLAIM_KEY, Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_delivery import (
    all_final,
    attempts,
    create,
    ledger,
    parse_ts,
    targets,
)
from tests.media_samples import jpeg_bytes, mp4_bytes

# The production defaults for liveness (the stack fixture shortens them for speed).
DEFAULT_LIVENESS = {
    "CRIER_HEARTBEAT_INTERVAL": "2",
    "CRIER_WORKER_TIMEOUT": "10",
    "CRIER_PUBLISH_LEASE": "30",
}


def held_by(app: Flask, owner_prefix: str) -> list[list[Any]]:
    with get_db(app).session() as session:
        rows = session.scalars(select(WorkerHeartbeat)).all()
        return [h for row in rows if row.owner.startswith(owner_prefix) for h in row.held]


def published_at(app: Flask) -> list[datetime]:
    return [t.published_at for t in targets(app) if t.published_at is not None]


def texts(sandbox: httpx.Client) -> list[str]:
    return sorted(e["text"] for e in ledger(sandbox))


def linkedin_accounts(tenant: Tenant, make_account: Any, count: int) -> list[int]:
    return [
        make_account(
            tenant, "linkedin", access_token=f"li-{n}", external_id=f"urn:li:person:rec{n}"
        )
        for n in range(count)
    ]


def kill_mid_publish(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client, name: str
) -> tuple[Any, datetime, list[str], list[str]]:
    """A worker holding four ETA messages due within the minute and six LinkedIn
    publishes in flight is SIGKILLed; returns it, the due instant and the texts."""
    sandbox.post("/_faults", json={"linkedin": {"latency_ms": 6000}})
    victim = stack.worker(
        name, queues="publish.linkedin", concurrency=6, extra_env=DEFAULT_LIVENESS
    )
    accounts = linkedin_accounts(tenant, make_account, 6)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=25)
    later = [f"Due within the minute {n}" for n in range(4)]
    for n, text in enumerate(later):
        create(tenant, [accounts[n]], text, due)
    wait_until(lambda: len(held_by(app, name)) == 4, timeout=20)
    now_texts = [f"In flight {n}" for n in range(6)]
    for n, text in enumerate(now_texts):
        create(tenant, [accounts[n]], text)
    wait_until(
        lambda: sum(t.irreversible_started_at is not None for t in targets(app)) == 6,
        timeout=20,
        interval=0.05,
    )
    time.sleep(0.5)  # the six POSTs are now inside the sandbox, each held for 6 s
    victim.kill(signal.SIGKILL)
    return victim, due, later, now_texts


def assert_each_published_once(
    app: Flask, sandbox: httpx.Client, expected: list[str], due: datetime, later: list[str]
) -> None:
    assert {t.status for t in targets(app)} == {"published"}
    assert texts(sandbox) == sorted(expected)
    for entry in ledger(sandbox):
        if entry["text"] in later:
            assert parse_ts(entry["received_at"]) >= due, "published before its instant"
    outcomes = [a.outcome for a in attempts(app)]
    assert outcomes.count("reconciled_published") == 6


def test_killed_worker_is_recovered_within_seconds_by_another(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker("keeper", queues="maintenance", concurrency=2, extra_env=DEFAULT_LIVENESS)
    stack.beat(extra_env=DEFAULT_LIVENESS)
    _, due, later, now_texts = kill_mid_publish(app, stack, tenant, make_account, sandbox, "victim")
    killed_at = datetime.now(UTC)
    sandbox.post("/_faults", json={})
    stack.worker("rescuer", queues="publish.linkedin", extra_env=DEFAULT_LIVENESS)
    wait_until(lambda: all_final(app, 10), timeout=60)
    assert_each_published_once(app, sandbox, later + now_texts, due, later)
    recovered = [t.published_at for t in targets(app) if t.platform_post_id and t.attempts == 0]
    last = max(published_at(app))
    print(
        f"\nkill -> recovered in-flight: {(max(recovered) - killed_at).total_seconds():.1f} s; "
        f"kill -> last publish: {(last - killed_at).total_seconds():.1f} s "
        f"(held ETA messages due {(due - killed_at).total_seconds():.1f} s after the kill)"
    )
    assert (last - killed_at).total_seconds() <= 30


def test_killed_worker_is_recovered_within_seconds_of_a_worker_starting_again(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """Nothing serves the queue, nor the sweeper, until a worker starts again."""
    stack.beat(extra_env=DEFAULT_LIVENESS)
    keeper = stack.worker("keeper", queues="maintenance", concurrency=2, extra_env=DEFAULT_LIVENESS)
    _, due, later, now_texts = kill_mid_publish(app, stack, tenant, make_account, sandbox, "victim")
    keeper.kill(signal.SIGKILL)
    sandbox.post("/_faults", json={})
    time.sleep(5)
    stack.worker("restarted", extra_env=DEFAULT_LIVENESS)
    ready_at = datetime.now(UTC)  # the process's own start-up time is the machine's
    wait_until(lambda: all_final(app, 10), timeout=60)
    assert_each_published_once(app, sandbox, later + now_texts, due, later)
    last = max(published_at(app))
    print(f"\nworker ready -> last publish: {(last - ready_at).total_seconds():.1f} s")
    assert (last - ready_at).total_seconds() <= 30


def test_flushed_broker_loses_nothing_queued_or_held(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """X messages wait in a worker for their instant; LinkedIn ones wait in their queue,
    which no worker serves yet. FLUSHDB takes the queue: both kinds are published once."""
    stack.worker("keeper", queues="maintenance", concurrency=2)
    stack.beat()
    stack.worker("holder", queues="publish.x", concurrency=2)
    x_accounts = [make_account(tenant, "x", access_token=f"x-{n}") for n in range(3)]
    due = datetime.now(UTC) + timedelta(seconds=8)
    held = [f"Held for its instant {n}" for n in range(3)]
    for n, text in enumerate(held):
        create(tenant, [x_accounts[n]], text, due)
    wait_until(lambda: len(held_by(app, "holder")) == 3, timeout=20)
    backlog = [f"Queued with nobody serving {n}" for n in range(6)]
    linkedin = linkedin_accounts(tenant, make_account, 6)
    for n, text in enumerate(backlog):
        create(tenant, [linkedin[n]], text)
    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    assert client.llen("publish.linkedin") == 6
    client.flushdb()
    client.set(CLAIM_KEY, "flushed-by-test")
    flushed_at = datetime.now(UTC)
    stack.worker("linkedin", queues="publish.linkedin")
    # Measured from the worker's "ready": how long a process takes to start is the
    # machine's business; the sweeper's resend (requeue grace 5 s, a sweep a second) is
    # Crier's.
    ready_at = datetime.now(UTC)
    wait_until(lambda: all_final(app, 9), timeout=60)
    assert {t.status for t in targets(app)} == {"published"}
    assert texts(sandbox) == sorted(held + backlog)
    last = max(published_at(app))
    print(
        f"\nFLUSHDB -> last publish: {(last - flushed_at).total_seconds():.1f} s "
        f"(worker ready {(ready_at - flushed_at).total_seconds():.1f} s after the flush)"
    )
    assert (last - ready_at).total_seconds() <= 15


def test_a_slow_backlog_of_500_is_not_resent(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """Nobody serves publish.x for a while: 500 overdue targets wait in their queue, and
    sweeps well past the grace send none of them again."""
    stack.worker("keeper", queues="maintenance", concurrency=2)
    stack.beat()
    accounts = [make_account(tenant, "x", access_token=f"x-{n}") for n in range(25)]
    for batch in range(10):
        posts = [
            {"content": f"Backlog {batch}-{n}", "account_ids": [accounts[n % 25]]}
            for n in range(50)
        ]
        response = tenant.api.post("/posts/bulk", json={"posts": posts})
        assert response.status_code == 201, response.text
    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    # Due now, fifty to a request: one message of fifty targets each.
    assert client.llen("publish.x") == 10
    queued_at = {t.id: t.queued_at for t in targets(app)}
    time.sleep(12)  # past CRIER_REQUEUE_GRACE (5 s) and a dozen sweeps
    assert client.llen("publish.x") == 10
    assert {t.id: t.queued_at for t in targets(app)} == queued_at
    stack.worker("drain", queues="publish.x", concurrency=16)
    wait_until(lambda: all_final(app, 500), timeout=180, interval=1)
    assert {t.status for t in targets(app)} == {"published"}
    assert len(ledger(sandbox)) == 500


def test_uploads_three_times_the_lease_keep_their_claim(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """Lease 2 s; each platform's upload or processing takes 6 s or more. The heartbeat
    keeps every claim alive: one upload session each, published once, nobody took over."""
    short = {
        "CRIER_PUBLISH_LEASE": "2",
        "CRIER_HEARTBEAT_INTERVAL": "0.5",
        "CRIER_WORKER_TIMEOUT": "3",
    }
    sandbox.post(
        "/_faults",
        json={
            "linkedin": {"processing_seconds": 6},
            "x": {"processing_seconds": 6},
            "facebook": {"latency_ms": 6000},
            "youtube": {"latency_ms": 3000},
        },
    )
    stack.worker("uploader", concurrency=8, extra_env=short)
    stack.beat(extra_env=short)
    video = tenant.api.post("/media/upload", files={"file": ("clip.mp4", mp4_bytes())})
    assert video.status_code == 201, video.text
    media_id = video.json()["data"]["id"]
    accounts = {
        "linkedin": make_account(tenant, "linkedin", external_id="urn:li:person:long1"),
        "x": make_account(tenant, "x"),
        "facebook": make_account(tenant, "facebook", external_id="1784140000000299"),
        "youtube": make_account(tenant, "youtube", external_id="UCsandbox0000000000000099"),
    }
    response = tenant.api.post(
        "/posts",
        json={
            "content": "A long upload",
            "account_ids": list(accounts.values()),
            "media_ids": [media_id],
            "platform_content": {"youtube": {"settings": {"title": "A long upload"}}},
        },
    )
    assert response.status_code == 201, response.text
    wait_until(lambda: all_final(app, 4), timeout=120, interval=0.5)
    assert {t.platform: t.status for t in targets(app)} == dict.fromkeys(accounts, "published")
    entries = ledger(sandbox)
    assert sorted(e["platform"] for e in entries) == sorted(accounts)
    uploads = sandbox.get("/_uploads").json()
    assert sorted(u["platform"] for u in uploads if u["kind"] == "video") == sorted(accounts)
    outcomes = [a.outcome for a in attempts(app)]
    assert outcomes == ["published"] * 4, outcomes


def test_an_edit_after_a_throttled_upload_publishes_the_new_caption_only(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """The image is uploaded to X, then the tweet is rate-limited: the media ids saved for
    the old caption are dropped by the edit, and only the new caption goes out."""
    stack.worker()
    image = tenant.api.post("/media/upload", files={"file": ("still.jpg", jpeg_bytes())})
    media_id = image.json()["data"]["id"]
    account_id = make_account(tenant, "x")
    sandbox.post("/_faults", json={"x": {"rate_limit_every": 2, "retry_after": 3}})
    post_id = create_with_media(tenant, account_id, "The old caption", media_id)
    wait_until(lambda: any(a.outcome == "rate_limited" for a in attempts(app)), timeout=20)
    sandbox.post("/_faults", json={})
    [target] = targets(app)
    old_media_ids = target.platform_handle["media_ids"]
    assert old_media_ids and target.irreversible_started_at is None
    edited = tenant.api.patch(f"/posts/{post_id}", json={"content": "The new caption"})
    assert edited.status_code == 200, edited.text
    wait_until(lambda: all_final(app, 1), timeout=30)
    [entry] = ledger(sandbox)
    assert entry["text"] == "The new caption"
    new_media_ids = entry["params"]["media"]["media_ids"]
    assert new_media_ids and not set(new_media_ids) & set(old_media_ids)
    [target] = targets(app)
    assert target.status == "published" and target.platform_post_id == entry["id"]


def create_with_media(tenant: Tenant, account_id: int, text: str, media_id: str) -> str:
    response = tenant.api.post(
        "/posts", json={"content": text, "account_ids": [account_id], "media_ids": [media_id]}
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]["post_id"]


def test_a_post_that_may_be_live_is_never_marked_cancelled(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    sandbox.post("/_faults", json={"x": {"latency_ms": 3000}})
    stack.worker("keeper", queues="maintenance", concurrency=2)
    stack.beat()
    victim = stack.worker("victim", queues="publish.x")
    account_id = make_account(tenant, "x")
    post_id = create(tenant, [account_id], "Maybe already live")
    wait_until(lambda: targets(app)[0].irreversible_started_at is not None, interval=0.05)
    refused = tenant.api.delete(f"/posts/{post_id}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "post_publishing"
    victim.kill(signal.SIGKILL)
    sandbox.post("/_faults", json={})
    # Dead worker, request possibly out: still refused until the platform is asked.
    refused = tenant.api.delete(f"/posts/{post_id}")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "post_publishing"
    stack.worker("rescuer", queues="publish.x")
    wait_until(lambda: all_final(app, 1), timeout=40)
    [target] = targets(app)
    assert target.status == "published" and len(ledger(sandbox)) == 1
    done = tenant.api.delete(f"/posts/{post_id}")
    assert done.status_code == 409 and done.json()["error"]["code"] == "post_already_published"


def test_a_target_that_kills_its_worker_three_times_fails_worker_lost(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """Each delivery hangs in its media upload (before anything is public) until its
    worker is killed, as an out-of-memory kill would; the fourth gives up."""
    sandbox.post("/_faults", json={"x": {"latency_ms": 30000}})
    stack.worker("keeper", queues="maintenance", concurrency=2)
    stack.beat()
    image = tenant.api.post("/media/upload", files={"file": ("still.jpg", jpeg_bytes())})
    account_id = make_account(tenant, "x")
    create_with_media(tenant, account_id, "Poison", image.json()["data"]["id"])
    for round_number in range(1, 4):
        victim = stack.worker(f"victim{round_number}", queues="publish.x")
        wait_until(lambda: targets(app)[0].status == "publishing", interval=0.05)
        victim.kill(signal.SIGKILL)
        wait_until(lambda n=round_number: targets(app)[0].worker_losses == n, timeout=30)
    stack.worker("last", queues="publish.x")
    wait_until(lambda: all_final(app, 1), timeout=30)
    [target] = targets(app)
    assert target.status == "failed" and target.error_code == "worker_lost"
    assert "died 3 times" in target.error_message
    assert ledger(sandbox) == []
    assert [a.outcome for a in attempts(app)].count("worker_lost") == 4

"""Threads survive their worker being killed between (and inside) their items.

A ten-item thread on each threading platform (X, Threads, Bluesky, Mastodon) is published
by a worker that is SIGKILLed again and again at random moments, five times, each time
after the threads have made progress; a new worker takes over each time (the sweeper
recovers the dead worker's claims). In the end the sandbox's ledger holds every thread
whole: the post, then each item exactly once, in order, each replying to the one before.
"""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import func, select

from app.db import get_db
from app.models import PostTargetStep, StepStatus
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_delivery import all_final, attempts, targets

ITEMS = 10
KILLS = 5
PLATFORMS = ("x", "threads", "bluesky", "mastodon")
QUEUES = ",".join(f"publish.{platform}" for platform in PLATFORMS)
# How each platform's account is added: Bluesky's handle and app password (no refresh
# token: the session is made at the first publish), a Mastodon profile URL.
ACCOUNTS: dict[str, dict[str, Any]] = {
    "bluesky": {
        "access_token": "kill-tokn-abcd-efgh",
        "refresh_token": None,
        "external_id": "kill.bsky.social",
    },
    "mastodon": {"external_id": "https://sandbox.social/@kill"},
}
# Liveness shorter than the stack's: each kill is noticed a moment sooner. The sandbox
# answers within a second, so a killed worker's request has landed a second after it
# began (CRIER_INFLIGHT_GRACE, 15 s by default for real platforms).
FAST_LIVENESS = {
    "CRIER_HEARTBEAT_INTERVAL": "0.5",
    "CRIER_WORKER_TIMEOUT": "2.5",
    "CRIER_INFLIGHT_GRACE": "1",
}


def progress(app: Flask) -> dict[int, int]:
    """Per target: what is live of its thread (the post counts as one)."""
    with get_db(app).session() as session:
        steps = dict(
            session.execute(
                select(PostTargetStep.target_id, func.count())
                .where(PostTargetStep.status == StepStatus.PUBLISHED)
                .group_by(PostTargetStep.target_id)
            ).all()
        )
    return {t.id: int(steps.get(t.id, 0)) + bool(t.platform_post_id) for t in targets(app)}


def test_threads_are_whole_after_their_worker_is_killed_again_and_again(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    # Each call takes a moment, so a kill lands between items as often as inside one.
    slow = {platform: {"latency_ms": 120} for platform in PLATFORMS}
    sandbox.post("/_faults", json=slow).raise_for_status()
    stack.beat(extra_env=FAST_LIVENESS)
    stack.worker("keeper", queues="maintenance", concurrency=2, extra_env=FAST_LIVENESS)
    for platform in PLATFORMS:
        account = {"access_token": f"{platform}-kill-token", **ACCOUNTS.get(platform, {})}
        account_id = make_account(tenant, platform, **account)
        thread = [{"content": f"{platform} {n}/{ITEMS}"} for n in range(1, ITEMS + 1)]
        response = tenant.api.post(
            "/posts",
            json={
                "content": f"{platform} 0/{ITEMS}",
                "account_ids": [account_id],
                "platform_content": {platform: {"thread": thread}},
            },
        )
        assert response.status_code == 201, response.text
    rng = random.Random()
    whole = ITEMS + 1
    seen = {target.id: 0 for target in targets(app)}
    kills = 0
    started = time.monotonic()
    for n in range(KILLS):
        worker = stack.worker(f"victim{n}", queues=QUEUES, concurrency=4, extra_env=FAST_LIVENESS)

        def moved(before: dict[int, int] = seen) -> bool:
            # Every thread not yet whole got further since the last kill.
            now = progress(app)
            return all(now[t] > done for t, done in before.items() if done < whole)

        try:
            wait_until(moved, timeout=40, interval=0.05)
        except TimeoutError as stuck:
            message = f"no progress after kill {n}:\n{worker.log()[-4000:]}"
            raise AssertionError(message) from stuck
        time.sleep(rng.uniform(0.0, 0.5))
        seen = progress(app)
        if all(done >= whole for done in seen.values()):
            break  # everything was out before this kill: nothing left to interrupt
        worker.kill(signal.SIGKILL)
        kills += 1
    stack.worker("finisher", queues=QUEUES, concurrency=4, extra_env=FAST_LIVENESS)
    wait_until(lambda: all_final(app, len(PLATFORMS)), timeout=60)
    elapsed = time.monotonic() - started
    rows = targets(app)
    assert {t.status for t in rows} == {"published"}, [
        (t.platform, t.error_code, t.error_message, progress(app)[t.id]) for t in rows
    ] + [(a.target_id, a.outcome, str(a.started_at)[11:23]) for a in attempts(app)]
    for platform in PLATFORMS:
        entries = sandbox.get("/_ledger", params={"platform": platform}).json()
        [head] = [e for e in entries if e["text"] == f"{platform} 0/{ITEMS}"]
        assert head["reply_to"] is None
        assert len(entries) == ITEMS + 1, sorted(e["text"] for e in entries)
        parent = head["id"]
        for item in range(1, ITEMS + 1):
            matching = [e for e in entries if e["text"] == f"{platform} {item}/{ITEMS}"]
            assert len(matching) == 1, f"{platform} item {item} posted {len(matching)} times"
            assert matching[0]["reply_to"] == parent, f"{platform} item {item} out of order"
            parent = matching[0]["id"]
    print(f"\n{kills} kills; every thread whole {elapsed:.1f} s after the first worker started")
    assert kills >= 3, "the threads finished before the worker could be killed"

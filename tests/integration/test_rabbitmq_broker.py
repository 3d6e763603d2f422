"""Crier on RabbitMQ: a dead worker's publishes are recovered and published once, and the
queue metrics read RabbitMQ's own depths."""

from __future__ import annotations

import re
import signal
import time
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_delivery import (
    all_final,
    arrived,
    attempts,
    create,
    ledger,
    targets,
)
from tests.integration.test_metrics import scrape, value

RECEIVED = re.compile(r"\[([0-9a-f-]{36})\] received")


@pytest.fixture
def broker_url(rabbitmq_url: str) -> str:
    return rabbitmq_url


def test_a_sigkilled_worker_s_publishes_are_recovered_and_published_once(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """Published now, each delivery is readied and its message acknowledged at once; from
    then on the claim, kept alive by the worker's heartbeat, is what protects it. Killed
    mid-request, the worker's claims are recovered once its heartbeat stops, and each post
    is found on the platform rather than sent again."""
    # The platform takes 8 s to answer, so the victim is mid-request when it dies; the
    # lease outlasts the request, as in production (lease 300 s, HTTP timeout 30 s).
    lease = {"CRIER_PUBLISH_LEASE": "15"}
    sandbox.post("/_faults", json={"x": {"latency_ms": 8_000}})
    victim = stack.worker("victim", concurrency=3, extra_env=lease)
    account_id = make_account(tenant, "x")
    for n in range(3):
        create(tenant, [account_id], f"Held by a dying worker {n}")
    # Each tweet's POST has reached the sandbox, which holds it 8 s.
    wait_until(lambda: arrived(sandbox, "x") == 3, timeout=20, interval=0.05)
    time.sleep(0.5)
    assert len(set(RECEIVED.findall(victim.log()))) >= 1
    stack.worker("rescuer", concurrency=3, extra_env=lease)

    victim.kill(signal.SIGKILL)
    killed = time.monotonic()
    # The sweeper fences the dead worker's claims off and the rescuer reconciles first.
    sandbox.post("/_faults", json={})
    stack.beat(extra_env=lease)
    wait_until(lambda: all_final(app, 3), timeout=60)
    print(f"\n3 posts of a SIGKILLed worker final {time.monotonic() - killed:.1f}s after it died")
    rows = targets(app)
    entries = ledger(sandbox)
    assert {t.status for t in rows} == {"published"}
    assert len(entries) == 3
    assert {t.platform_post_id for t in rows} == {e["id"] for e in entries}
    outcomes = [a.outcome for a in attempts(app)]
    assert outcomes.count("worker_lost") == 3, outcomes
    # Each post the dead worker sent is found and adopted (by the reconcile before the
    # publish, or by the adapter's own look for its earlier send), never sent again:
    # once the requests it had in flight have all landed, there are still three.
    assert outcomes.count("reconciled_published") + outcomes.count("published") == 3, outcomes
    time.sleep(max(0.0, killed + 9 - time.monotonic()))
    assert len(ledger(sandbox)) == 3


def test_queue_depth_and_oldest_message_on_rabbitmq(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, live_url: str
) -> None:
    """No worker consumes: the message waits in RabbitMQ and the metrics show it."""
    account_id = make_account(tenant, "x")
    create(tenant, [account_id], "Nobody to publish me")
    samples = wait_until(
        lambda: (
            (s := scrape(f"{live_url}/metrics"))
            and value(s, "crier_queue_depth", queue="publish.x") == 1
            and value(s, "crier_queue_oldest_message_age_seconds", queue="publish.x") > 1
            and s
        ),
        timeout=15,
    )
    assert value(samples, "crier_targets", platform="x", status="queued") == 1
    assert value(samples, "crier_broker_up") == 1

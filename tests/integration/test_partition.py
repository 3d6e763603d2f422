"""Across hosts: two hosts as network namespaces, one cut off mid-publish.

Host A and host B each run a publish worker group; B also runs the maintenance worker
and beat. PostgreSQL, Redis and the sandbox stay on the host side, reached through the
veth links (tests/netns.py). With a publish from each host waiting inside the sandbox,
A's link goes down: A never hears back and its heartbeat stops. B must then finish every
target, A's included, within the recovery bound the settings give; the sandbox ledger
must hold each post once; when the link comes back, A's late outcomes must be refused by
the dispatch tokens; and then both hosts must publish again.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.dispatch import RETRY_HEAD_START
from app.models import WorkerHeartbeat
from app.queues import publish_queue
from tests.conftest import Tenant
from tests.integration.conftest import Proc, Stack, wait_until
from tests.integration.test_delivery import (
    all_final,
    arrived,
    attempts,
    create,
    ledger,
    targets,
)
from tests.netns import Host, namespaced_hosts

LATENCY_S = 6.0  # each LinkedIn request sits this long in the sandbox
PER_HOST = 4  # publishes each host holds in flight when A is cut off
# Liveness as the stack fixture shortens it, and a grace that covers the latency: a
# recovered claim is looked for on the platform only once its request has landed.
SETTINGS = {
    "CRIER_SWEEP_INTERVAL": 1.0,
    "CRIER_HEARTBEAT_INTERVAL": 1.0,
    "CRIER_WORKER_TIMEOUT": 4.0,
    "CRIER_INFLIGHT_GRACE": LATENCY_S + 2,
}
# From the cut: A is declared dead once silent for the timeout at a sweep (its last beat
# may be an interval old, and sweeps come every interval), and its claims are looked for
# once the grace since their start has passed; then a reconcile call and the outcome.
RECOVERY_BOUND_S = (
    max(
        SETTINGS["CRIER_WORKER_TIMEOUT"]
        + SETTINGS["CRIER_HEARTBEAT_INTERVAL"]
        + 2 * SETTINGS["CRIER_SWEEP_INTERVAL"],
        # The look is made at the grace's end, the resend due a retry's head start later.
        SETTINGS["CRIER_INFLIGHT_GRACE"] + RETRY_HEAD_START.total_seconds(),
    )
    + 5.0
)
PUBLISH_QUEUES = ",".join(
    publish_queue(p)
    for p in ("instagram", "facebook", "threads", "x", "linkedin", "tiktok", "youtube")
)


def server(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def relayed(url: str, host: Host) -> str:
    """The same URL as seen from inside `host`: its gateway, on the relay's port."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    netloc += f"{host.gateway}:{host.ports[server(url)]}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def hosts(
    stack: Stack, app_settings: dict[str, Any], sandbox_url: str, live_url: str
) -> Iterator[list[Host]]:
    """Hosts a and b; every process started in them is killed before they go away."""
    urls = [app_settings["database_url"], app_settings["redis_url"], sandbox_url, live_url]
    with namespaced_hosts(["a", "b"], [server(u) for u in urls]) as made:
        try:
            yield made
        finally:
            # A cut-off process may hang for minutes on a stalled connection: no goodbye.
            for proc in stack.procs:
                proc.kill(signal.SIGKILL)


def host_env(host: Host, stack: Stack) -> dict[str, str]:
    return {
        "DATABASE_URL": relayed(stack.env["DATABASE_URL"], host),
        "REDIS_URL": relayed(stack.env["REDIS_URL"], host),
        "CRIER_PLATFORM_BASE_URL": relayed(stack.env["CRIER_PLATFORM_BASE_URL"], host),
        "CRIER_PUBLIC_URL": relayed(stack.env["CRIER_PUBLIC_URL"], host),
        **{k: str(v) for k, v in SETTINGS.items()},
        "CRIER_LOG_FORMAT": "keyvalue",  # the test reads the workers' event lines
    }


def last_seen(app: Flask, owner_prefix: str) -> datetime | None:
    with get_db(app).session() as session:
        rows = session.scalars(select(WorkerHeartbeat)).all()
        seen = [r.last_seen_at for r in rows if r.owner.startswith(owner_prefix)]
        return max(seen) if seen else None


def logged_targets(proc: Proc, event: str) -> set[int]:
    """Target ids of `event` lines in a worker's log (workers.pipeline.log_event)."""
    pattern = re.compile(rf"{re.escape(event)} .*?\btarget_id=(\d+)\b")
    return {int(m.group(1)) for m in pattern.finditer(proc.log())}


def worker_name(name: str) -> str:
    """The node name `stack.worker` gives (`name@%h`); network namespaces keep the host's."""
    return f"{name}@{socket.gethostname()}"


def consume_linkedin(app: Flask, worker: str, on: bool) -> None:
    """Start or stop `worker` taking LinkedIn messages (Celery's remote control), asking
    again until it answers: a worker reconnecting after a heal hears nothing meanwhile."""
    control = app.extensions["celery"].control
    call = control.add_consumer if on else control.cancel_consumer
    wait_until(
        lambda: call(publish_queue("linkedin"), destination=[worker], reply=True, limit=1),
        timeout=60,
        interval=0.5,
    )


def test_a_host_cut_off_mid_publish_is_fenced_off_and_the_other_finishes(
    app: Flask,
    stack: Stack,
    hosts: list[Host],
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    a, b = hosts
    env_a, env_b = host_env(a, stack), host_env(b, stack)
    sandbox.post("/_faults", json={"linkedin": {"latency_ms": int(LATENCY_S * 1000)}})
    stack.worker(
        "b-keeper", queues="maintenance,webhooks", concurrency=2, extra_env=env_b, netns=b.netns
    )
    stack.beat(extra_env=env_b, netns=b.netns)
    worker_b = stack.worker(
        "b-publish", queues=PUBLISH_QUEUES, concurrency=PER_HOST, extra_env=env_b, netns=b.netns
    )
    worker_a = stack.worker(
        "a-publish", queues=PUBLISH_QUEUES, concurrency=PER_HOST, extra_env=env_a, netns=a.netns
    )
    accounts = [
        make_account(
            tenant, "linkedin", access_token=f"li-{n}", external_id=f"urn:li:person:part{n}"
        )
        for n in range(2 * PER_HOST)
    ]
    texts = [f"Across hosts {n}" for n in range(2 * PER_HOST)]

    def post_held_by(worker: str, first: int) -> set[int]:
        """Posts PER_HOST of the texts from `first`; their targets, once all are in the
        sandbox. The worker consuming LinkedIn alone takes them all: it hands a readied
        delivery to its firing line and is free for the next message at once."""
        for account_id, text in zip(
            accounts[first : first + PER_HOST], texts[first : first + PER_HOST], strict=True
        ):
            create(tenant, [account_id], text)
        wait_until(
            lambda: (
                len(targets(app)) == first + PER_HOST
                and all(t.irreversible_started_at is not None for t in targets(app))
            ),
            timeout=20,
            interval=0.05,
        )
        owners = {t.id: (t.claim_owner or "").partition(":")[0] for t in targets(app)}
        held = set(list(owners)[first:])
        assert {owners[i] for i in held} == {worker}, owners
        return held

    # Each host holds PER_HOST publishes mid-request in the sandbox: the broker picks who
    # takes a message, so each host takes its share while the other is told not to.
    consume_linkedin(app, worker_name("b-publish"), on=False)
    held_by_a = post_held_by(worker_name("a-publish"), 0)
    consume_linkedin(app, worker_name("a-publish"), on=False)
    consume_linkedin(app, worker_name("b-publish"), on=True)
    held_by_b = post_held_by(worker_name("b-publish"), PER_HOST)
    # The eight requests are inside the sandbox, each held there for LATENCY_S.
    wait_until(lambda: arrived(sandbox, "linkedin") == 2 * PER_HOST, timeout=5, interval=0.05)

    # Cut just after A's heartbeat committed, so no transaction of A's is left open (a
    # cut-off transaction would keep its row locks until PostgreSQL drops the session).
    seen = last_seen(app, "a-publish@")
    wait_until(lambda: last_seen(app, "a-publish@") != seen, timeout=5, interval=0.02)
    assert not ledger(sandbox), "a publish was answered before the cut"
    a.cut()
    cut_at = datetime.now(UTC)
    sandbox.post("/_faults", json={})  # what is in flight keeps its latency

    wait_until(lambda: all_final(app, 2 * PER_HOST), timeout=RECOVERY_BOUND_S + 20)
    finished = max(t.published_at for t in targets(app) if t.published_at is not None)
    recovery_s = (finished - cut_at).total_seconds()
    print(f"\ncut -> every target published: {recovery_s:.1f} s (bound {RECOVERY_BOUND_S:.0f} s)")
    assert recovery_s <= RECOVERY_BOUND_S
    final = {t.id: t for t in targets(app)}
    entries = ledger(sandbox)
    assert sorted(e["text"] for e in entries) == sorted(texts), "a post went out twice"
    assert {t.platform_post_id for t in final.values()} == {e["id"] for e in entries}
    assert {t.status for t in final.values()} == {"published"}
    outcomes: dict[int, list[str]] = {}
    for attempt in attempts(app):
        outcomes.setdefault(attempt.target_id, []).append(attempt.outcome)
    for target_id in held_by_a:
        # B took it over: recovered with a new token, found on the platform, adopted.
        assert outcomes[target_id] == ["worker_lost", "reconciled_published"], outcomes
    for target_id in held_by_b:
        assert outcomes[target_id] == ["published"], outcomes
    assert logged_targets(worker_b, "publish.reconciled_published") == held_by_a
    assert worker_a.popen.poll() is None, "the cut-off worker should still be running"

    a.heal()
    healed_at = time.monotonic()
    # A hears back at last (or times out) and tries to write its outcomes: refused.
    wait_until(
        lambda: logged_targets(worker_a, "publish.lost_claim") >= held_by_a,
        timeout=60,
        interval=0.5,
    )
    fenced_s = time.monotonic() - healed_at
    refused = dict(re.findall(r"publish\.lost_claim target_id=(\d+) refused=(\w+)", worker_a.log()))
    assert {int(i) for i in refused} == held_by_a, refused
    assert not logged_targets(worker_a, "publish.published") & held_by_a
    assert {t.id: (t.status, t.platform_post_id, t.dispatch_token) for t in targets(app)} == {
        t.id: (t.status, t.platform_post_id, t.dispatch_token) for t in final.values()
    }
    assert len(attempts(app)) == sum(len(o) for o in outcomes.values())
    assert len(ledger(sandbox)) == len(texts)

    # Both hosts serve again: fresh posts, slow enough that neither host can take them all.
    consume_linkedin(app, worker_name("a-publish"), on=True)
    sandbox.post("/_faults", json={"linkedin": {"latency_ms": 1500}})
    fresh: list[str] = []
    before = {t.id for t in targets(app)}

    def both_served() -> bool:
        done = {t.id for t in targets(app) if t.status == "published"} - before
        return bool(logged_targets(worker_a, "publish.published") & done) and bool(
            logged_targets(worker_b, "publish.published") & done
        )

    deadline = time.monotonic() + 60
    while not both_served():
        assert time.monotonic() < deadline, "after the heal, one host never published again"
        batch = [f"After the heal {len(fresh) + n}" for n in range(2 * PER_HOST)]
        for account_id, text in zip(accounts, batch, strict=True):
            create(tenant, [account_id], text)
        fresh += batch
        total = len(before) + len(fresh)
        wait_until(lambda: all_final(app, total), timeout=60)  # noqa: B023 (read at once)
    served_s = time.monotonic() - healed_at
    print(
        f"heal -> A's late writes refused: {fenced_s:.1f} s "
        f"(A heard: {', '.join(sorted(set(refused.values())))}); "
        f"heal -> both hosts published again: {served_s:.1f} s ({len(fresh)} fresh posts)"
    )
    assert {t.status for t in targets(app)} == {"published"}
    assert sorted(e["text"] for e in ledger(sandbox)) == sorted(texts + fresh)
    # A came back as a live worker: none of its new claims was taken from it.
    later = [a.outcome for a in attempts(app) if a.target_id not in before]
    assert "worker_lost" not in later, later

"""A scheduled burst: N targets (half X, half LinkedIn) due at one instant, created through
`POST /posts/bulk`, and their lateness at the irreversible call from the sandbox ledger.

Shared by `make bench`'s `burst` scenario (benchmarks/run.py), which adds its baselines,
and by `metrics_burst` (benchmarks/metrics_burst.py), which runs the same burst with and
without the analytics collector at work.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx

from benchmarks.harness import (
    Stack,
    Tenant,
    create_tenant,
    due_in,
    epoch,
    fired_moments,
    iso,
    lateness_stats,
    rate_between,
    read_ledger,
    reset_sandbox,
    wait_until_final,
)

CLIENTS = 8
BULK_SIZE = 50
# Posts per X or LinkedIn token in a burst: under the sandbox's per-token caps.
PER_TOKEN = 50


def api_client(stack: Stack, tenant: Tenant) -> httpx.Client:
    return httpx.Client(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {tenant.key}"},
        timeout=60,
        limits=httpx.Limits(max_connections=CLIENTS * 2),
    )


def create_in_bulk(stack: Stack, tenant: Tenant, bodies: list[dict[str, Any]]) -> None:
    """POST /posts/bulk, 50 a request, from 8 threads."""
    chunks = [bodies[i : i + BULK_SIZE] for i in range(0, len(bodies), BULK_SIZE)]
    with api_client(stack, tenant) as api, ThreadPoolExecutor(CLIENTS) as pool:

        def send(chunk: list[dict[str, Any]]) -> None:
            response = api.post("/posts/bulk", json={"posts": chunk})
            if response.status_code != 201:
                raise RuntimeError(f"/posts/bulk answered {response.status_code}: {response.text}")

        list(pool.map(send, chunks))


def lateness_of(entries: list[dict[str, Any]], due: datetime) -> list[float]:
    return [epoch(e["received_at"]) - due.timestamp() for e in entries]


def scheduled_burst(
    stack: Stack,
    label: str,
    size: int,
    lead: float,
    due: datetime | None = None,
    until_instant: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """`size` posts due `lead` seconds ahead (or at `due`), created now on accounts of a
    tenant of their own; the sandbox's ledger is emptied first, so every entry is one of
    them. `until_instant` runs once they are created (what the caller wants going on at
    the instant)."""
    per_platform = max(1, math.ceil(size / 2 / PER_TOKEN))
    tenant = create_tenant(stack.app, label, {"x": per_platform, "linkedin": per_platform})
    accounts = tenant.all_accounts()
    reset_sandbox(stack.sandbox_url)
    due = due or due_in(lead)
    bodies = [
        {
            "content": f"{label} post {n}",
            "account_ids": [accounts[n % len(accounts)]],
            "scheduled_at": iso(due),
        }
        for n in range(size)
    ]
    began = time.monotonic()
    create_in_bulk(stack, tenant, bodies)
    created_in = time.monotonic() - began
    margin = due.timestamp() - time.time()
    if margin < 0:
        raise RuntimeError(f"creating {size} posts took {created_in:.1f} s: give a longer --lead")
    if until_instant is not None:
        until_instant()
    margin = max(0.0, due.timestamp() - time.time())
    counts = wait_until_final(
        stack.database_url, tenant.organisation_id, size, margin + 60 + size / 20
    )
    entries = read_ledger(stack.sandbox_url)
    moments = [epoch(e["received_at"]) for e in entries]
    return {
        "targets": size,
        "accounts": len(accounts),
        "organisation_id": tenant.organisation_id,
        "due": iso(due),
        "created_seconds": round(created_in, 3),
        "statuses": counts,
        "published": counts.get("published", 0),
        "ledger_entries": len(entries),
        "last_publish": max(moments) if moments else None,
        "lateness": lateness_stats(lateness_of(entries, due)),
        # The same, when the worker fired (publish_attempts.started_at): the rest of the
        # lateness is the request's way to the sandbox and the sandbox's own queue.
        "fired_lateness": lateness_stats(
            [m - due.timestamp() for m in fired_moments(stack.database_url, tenant.organisation_id)]
        ),
        "throughput": rate_between(moments),
    }

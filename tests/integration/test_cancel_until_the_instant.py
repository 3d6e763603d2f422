"""Edits and cancels until the last moment, with a real worker process: a cancel or a
reschedule answered 200 means the platform never got the post, at every lead before
its instant; one answered 409 means it was published, once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from flask import Flask

from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_delivery import attempts, create, iso, ledger, targets

LEADS = [3.0, 2.5, 2.0, 1.5, 1.25, 1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.05, 0.0]
ROUNDS = 3
# Far enough apart that each change lands near its own instant, not its neighbour's.
SPACING = 0.2


def test_a_change_answered_200_never_reaches_the_platform_at_any_lead(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker(queues="publish.x,publish.linkedin", concurrency=16)
    accounts = [make_account(tenant, "x", access_token=f"x-lead-{i}") for i in range(4)] + [
        make_account(
            tenant, "linkedin", access_token=f"li-lead-{i}", external_id=f"urn:li:person:l{i}"
        )
        for i in range(2)
    ]
    base = datetime.now(UTC) + timedelta(seconds=12)
    plans: list[dict[str, Any]] = []
    for n, (round_, lead) in enumerate((r, lead) for r in range(ROUNDS) for lead in LEADS):
        due = base + timedelta(seconds=n * SPACING)
        text = f"Lead {lead} round {round_} post {n}"
        post_id = create(tenant, [accounts[n % len(accounts)]], text, due)
        # Odd rounds move the post a day later instead of cancelling it.
        plans.append(
            {"post_id": post_id, "text": text, "due": due, "lead": lead, "cancel": round_ != 1}
        )

    def change(plan: dict[str, Any]) -> None:
        plan["sent_lead"] = (plan["due"] - datetime.now(UTC)).total_seconds()
        if plan["cancel"]:
            response = tenant.api.delete(f"/posts/{plan['post_id']}")
        else:
            later = iso(datetime.now(UTC) + timedelta(days=1))
            response = tenant.api.patch(f"/posts/{plan['post_id']}", json={"scheduled_at": later})
        plan["status"] = response.status_code
        plan["body"] = response.json()

    timers = []
    for plan in plans:
        delay = (plan["due"] - timedelta(seconds=plan["lead"]) - datetime.now(UTC)).total_seconds()
        timer = threading.Timer(max(delay, 0.0), change, args=(plan,))
        timer.start()
        timers.append(timer)
    for timer in timers:
        timer.join(timeout=60)
    assert all("status" in plan for plan in plans), "a change was never answered"

    def settled() -> bool:
        by_post = {str(t.post_id): t.status for t in targets(app)}
        return all(
            by_post[p["post_id"]]
            in (("published",) if p["status"] == 409 else ("cancelled", "scheduled"))
            for p in plans
        )

    wait_until(settled, timeout=60)
    time.sleep(1.5)  # a late call, were there one, would land by now
    published = [entry["text"] for entry in ledger(sandbox)]
    for plan in plans:
        sent = published.count(plan["text"])
        if plan["status"] == 200:
            assert sent == 0, f"changed at {plan['sent_lead']:.3f}s, yet published: {plan}"
        else:
            assert plan["status"] == 409, plan
            # Refused while being published, or once it was.
            assert plan["body"]["error"]["code"] in ("post_publishing", "post_already_published")
            assert sent == 1, plan
    accepted = [p["sent_lead"] for p in plans if p["status"] == 200]
    refused = [p["sent_lead"] for p in plans if p["status"] == 409]
    print(
        f"\n{len(accepted)} changes accepted (shortest lead {min(accepted, default=0):.3f}s), "
        f"{len(refused)} refused (longest lead {max(refused, default=0):.3f}s)"
    )
    # Readied 5 s ahead, yet still taken back well before the fence: never 409 this early.
    assert all(p["status"] == 200 for p in plans if p["sent_lead"] >= 2.5)


def test_a_bulk_published_now_goes_out_once_each_in_batched_messages(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """Posts with no scheduled_at, fifty to a request: a few messages of many targets,
    each target claimed by its own token and published once."""
    stack.worker(queues="publish.x,publish.linkedin", concurrency=8)
    accounts = [make_account(tenant, "x", access_token=f"x-now-{i}") for i in range(3)] + [
        make_account(
            tenant, "linkedin", access_token=f"li-now-{i}", external_id=f"urn:li:person:n{i}"
        )
        for i in range(2)
    ]
    posts = [
        {"content": f"Now in bulk {n}", "account_ids": [accounts[n % len(accounts)]]}
        for n in range(60)
    ]
    for chunk in (posts[:50], posts[50:]):
        response = tenant.api.post("/posts/bulk", json={"posts": chunk})
        assert response.status_code == 201, response.text
    wait_until(lambda: {t.status for t in targets(app)} == {"published"}, timeout=60)
    texts = sorted(entry["text"] for entry in ledger(sandbox))
    assert texts == sorted(post["content"] for post in posts)
    # A message's targets share its task id: far fewer messages than targets.
    messages = {attempt.task_id for attempt in attempts(app)}
    assert len(attempts(app)) == 60 and len(messages) < 20, messages

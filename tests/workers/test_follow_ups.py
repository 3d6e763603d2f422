"""First comments and threads through the pipeline's plain functions: each item posted
once, in order, each replying to the one before; a lost answer at an item resumes there
after finding it on the platform; a permanent error leaves the post partially published,
and a retry continues from that item."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.models import PostTargetStep, TargetStatus
from tests.conftest import Tenant
from tests.workers.conftest import target_row
from tests.workers.test_pipeline import far_future, queue_now
from workers.pipeline import PipelineDeps, publish_target


@pytest.fixture(autouse=True)
def fast_retries(app: Flask) -> Iterator[None]:
    previous = app.config["CRIER"]
    app.config["CRIER"] = replace(previous, retry_base_seconds=0.01, retry_cap_seconds=0.02)
    try:
        with app.app_context():
            yield
    finally:
        app.config["CRIER"] = previous


def create_thread(
    tenant: Tenant, account_id: int, platform: str, items: int, comment: str | None = None
) -> str:
    entry: dict[str, Any] = {
        "thread": [{"content": f"{platform} item {n} of {items}"} for n in range(1, items + 1)]
    }
    if comment is not None:
        entry["firstComment"] = comment
    response = tenant.api.post(
        "/posts",
        json={
            "content": f"{platform} thread head",
            "account_ids": [account_id],
            "scheduled_at": far_future(),
            "platform_content": {platform: entry},
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["post_id"])


def deliver_until_done(app: Flask, deps: PipelineDeps, target_id: int, token: str) -> list[str]:
    """Run deliveries of the target, each with the token the previous one left, until it
    reaches an end state (a transient error sends it back to the queue)."""
    outcomes = []
    for _ in range(30):
        outcomes.append(publish_target(deps, target_id, token))
        row = target_row(app, target_id)
        if row.status not in (TargetStatus.QUEUED, TargetStatus.SCHEDULED):
            return outcomes
        if row.status == TargetStatus.SCHEDULED:
            _, token = queue_now(app, str(row.post_id))
        else:
            token = row.dispatch_token
    raise AssertionError(f"never finished: {outcomes}")


def ledger(sandbox: httpx.Client, platform: str) -> list[dict[str, Any]]:
    return sandbox.get("/_ledger", params={"platform": platform}).json()


def assert_chain(entries: list[dict[str, Any]], platform: str, items: int) -> None:
    """The post, then each item exactly once, in order, each replying to the one before."""
    [head] = [e for e in entries if e["reply_to"] is None]
    parent = head["id"]
    for n in range(1, items + 1):
        matching = [e for e in entries if e["text"] == f"{platform} item {n} of {items}"]
        assert len(matching) == 1, f"item {n} posted {len(matching)} times"
        assert matching[0]["reply_to"] == parent, f"item {n} does not answer item {n - 1}"
        parent = matching[0]["id"]


def steps_of(app: Flask, target_id: int) -> list[PostTargetStep]:
    with get_db(app).session() as session:
        rows = session.scalars(
            select(PostTargetStep)
            .where(PostTargetStep.target_id == target_id)
            .order_by(PostTargetStep.position)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


@pytest.mark.parametrize("platform", ["x", "threads"])
def test_a_thread_and_its_first_comment_are_posted_in_order(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    platform: str,
) -> None:
    account_id = make_account(tenant, platform)
    post_id = create_thread(tenant, account_id, platform, 10, comment="#crier")
    target_id, token = queue_now(app, post_id)
    assert publish_target(deps, target_id, token) == "published"
    entries = ledger(sandbox, platform)
    assert len(entries) == 12
    assert_chain(entries, platform, 10)
    [comment] = [e for e in entries if e["text"] == "#crier"]
    row = target_row(app, target_id)
    assert comment["reply_to"] == row.platform_post_id
    body = tenant.api.get(f"/posts/{post_id}").json()["data"]
    assert body["status"] == "published"
    steps = body["targets"][0]["steps"]
    assert [s["position"] for s in steps] == list(range(11))
    assert [s["kind"] for s in steps] == ["comment"] + ["thread_item"] * 10
    assert all(s["status"] == "published" and s["platform_post_id"] and s["url"] for s in steps)
    assert steps[1]["reply_to"] == row.platform_post_id
    assert steps[2]["reply_to"] == steps[1]["platform_post_id"]
    results = tenant.api.get(f"/posts/{post_id}/results").json()["data"]["results"]
    assert results[0]["steps"] == steps


@pytest.mark.parametrize("platform", ["x", "threads"])
@pytest.mark.parametrize("lost_at", [1, 4])
def test_a_lost_answer_at_an_item_resumes_there_without_posting_it_twice(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    platform: str,
    lost_at: int,
) -> None:
    """The platform posts item k but its answer is lost: the next delivery finds item k
    under item k-1 (by its saved handle) and goes on from k+1."""
    account_id = make_account(tenant, platform)
    post_id = create_thread(tenant, account_id, platform, 6)
    # The post is the first publishing call: the (lost_at + 1)th is item `lost_at`.
    faults = {platform: {"lose_response_every": lost_at + 1}}
    sandbox.post("/_faults", json=faults).raise_for_status()
    target_id, token = queue_now(app, post_id)
    outcomes = deliver_until_done(app, deps, target_id, token)
    assert outcomes[0] == "transient" and outcomes[-1] == "published", outcomes
    assert_chain(ledger(sandbox, platform), platform, 6)
    assert all(s.status == "published" for s in steps_of(app, target_id))


def test_a_permanent_error_at_item_4_leaves_the_post_partially_published_until_retried(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x", access_token="x-thread-token")
    # An earlier post with item 4's text: X refuses item 4 as duplicate content.
    auth = {"Authorization": "Bearer x-thread-token"}
    earlier = sandbox.post("/x/2/tweets", json={"text": "x item 4 of 8"}, headers=auth).json()
    post_id = create_thread(tenant, account_id, "x", 8)
    target_id, token = queue_now(app, post_id)
    assert publish_target(deps, target_id, token) == "duplicate"
    body = tenant.api.get(f"/posts/{post_id}").json()["data"]
    assert body["status"] == "partially_published"
    [target] = body["targets"]
    assert target["status"] == "failed" and target["platform_post_id"]
    assert "thread item 4" in target["error"]["message"]
    assert [s["status"] for s in target["steps"]] == ["published"] * 3 + ["failed"] + [
        "pending"
    ] * 4
    assert target["steps"][3]["error"]["code"] == "x_duplicate_content"
    # Editing or cancelling a thread that is partly live is refused.
    for response in (
        tenant.api.patch(f"/posts/{post_id}", json={"content": "changed"}),
        tenant.api.delete(f"/posts/{post_id}"),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "post_publishing"

    delete = sandbox.delete(f"/x/2/tweets/{earlier['data']['id']}", headers=auth)
    delete.raise_for_status()
    retried = tenant.api.post(f"/posts/{post_id}/retry")
    assert retried.status_code == 200, retried.text
    row = target_row(app, target_id)
    if row.status == TargetStatus.SCHEDULED:
        _, token = queue_now(app, post_id)
    else:
        token = row.dispatch_token
    assert deliver_until_done(app, deps, target_id, token)[-1] == "published"
    entries = [e for e in ledger(sandbox, "x") if "deleted_at" not in e]
    assert_chain(entries, "x", 8)
    body = tenant.api.get(f"/posts/{post_id}").json()["data"]
    assert body["status"] == "published"
    assert body["targets"][0]["platform_post_id"] == target["platform_post_id"]
    assert body["targets"][0]["error"] is None


@pytest.mark.parametrize("platform", ["facebook", "linkedin"])
def test_a_first_comment_whose_answer_was_lost_is_adopted_not_posted_again(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
    platform: str,
) -> None:
    external = {"linkedin": "urn:li:person:4242", "facebook": "4242"}[platform]
    account_id = make_account(tenant, platform, external_id=external)
    response = tenant.api.post(
        "/posts",
        json={
            "content": f"{platform} post with a comment",
            "account_ids": [account_id],
            "scheduled_at": far_future(),
            "platform_content": {platform: {"first_comment": "#crier https://crier.example"}},
        },
    )
    assert response.status_code == 201, response.text
    post_id = response.json()["data"]["post_id"]
    # The post is the first publishing call that can lose its answer, the comment the second.
    sandbox.post("/_faults", json={platform: {"lose_response_every": 2}}).raise_for_status()
    target_id, token = queue_now(app, post_id)
    outcomes = deliver_until_done(app, deps, target_id, token)
    assert outcomes[0] == "transient" and outcomes[-1] == "published", outcomes
    row = target_row(app, target_id)
    comments = [e for e in ledger(sandbox, platform) if e["reply_to"] is not None]
    assert len(comments) == 1
    assert comments[0]["reply_to"] == row.platform_post_id
    [step] = tenant.api.get(f"/posts/{post_id}").json()["data"]["targets"][0]["steps"]
    assert step["kind"] == "comment" and step["status"] == "published"
    assert step["platform_post_id"] == comments[0]["id"]

"""The pipeline's decisions, called as plain functions against the sandbox."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
from flask import Flask
from sqlalchemy import select, update

from app.db import get_db
from app.dispatch import DueTarget, mark_queued
from app.models import Account, PostTarget, PublishAttempt, TargetStatus
from app.services.accounts import account_tokens
from tests.conftest import Tenant
from tests.workers.conftest import target_row
from workers.pipeline import (
    Delivery,
    PipelineDeps,
    claim_deliveries,
    fence_deliveries,
    fire_delivery,
    publish_target,
    ready_claimed,
    ready_delivery,
    record_outcomes,
)
from workers.quotas import SharedQuotas


@pytest.fixture(autouse=True)
def fast_retries(app: Flask) -> Iterator[None]:
    """Retries a moment apart (CRIER_RETRY_BASE_SECONDS / _CAP_SECONDS), in the settings the
    pipeline is given: its deps' and the running app's."""
    previous = app.config["CRIER"]
    app.config["CRIER"] = replace(previous, retry_base_seconds=0.01, retry_cap_seconds=0.02)
    try:
        with app.app_context():
            yield
    finally:
        app.config["CRIER"] = previous


def with_settings(app: Flask, deps: PipelineDeps, **changes: Any) -> PipelineDeps:
    """The deps, and the running app, with these settings changed (fast_retries restores)."""
    settings = replace(app.config["CRIER"], **changes)
    app.config["CRIER"] = settings
    return replace(deps, settings=settings)


def far_future() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


def create_target(tenant: Tenant, account_id: int, text: str = "Pipeline test") -> int:
    """A post far in the future (nothing enqueued), returned as its one target id."""
    response = tenant.api.post(
        "/posts", json={"content": text, "account_ids": [account_id], "scheduled_at": far_future()}
    )
    assert response.status_code == 201, response.text
    post_id = response.json()["data"]["post_id"]
    return post_id


def queue_now(app: Flask, post_id: str) -> tuple[int, str]:
    """Make the post's target due now and queued with a fresh token, as the sweeper would."""
    with get_db(app).session() as session:
        target = session.scalar(select(PostTarget).where(PostTarget.post_id == post_id))
        now = datetime.now(UTC)
        target.next_attempt_at = now
        session.flush()
        [dispatch] = mark_queued(
            session, [DueTarget(target.id, target.platform, now)], TargetStatus.SCHEDULED
        )
        session.commit()
        return target.id, dispatch.token


def current_token(app: Flask, target_id: int) -> str:
    return target_row(app, target_id).dispatch_token


def attempts_of(app: Flask, target_id: int) -> list[PublishAttempt]:
    with get_db(app).session() as session:
        rows = session.scalars(
            select(PublishAttempt)
            .where(PublishAttempt.target_id == target_id)
            .order_by(PublishAttempt.id)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def ledger(sandbox: httpx.Client) -> list[dict[str, Any]]:
    return sandbox.get("/_ledger").json()


def test_a_token_publishes_once(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    assert publish_target(deps, target_id, token) == "published"
    assert publish_target(deps, target_id, token) == "stale"
    assert len(ledger(sandbox)) == 1
    row = target_row(app, target_id)
    assert row.status == "published" and row.attempts == 1 and row.dispatch_token is None


def test_an_outcome_heard_after_the_claim_was_handed_on_is_refused(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """A worker cut off from the database is declared dead and its claim handed on; when
    the platform's answer reaches it later, it writes nothing and reports `lost_claim`,
    not the outcome it heard (tests/integration/test_partition.py does it across hosts)."""
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    delivery = ready_delivery(deps, target_id, token)
    assert isinstance(delivery, Delivery)
    decision = fire_delivery(deps, delivery)
    assert decision is not None and decision.outcome == "published"
    with get_db(app).session() as session:  # as the sweeper recovers a dead owner's claim
        session.execute(
            update(PostTarget)
            .where(PostTarget.id == target_id)
            .values(status=TargetStatus.QUEUED, dispatch_token="the-new-token", claim_owner=None)
        )
        session.commit()
    assert record_outcomes(deps, [(delivery, decision)]) == ["lost_claim"]
    row = target_row(app, target_id)
    assert row.status == "queued" and row.dispatch_token == "the-new-token"
    assert row.platform_post_id is None and row.attempts == 0
    assert attempts_of(app, target_id) == []
    assert len(ledger(sandbox)) == 1


def test_a_batch_of_claims_is_one_transaction_that_takes_only_what_its_tokens_hold(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """As a worker's pool threads claim together: every target whose token holds is
    claimed and marked, the others are told why not, and only claimed posts change."""
    first, second = make_account(tenant, "x"), make_account(tenant, "linkedin")
    both = tenant.api.post(
        "/posts",
        json={"content": "Batch", "account_ids": [first, second], "scheduled_at": far_future()},
    ).json()["data"]["post_id"]
    stale_post = create_target(tenant, first, "Stale token")
    early_post = create_target(tenant, second, "Early")
    with get_db(app).session() as session:
        rows = session.scalars(
            select(PostTarget).where(PostTarget.post_id.in_([both, stale_post, early_post]))
        ).all()
        now = datetime.now(UTC)
        due = []
        for row in rows:
            at = now + timedelta(hours=1) if str(row.post_id) == early_post else now
            row.next_attempt_at = at
            due.append(DueTarget(row.id, row.platform, at))
        session.flush()
        tokens = {d.target.id: d.token for d in mark_queued(session, due, TargetStatus.SCHEDULED)}
        by_post = {(str(r.post_id), r.platform): r.id for r in rows}
        session.commit()
    a, b = by_post[(both, "x")], by_post[(both, "linkedin")]
    stale, early = by_post[(stale_post, "x")], by_post[(early_post, "linkedin")]
    results = claim_deliveries(
        deps,
        [
            (a, tokens[a], "task-a"),
            (stale, "not-the-token", "task-stale"),
            (b, tokens[b], "task-b"),
            (a, tokens[a], "task-a-again"),  # a duplicate message in the same batch
            (early, tokens[early], "task-early"),
        ],
    )
    assert [r if isinstance(r, str) else r.target.id for r in results] == [
        a,
        "stale",
        b,
        "stale",
        "early",
    ]
    for target_id in (a, b):
        row = target_row(app, target_id)
        assert row.status == "publishing" and row.claim_owner == deps.claims.owner
        # Claimed, not marked: an edit or a cancel may still take it back until the fence.
        assert row.irreversible_started_at is None
    assert target_row(app, stale).status == "queued"
    early_row = target_row(app, early)
    # Put back for its instant, an hour away: beyond the horizon, so PostgreSQL holds it.
    assert early_row.status == "scheduled" and early_row.dispatch_token is None
    posts = {p["post_id"]: p["status"] for p in tenant.api.get("/posts").json()["data"]}
    assert posts[both] == "publishing" and posts[stale_post] == "scheduled"
    # Readied and fired one by one, as the pool threads do: each publishes once.
    deliveries = [ready_claimed(deps, r) for r in results if not isinstance(r, str)]
    held, taken = fence_deliveries(deps, [d for d in deliveries if isinstance(d, Delivery)])
    assert [d.target.id for d in held] == [a, b] and not taken
    for target_id in (a, b):
        # Nothing to do before the call (no media): the fence marked it for that call.
        assert target_row(app, target_id).irreversible_started_at is not None
    outcomes = [(d, fire_delivery(deps, d)) for d in deliveries if isinstance(d, Delivery)]
    assert record_outcomes(deps, outcomes) == ["published", "published"]
    assert sorted(e["platform"] for e in ledger(sandbox)) == ["linkedin", "x"]


def test_stale_and_cancelled_messages_publish_nothing(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    post_id = create_target(tenant, account_id)
    target_id, token = queue_now(app, post_id)
    assert publish_target(deps, target_id, "not-the-token") == "stale"
    assert tenant.api.delete(f"/posts/{post_id}").status_code == 200
    assert publish_target(deps, target_id, token) == "stale"
    assert ledger(sandbox) == []
    assert target_row(app, target_id).status == "cancelled"


def test_rescheduled_message_is_stale(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    post_id = create_target(tenant, account_id)
    target_id, token = queue_now(app, post_id)
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    assert tenant.api.patch(f"/posts/{post_id}", json={"scheduled_at": later}).status_code == 200
    assert publish_target(deps, target_id, token) == "stale"
    assert ledger(sandbox) == []
    assert target_row(app, target_id).status == "scheduled"


def test_transient_error_retries_then_publishes(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"x": {"error_rate": 1.0, "error_status": 503}})
    assert publish_target(deps, target_id, token) == "transient"
    row = target_row(app, target_id)
    assert row.status == "queued" and row.attempts == 1 and row.dispatch_token != token
    sandbox.post("/_faults", json={})
    time.sleep(0.05)
    assert publish_target(deps, target_id, row.dispatch_token) == "published"
    outcomes = [(a.attempt_number, a.outcome, a.http_status) for a in attempts_of(app, target_id)]
    assert outcomes == [(1, "transient", 503), (2, "published", None)]
    assert len(ledger(sandbox)) == 1


def test_transient_errors_give_up_after_max_attempts(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    deps = with_settings(app, deps, retry_max_attempts=2)
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"x": {"error_rate": 1.0, "error_status": 500}})
    assert publish_target(deps, target_id, token) == "transient"
    time.sleep(0.05)
    assert publish_target(deps, target_id, current_token(app, target_id)) == "failed"
    row = target_row(app, target_id)
    assert row.status == "failed" and row.attempts == 2
    assert "gave up after 2 attempts" in row.error_message
    post = tenant.api.get(f"/posts/{row.post_id}").json()["data"]
    assert post["status"] == "failed"
    assert post["targets"][0]["error"]["code"] == row.error_code


def test_rate_limit_waits_exactly_and_holds_the_account(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    first, first_token = queue_now(app, create_target(tenant, account_id, "first"))
    second, second_token = queue_now(app, create_target(tenant, account_id, "second"))
    sandbox.post("/_faults", json={"x": {"rate_limit_every": 1, "retry_after": 40}})
    before = time.time()
    assert publish_target(deps, first, first_token) == "rate_limited"
    row = target_row(app, first)
    assert row.attempts == 0  # a platform's limit is not a failed attempt
    wait = row.next_attempt_at.timestamp() - before
    assert 38 <= wait <= 42
    [attempt] = attempts_of(app, first)
    assert attempt.outcome == "rate_limited" and 38 <= attempt.wait_seconds <= 42
    # The wait is shared: the account's next target waits without calling the platform.
    sandbox.post("/_faults", json={})
    assert publish_target(deps, second, second_token) == "rate_limited"
    assert abs(target_row(app, second).next_attempt_at - row.next_attempt_at) < timedelta(seconds=2)
    assert ledger(sandbox) == []


def test_long_waits_go_back_to_postgres(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"x": {"rate_limit_every": 1, "retry_after": 3600}})
    assert publish_target(deps, target_id, token) == "rate_limited"
    row = target_row(app, target_id)
    assert row.status == "scheduled" and row.dispatch_token is None
    assert row.next_attempt_at > datetime.now(UTC) + timedelta(minutes=55)


def test_expired_token_is_refreshed_once(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x", access_token="old-access", refresh_token="refresh-1")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"x": {"expired_tokens": ["old-access"]}})
    assert publish_target(deps, target_id, token) == "published"
    with get_db(app).session() as session:
        account = session.get(Account, account_id)
        access, refresh = account_tokens(app.config["CRIER"], account)
    assert access != "old-access" and refresh and refresh != "refresh-1"
    assert len(ledger(sandbox)) == 1


def test_revoked_token_fails_and_flags_the_account(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x", access_token="gone", refresh_token="gone-too")
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"x": {"revoked_tokens": ["gone", "gone-too"]}})
    assert publish_target(deps, target_id, token) in {"auth_revoked", "auth_expired"}
    row = target_row(app, target_id)
    assert row.status == "failed" and row.error_code in {"auth_revoked", "auth_expired"}
    health = tenant.api.get(f"/accounts/{account_id}").json()["data"]["health"]
    assert health["needs_reconnect"] is True and health["can_post"] is False


def test_duplicate_content_is_permanent(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    first, first_token = queue_now(app, create_target(tenant, account_id, "same words"))
    second, second_token = queue_now(app, create_target(tenant, account_id, "same words"))
    assert publish_target(deps, first, first_token) == "published"
    assert publish_target(deps, second, second_token) == "duplicate"
    row = target_row(app, second)
    assert row.status == "failed" and "duplicate" in row.error_code
    assert len(ledger(sandbox)) == 1


def test_lost_response_is_reconciled_not_resent(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id, "did it go out?"))
    sandbox.post("/_faults", json={"x": {"lose_response_every": 1}})
    assert publish_target(deps, target_id, token) == "transient"
    row = target_row(app, target_id)
    assert row.irreversible_started_at is not None and row.status == "queued"
    sandbox.post("/_faults", json={})
    time.sleep(0.05)
    assert publish_target(deps, target_id, row.dispatch_token) == "reconciled_published"
    entries = ledger(sandbox)
    assert len(entries) == 1
    assert target_row(app, target_id).platform_post_id == entries[0]["id"]


def test_usage_reported_on_success_holds_the_account(deps: PipelineDeps) -> None:
    from types import SimpleNamespace

    from workers.adapters.base import PublishResult
    from workers.pipeline.fire import _respect_reported_usage

    reset = time.time() + 90
    target = SimpleNamespace(platform="x", account_id=4242)
    spent = PublishResult(
        "1", None, {"rate_limit": {"limit": 100, "remaining": 0, "reset_at": reset}}
    )
    left = PublishResult(
        "2", None, {"rate_limit": {"limit": 100, "remaining": 3, "reset_at": reset}}
    )
    _respect_reported_usage(deps, target, left)  # type: ignore[arg-type]
    assert deps.quotas.current_wait("x", 4242) is None
    _respect_reported_usage(deps, target, spent)  # type: ignore[arg-type]
    hold = deps.quotas.current_wait("x", 4242)
    assert hold is not None and abs(hold.until - reset) < 1


def test_rules_are_checked_again_before_calling_the_platform(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    from app.models import Post

    account_id = make_account(tenant, "x")
    post_id = create_target(tenant, account_id, "fits today")
    target_id, token = queue_now(app, post_id)
    with get_db(app).session() as session:  # as if the limit had shrunk since intake
        session.get(Post, post_id).content = "x" * 300
        session.commit()
    assert publish_target(deps, target_id, token) == "permanent"
    row = target_row(app, target_id)
    assert row.status == "failed" and row.error_code == "content_rejected"
    assert "X allows at most 280 weighted characters" in row.error_message
    assert ledger(sandbox) == []


def test_out_of_retries_after_a_lost_response_looks_once_more(
    app: Flask,
    deps: PipelineDeps,
    tenant: Tenant,
    make_account: Any,
    sandbox: httpx.Client,
) -> None:
    deps = with_settings(app, deps, retry_max_attempts=1)
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id, "last chance"))
    sandbox.post("/_faults", json={"x": {"lose_response_every": 1}})
    # The only attempt loses its answer; before giving up, the platform is asked.
    assert publish_target(deps, target_id, token) == "reconciled_published"
    row = target_row(app, target_id)
    [entry] = ledger(sandbox)
    assert row.status == "published" and row.platform_post_id == entry["id"]


def test_a_limit_met_at_the_irreversible_call_clears_the_marker(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id, "limited late"))
    sandbox.post("/_faults", json={"x": {"rate_limit_every": 1, "retry_after": 1}})
    assert publish_target(deps, target_id, token) == "rate_limited"
    row = target_row(app, target_id)
    # The platform answered the call that makes posts public with "rate limited": it
    # turned the request away, so nothing is live and the post may still be edited.
    assert row.irreversible_started_at is None
    sandbox.post("/_faults", json={})
    time.sleep(1.2)
    assert publish_target(deps, target_id, current_token(app, target_id)) == "published"
    assert len(ledger(sandbox)) == 1


class _SaysNoneLeft:
    """The real adapter, whose successful answer also says "0 publishes left until T"."""

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter

    def __getattr__(self, name: str) -> Any:
        return getattr(self.adapter, name)

    def publish(self, request: Any, context: Any) -> Any:
        result = self.adapter.publish(request, context)
        reset_at = time.time() + 60
        usage = {"remaining": 0, "reset_at": reset_at}
        return replace(result, details={**result.details, "rate_limit": usage})


class _RedisFailsAfterThePost(SharedQuotas):
    def impose_wait(self, platform: str, account_id: int | None, until: float) -> None:
        raise redis.exceptions.ConnectionError("injected: Redis went away")


def test_bookkeeping_errors_after_the_platform_accepted_never_rewrite_the_outcome(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    target_id, token = queue_now(app, create_target(tenant, account_id, "accepted"))
    real_adapter_for = deps.adapter_for
    deps = replace(
        deps,
        quotas=_RedisFailsAfterThePost(deps.settings.redis_url),
        adapter_for=lambda platform: _SaysNoneLeft(real_adapter_for(platform)),
    )
    assert publish_target(deps, target_id, token) == "published"
    row = target_row(app, target_id)
    assert row.status == "published" and row.error_code is None
    assert [a.outcome for a in attempts_of(app, target_id)] == ["published"]
    assert len(ledger(sandbox)) == 1


def test_a_token_revoked_at_publish_flags_the_account(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    """LinkedIn says "revoked" on the publish itself, with no refresh to try first."""
    account_id = make_account(
        tenant, "linkedin", access_token="li-gone", external_id="urn:li:person:gone1"
    )
    target_id, token = queue_now(app, create_target(tenant, account_id))
    sandbox.post("/_faults", json={"linkedin": {"revoked_tokens": ["li-gone"]}})
    assert publish_target(deps, target_id, token) == "auth_revoked"
    health = tenant.api.get(f"/accounts/{account_id}").json()["data"]["health"]
    assert health["needs_reconnect"] is True and health["can_post"] is False
    assert ledger(sandbox) == []


def test_the_fence_hands_back_a_delivery_cancelled_after_its_claim(
    app: Flask, deps: PipelineDeps, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    account_id = make_account(tenant, "x")
    kept_post, cancelled_post = (create_target(tenant, account_id, f"Fence {n}") for n in "ab")
    (kept, kept_token), (cancelled, cancelled_token) = (
        queue_now(app, kept_post),
        queue_now(app, cancelled_post),
    )
    claimed = claim_deliveries(
        deps, [(kept, kept_token, "t-1"), (cancelled, cancelled_token, "t-2")]
    )
    deliveries = [ready_claimed(deps, c) for c in claimed if not isinstance(c, str)]
    # Cancelled while its delivery waits for the fence: the cancel takes the target back.
    assert tenant.api.delete(f"/posts/{cancelled_post}").status_code == 200
    held, taken = fence_deliveries(deps, [d for d in deliveries if isinstance(d, Delivery)])
    assert [d.target.id for d in held] == [kept] and [d.target.id for d in taken] == [cancelled]
    assert target_row(app, kept).irreversible_started_at is not None
    row = target_row(app, cancelled)
    assert row.status == "cancelled" and row.irreversible_started_at is None
    assert ledger(sandbox) == []

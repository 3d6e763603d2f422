"""The API contract's post calls: drafts and scheduling them, retry-failed, retry by
account, the list filters as its client sends them, and its extra result fields."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask

from tests.api.helpers import assert_error, future, ok_data, sql, targets_of
from tests.conftest import Tenant


def create(tenant: Tenant, account_ids: list[int], **fields: Any) -> dict[str, Any]:
    body = {"content": "seed product", "account_ids": account_ids, **fields}
    return ok_data(tenant.api.post("/posts", json=body), 201)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def fail_targets(app: Flask, account_id: int, attempts: int = 3) -> None:
    sql(
        app,
        "UPDATE post_targets SET status = 'failed', attempts = :n, error_code = 'server_error' "
        "WHERE account_id = :a",
        a=account_id,
        n=attempts,
    )
    sql(
        app,
        "UPDATE posts SET status = 'failed' WHERE id IN "
        "(SELECT post_id FROM post_targets WHERE account_id = :a)",
        a=account_id,
    )


def test_a_draft_is_saved_never_enqueued_then_scheduled(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    draft = create(tenant, [x], draft=True)
    assert draft["status"] == "draft"
    [row] = targets_of(app, draft["post_id"])
    assert row["status"] == "draft" and row["dispatch_token"] is None
    # Editing keeps it a draft.
    edited = ok_data(tenant.api.patch(f"/posts/{draft['post_id']}", json={"content": "v2"}))
    assert edited["status"] == "draft" and edited["targets"][0]["status"] == "draft"
    when = future(2)
    scheduled = ok_data(
        tenant.api.post(
            f"/posts/{draft['post_id']}/schedule",
            json={"scheduled_for": when, "account_ids": [x, linkedin]},
        )
    )
    assert scheduled["status"] == "scheduled" and scheduled["scheduled_for"] == when
    assert sorted(t["account_id"] for t in scheduled["targets"]) == [x, linkedin]
    assert {t["status"] for t in scheduled["targets"]} == {"scheduled"}
    assert_error(
        tenant.api.post(f"/posts/{draft['post_id']}/schedule", json={"publish_now": True}),
        409,
        "post_not_draft",
    )


def test_a_draft_published_now_is_queued_at_once(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    draft = create(tenant, [x], draft=True, scheduled_at=future(1))
    assert draft["status"] == "draft"
    assert_error(
        tenant.api.post(f"/posts/{draft['post_id']}/schedule", json={}), 400, "validation_error"
    )
    live = ok_data(
        tenant.api.post(f"/posts/{draft['post_id']}/schedule", json={"publish_now": True})
    )
    assert live["status"] == "publishing"
    [row] = targets_of(app, draft["post_id"])
    assert row["status"] == "queued" and row["dispatch_token"]


def test_a_draft_can_be_cancelled_and_listed_by_status(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    draft = create(tenant, [x], draft=True)
    create(tenant, [x], scheduled_at=future(1))
    drafts = tenant.api.get("/posts?status=draft").json()["data"]
    assert [p["post_id"] for p in drafts] == [draft["post_id"]]
    both = tenant.api.get("/posts?status=draft,scheduled").json()["meta"]["pagination"]["total"]
    assert both == 2
    assert ok_data(tenant.api.delete(f"/posts/{draft['post_id']}"))["status"] == "cancelled"


def test_retry_failed_requeues_matches_and_skips_disconnected_accounts(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    gone = make_account(tenant, "threads")
    p1 = create(tenant, [x], scheduled_at=future(1))["post_id"]
    p2 = create(tenant, [linkedin], scheduled_at=future(1))["post_id"]
    p3 = create(tenant, [gone], scheduled_at=future(1))["post_id"]
    for account in (x, linkedin):
        fail_targets(app, account)
    fail_targets(app, gone, attempts=1)
    sql(app, "UPDATE accounts SET status = 'needs_reconnect' WHERE id = :a", a=gone)

    error = assert_error(tenant.api.post("/posts/retry-failed", json={}), 400, "validation_error")
    assert "at least one filter" in error["message"]
    only_x = ok_data(tenant.api.post("/posts/retry-failed", json={"platform": "x"}))
    assert only_x["retried_count"] == 1 and only_x["retried"][0]["post_id"] == p1
    assert targets_of(app, p1)[0]["status"] == "queued"
    assert targets_of(app, p2)[0]["status"] == "failed"

    rest = ok_data(
        tenant.api.post("/posts/retry-failed", json={"post_ids": [p2, p3], "max_attempts": 5})
    )
    assert [r["post_id"] for r in rest["retried"]] == [p2]
    assert rest["skipped"] == [
        {
            "post_id": p3,
            "account_id": gone,
            "platform": "threads",
            "reason": "account needs reconnecting",
        }
    ]
    none = ok_data(tenant.api.post("/posts/retry-failed", json={"max_attempts": 0}))
    assert none["retried_count"] == 0 and none["skipped_count"] == 0


def test_retry_accepts_account_ids(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    other = make_account(tenant, "threads")
    post_id = create(tenant, [x, linkedin], scheduled_at=future(1))["post_id"]
    fail_targets(app, x)
    fail_targets(app, linkedin)
    retried = ok_data(tenant.api.post(f"/posts/{post_id}/retry", json={"account_ids": [x]}))
    by_account = {t["account_id"]: t["status"] for t in retried["targets"]}
    assert by_account == {x: "queued", linkedin: "failed"}
    assert_error(
        tenant.api.post(f"/posts/{post_id}/retry", json={"account_ids": [other]}),
        400,
        "validation_error",
    )


def test_list_filters_as_the_client_sends_them(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    campaign = ok_data(tenant.api.post("/campaigns", json={"name": "Spring"}), 201)
    early = create(tenant, [x], content="Spring launch", scheduled_at=future(1))
    late = create(
        tenant,
        [linkedin],
        content="Autumn news",
        scheduled_at=future(5),
        campaign_id=campaign["id"],
    )
    sql(
        app,
        "UPDATE posts SET created_at = now() - interval '3 days' WHERE id = :p",
        p=early["post_id"],
    )
    sql(
        app,
        "UPDATE posts SET published_at = now() - interval '1 hour', status = 'published' "
        "WHERE id = :p",
        p=late["post_id"],
    )

    def ids(query: str) -> list[str]:
        response = tenant.api.get(f"/posts?{query}")
        assert response.status_code == 200, response.text
        return [p["post_id"] for p in response.json()["data"]]

    day_ago = iso(datetime.now(UTC) - timedelta(days=1))
    in_three_days = iso(datetime.now(UTC) + timedelta(days=3))
    assert ids(f"created_after={day_ago}") == [late["post_id"]]
    assert ids(f"created_before={day_ago}") == [early["post_id"]]
    assert ids(f"scheduled_before={in_three_days}") == [early["post_id"]]
    assert ids(f"scheduled_after={in_three_days}") == [late["post_id"]]
    assert ids(f"published_after={day_ago}") == [late["post_id"]]
    assert ids(f"published_before={day_ago}") == []
    assert (
        ids(f"updated_after={day_ago}") == [late["post_id"], early["post_id"]]
        or len(ids(f"updated_after={day_ago}")) == 2
    )
    assert ids("platform=x,threads") == [early["post_id"]]
    assert ids(f"account_id={linkedin}") == [late["post_id"]]
    assert ids(f"campaign_id={campaign['id']}") == [late["post_id"]]
    assert ids("search=spring") == [early["post_id"]]
    assert ids("search=100%25") == []
    assert ids("sort=scheduled_at&order=asc") == [early["post_id"], late["post_id"]]
    assert ids("sort=scheduled_at&order=desc") == [late["post_id"], early["post_id"]]
    assert ids("status=published,failed") == [late["post_id"]]
    # The earlier names still work.
    assert ids(f"created_from={day_ago}") == [late["post_id"]]
    assert_error(tenant.api.get("/posts?sort=random"), 400, "validation_error")
    assert_error(tenant.api.get("/posts?order=sideways"), 400, "validation_error")


def test_results_carry_the_seed_product_field_names(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    post_id = create(tenant, [x], scheduled_at=future(1))["post_id"]
    target = ok_data(tenant.api.get(f"/posts/{post_id}"))["targets"][0]
    assert target["platform_post_url"] is None and target["next_retry_at"] is None
    sql(app, "UPDATE post_targets SET attempts = 1")
    target = ok_data(tenant.api.get(f"/posts/{post_id}"))["targets"][0]
    assert target["next_retry_at"] == target["next_attempt_at"] is not None
    sql(
        app,
        "UPDATE post_targets SET status = 'published', url = 'https://x.com/i/status/1', "
        "platform_post_id = '1'",
    )
    target = ok_data(tenant.api.get(f"/posts/{post_id}/results"))["results"][0]
    assert target["platform_post_url"] == target["url"] == "https://x.com/i/status/1"
    assert target["next_retry_at"] is None


def test_campaign_and_cover_photo_must_be_the_callers(
    tenant: Tenant, make_account: Any, make_tenant: Any
) -> None:
    x = make_account(tenant, "x")
    other = make_tenant("rival")
    theirs = ok_data(other.api.post("/campaigns", json={"name": "Theirs"}), 201)
    for body, path in (
        ({"campaign_id": theirs["id"]}, "campaign_id"),
        ({"cover_photo": "a1b2c3d4-e5f6-7890-abcd-ef1234567890"}, "cover_photo"),
        ({"draft": "yes"}, "draft"),
    ):
        error = assert_error(
            tenant.api.post("/posts", json={"content": "c", "account_ids": [x], **body}),
            400,
            "validation_error",
        )
        assert path in error["details"]

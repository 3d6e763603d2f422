"""A post after its creation: list, read, change, cancel, retry, and creating many at once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import text

from app.db import get_db
from app.platforms import PLATFORM_KEYS
from tests.api.helpers import assert_error, count, future, ok_data, sql, targets_of, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes, mp4_bytes

TARGET_FIELDS = {
    "account_id",
    "platform",
    "status",
    "attempts",
    "platform_post_id",
    "url",
    "error",
    "published_at",
}


def create(tenant: Tenant, account_ids: list[int], **fields: Any) -> dict[str, Any]:
    body = {"content": "hello", "account_ids": account_ids, "scheduled_at": future(), **fields}
    return dict(ok_data(tenant.api.post("/posts", json=body), 201))


def iso_in(minutes: float) -> str:
    moment = datetime.now(UTC) + timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


# --------------------------------------------------------------------------- GET /posts


def test_list_filters_and_pagination(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    early = create(tenant, [x], scheduled_at=future(1), content="early x")
    both = create(tenant, [x, linkedin], scheduled_at=future(5), content="both")
    late = create(tenant, [linkedin], scheduled_at=future(10), content="late linkedin")
    cancelled = create(tenant, [linkedin], scheduled_at=future(2), content="cancelled")
    ok_data(tenant.api.delete(f"/posts/{cancelled['post_id']}"))

    def ids(**params: Any) -> list[str]:
        response = tenant.api.get("/posts", params=params)
        return [p["post_id"] for p in ok_data(response)]

    newest_first = [cancelled["post_id"], late["post_id"], both["post_id"], early["post_id"]]
    assert ids() == newest_first
    assert ids(status="scheduled") == [late["post_id"], both["post_id"], early["post_id"]]
    assert ids(status="cancelled") == [cancelled["post_id"]]
    assert ids(platform="x") == [both["post_id"], early["post_id"]]
    assert ids(account_id=linkedin, status="scheduled") == [late["post_id"], both["post_id"]]
    assert ids(scheduled_from=future(4), scheduled_to=future(6)) == [both["post_id"]]
    assert ids(scheduled_to=future(1.5)) == [early["post_id"]]
    created_at = sql(app, "SELECT created_at FROM posts WHERE id = :p", p=both["post_id"])
    mark = created_at[0]["created_at"].isoformat()
    assert ids(created_from=mark) == [cancelled["post_id"], late["post_id"], both["post_id"]]
    assert ids(created_to=mark) == [early["post_id"]]

    page = tenant.api.get("/posts", params={"limit": 2, "offset": 1})
    assert [p["post_id"] for p in ok_data(page)] == newest_first[1:3]
    assert page.json()["meta"]["pagination"] == {"limit": 2, "offset": 1, "total": 4}
    filtered = tenant.api.get("/posts", params={"platform": "linkedin", "limit": 1})
    assert filtered.json()["meta"]["pagination"] == {"limit": 1, "offset": 0, "total": 3}


def test_list_rejects_bad_filters(tenant: Tenant) -> None:
    cases = {
        "status=bogus": (
            "status",
            "Must be one of: draft, scheduled, publishing, published, partially_published, "
            "failed, cancelled.",
        ),
        "platform=myspace": (
            "platform",
            f"Must be one of: {', '.join(PLATFORM_KEYS)}.",
        ),
        "limit=0": ("limit", "Must be greater than or equal to 1 and less than or equal to 200."),
        "limit=abc": ("limit", "Not a valid integer."),
        "offset=-1": (
            "offset",
            "Must be greater than or equal to 0 and less than or equal to 9223372036854775807.",
        ),
        "scheduled_from=2030-01-01T00:00:00": ("scheduled_from", "Not a valid aware datetime."),
        "created_to=yesterday": ("created_to", "Not a valid datetime."),
        f"account_id={2**70}": (
            "account_id",
            "Must be greater than or equal to 1 and less than or equal to 9223372036854775807.",
        ),
    }
    for query, (path, message) in cases.items():
        error = assert_error(tenant.api.get(f"/posts?{query}"), 400, "validation_error")
        assert error["details"] == {path: [message]}, query
        assert error["message"] == f"Invalid request: {path}: {message}"


# ----------------------------------------------------------------------- GET /posts/{id}


def test_get_post_with_targets(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    scheduled = future(2)
    created = create(
        tenant,
        [x, linkedin],
        scheduled_at=scheduled,
        content="read me",
        platform_content={"x": {"content": "short"}},
    )
    post = ok_data(tenant.api.get(f"/posts/{created['post_id']}"))
    assert post["post_id"] == created["post_id"]
    assert post["status"] == "scheduled"
    assert post["content"] == "read me"
    assert post["scheduled_for"] == scheduled
    assert post["timezone"] == "UTC"
    assert post["media_ids"] == []
    assert post["platform_content"] == {"x": {"content": "short"}}
    assert post["accounts_count"] == 2
    assert [set(t) >= TARGET_FIELDS for t in post["targets"]] == [True, True]
    assert [{k: t[k] for k in sorted(TARGET_FIELDS)} for t in post["targets"]] == [
        {
            "account_id": account_id,
            "attempts": 0,
            "error": None,
            "platform": platform,
            "platform_post_id": None,
            "published_at": None,
            "status": "scheduled",
            "url": None,
        }
        for account_id, platform in ((x, "x"), (linkedin, "linkedin"))
    ]


def test_results_show_outcome_per_account(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    created = create(tenant, [x, linkedin])
    published_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    sql(
        app,
        "UPDATE post_targets SET status = 'published', platform_post_id = '1789', "
        "url = 'https://x.com/i/status/1789', published_at = :at, attempts = 1 "
        "WHERE account_id = :a",
        a=x,
        at=published_at,
    )
    sql(
        app,
        "UPDATE post_targets SET status = 'failed', attempts = 3, error_code = 'auth_expired', "
        "error_message = 'Token expired.' WHERE account_id = :a",
        a=linkedin,
    )
    results = ok_data(tenant.api.get(f"/posts/{created['post_id']}/results"))
    assert results["post_id"] == created["post_id"]
    assert results["summary"] == {"published": 1, "failed": 1}
    by_account = {r["account_id"]: r for r in results["results"]}
    assert by_account[x]["platform_post_id"] == "1789"
    assert by_account[x]["url"] == "https://x.com/i/status/1789"
    assert by_account[x]["published_at"] == "2030-01-02T03:04:05.000Z"
    assert by_account[x]["error"] is None
    assert by_account[linkedin]["error"] == {"code": "auth_expired", "message": "Token expired."}
    assert by_account[linkedin]["attempts"] == 3


# ------------------------------------------------------------------------ PATCH /posts/{id}


def test_patch_content_accounts_media_platform_content(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    threads = make_account(tenant, "threads")
    image = upload(tenant.api, "a.jpg", jpeg_bytes())
    created = create(tenant, [x, linkedin])
    post_id = created["post_id"]

    patched = ok_data(tenant.api.patch(f"/posts/{post_id}", json={"content": "new words"}))
    assert patched["content"] == "new words"

    patched = ok_data(
        tenant.api.patch(f"/posts/{post_id}", json={"account_ids": [linkedin, threads]})
    )
    assert [(t["account_id"], t["platform"]) for t in patched["targets"]] == [
        (linkedin, "linkedin"),
        (threads, "threads"),
    ]
    assert patched["accounts_count"] == 2
    assert [t["account_id"] for t in targets_of(app, post_id)] == [linkedin, threads]

    patched = ok_data(tenant.api.patch(f"/posts/{post_id}", json={"media_ids": [image]}))
    assert patched["media_ids"] == [image]

    pc = {"linkedin": {"content": "for LinkedIn", "settings": {"visibility": "CONNECTIONS"}}}
    patched = ok_data(tenant.api.patch(f"/posts/{post_id}", json={"platform_content": pc}))
    assert patched["platform_content"] == pc

    stored = ok_data(tenant.api.get(f"/posts/{post_id}"))
    assert stored["content"] == "new words"
    assert stored["media_ids"] == [image]
    assert stored["platform_content"] == pc
    assert stored["status"] == "scheduled"


def test_patch_is_validated_like_create(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    instagram = make_account(tenant, "instagram")
    created = create(tenant, [x], content="fine")
    post_id = created["post_id"]
    error = assert_error(
        tenant.api.patch(f"/posts/{post_id}", json={"content": "a" * 281}),
        400,
        "validation_error",
    )
    assert error["details"] == {
        "content": ["X allows at most 280 weighted characters; this text has 281."]
    }
    error = assert_error(
        tenant.api.patch(f"/posts/{post_id}", json={"account_ids": [instagram]}),
        400,
        "validation_error",
    )
    assert error["details"] == {
        "media_ids": ["Instagram Post needs at least one image or video; no media_ids were given."]
    }
    error = assert_error(
        tenant.api.patch(f"/posts/{post_id}", json={"title": "x"}), 400, "validation_error"
    )
    assert error["details"] == {"title": ["Unknown field."]}
    assert_error(
        tenant.api.patch(f"/posts/{post_id}", json={}),
        400,
        "validation_error",
        "Nothing to change: send at least one field.",
    )
    assert_error(
        tenant.api.patch(f"/posts/{post_id}", content=b"content=x"),
        415,
        "unsupported_media_type",
    )
    unchanged = ok_data(tenant.api.get(f"/posts/{post_id}"))
    assert unchanged["content"] == "fine"
    assert [t["account_id"] for t in unchanged["targets"]] == [x]


def test_reschedule_replaces_the_dispatch_token(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    # Due in 5 minutes: inside the 10-minute horizon, so enqueued at intake.
    created = create(tenant, [x], scheduled_at=iso_in(5))
    post_id = created["post_id"]
    [first] = targets_of(app, post_id)
    assert first["status"] == "queued"
    assert first["dispatch_token"] is not None

    when = iso_in(7)
    patched = ok_data(tenant.api.patch(f"/posts/{post_id}", json={"scheduled_at": when}))
    assert patched["scheduled_for"] == when
    [second] = targets_of(app, post_id)
    assert second["status"] == "queued"
    assert second["dispatch_token"] not in (None, first["dispatch_token"])
    assert second["next_attempt_at"].strftime("%Y-%m-%dT%H:%M:%S.000Z") == when

    # Beyond the horizon: back to scheduled with no token, for the sweeper to pick up later.
    later = future(3)
    patched = ok_data(tenant.api.patch(f"/posts/{post_id}", json={"scheduled_at": later}))
    assert patched["scheduled_for"] == later
    assert patched["targets"][0]["status"] == "scheduled"
    [third] = targets_of(app, post_id)
    assert third["status"] == "scheduled"
    assert third["dispatch_token"] is None


def test_patch_refused_once_publishing_started(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    created = create(tenant, [x, linkedin])
    sql(app, "UPDATE post_targets SET status = 'published' WHERE account_id = :a", a=x)
    assert_error(
        tenant.api.patch(f"/posts/{created['post_id']}", json={"content": "late edit"}),
        409,
        "post_already_published",
        "Publishing of this post has started; it can no longer be changed.",
    )
    cancelled = create(tenant, [linkedin])
    ok_data(tenant.api.delete(f"/posts/{cancelled['post_id']}"))
    assert_error(
        tenant.api.patch(f"/posts/{cancelled['post_id']}", json={"content": "revive"}),
        409,
        "post_cancelled",
        "This post was cancelled and cannot be changed.",
    )


def _blocked_on_lock(app: Flask, timeout: float = 5.0) -> bool:
    """Whether some session of the test database is waiting for a row lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = sql(
            app,
            "SELECT count(*) AS n FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        if rows[0]["n"]:
            return True
        time.sleep(0.02)
    return False


def _race_with_worker_claim(
    tenant: Tenant, app: Flask, post_id: str, request: tuple[str, str, Any], *, fenced: bool
) -> httpx.Response:
    """Hold the target row (as a writer that locks only the target does), send `request`,
    then claim the target (`fenced`: and mark it for the call that makes it public, as the
    worker's fence does just before the instant) and commit.

    A verb that read the target before the write and wrote it after would overwrite
    `publishing` (PATCH would even enqueue it again): the post would go out twice. It must
    wait for the row and see what the worker wrote.
    """
    method, path, body = request
    mark = ", irreversible_started_at = now()" if fenced else ""
    result: list[httpx.Response] = []
    with get_db(app).engine.connect() as conn:
        conn.execute(
            text("SELECT id FROM post_targets WHERE post_id = :p FOR UPDATE"), {"p": post_id}
        )
        thread = threading.Thread(
            target=lambda: result.append(tenant.api.request(method, path, json=body))
        )
        thread.start()
        assert _blocked_on_lock(app), "the request never waited for the target row"
        conn.execute(
            text(
                "UPDATE post_targets SET status = 'publishing', claim_owner = 'w:1', "
                f"dispatch_token = 'claimed'{mark} WHERE post_id = :p"
            ),
            {"p": post_id},
        )
        conn.commit()
    thread.join(timeout=10)
    assert result, "the request did not finish"
    return result[0]


def test_patch_waits_for_a_concurrent_fence(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    # Due soon, so queued: the claim a worker makes is on a queued target.
    post_id = create(tenant, [x], scheduled_at=iso_in(5))["post_id"]
    response = _race_with_worker_claim(
        tenant, app, post_id, ("PATCH", f"/posts/{post_id}", {"content": "edited"}), fenced=True
    )
    assert_error(response, 409, "post_publishing")
    [target] = targets_of(app, post_id)
    assert target["status"] == "publishing"
    assert ok_data(tenant.api.get(f"/posts/{post_id}"))["content"] == "hello"


def test_cancel_waits_for_a_concurrent_fence(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    post_id = create(tenant, [x])["post_id"]
    response = _race_with_worker_claim(
        tenant, app, post_id, ("DELETE", f"/posts/{post_id}", None), fenced=True
    )
    assert_error(response, 409, "post_publishing")
    [target] = targets_of(app, post_id)
    assert target["status"] == "publishing"


def test_a_readied_target_is_taken_back_by_a_cancel(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    """Claimed and waiting for its instant, not yet fenced: the cancel waits for the claim,
    then takes the target from its worker (a new token: the worker's fence finds it gone)."""
    x = make_account(tenant, "x")
    post_id = create(tenant, [x], scheduled_at=iso_in(5))["post_id"]
    response = _race_with_worker_claim(
        tenant, app, post_id, ("DELETE", f"/posts/{post_id}", None), fenced=False
    )
    assert ok_data(response)["status"] == "cancelled"
    [target] = targets_of(app, post_id)
    assert (target["status"], target["dispatch_token"], target["claim_owner"]) == (
        "cancelled",
        None,
        None,
    )


def test_a_readied_target_is_taken_back_by_an_edit(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    post_id = create(tenant, [x], scheduled_at=iso_in(5))["post_id"]
    response = _race_with_worker_claim(
        tenant,
        app,
        post_id,
        ("PATCH", f"/posts/{post_id}", {"scheduled_at": iso_in(3600)}),
        fenced=False,
    )
    assert ok_data(response)["status"] == "scheduled"
    [target] = targets_of(app, post_id)
    assert target["status"] == "scheduled" and target["dispatch_token"] != "claimed"
    assert target["claim_owner"] is None


def test_a_target_that_may_be_live_is_neither_cancelled_nor_edited(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    """Its worker died after the publish request went out: until it is reconciled, the
    post may be live, so DELETE and PATCH answer 409 and change nothing."""
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    post_id = create(tenant, [x, linkedin], scheduled_at=iso_in(3600))["post_id"]
    sql(
        app,
        "UPDATE post_targets SET status = 'queued', dispatch_token = 'recovered', "
        "irreversible_started_at = now() WHERE account_id = :a",
        a=x,
    )
    message = (
        f"This post is being published to x account {x} right now (a publish request may "
        "already have reached the platform), so it cannot be cancelled yet. Crier is "
        "settling the outcome with the platform; try again in a few seconds."
    )
    assert_error(tenant.api.delete(f"/posts/{post_id}"), 409, "post_publishing", message)
    assert_error(
        tenant.api.patch(f"/posts/{post_id}", json={"content": "edited"}),
        409,
        "post_publishing",
        message.replace("cancelled yet", "changed yet"),
    )
    statuses = {
        t["account_id"]: (t["status"], t["dispatch_token"]) for t in targets_of(app, post_id)
    }
    assert statuses[x] == ("queued", "recovered")
    assert statuses[linkedin][0] == "scheduled"
    assert ok_data(tenant.api.get(f"/posts/{post_id}"))["content"] == "hello"


def test_an_edit_discards_what_the_platform_prepared_for_the_old_content(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    post_id = create(tenant, [x], scheduled_at=iso_in(3600))["post_id"]
    handle = '{"media_ids": ["111"], "media_expires_at": 9999999999}'
    sql(app, f"UPDATE post_targets SET platform_handle = '{handle}' WHERE post_id = :p", p=post_id)
    # Moving the schedule keeps the prepared media: they were made for this content.
    ok_data(tenant.api.patch(f"/posts/{post_id}", json={"scheduled_at": iso_in(7200)}))
    assert targets_of(app, post_id)[0]["platform_handle"] == {
        "media_ids": ["111"],
        "media_expires_at": 9999999999,
    }
    ok_data(tenant.api.patch(f"/posts/{post_id}", json={"content": "new words"}))
    assert targets_of(app, post_id)[0]["platform_handle"] is None


# ----------------------------------------------------------------------- DELETE /posts/{id}


def test_cancel_scheduled_post(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    # One target due soon (queued, with a token), so cancelling must also void the token.
    post_id = create(tenant, [x, linkedin], scheduled_at=iso_in(3))["post_id"]
    assert {t["status"] for t in targets_of(app, post_id)} == {"queued"}
    cancelled = ok_data(tenant.api.delete(f"/posts/{post_id}"))
    assert cancelled["status"] == "cancelled"
    assert [t["status"] for t in cancelled["targets"]] == ["cancelled", "cancelled"]
    rows = targets_of(app, post_id)
    assert [(r["status"], r["dispatch_token"]) for r in rows] == [("cancelled", None)] * 2
    assert_error(
        tenant.api.delete(f"/posts/{post_id}"),
        409,
        "post_already_cancelled",
        "This post is already cancelled.",
    )


def test_cancel_keeps_what_was_published(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    post_id = create(tenant, [x, linkedin])["post_id"]
    sql(app, "UPDATE post_targets SET status = 'published' WHERE account_id = :a", a=x)
    result = ok_data(tenant.api.delete(f"/posts/{post_id}"))
    assert {t["account_id"]: t["status"] for t in result["targets"]} == {
        x: "published",
        linkedin: "cancelled",
    }
    assert result["status"] == "published"
    assert_error(
        tenant.api.delete(f"/posts/{post_id}"),
        409,
        "post_already_published",
        "Nothing left to cancel: every account of this post has been published or has finished.",
    )


def test_cancel_fully_published_is_409(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    post_id = create(tenant, [x])["post_id"]
    sql(app, "UPDATE post_targets SET status = 'published'")
    sql(app, "UPDATE posts SET status = 'published'")
    assert_error(tenant.api.delete(f"/posts/{post_id}"), 409, "post_already_published")
    assert [t["status"] for t in targets_of(app, post_id)] == ["published"]


# ------------------------------------------------------------------ POST /posts/{id}/retry


def test_retry_sends_failed_targets_back_to_the_queue(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    linkedin = make_account(tenant, "linkedin")
    post_id = create(tenant, [x, linkedin])["post_id"]
    sql(
        app,
        "UPDATE post_targets SET status = 'failed', attempts = 5, error_code = 'server_error', "
        "error_message = 'HTTP 503' WHERE account_id = :a",
        a=x,
    )
    sql(app, "UPDATE post_targets SET status = 'published' WHERE account_id = :a", a=linkedin)
    sql(app, "UPDATE posts SET status = 'partially_published'")
    retried = ok_data(tenant.api.post(f"/posts/{post_id}/retry"))
    assert retried["status"] == "publishing"
    by_account = {t["account_id"]: t for t in retried["targets"]}
    assert by_account[x]["attempts"] == 0
    assert by_account[x]["error"] is None
    assert by_account[linkedin]["status"] == "published"
    rows = {r["account_id"]: r for r in targets_of(app, post_id)}
    # Due now, so handed to the broker at once with a fresh token.
    assert rows[x]["status"] == "queued"
    assert rows[x]["dispatch_token"] is not None
    assert rows[x]["error_code"] is None
    assert rows[linkedin]["status"] == "published"
    assert_error(
        tenant.api.post(f"/posts/{post_id}/retry"),
        409,
        "nothing_to_retry",
        "This post has no failed accounts to retry.",
    )


def test_retry_refused_while_the_account_needs_reconnecting(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    post_id = create(tenant, [x])["post_id"]
    sql(app, "UPDATE post_targets SET status = 'failed', error_code = 'auth_expired'")
    sql(app, "UPDATE accounts SET status = 'needs_reconnect' WHERE id = :a", a=x)
    assert_error(
        tenant.api.post(f"/posts/{post_id}/retry"),
        409,
        "account_needs_reconnect",
        f"Account {x} needs reconnecting before it can be retried.",
    )
    assert [t["status"] for t in targets_of(app, post_id)] == ["failed"]


# -------------------------------------------------------------------------- POST /posts/bulk


def test_bulk_partial_success_is_207(tenant: Tenant, make_account: Any, app: Flask) -> None:
    x = make_account(tenant, "x")
    tiktok = make_account(tenant, "tiktok")
    video = upload(tenant.api, "clip.mp4", mp4_bytes(12))
    items = [
        {"content": "one", "account_ids": [x], "scheduled_at": future()},
        {"content": "needs video", "account_ids": [tiktok]},
        {"content": "two", "account_ids": [tiktok], "media_ids": [video]},
        {"content": 5, "account_ids": [x]},
        "not an object",
    ]
    response = tenant.api.post("/posts/bulk", json={"posts": items})
    data = ok_data(response, 207)
    assert data["created"] == 2
    assert data["failed"] == 3
    results = data["results"]
    assert [(r["index"], r["status"]) for r in results] == [
        (0, 201),
        (1, 400),
        (2, 201),
        (3, 400),
        (4, 400),
    ]
    assert results[0]["data"]["message"] == "Post scheduled for 1 account."
    assert results[2]["data"]["status"] == "publishing"
    assert results[1]["error"] == {
        "message": "media_ids: TikTok needs exactly one video; no media_ids were given.",
        "code": "validation_error",
        "details": {"media_ids": ["TikTok needs exactly one video; no media_ids were given."]},
    }
    assert results[3]["error"]["details"] == {"content": ["Not a valid string."]}
    assert results[4]["error"]["message"] == "The request body must be a JSON object."
    assert count(app, "posts") == 2
    assert sorted(r["content"] for r in sql(app, "SELECT content FROM posts")) == ["one", "two"]
    # The one due now was enqueued after the commit.
    [now_target] = sql(
        app, "SELECT status, dispatch_token FROM post_targets WHERE platform='tiktok'"
    )
    assert now_target["status"] == "queued" and now_target["dispatch_token"] is not None


def test_bulk_all_good_is_201_and_all_bad_is_422(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    x = make_account(tenant, "x")
    good = {"posts": [{"content": f"n{i}", "account_ids": [x]} for i in range(50)]}
    data = ok_data(tenant.api.post("/posts/bulk", json=good), 201)
    assert data["created"] == 50 and data["failed"] == 0
    assert count(app, "posts") == 50
    bad = {"posts": [{"content": "x" * 300, "account_ids": [x]}, {"account_ids": [x]}]}
    error = assert_error(
        tenant.api.post("/posts/bulk", json=bad),
        422,
        "validation_error",
        "None of the 2 posts was created.",
    )
    assert error["details"] == {
        "posts[0]": ["content: X allows at most 280 weighted characters; this text has 300."],
        "posts[1]": ["Missing required field: content is required."],
    }
    assert count(app, "posts") == 50


def test_bulk_envelope_errors(tenant: Tenant, make_account: Any) -> None:
    x = make_account(tenant, "x")
    message = 'Send {"posts": [...]} with 1 to 50 posts.'
    for body in (
        {"posts": []},
        {"posts": [{"content": "a", "account_ids": [x]}] * 51},
        {"posts": {"content": "a"}},
        [{"content": "a", "account_ids": [x]}],
        {},
    ):
        error = assert_error(
            tenant.api.post("/posts/bulk", json=body), 400, "validation_error", message
        )
        assert error["details"] == {"posts": ["Give a list of 1 to 50 post objects."]}
    error = assert_error(
        tenant.api.post(
            "/posts/bulk", json={"posts": [{"content": "a", "account_ids": [x]}], "dry_run": True}
        ),
        400,
        "validation_error",
        "Unknown field: dry_run.",
    )
    assert error["details"] == {"dry_run": ["Unknown field."]}

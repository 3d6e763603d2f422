"""First comments and threads at intake: each mistake refused with a precise path and
message (`platform_content.x.thread[3].content`), platforms without them refused by name,
and the capabilities in GET /platform-rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import assert_error, ok_data, upload
from tests.api.test_validation import body_for, refused
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes, mp4_bytes


def thread(*texts: str) -> list[dict[str, Any]]:
    return [{"content": text} for text in texts]


def test_a_thread_and_a_first_comment_are_accepted_and_kept(
    tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    photo = upload(tenant.api, "photo.jpg", jpeg_bytes())
    content = {
        "x": {
            "first_comment": "#crier",
            "thread": [{"content": "two", "media_ids": [photo]}, {"content": "three"}],
        }
    }
    response = tenant.api.post("/posts", json=body_for(account_id, platform_content=content))
    post_id = ok_data(response, 201)["post_id"]
    post = ok_data(tenant.api.get(f"/posts/{post_id}"))
    assert post["platform_content"]["x"] == {
        "firstComment": "#crier",
        "thread": [{"content": "two", "media_ids": [photo]}, {"content": "three", "media_ids": []}],
    }
    steps = post["targets"][0]["steps"]
    assert [(s["position"], s["kind"], s["status"]) for s in steps] == [
        (0, "comment", "pending"),
        (1, "thread_item", "pending"),
        (2, "thread_item", "pending"),
    ]


def test_a_post_without_follow_ups_shows_no_steps(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    post_id = ok_data(tenant.api.post("/posts", json=body_for(account_id)), 201)["post_id"]
    assert ok_data(tenant.api.get(f"/posts/{post_id}"))["targets"][0]["steps"] is None


@pytest.mark.parametrize(
    ("platform", "content", "path", "message"),
    [
        (
            "tiktok",
            {"firstComment": "#fyp"},
            "platform_content.tiktok.firstComment",
            "TikTok cannot post comments through its API, so a first comment cannot be "
            "published there; remove firstComment.",
        ),
        (
            "linkedin",
            {"thread": [{"content": "more"}]},
            "platform_content.linkedin.thread",
            "LinkedIn cannot post threads through its API; remove thread.",
        ),
        (
            "linkedin",
            {"firstComment": "a" * 1251},
            "platform_content.linkedin.firstComment",
            "LinkedIn allows at most 1250 characters; this text has 1251.",
        ),
        (
            "x",
            {"firstComment": "   "},
            "platform_content.x.firstComment",
            "The first comment must not be empty.",
        ),
        (
            "x",
            {"firstComment": "a" * 281},
            "platform_content.x.firstComment",
            "X allows at most 280 weighted characters; this text has 281.",
        ),
        (
            "x",
            {"thread": thread("one", "two", "three", "a" * 300)},
            "platform_content.x.thread[3].content",
            "X allows at most 280 weighted characters; this text has 300.",
        ),
        (
            "threads",
            {"thread": thread("one", "")},
            "platform_content.threads.thread[1].content",
            "Threads needs text or media; both are empty.",
        ),
        (
            "x",
            {"thread": [{"content": "x", "media_ids": ["0b8f4e1c-7d0e-4a51-9d6c-0d1b3e5f7a90"]}]},
            "platform_content.x.thread[0].media_ids",
            "Media not found: 0b8f4e1c-7d0e-4a51-9d6c-0d1b3e5f7a90. Upload with POST "
            "/media/upload.",
        ),
    ],
)
def test_follow_up_mistakes_are_refused_with_their_path(
    tenant: Tenant,
    make_account: Any,
    platform: str,
    content: dict[str, Any],
    path: str,
    message: str,
) -> None:
    account_id = make_account(tenant, platform)
    body = body_for(account_id, platform_content={platform: content})
    if platform in ("tiktok",):
        body["media_ids"] = [upload(tenant.api, "clip.mp4", mp4_bytes(12))]
    refused(tenant.api.post("/posts", json=body), path, message)


def test_a_thread_item_gets_the_posts_media_rules(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    photos = [upload(tenant.api, f"p{n}.jpg", jpeg_bytes()) for n in range(5)]
    content = {"x": {"thread": [{"content": "one"}, {"content": "five", "media_ids": photos}]}}
    refused(
        tenant.api.post("/posts", json=body_for(account_id, platform_content=content)),
        "platform_content.x.thread[1].media_ids",
        "X takes up to 4 images or one video; got 5 images and 0 videos.",
    )


def test_a_thread_has_at_most_25_items_and_the_schema_checks_each(
    tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    content = {"x": {"thread": thread(*(str(n) for n in range(26)))}}
    response = tenant.api.post("/posts", json=body_for(account_id, platform_content=content))
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {
        "platform_content.x.thread": ["A thread may have at most 25 items."]
    }
    content = {"x": {"thread": [{"content": "ok"}, {"content": 5}, {"text": "?"}]}}
    response = tenant.api.post("/posts", json=body_for(account_id, platform_content=content))
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {
        "platform_content.x.thread[1].content": ["Not a valid string."],
        "platform_content.x.thread[2].text": ["Unknown field."],
    }
    both = {"x": {"firstComment": "a", "first_comment": "b"}}
    response = tenant.api.post("/posts", json=body_for(account_id, platform_content=both))
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == {
        "platform_content.x.first_comment": [
            "Give firstComment or its alias first_comment, not two different values."
        ]
    }


def test_a_change_is_checked_as_a_new_post_is(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    post_id = ok_data(tenant.api.post("/posts", json=body_for(account_id)), 201)["post_id"]
    response = tenant.api.patch(
        f"/posts/{post_id}", json={"platform_content": {"x": {"thread": thread("", "two")}}}
    )
    refused(
        response, "platform_content.x.thread[0].content", "X needs text or media; both are empty."
    )


def test_platform_rules_say_which_platforms_take_first_comments_and_threads(
    tenant: Tenant,
) -> None:
    rules = ok_data(tenant.api.get("/platform-rules"))
    assert {name: (r["first_comment"], r["threads"]) for name, r in rules.items()} == {
        "instagram": (True, False),
        "facebook": (True, False),
        "threads": (True, True),
        "x": (True, True),
        "linkedin": (True, False),
        "tiktok": (False, False),
        "youtube": (True, False),
        "telegram": (False, False),
        "discord": (False, False),
        "bluesky": (True, True),
        "mastodon": (True, True),
        "pinterest": (False, False),
        "wordpress": (True, False),
    }
    assert rules["x"]["max_thread_items"] == 25
    assert rules["tiktok"]["max_thread_items"] is None

"""Facebook Pages adapter against the sandbox over real HTTP."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthExpiredError,
    AuthRevokedError,
    DuplicateError,
    MediaItem,
    NullContext,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.facebook import FacebookAdapter

PAGE = "1784140000000001"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> FacebookAdapter:
    return FacebookAdapter(http, base_url=sandbox_url)


def ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "facebook"}).json()


def set_faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"facebook": config}).raise_for_status()


def test_text_goes_to_the_page_feed(sandbox: httpx.Client, adapter: FacebookAdapter) -> None:
    context = NullContext()
    result = adapter.publish(make_request("facebook", "Hello Page"), context)

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["id"].startswith(f"{PAGE}_")
    assert entry["account"] == PAGE
    assert entry["text"] == "Hello Page"
    assert entry["media"] == [] and entry["params"] == {}
    number = entry["id"].split("_")[1]
    assert result.url == f"https://www.facebook.com/{PAGE}/posts/{number}"
    assert result.details["rate_limit"]["limit"] == 100
    assert context.irreversible and context.handle is not None
    assert context.handle["kind"] == "feed"


def test_single_photo_is_posted_with_its_caption(
    sandbox: httpx.Client, adapter: FacebookAdapter, image_item: MediaItem
) -> None:
    context = NullContext()
    request = make_request("facebook", "A photo", media=[image_item])
    result = adapter.publish(request, context)

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id  # the post id, not the photo id
    assert entry["text"] == "A photo"
    assert entry["media"] == [{"kind": "image", "url": image_item.public_url}]
    # Uploaded unpublished (ahead of the instant when prepared), then attached to a post.
    [photo_id] = context.handle["photo_ids"]
    assert entry["params"] == {"attached_media": [{"media_fbid": photo_id}]}
    assert adapter.reconcile(replace(request, handle=context.handle)).result.platform_post_id == (
        result.platform_post_id
    )


def test_several_photos_are_attached_to_one_feed_post(
    sandbox: httpx.Client, adapter: FacebookAdapter, image_item: MediaItem
) -> None:
    context = NullContext()
    result = adapter.publish(
        make_request("facebook", "Two photos", media=[image_item, image_item]), context
    )

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["text"] == "Two photos"
    assert entry["params"] == {
        "attached_media": [{"media_fbid": pid} for pid in context.handle["photo_ids"]]
    }
    assert len(entry["media"]) == 2


def test_video_type_video_uses_the_videos_edge(
    sandbox: httpx.Client, adapter: FacebookAdapter, video_item: MediaItem
) -> None:
    result = adapter.publish(
        make_request("facebook", "Watch", {"videoType": "video"}, [video_item]), NullContext()
    )

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["params"] == {"edge": "videos"}
    assert entry["media"] == [{"kind": "video", "url": video_item.public_url}]
    assert result.url == f"https://www.facebook.com/{PAGE}/videos/{result.platform_post_id}/"


def test_video_type_reel_goes_through_start_upload_finish(
    sandbox: httpx.Client, adapter: FacebookAdapter, video_item: MediaItem
) -> None:
    context = NullContext()
    result = adapter.publish(
        make_request("facebook", "A reel", {"videoType": "reel"}, [video_item]), context
    )

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id == context.handle["video_id"]
    assert entry["text"] == "A reel"
    assert entry["params"] == {"edge": "video_reels", "video_state": "PUBLISHED"}
    assert entry["media"] == [{"kind": "video", "size": video_item.size_bytes}]
    assert result.url == f"https://www.facebook.com/reel/{result.platform_post_id}/"


def test_same_text_twice_in_a_row_is_a_duplicate(
    sandbox: httpx.Client, adapter: FacebookAdapter
) -> None:
    adapter.publish(make_request("facebook", "Same again"), NullContext())
    with pytest.raises(DuplicateError) as caught:
        adapter.publish(make_request("facebook", "Same again"), NullContext())
    assert caught.value.code == "facebook_duplicate_post"
    assert caught.value.details["graph_code"] == 506
    assert len(ledger(sandbox)) == 1


def test_page_throttle_is_rate_limited_with_the_buc_wait(
    sandbox: httpx.Client, adapter: FacebookAdapter
) -> None:
    set_faults(sandbox, rate_limit_every=1, retry_after=300)
    with pytest.raises(RateLimitedError) as caught:
        adapter.publish(make_request("facebook", "Too fast"), NullContext())
    error = caught.value
    assert error.details["graph_code"] == 80001
    assert error.retry_after == 300.0
    assert error.scope == "account"


def test_reels_cap_is_quota_exhausted(
    sandbox: httpx.Client, adapter: FacebookAdapter, video_item: MediaItem
) -> None:
    for number in range(30):
        adapter.publish(
            make_request("facebook", f"reel {number}", {"videoType": "reel"}, [video_item]),
            NullContext(),
        )
    with pytest.raises(QuotaExhaustedError) as caught:
        adapter.publish(
            make_request("facebook", "reel 30", {"videoType": "reel"}, [video_item]),
            NullContext(),
        )
    retry_at = caught.value.retry_at
    assert retry_at is not None
    assert abs((retry_at - (datetime.now(UTC) + timedelta(hours=24))).total_seconds()) < 90


def test_server_error_is_transient(sandbox: httpx.Client, adapter: FacebookAdapter) -> None:
    set_faults(sandbox, error_rate=1.0, error_status=502)
    with pytest.raises(TransientError) as caught:
        adapter.publish(make_request("facebook", "Later"), NullContext())
    assert caught.value.http_status == 502


def test_rejected_request_is_permanent(sandbox: httpx.Client, adapter: FacebookAdapter) -> None:
    set_faults(sandbox, error_rate=1.0, error_status=400)
    with pytest.raises(PermanentError) as caught:
        adapter.publish(make_request("facebook", "Bad"), NullContext())
    assert caught.value.code == "facebook_invalid_parameter"
    assert caught.value.message == "(#100) Invalid parameter"


def test_missing_page_id_is_permanent(sandbox: httpx.Client, adapter: FacebookAdapter) -> None:
    with pytest.raises(PermanentError) as caught:
        adapter.publish(make_request("facebook", "Where?", external_id=None), NullContext())
    assert caught.value.code == "facebook_page_id_missing"


def test_expired_page_token_is_auth_expired_and_cannot_be_refreshed(
    sandbox: httpx.Client, adapter: FacebookAdapter
) -> None:
    set_faults(sandbox, expired_tokens=["old"])
    request = make_request("facebook", "Hi", access_token="old")
    with pytest.raises(AuthExpiredError) as caught:
        adapter.publish(request, NullContext())
    assert caught.value.code == "facebook_auth_expired"
    assert adapter.supports_refresh is False
    with pytest.raises(AuthRevokedError):
        adapter.refresh_token(request.account)


def test_revoked_token_is_auth_revoked(sandbox: httpx.Client, adapter: FacebookAdapter) -> None:
    set_faults(sandbox, revoked_tokens=["gone"])
    with pytest.raises(AuthRevokedError) as caught:
        adapter.publish(make_request("facebook", "Hi", access_token="gone"), NullContext())
    assert caught.value.code == "facebook_auth_revoked"


def test_lost_feed_response_is_found_and_resume_adopts_it(
    sandbox: httpx.Client, adapter: FacebookAdapter
) -> None:
    set_faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(make_request("facebook", "Did it post?"), context)
    [entry] = ledger(sandbox)

    retry = make_request("facebook", "Did it post?", handle=context.handle)
    outcome = adapter.reconcile(retry)
    assert outcome.status is ReconcileStatus.FOUND
    assert outcome.result is not None and outcome.result.platform_post_id == entry["id"]
    assert adapter.publish(retry, NullContext()).platform_post_id == entry["id"]
    assert len(ledger(sandbox)) == 1


def test_lost_reel_finish_is_found_by_its_video_status(
    sandbox: httpx.Client, adapter: FacebookAdapter, video_item: MediaItem
) -> None:
    set_faults(sandbox, lose_response_every=1)
    context = NullContext()
    request = make_request("facebook", "Reel?", {"videoType": "reel"}, [video_item])
    with pytest.raises(TransientError):
        adapter.publish(request, context)
    [entry] = ledger(sandbox)

    retry = make_request(
        "facebook", "Reel?", {"videoType": "reel"}, [video_item], handle=context.handle
    )
    outcome = adapter.reconcile(retry)
    assert outcome.status is ReconcileStatus.FOUND
    assert outcome.result is not None and outcome.result.platform_post_id == entry["id"]


def test_reel_interrupted_before_finish_resumes_without_reuploading(
    sandbox: httpx.Client, adapter: FacebookAdapter, video_item: MediaItem
) -> None:
    set_faults(sandbox, rate_limit_every=3)  # start, upload pass; finish is throttled
    context = NullContext()
    request = make_request("facebook", "Held reel", {"videoType": "reel"}, [video_item])
    with pytest.raises(RateLimitedError):
        adapter.publish(request, context)
    video_id = context.handle["video_id"]
    retry = make_request(
        "facebook", "Held reel", {"videoType": "reel"}, [video_item], handle=context.handle
    )
    assert adapter.reconcile(retry).status is ReconcileStatus.NOT_FOUND

    set_faults(sandbox, rate_limit_every=2)  # a re-upload (1) + finish (2) would be throttled
    result = adapter.publish(retry, NullContext())
    assert result.platform_post_id == video_id
    assert [e["id"] for e in ledger(sandbox)] == [video_id]


def test_reconcile_finds_nothing_when_nothing_was_posted(
    sandbox: httpx.Client, adapter: FacebookAdapter
) -> None:
    handle = {"kind": "feed", "started_at": time.time()}
    outcome = adapter.reconcile(make_request("facebook", "Never arrived", handle=handle))
    assert outcome.status is ReconcileStatus.NOT_FOUND


def test_reconcile_never_adopts_a_same_text_post_older_than_the_irreversible_start(
    sandbox: httpx.Client, adapter: FacebookAdapter
) -> None:
    earlier = adapter.publish(make_request("facebook", "Weekly update"), NullContext())
    request = make_request("facebook", "Weekly update")
    just_now = replace(request, irreversible_started_at=datetime.now(UTC))
    later = replace(request, irreversible_started_at=datetime.now(UTC) + timedelta(minutes=10))

    found = adapter.reconcile(just_now)
    assert found.status is ReconcileStatus.FOUND
    assert found.result is not None and found.result.platform_post_id == earlier.platform_post_id
    assert adapter.reconcile(later).status is ReconcileStatus.NOT_FOUND

"""Instagram adapter against the sandbox over real HTTP (and the shared Graph classifier)."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

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
    PublishRequest,
    QuotaExhaustedError,
    RateLimitedError,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.graph import classify_graph_error
from workers.adapters.instagram import InstagramAdapter

IG_USER = "1784140000000001"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> InstagramAdapter:
    instagram = InstagramAdapter(http, base_url=sandbox_url)
    instagram.poll_interval = 0.05
    instagram.max_wait = 2.0
    return instagram


def ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "instagram"}).json()


def set_faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"instagram": config}).raise_for_status()


def test_image_post_sends_alt_text_and_reads_the_permalink(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    context = NullContext()
    request = make_request(
        "instagram", "Launch day", {"contentType": "Post", "altText": "A red kite"}, [image_item]
    )
    result = adapter.publish(request, context)

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["account"] == IG_USER
    assert entry["text"] == "Launch day"
    assert entry["media"] == [{"kind": "image", "url": image_item.public_url}]
    assert entry["params"] == {"media_type": "IMAGE", "alt_text": "A red kite"}
    assert result.url is not None and result.url.startswith("https://www.instagram.com/p/")
    assert result.details["media_product_type"] == "FEED"
    assert context.irreversible and context.handle is not None
    assert context.handle["media_id"] == result.platform_post_id
    usage = result.details["rate_limit"]
    assert usage["limit"] == 100 and usage["remaining"] == 98  # 1 of 50 posts used
    assert abs(usage["reset_at"] - time.time()) < 5


def test_single_video_post_is_a_reel_shared_to_feed(
    sandbox: httpx.Client, adapter: InstagramAdapter, video_item: MediaItem
) -> None:
    result = adapter.publish(make_request("instagram", "Clip", media=[video_item]), NullContext())

    [entry] = ledger(sandbox)
    assert entry["params"] == {"media_type": "REELS", "share_to_feed": True}
    assert entry["media"] == [{"kind": "video", "url": video_item.public_url}]
    assert result.url is not None and "/reel/" in result.url


def test_reels_cover_timestamp_becomes_thumb_offset_in_ms(
    sandbox: httpx.Client, adapter: InstagramAdapter, video_item: MediaItem
) -> None:
    settings = {"contentType": "Reels", "coverPhotoTimestamp": 2.5}
    adapter.publish(make_request("instagram", "Reel", settings, [video_item]), NullContext())

    [entry] = ledger(sandbox)
    assert entry["params"] == {"media_type": "REELS", "share_to_feed": True, "thumb_offset": 2500}


def test_a_cover_photo_becomes_the_reels_cover_url(
    sandbox: httpx.Client,
    adapter: InstagramAdapter,
    video_item: MediaItem,
    image_item: MediaItem,
) -> None:
    request = make_request("instagram", "Reel", {"contentType": "Reels"}, [video_item])
    adapter.publish(dataclasses.replace(request, cover=image_item), NullContext())

    [entry] = ledger(sandbox)
    assert entry["params"]["cover_url"] == image_item.public_url


def test_trial_reel_sends_manual_graduation(
    sandbox: httpx.Client, adapter: InstagramAdapter, video_item: MediaItem
) -> None:
    settings = {"contentType": "Trial Reel", "coverPhotoTimestamp": 0.25}
    adapter.publish(make_request("instagram", "Trial", settings, [video_item]), NullContext())

    [entry] = ledger(sandbox)
    assert entry["params"] == {
        "media_type": "REELS",
        "trial_params": {"graduation_strategy": "MANUAL"},
        "thumb_offset": 250,
    }


def test_story_is_published_as_stories_and_reconciled_from_the_story_listing(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    set_faults(sandbox, lose_response_every=1)
    context = NullContext()
    request = make_request("instagram", "ignored", {"contentType": "Story"}, [image_item])
    with pytest.raises(TransientError):
        adapter.publish(request, context)

    [entry] = ledger(sandbox)
    assert entry["params"] == {"media_type": "STORIES"}
    assert entry["text"] == ""  # stories carry no caption
    outcome = adapter.reconcile(
        make_request(
            "instagram", "ignored", {"contentType": "Story"}, [image_item], handle=context.handle
        )
    )
    assert outcome.status is ReconcileStatus.FOUND
    assert outcome.result is not None and outcome.result.platform_post_id == entry["id"]
    assert outcome.result.url is not None and "/stories/" in outcome.result.url


def test_several_media_make_a_carousel(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem, video_item: MediaItem
) -> None:
    request = make_request(
        "instagram", "Album", {"contentType": "Post", "altText": "Alt"}, [image_item, video_item]
    )
    result = adapter.publish(request, NullContext())

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["text"] == "Album"
    assert entry["params"] == {
        "media_type": "CAROUSEL",
        "children": [
            {"media_type": "IMAGE", "alt_text": "Alt", "is_carousel_item": True},
            {"media_type": "VIDEO", "is_carousel_item": True},
        ],
    }
    assert [m["kind"] for m in entry["media"]] == ["image", "video"]
    assert result.details["media_type"] == "CAROUSEL_ALBUM"


def test_text_only_is_refused_before_any_call(
    sandbox: httpx.Client, adapter: InstagramAdapter
) -> None:
    with pytest.raises(PermanentError) as caught:
        adapter.publish(make_request("instagram", "Just words"), NullContext())
    assert caught.value.code == "instagram_unsupported_media"
    assert ledger(sandbox) == []


def test_throttle_is_rate_limited_with_the_buc_wait(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    set_faults(sandbox, rate_limit_every=1, retry_after=120)
    with pytest.raises(RateLimitedError) as caught:
        adapter.publish(make_request("instagram", media=[image_item]), NullContext())
    error = caught.value
    assert error.retry_after == 120.0  # estimated_time_to_regain_access: 2 minutes
    assert error.scope == "account"
    assert error.code == "instagram_rate_limited"
    assert error.http_status == 400
    assert error.details["graph_code"] == 80002


def test_daily_publishing_cap_is_quota_exhausted_for_a_rolling_day(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    for number in range(50):
        adapter.publish(
            make_request("instagram", f"post {number}", media=[image_item]), NullContext()
        )
    with pytest.raises(QuotaExhaustedError) as caught:
        adapter.publish(
            make_request("instagram", "one too many", media=[image_item]), NullContext()
        )
    error = caught.value
    assert error.code == "instagram_quota_exhausted"
    assert error.details["graph_subcode"] == 2207042
    assert error.retry_at is not None
    expected = datetime.now(UTC) + timedelta(hours=24)
    assert abs((error.retry_at - expected).total_seconds()) < 90
    assert len(ledger(sandbox)) == 50


def test_server_error_is_transient(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    set_faults(sandbox, error_rate=1.0, error_status=503)
    with pytest.raises(TransientError) as caught:
        adapter.publish(make_request("instagram", media=[image_item]), NullContext())
    assert caught.value.http_status == 503
    assert caught.value.code == "instagram_temporary_error"


def test_invalid_caption_is_permanent_with_the_platform_message(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    with pytest.raises(PermanentError) as caught:
        adapter.publish(make_request("instagram", "x" * 2201, media=[image_item]), NullContext())
    assert caught.value.code == "instagram_caption_too_long"
    assert caught.value.message == "The caption is too long"
    assert ledger(sandbox) == []


def test_slow_container_is_transient_and_the_next_attempt_resumes_it(
    sandbox: httpx.Client, adapter: InstagramAdapter, video_item: MediaItem
) -> None:
    set_faults(sandbox, processing_seconds=0.6)
    adapter.max_wait = 0.1
    context = NullContext()
    request = make_request("instagram", "Slow reel", {"contentType": "Reels"}, [video_item])
    with pytest.raises(TransientError) as caught:
        adapter.publish(request, context)
    assert caught.value.code == "instagram_media_not_ready"
    assert context.handle is not None and not context.irreversible
    container_id = context.handle["container_id"]
    assert caught.value.details["container_id"] == container_id

    adapter.max_wait = 3.0
    resumed = NullContext()
    result = adapter.publish(
        make_request(
            "instagram", "Slow reel", {"contentType": "Reels"}, [video_item], handle=context.handle
        ),
        resumed,
    )
    assert result.details["container_id"] == container_id
    assert [e["id"] for e in ledger(sandbox)] == [result.platform_post_id]


def test_expired_token_is_refreshed_and_the_new_one_publishes(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    set_faults(sandbox, expired_tokens=["old-token"])
    request = make_request("instagram", media=[image_item], access_token="old-token")
    with pytest.raises(AuthExpiredError) as caught:
        adapter.publish(request, NullContext())
    assert caught.value.code == "instagram_auth_expired"
    assert caught.value.details["graph_subcode"] == 463

    tokens = adapter.refresh_token(request.account)
    assert tokens.access_token.startswith("IGAA") and tokens.access_token != "old-token"
    assert tokens.refresh_token is None
    assert tokens.expires_at is not None
    assert tokens.expires_at > datetime.now(UTC) + timedelta(days=59)

    result = adapter.publish(
        make_request("instagram", media=[image_item], access_token=tokens.access_token),
        NullContext(),
    )
    assert [e["id"] for e in ledger(sandbox)] == [result.platform_post_id]


def test_revoked_token_fails_publish_and_refresh(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    set_faults(sandbox, revoked_tokens=["gone"])
    request = make_request("instagram", media=[image_item], access_token="gone")
    with pytest.raises(AuthRevokedError) as caught:
        adapter.publish(request, NullContext())
    assert caught.value.details["graph_subcode"] == 460
    with pytest.raises(AuthRevokedError):
        adapter.refresh_token(request.account)


def test_lost_publish_response_is_found_by_reconcile_and_resume_adopts_it(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    set_faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(make_request("instagram", "Lost", media=[image_item]), context)
    assert context.irreversible
    [entry] = ledger(sandbox)

    retry = make_request("instagram", "Lost", media=[image_item], handle=context.handle)
    outcome = adapter.reconcile(retry)
    assert outcome.status is ReconcileStatus.FOUND
    assert outcome.result is not None and outcome.result.platform_post_id == entry["id"]

    resumed = adapter.publish(retry, NullContext())
    assert resumed.platform_post_id == entry["id"]
    assert len(ledger(sandbox)) == 1


def test_unpublished_container_reconciles_as_not_found_and_resume_publishes_once(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    set_faults(sandbox, rate_limit_every=2)  # the container passes, media_publish is limited
    context = NullContext()
    with pytest.raises(RateLimitedError):
        adapter.publish(make_request("instagram", "Later", media=[image_item]), context)
    assert context.irreversible and ledger(sandbox) == []

    retry = make_request("instagram", "Later", media=[image_item], handle=context.handle)
    assert adapter.reconcile(retry).status is ReconcileStatus.NOT_FOUND
    set_faults(sandbox)
    result = adapter.publish(retry, NullContext())
    assert result.details["container_id"] == context.handle["container_id"]
    assert [e["id"] for e in ledger(sandbox)] == [result.platform_post_id]


def test_reconcile_without_handle_finds_nothing_in_an_empty_account(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    outcome = adapter.reconcile(make_request("instagram", "Never sent", media=[image_item]))
    assert outcome.status is ReconcileStatus.NOT_FOUND


def _graph_error(code: int, subcode: int | None = None, **extra: object) -> dict:
    error: dict = {"message": "m", "type": "OAuthException", "code": code, **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.mark.parametrize(
    ("body", "status", "expected", "code"),
    [
        (_graph_error(190, 460), 400, AuthRevokedError, "instagram_auth_revoked"),
        (_graph_error(190, 467), 400, AuthExpiredError, "instagram_auth_expired"),
        (_graph_error(4, 2207051), 400, PermanentError, "instagram_activity_restricted"),
        (_graph_error(24, 2207008), 400, TransientError, "instagram_media_builder_expired"),
        (_graph_error(9007, 2207027), 400, TransientError, "instagram_media_not_ready"),
        (_graph_error(1, 2207057), 400, PermanentError, "instagram_thumb_offset_out_of_range"),
        (_graph_error(100, is_transient=True), 400, TransientError, "instagram_temporary_error"),
        (_graph_error(506), 400, DuplicateError, "instagram_duplicate_post"),
        (_graph_error(10), 403, PermanentError, "instagram_permission_denied"),
        ({}, 502, TransientError, "instagram_server_error"),
    ],
)
def test_graph_errors_are_classified_by_body(
    body: dict, status: int, expected: type, code: str
) -> None:
    error = classify_graph_error("instagram", status, body, httpx.Headers())
    assert type(error) is expected
    assert error.code == code


def test_app_wide_throttle_without_buc_wait_uses_the_fallback_and_app_scope() -> None:
    headers = httpx.Headers({"X-App-Usage": json.dumps({"call_count": 100})})
    error = classify_graph_error("instagram", 400, _graph_error(4), headers)
    assert isinstance(error, RateLimitedError)
    assert error.scope == "app" and error.retry_after == 300.0


def test_carousel_waits_for_its_children_and_resume_reuses_them(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem, video_item: MediaItem
) -> None:
    set_faults(sandbox, processing_seconds=0.5)
    adapter.max_wait = 0.1
    request = make_request("instagram", "Slow album", media=[image_item, video_item])
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request, context)
    assert context.handle is not None and "container_id" not in context.handle
    children = context.handle["children"]
    assert len(children) == 2

    adapter.max_wait = 3.0
    resumed = NullContext()
    retry = make_request(
        "instagram", "Slow album", media=[image_item, video_item], handle=context.handle
    )
    result = adapter.publish(retry, resumed)
    assert resumed.handle is not None and resumed.handle["children"] == children
    assert [e["id"] for e in ledger(sandbox)] == [result.platform_post_id]


# -- accounts connected through Facebook Login: graph.facebook.com, the Page's token ------

REDIRECT = "https://crier.example/oauth/instagram/callback"


def linked_account(sandbox: httpx.Client, page: int = 0) -> tuple[str, str, str]:
    """(Page token, Page id, linked Instagram account id), obtained from the sandbox as the
    Facebook Login flow does: consent, code, long-lived user token, /me/accounts."""
    consent = sandbox.get(
        "/facebook/v25.0/dialog/oauth",
        params={
            "response_type": "code",
            "client_id": "crier-facebook-client",
            "redirect_uri": REDIRECT,
            "scope": "instagram_basic,instagram_content_publish,pages_show_list",
            "state": "s",
        },
    )
    code = consent.headers["location"].split("code=")[1].split("&")[0]
    short = sandbox.get(
        "/facebook/v25.0/oauth/access_token",
        params={"client_id": "crier-facebook-client", "redirect_uri": REDIRECT, "code": code},
    ).json()["access_token"]
    user = sandbox.get(
        "/facebook/v25.0/oauth/access_token",
        params={"grant_type": "fb_exchange_token", "fb_exchange_token": short},
    ).json()["access_token"]
    pages = sandbox.get(
        "/facebook/v25.0/me/accounts",
        params={
            "fields": "id,name,access_token,instagram_business_account{id,username}",
            "access_token": user,
        },
    ).json()["data"]
    chosen = pages[page]
    return chosen["access_token"], chosen["id"], chosen["instagram_business_account"]["id"]


def facebook_login_request(sandbox: httpx.Client, *args: Any, **kwargs: Any) -> PublishRequest:
    token, page_id, ig_user = linked_account(sandbox)
    request = make_request(
        "instagram", *args, access_token=token, refresh_token=None, external_id=ig_user, **kwargs
    )
    settings = {"login": "facebook", "page_id": page_id}
    return dataclasses.replace(
        request, account=dataclasses.replace(request.account, settings=settings)
    )


def test_facebook_login_account_publishes_on_graph_facebook_with_the_page_token(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    request = facebook_login_request(sandbox, "Via the Page", {"altText": "Kite"}, [image_item])
    context = NullContext()
    result = adapter.publish(request, context)

    [entry] = ledger(sandbox)
    assert entry["account"] == request.account.external_id and entry["text"] == "Via the Page"
    assert entry["params"] == {"media_type": "IMAGE", "alt_text": "Kite"}
    assert set(entry) == {
        "platform",
        "account",
        "id",
        "text",
        "media",
        "params",
        "received_at",
        "reply_to",
    }
    assert result.platform_post_id == entry["id"] and context.handle is not None
    assert result.url is not None and result.url.startswith("https://www.instagram.com/p/")
    # The Page token is refused on graph.instagram.com: the same call there fails.
    plain = dataclasses.replace(request, account=dataclasses.replace(request.account, settings={}))
    with pytest.raises(AuthExpiredError):
        adapter.publish(plain, NullContext())
    assert len(ledger(sandbox)) == 1


def test_facebook_login_carousel_story_and_reconcile_go_through_graph_facebook(
    sandbox: httpx.Client,
    adapter: InstagramAdapter,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    carousel = facebook_login_request(sandbox, "Album", media=[image_item, video_item])
    adapter.publish(carousel, NullContext())
    set_faults(sandbox, lose_response_every=1)
    story = facebook_login_request(sandbox, "ignored", {"contentType": "Story"}, [image_item])
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(story, context)
    set_faults(sandbox)

    album, posted_story = ledger(sandbox)
    assert album["params"]["media_type"] == "CAROUSEL" and len(album["media"]) == 2
    assert posted_story["params"] == {"media_type": "STORIES"}
    # Found again by the container and in the story listing, both on graph.facebook.com.
    found = adapter.reconcile(dataclasses.replace(story, handle=context.handle))
    assert found.status is ReconcileStatus.FOUND and found.result is not None
    assert found.result.platform_post_id == posted_story["id"]
    listed = adapter.reconcile(
        dataclasses.replace(story, handle=None, irreversible_started_at=datetime.now(UTC))
    )
    assert listed.status is ReconcileStatus.FOUND and listed.result is not None
    assert listed.result.platform_post_id == posted_story["id"]


def test_a_page_token_is_never_refreshed_with_ig_refresh_token(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    request = facebook_login_request(sandbox, media=[image_item])
    assert not adapter.can_refresh(request.account)
    assert adapter.can_refresh(make_request("instagram").account)  # Instagram Login's can
    # Pointed at a port nobody serves: any HTTP call would be a network error instead.
    with httpx.Client(timeout=2) as http:
        offline = InstagramAdapter(http, base_url="http://127.0.0.1:9")
        with pytest.raises(AuthRevokedError) as caught:
            offline.refresh_token(request.account)
    assert caught.value.code == "instagram_reconnect_required"


def test_a_revoked_page_token_is_auth_revoked_on_graph_facebook(
    sandbox: httpx.Client, adapter: InstagramAdapter, image_item: MediaItem
) -> None:
    request = facebook_login_request(sandbox, media=[image_item])
    token = request.account.access_token
    assert sandbox.delete(
        "/facebook/v25.0/me/permissions", params={"access_token": token}
    ).is_success
    with pytest.raises(AuthRevokedError):
        adapter.publish(request, NullContext())
    assert ledger(sandbox) == []

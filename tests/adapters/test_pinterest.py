"""The Pinterest adapter against the sandbox, over real HTTP: carousels, video Pins
staged ahead, covers, its errors and waits, reconciliation by the board's Pins."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.pinterest import DEFAULT_LOGIN, boards_of
from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthExpiredError,
    AuthRevokedError,
    MediaItem,
    NullContext,
    Outcome,
    PermanentError,
    PlatformError,
    PreparingContext,
    PublishRequest,
    ReadyToPublish,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.pinterest import PinterestAdapter, classify

BOARD, OTHER_BOARD = (b["id"] for b in boards_of(DEFAULT_LOGIN))


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> PinterestAdapter:
    pinterest = PinterestAdapter(http, base_url=sandbox_url)
    pinterest.poll_interval = 0.05
    return pinterest


def ledger(sandbox: httpx.Client) -> list[dict[str, Any]]:
    return list(sandbox.get("/_ledger", params={"platform": "pinterest"}).json())


def faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"pinterest": config}).raise_for_status()


def request_for(media: list[MediaItem], **settings: Any) -> PublishRequest:
    return make_request(
        "pinterest", text="Spring salads", settings={"boardId": BOARD, **settings}, media=media
    )


def images(item: MediaItem, count: int) -> list[MediaItem]:
    return [
        replace(item, id=f"{n}", public_url=f"https://crier.example/m/{n}.jpg")
        for n in range(count)
    ]


def test_an_image_pin_carries_its_title_link_and_alt_text(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    request = request_for(
        [image_item], title="Salads", link="https://shop.example/salads", altText="A bowl"
    )
    result = adapter.publish(request, NullContext())
    [pin] = ledger(sandbox)
    assert result.url == f"https://www.pinterest.com/pin/{pin['id']}/"
    assert pin["text"] == "Spring salads" and pin["media"] == [
        {"kind": "image", "url": image_item.public_url}
    ]
    params = pin["params"]
    assert (params["title"], params["link"], params["alt_text"]) == (
        "Salads",
        "https://shop.example/salads",
        "A bowl",
    )
    assert params["source_type"] == "image_url" and params["board_id"] == BOARD


def test_several_images_make_a_carousel_pin(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    adapter.publish(request_for(images(image_item, 3)), NullContext())
    [pin] = ledger(sandbox)
    assert pin["params"]["source_type"] == "multiple_image_urls"
    assert [m["url"] for m in pin["media"]] == [
        f"https://crier.example/m/{n}.jpg" for n in range(3)
    ]


def test_a_video_and_an_image_together_are_refused_before_any_call(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem, video_item: MediaItem
) -> None:
    with pytest.raises(PermanentError) as refused:
        adapter.publish(request_for([image_item, video_item]), NullContext())
    assert refused.value.code == "pinterest_media_mix"
    assert sandbox.get("/_arrived").json().get("pinterest") is None


def test_a_pin_needs_a_board(adapter: PinterestAdapter, image_item: MediaItem) -> None:
    request = make_request("pinterest", media=[image_item])
    with pytest.raises(PermanentError) as refused:
        adapter.publish(request, NullContext())
    assert refused.value.code == "pinterest_board_required"


def test_another_users_board_is_not_found(adapter: PinterestAdapter, image_item: MediaItem) -> None:
    with pytest.raises(PermanentError) as refused:
        adapter.publish(
            replace(request_for([image_item]), settings={"boardId": "42"}), NullContext()
        )
    assert refused.value.code == "pinterest_board_not_found" and refused.value.http_status == 404


def test_a_video_is_uploaded_and_processed_ahead_and_only_pinned_at_the_instant(
    adapter: PinterestAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    faults(sandbox, processing_seconds=0.3)
    request = request_for([video_item], coverImageUrl="https://crier.example/cover.jpg")
    preparing = PreparingContext()
    with pytest.raises(ReadyToPublish):
        adapter.publish(request, preparing)
    handle = preparing.handle or {}
    assert handle["media_uploaded"] and handle["media_ready"] and handle["media_id"]
    assert ledger(sandbox) == []
    arrived = sandbox.get("/_arrived").json()["pinterest"]

    at_instant = NullContext()
    result = adapter.publish(replace(request, handle=handle), at_instant)

    [pin] = ledger(sandbox)
    assert pin["id"] == result.platform_post_id and at_instant.irreversible
    assert pin["media"] == [
        {
            "kind": "video",
            "media_id": handle["media_id"],
            "bytes": video_item.size_bytes,
            "cover": True,
        }
    ]
    assert sandbox.get("/_arrived").json()["pinterest"] == arrived + 1, "only POST /v5/pins"


def test_a_video_without_a_cover_uses_a_key_frame(
    adapter: PinterestAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    adapter.publish(request_for([video_item], coverKeyFrameTime=2.5), NullContext())
    [pin] = ledger(sandbox)
    assert pin["media"][0]["cover"] is False and pin["params"]["source_type"] == "video_id"


def test_a_video_that_fails_processing_is_final(
    adapter: PinterestAdapter, video_item: MediaItem, image_item: MediaItem
) -> None:
    not_a_video = replace(video_item, path=image_item.path)
    with pytest.raises(PermanentError) as failed:
        adapter.publish(request_for([not_a_video]), NullContext())
    assert failed.value.code == "pinterest_media_failed"


def test_a_slow_video_is_retried_from_its_upload(
    adapter: PinterestAdapter, sandbox: httpx.Client, video_item: MediaItem, monkeypatch: Any
) -> None:
    faults(sandbox, processing_seconds=30)
    monkeypatch.setattr("workers.adapters.pinterest.MEDIA_PROCESSING_TIMEOUT_SECONDS", 0.2)
    context = NullContext()
    with pytest.raises(TransientError) as slow:
        adapter.publish(request_for([video_item]), context)
    assert slow.value.code == "pinterest_media_processing"
    assert context.handle and context.handle["media_uploaded"] and not context.handle["media_ready"]
    uploads = sandbox.get("/_uploads", params={"platform": "pinterest"}).json()
    assert len(uploads) == 1, "the retry resumes this upload rather than making another"


def test_rate_limit_waits_for_the_reset_pinterest_names(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    faults(sandbox, rate_limit_every=1, retry_after=45)
    with pytest.raises(PlatformError) as limited:
        adapter.publish(request_for([image_item]), NullContext())
    assert limited.value.outcome is Outcome.RATE_LIMITED
    assert limited.value.code == "pinterest_rate_limited" and limited.value.retry_after == 45
    assert limited.value.details == {"pinterest_code": 29}


@pytest.mark.parametrize(
    ("status", "headers", "body", "code", "outcome"),
    [
        (
            429,
            {},
            {"code": 29, "message": "slow down"},
            "pinterest_rate_limited",
            Outcome.RATE_LIMITED,
        ),
        (
            401,
            {},
            {"code": 2, "message": "Authentication failed."},
            "pinterest_unauthorized",
            Outcome.AUTH_EXPIRED,
        ),
        (
            403,
            {},
            {"code": 3, "message": "Not permitted"},
            "pinterest_forbidden",
            Outcome.PERMANENT,
        ),
        (
            400,
            {},
            {"code": 1, "message": "Invalid"},
            "pinterest_invalid_request",
            Outcome.PERMANENT,
        ),
        (503, {}, {}, "pinterest_server_error", Outcome.TRANSIENT),
    ],
)
def test_classify(
    status: int, headers: dict[str, str], body: dict[str, Any], code: str, outcome: Outcome
) -> None:
    error = classify(httpx.Response(status, headers=headers, json=body))
    assert (error.code, error.outcome) == (code, outcome)
    if status == 429:
        assert error.retry_after == 60.0, "no header: Pinterest's per-minute window"


def test_a_429_with_retry_after_uses_it() -> None:
    error = classify(httpx.Response(429, headers={"Retry-After": "7"}, json={"code": 29}))
    assert error.retry_after == 7


def test_an_expired_token_is_refreshed_into_a_new_pair(adapter: PinterestAdapter) -> None:
    account = make_request("pinterest").account
    fresh = adapter.refresh_token(account)
    assert fresh.access_token.startswith("pinterest-at-")
    assert fresh.refresh_token and fresh.refresh_token != account.refresh_token
    assert fresh.expires_at is not None and fresh.expires_at > datetime.now(UTC)


def test_a_revoked_refresh_token_needs_a_reconnect(
    adapter: PinterestAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, revoked_tokens=["sandbox-refresh"])
    with pytest.raises(AuthRevokedError) as refused:
        adapter.refresh_token(make_request("pinterest").account)
    assert refused.value.code == "pinterest_refresh_refused"


def test_a_revoked_access_token_is_an_auth_failure_the_refresh_decides(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    faults(sandbox, revoked_tokens=["sandbox-token"])
    with pytest.raises(AuthExpiredError):
        adapter.publish(request_for([image_item]), NullContext())


def test_a_lost_answer_is_adopted_on_retry_rather_than_pinned_twice(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    faults(sandbox, lose_response_every=1)
    request = request_for([image_item], title="Once")
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request, context)
    faults(sandbox)

    again = adapter.publish(replace(request, handle=context.handle), NullContext())

    [pin] = ledger(sandbox)
    assert again.platform_post_id == pin["id"] and again.details["reconciled"]


def test_reconcile_ignores_an_older_pin_with_the_same_texts_and_other_boards(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    adapter.publish(request_for([image_item]), NullContext())  # before the attempt began
    adapter.publish(
        replace(request_for([image_item]), settings={"boardId": OTHER_BOARD}), NullContext()
    )
    later = datetime.now(UTC).replace(year=datetime.now(UTC).year + 1)
    found = adapter.reconcile(replace(request_for([image_item]), irreversible_started_at=later))
    assert found.status is ReconcileStatus.NOT_FOUND


def test_delete_takes_the_pin_down(
    adapter: PinterestAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    result = adapter.publish(request_for([image_item]), NullContext())
    adapter.delete_post(make_request("pinterest").account, result.platform_post_id)
    assert "deleted_at" in ledger(sandbox)[0]

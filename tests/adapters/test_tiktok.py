"""TikTok adapter against the sandbox over real HTTP: Direct Post by FILE_UPLOAD."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthExpiredError,
    AuthRevokedError,
    MediaItem,
    NullContext,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.tiktok import TikTokAdapter

MB = 1024 * 1024
PUBLIC = {"privacyLevel": "PUBLIC_TO_EVERYONE"}


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> TikTokAdapter:
    tiktok = TikTokAdapter(http, base_url=sandbox_url)
    tiktok.status_poll_interval = 0.02
    tiktok.status_poll_timeout = 2.0
    return tiktok


def _ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "tiktok"}).json()


def _faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"tiktok": config}).raise_for_status()


def _big_video(tmp_path: Path, size: int) -> MediaItem:
    path = tmp_path / "big.mp4"
    header = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    path.write_bytes(header + b"\x00" * (size - len(header)))
    return MediaItem(
        id="33333333-3333-4333-8333-333333333333",
        kind="video",
        mime_type="video/mp4",
        size_bytes=size,
        path=str(path),
        public_url="https://crier.example/media/public/big-token",
    )


def test_publish_sends_every_setting_under_tiktok_names(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    settings = {
        "privacyLevel": "PUBLIC_TO_EVERYONE",
        "allowComments": False,
        "allowDuet": False,
        "allowStitch": True,
    }
    context = NullContext()
    request = make_request("tiktok", text="New drop #launch", settings=settings, media=[video_item])

    result = adapter.publish(request, context)

    [entry] = _ledger(sandbox)
    assert entry["text"] == "New drop #launch"
    assert entry["params"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert entry["params"]["disable_comment"] is True
    assert entry["params"]["disable_duet"] is True
    assert entry["params"]["disable_stitch"] is False
    assert entry["params"]["source"] == "FILE_UPLOAD"
    assert entry["params"]["total_chunk_count"] == 1
    assert entry["params"]["chunk_size"] == video_item.size_bytes
    assert entry["media"] == [
        {"kind": "video", "mime_type": "video/mp4", "size": video_item.size_bytes}
    ]
    assert result.platform_post_id == entry["id"]
    username = f"sandbox.{entry['account'][:8]}"
    assert result.url == f"https://www.tiktok.com/@{username}/video/{entry['id']}"
    assert result.details["publish_id"] == entry["params"]["publish_id"]
    assert context.irreversible is True
    assert context.handle["publish_id"] == entry["params"]["publish_id"]


def test_private_post_reports_publish_id_until_tiktok_gives_a_post_id(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    request = make_request("tiktok", settings={"privacyLevel": "SELF_ONLY"}, media=[video_item])

    result = adapter.publish(request, NullContext())

    [entry] = _ledger(sandbox)
    assert result.platform_post_id == entry["params"]["publish_id"]
    assert result.url is None
    assert result.details["post_id_pending"] is True


def test_large_video_goes_in_chunks(
    adapter: TikTokAdapter, sandbox: httpx.Client, tmp_path: Path
) -> None:
    video = _big_video(tmp_path, 25 * MB)

    adapter.publish(make_request("tiktok", settings=PUBLIC, media=[video]), NullContext())

    [entry] = _ledger(sandbox)
    assert entry["params"]["chunk_size"] == 10 * MB
    assert entry["params"]["total_chunk_count"] == 2  # floor(25/10); the last holds 15 MB
    assert entry["media"][0]["size"] == 25 * MB


def test_privacy_level_not_offered_fails_before_init(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    context = NullContext()
    request = make_request(
        "tiktok", settings={"privacyLevel": "FOLLOWER_OF_CREATOR"}, media=[video_item]
    )

    with pytest.raises(PermanentError) as caught:
        adapter.publish(request, context)

    assert caught.value.code == "tiktok_privacy_level_not_allowed"
    assert "PUBLIC_TO_EVERYONE" in caught.value.message
    assert context.irreversible is False
    assert _ledger(sandbox) == []


def test_interaction_the_creator_turned_off(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    token = "act.no-duet-creator"
    asked = make_request(
        "tiktok", settings={**PUBLIC, "allowDuet": True}, media=[video_item], access_token=token
    )
    with pytest.raises(PermanentError) as caught:
        adapter.publish(asked, NullContext())
    assert caught.value.code == "tiktok_duet_disabled_by_creator"

    unset = make_request("tiktok", settings=PUBLIC, media=[video_item], access_token=token)
    adapter.publish(unset, NullContext())
    [entry] = _ledger(sandbox)
    assert entry["params"]["disable_duet"] is True
    assert entry["params"]["disable_comment"] is False


def test_rate_limit_waits_the_one_minute_window(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, rate_limit_every=1)

    with pytest.raises(RateLimitedError) as caught:
        adapter.publish(make_request("tiktok", settings=PUBLIC, media=[video_item]), NullContext())

    assert caught.value.code == "tiktok_rate_limit_exceeded"
    assert caught.value.http_status == 429
    assert caught.value.retry_after == 60.0


def test_server_error_is_transient(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, error_rate=1.0, error_status=503)

    with pytest.raises(TransientError) as caught:
        adapter.publish(make_request("tiktok", settings=PUBLIC, media=[video_item]), NullContext())

    assert caught.value.code == "tiktok_internal_error"
    assert caught.value.http_status == 503
    assert _ledger(sandbox) == []


def test_failed_status_with_http_200_is_permanent(
    adapter: TikTokAdapter, sandbox: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "not-a-video.mp4"
    path.write_bytes(b"this is plain text, not an mp4 file")
    broken = MediaItem(
        id="44444444-4444-4444-8444-444444444444",
        kind="video",
        mime_type="video/mp4",
        size_bytes=path.stat().st_size,
        path=str(path),
        public_url="https://crier.example/media/public/broken",
    )

    with pytest.raises(PermanentError) as caught:
        adapter.publish(make_request("tiktok", settings=PUBLIC, media=[broken]), NullContext())

    assert caught.value.code == "tiktok_file_format_check_failed"
    assert caught.value.http_status == 200
    assert _ledger(sandbox) == []


def test_daily_cap_from_creator_info_is_a_rolling_day_quota(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    for n in range(15):
        request = make_request("tiktok", text=f"post {n}", settings=PUBLIC, media=[video_item])
        adapter.publish(request, NullContext())
    context = NullContext()

    with pytest.raises(QuotaExhaustedError) as caught:
        adapter.publish(make_request("tiktok", settings=PUBLIC, media=[video_item]), context)

    assert caught.value.code == "tiktok_spam_risk_too_many_posts"
    assert caught.value.http_status == 200  # creator_info reports the cap with HTTP 200
    expected = datetime.now(UTC) + timedelta(hours=24)
    assert abs((caught.value.retry_at - expected).total_seconds()) < 5
    assert context.irreversible is False
    assert len(_ledger(sandbox)) == 15


def test_expired_token_is_refreshed_with_rotation(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, expired_tokens=["act.expired"])
    request = make_request(
        "tiktok",
        settings=PUBLIC,
        media=[video_item],
        access_token="act.expired",
        refresh_token="rft.first",
    )
    with pytest.raises(AuthExpiredError) as caught:
        adapter.publish(request, NullContext())
    assert caught.value.code == "tiktok_access_token_invalid"
    assert caught.value.http_status == 401

    tokens = adapter.refresh_token(request.account)

    assert tokens.access_token.startswith("act.") and tokens.access_token != "act.expired"
    assert tokens.refresh_token and tokens.refresh_token != "rft.first"
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    fresh = replace(
        request,
        account=replace(
            request.account,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
        ),
    )
    result = adapter.publish(fresh, NullContext())
    assert [e["id"] for e in _ledger(sandbox)] == [result.platform_post_id]
    # Rotation: the refresh token that was just exchanged no longer works.
    with pytest.raises(AuthRevokedError):
        adapter.refresh_token(request.account)


def test_revoked_token_fails_publish_and_refresh(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, revoked_tokens=["act.revoked", "rft.revoked"])
    request = make_request(
        "tiktok",
        settings=PUBLIC,
        media=[video_item],
        access_token="act.revoked",
        refresh_token="rft.revoked",
    )

    # TikTok answers a revoked access token like an expired one; the refresh tells.
    with pytest.raises(AuthExpiredError):
        adapter.publish(request, NullContext())
    with pytest.raises(AuthRevokedError) as caught:
        adapter.refresh_token(request.account)

    assert caught.value.code == "tiktok_oauth_invalid_grant"
    assert _ledger(sandbox) == []


def test_lost_response_is_found_by_reconcile_and_resume_does_not_repost(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, lose_response_every=1)
    context = NullContext()
    request = make_request("tiktok", settings=PUBLIC, media=[video_item])

    with pytest.raises(TransientError):
        adapter.publish(request, context)

    [entry] = _ledger(sandbox)
    saved = replace(request, handle=context.handle)
    found = adapter.reconcile(saved)
    assert found.status == ReconcileStatus.FOUND
    assert found.result is not None and found.result.platform_post_id == entry["id"]

    again = adapter.publish(saved, NullContext())
    assert again.platform_post_id == entry["id"]
    assert len(_ledger(sandbox)) == 1


def test_reconcile_without_publish_id(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    started = datetime.now(UTC).timestamp()
    marker_only = make_request(
        "tiktok",
        text="never uploaded",
        settings=PUBLIC,
        media=[video_item],
        handle={"init_started_at": started},
    )
    missing = adapter.reconcile(marker_only)
    assert missing.status == ReconcileStatus.NOT_FOUND

    published = make_request("tiktok", text="listed publicly", settings=PUBLIC, media=[video_item])
    result = adapter.publish(published, NullContext())
    listed = adapter.reconcile(replace(published, handle={"init_started_at": started}))
    assert listed.status == ReconcileStatus.FOUND
    assert listed.result is not None
    assert listed.result.platform_post_id == result.platform_post_id
    assert listed.result.url == result.url


def test_still_processing_then_resume_polls_the_same_publish_id(
    adapter: TikTokAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, processing_seconds=30)
    adapter.status_poll_timeout = 0.2
    context = NullContext()
    request = make_request("tiktok", settings=PUBLIC, media=[video_item])

    with pytest.raises(TransientError) as caught:
        adapter.publish(request, context)
    assert caught.value.code == "tiktok_still_processing"
    publish_id = context.handle["publish_id"]
    pending = adapter.reconcile(replace(request, handle=context.handle))
    assert pending.status == ReconcileStatus.NOT_FOUND

    _faults(sandbox)  # processing finishes
    result = adapter.publish(replace(request, handle=context.handle), NullContext())

    [entry] = _ledger(sandbox)
    assert result.platform_post_id == entry["id"]
    assert result.details["publish_id"] == publish_id == entry["params"]["publish_id"]


def test_resume_finishes_an_interrupted_chunked_upload(
    adapter: TikTokAdapter, sandbox: httpx.Client, sandbox_url: str, tmp_path: Path
) -> None:
    video = _big_video(tmp_path, 25 * MB)
    auth = {"Authorization": "Bearer sandbox-token"}
    base = f"{sandbox_url}/tiktok"
    creator = httpx.post(f"{base}/v2/post/publish/creator_info/query/", headers=auth, json={})
    source_info = {
        "source": "FILE_UPLOAD",
        "video_size": video.size_bytes,
        "chunk_size": 10 * MB,
        "total_chunk_count": 2,
    }
    post_info = {"title": "resumed upload", "privacy_level": "PUBLIC_TO_EVERYONE"}
    init = httpx.post(
        f"{base}/v2/post/publish/video/init/",
        headers=auth,
        json={"post_info": post_info, "source_info": source_info},
    ).json()["data"]
    first_chunk = Path(video.path).read_bytes()[: 10 * MB]
    put = httpx.put(
        init["upload_url"],
        content=first_chunk,
        headers={"Content-Type": "video/mp4", "Content-Range": f"bytes 0-{10 * MB - 1}/{25 * MB}"},
    )
    assert put.status_code == 206
    handle = {
        "publish_id": init["publish_id"],
        "upload_url": init["upload_url"],
        "initialized_at": datetime.now(UTC).timestamp(),
        "video_size": video.size_bytes,
        "chunk_size": 10 * MB,
        "total_chunk_count": 2,
        "creator_username": creator.json()["data"]["creator_username"],
    }
    request = make_request(
        "tiktok", text="resumed upload", settings=PUBLIC, media=[video], handle=handle
    )

    result = adapter.publish(request, NullContext())

    [entry] = _ledger(sandbox)
    assert entry["params"]["publish_id"] == init["publish_id"]
    assert result.platform_post_id == entry["id"]


@pytest.mark.parametrize("media", ["none", "image"])
def test_text_and_image_posts_are_refused_before_any_call(
    adapter: TikTokAdapter, sandbox: httpx.Client, image_item: MediaItem, media: str
) -> None:
    context = NullContext()
    request = make_request(
        "tiktok", settings=PUBLIC, media=[image_item] if media == "image" else []
    )

    with pytest.raises(PermanentError) as caught:
        adapter.publish(request, context)

    assert caught.value.code == "tiktok_video_required"
    assert context.handle is None

"""YouTube adapter against the sandbox over real HTTP: resumable videos.insert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthExpiredError,
    AuthRevokedError,
    MediaItem,
    NullContext,
    PermanentError,
    PublishRequest,
    QuotaExhaustedError,
    RateLimitedError,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.youtube import YouTubeAdapter, next_quota_reset

SETTINGS = {"title": "Launch day", "privacyStatus": "unlisted", "tags": ["launch", "new feature"]}


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> YouTubeAdapter:
    return YouTubeAdapter(http, base_url=sandbox_url)


def _ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "youtube"}).json()


def _faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"youtube": config}).raise_for_status()


def _request(video: MediaItem, **overrides: object) -> PublishRequest:
    fields: dict = {"text": "Everything new this week.", "settings": SETTINGS, "media": [video]}
    fields.update(overrides)
    return make_request("youtube", **fields)


def _open_session(http: httpx.Client, sandbox_url: str, title: str, size: int) -> str:
    response = http.post(
        f"{sandbox_url}/youtube/upload/youtube/v3/videos",
        params={"uploadType": "resumable", "part": "snippet,status"},
        json={"snippet": {"title": title, "description": "Everything new this week."}},
        headers={"Authorization": "Bearer sandbox-token", "X-Upload-Content-Length": str(size)},
    )
    assert response.status_code == 200
    return response.headers["Location"]


def test_publish_sends_every_setting_under_youtube_names(
    adapter: YouTubeAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    context = NullContext()

    result = adapter.publish(_request(video_item), context)

    [entry] = _ledger(sandbox)
    assert entry["text"] == "Everything new this week."
    assert entry["params"]["snippet"]["title"] == "Launch day"
    assert entry["params"]["snippet"]["tags"] == ["launch", "new feature"]
    assert entry["params"]["status"]["privacyStatus"] == "unlisted"
    assert entry["media"] == [
        {"kind": "video", "mime_type": "video/mp4", "size": video_item.size_bytes}
    ]
    assert result.platform_post_id == entry["id"]
    assert len(entry["id"]) == 11
    assert result.url == f"https://www.youtube.com/watch?v={entry['id']}"
    assert result.details == {"upload_status": "uploaded", "privacy_status": "unlisted"}
    assert context.irreversible is True
    assert "upload_id=" in context.handle["session_uri"]


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"settings": {**SETTINGS, "title": "Big <news>"}}, "youtube_invalid_title"),
        ({"settings": {**SETTINGS, "title": "x" * 101}}, "youtube_invalid_title"),
        ({"text": "é" * 2501}, "youtube_invalid_description"),  # 5002 bytes
        ({"settings": {**SETTINGS, "tags": ["tag" * 40] * 5}}, "youtube_invalid_tags"),
    ],
)
def test_invalid_metadata_is_permanent(
    adapter: YouTubeAdapter,
    sandbox: httpx.Client,
    video_item: MediaItem,
    overrides: dict,
    code: str,
) -> None:
    context = NullContext()

    with pytest.raises(PermanentError) as caught:
        adapter.publish(_request(video_item, **overrides), context)

    assert caught.value.code == code
    assert caught.value.http_status == 400
    assert context.irreversible is False
    assert _ledger(sandbox) == []


def test_an_invalid_privacy_is_refused_before_any_call(
    adapter: YouTubeAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    """The upload is always private, so YouTube would refuse a bad privacy only at the
    irreversible videos.update, after the upload: it is refused before anything is sent."""
    context = NullContext()
    request = _request(video_item, settings={**SETTINGS, "privacyStatus": "friends"})

    with pytest.raises(PermanentError) as caught:
        adapter.publish(request, context)

    assert caught.value.code == "youtube_invalid_video_metadata"
    assert context.handle is None and context.irreversible is False
    assert sandbox.get("/_uploads", params={"platform": "youtube"}).json() == []
    assert _ledger(sandbox) == []


def test_rate_limit_is_403_rate_limit_exceeded(
    adapter: YouTubeAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, rate_limit_every=1)

    with pytest.raises(RateLimitedError) as caught:
        adapter.publish(_request(video_item), NullContext())

    assert caught.value.code == "youtube_rate_limit_exceeded"
    assert caught.value.http_status == 403
    assert caught.value.retry_after == 60.0


def test_insert_bucket_of_100_a_day_waits_for_pacific_midnight(
    adapter: YouTubeAdapter,
    sandbox: httpx.Client,
    sandbox_url: str,
    http: httpx.Client,
    video_item: MediaItem,
) -> None:
    for n in range(100):
        _open_session(http, sandbox_url, f"draft {n}", video_item.size_bytes)

    with pytest.raises(QuotaExhaustedError) as caught:
        adapter.publish(_request(video_item), NullContext())

    pacific = datetime.now(ZoneInfo("America/Los_Angeles"))
    midnight = datetime.combine(
        pacific.date() + timedelta(days=1), datetime.min.time(), pacific.tzinfo
    )
    assert caught.value.code == "youtube_quota_exceeded"
    assert caught.value.http_status == 403
    assert caught.value.scope == "app"
    assert caught.value.retry_at == midnight.astimezone(UTC) == next_quota_reset()


def test_next_quota_reset_follows_daylight_saving() -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)  # PDT, UTC-7
    winter = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # PST, UTC-8
    assert next_quota_reset(summer) == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)
    assert next_quota_reset(winter) == datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def test_server_error_is_transient(
    adapter: YouTubeAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, error_rate=1.0, error_status=503)

    with pytest.raises(TransientError) as caught:
        adapter.publish(_request(video_item), NullContext())

    assert caught.value.code == "youtube_backend_error"
    assert caught.value.http_status == 503


def test_expired_token_is_refreshed_without_rotation(
    adapter: YouTubeAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, expired_tokens=["ya29.expired"])
    request = _request(video_item, access_token="ya29.expired", refresh_token="1//refresh")
    with pytest.raises(AuthExpiredError) as caught:
        adapter.publish(request, NullContext())
    assert caught.value.code == "youtube_auth_error"
    assert caught.value.http_status == 401

    tokens = adapter.refresh_token(request.account)

    assert tokens.access_token.startswith("ya29.") and tokens.access_token != "ya29.expired"
    assert tokens.refresh_token is None  # Google keeps the stored refresh token
    assert tokens.expires_at is not None and tokens.expires_at > datetime.now(UTC)
    fresh = replace(request, account=replace(request.account, access_token=tokens.access_token))
    result = adapter.publish(fresh, NullContext())
    assert [e["id"] for e in _ledger(sandbox)] == [result.platform_post_id]


def test_revoked_token_fails_publish_and_refresh(
    adapter: YouTubeAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, revoked_tokens=["ya29.revoked", "1//revoked"])
    request = _request(video_item, access_token="ya29.revoked", refresh_token="1//revoked")

    # Google answers a revoked access token with the same 401 as an expired one.
    with pytest.raises(AuthExpiredError):
        adapter.publish(request, NullContext())
    with pytest.raises(AuthRevokedError) as caught:
        adapter.refresh_token(request.account)

    assert caught.value.code == "youtube_oauth_invalid_grant"
    assert caught.value.http_status == 400
    assert _ledger(sandbox) == []


def test_lost_response_is_found_by_reconcile_and_resume_does_not_repost(
    adapter: YouTubeAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    _faults(sandbox, lose_response_every=1)
    context = NullContext()
    request = _request(video_item)

    with pytest.raises(TransientError) as caught:
        adapter.publish(request, context)
    assert caught.value.http_status == 504

    [entry] = _ledger(sandbox)
    saved = replace(request, handle=context.handle)
    found = adapter.reconcile(saved)
    assert found.status == ReconcileStatus.FOUND
    assert found.result is not None and found.result.platform_post_id == entry["id"]

    again = adapter.publish(saved, NullContext())
    assert again.platform_post_id == entry["id"]
    assert len(_ledger(sandbox)) == 1


def test_reconcile_not_found_and_found_in_uploads_playlist(
    adapter: YouTubeAdapter,
    sandbox: httpx.Client,
    sandbox_url: str,
    http: httpx.Client,
    video_item: MediaItem,
) -> None:
    empty_session = _open_session(http, sandbox_url, "Launch day", video_item.size_bytes)
    with_session = _request(video_item, handle={"session_uri": empty_session})
    assert adapter.reconcile(with_session).status == ReconcileStatus.NOT_FOUND
    assert adapter.reconcile(_request(video_item)).status == ReconcileStatus.NOT_FOUND

    published = adapter.publish(_request(video_item), NullContext())
    listed = adapter.reconcile(_request(video_item))
    assert listed.status == ReconcileStatus.FOUND
    assert listed.result is not None
    assert listed.result.platform_post_id == published.platform_post_id
    other_title = _request(video_item, settings={**SETTINGS, "title": "Another video"})
    assert adapter.reconcile(other_title).status == ReconcileStatus.NOT_FOUND


def test_resume_sends_only_the_missing_bytes_of_a_saved_session(
    adapter: YouTubeAdapter,
    sandbox: httpx.Client,
    sandbox_url: str,
    http: httpx.Client,
    video_item: MediaItem,
) -> None:
    size = video_item.size_bytes
    session_uri = _open_session(http, sandbox_url, "Launch day", size)
    half = size // 2
    partial = http.put(
        session_uri,
        content=Path(video_item.path).read_bytes()[:half],
        headers={"Content-Range": f"bytes 0-{half - 1}/{size}"},
    )
    assert partial.status_code == 308
    assert partial.headers["Range"] == f"bytes=0-{half - 1}"

    result = adapter.publish(
        _request(video_item, handle={"session_uri": session_uri}), NullContext()
    )

    [entry] = _ledger(sandbox)
    assert result.platform_post_id == entry["id"]
    assert entry["media"][0]["size"] == size


def test_expired_session_starts_a_new_upload(
    adapter: YouTubeAdapter, sandbox: httpx.Client, sandbox_url: str, video_item: MediaItem
) -> None:
    gone = f"{sandbox_url}/youtube/upload/youtube/v3/videos?uploadType=resumable&upload_id=gone"
    context = NullContext()

    result = adapter.publish(_request(video_item, handle={"session_uri": gone}), context)

    [entry] = _ledger(sandbox)
    assert result.platform_post_id == entry["id"]
    assert context.handle["session_uri"] != gone


@pytest.mark.parametrize("media", ["none", "image"])
def test_text_and_image_posts_are_refused_before_any_call(
    adapter: YouTubeAdapter, sandbox: httpx.Client, image_item: MediaItem, media: str
) -> None:
    context = NullContext()
    request = _request(image_item, media=[image_item] if media == "image" else [])

    with pytest.raises(PermanentError) as caught:
        adapter.publish(request, context)

    assert caught.value.code == "youtube_video_required"
    assert context.handle is None

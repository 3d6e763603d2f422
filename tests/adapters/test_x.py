"""The X adapter against the sandbox, over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sandbox.x import USER_DAILY_LIMIT
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
from workers.adapters.x import XAdapter, normalize_post_text


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> XAdapter:
    return XAdapter(http, base_url=sandbox_url)


def ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "x"}).json()


def faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"x": config}).raise_for_status()


def username_of(sandbox: httpx.Client, token: str = "sandbox-token") -> str:
    me = sandbox.get("/x/2/users/me", headers={"Authorization": f"Bearer {token}"}).json()
    return me["data"]["username"]


def test_publishes_text_with_permalink_and_rate_limit_headers(
    adapter: XAdapter, sandbox: httpx.Client
) -> None:
    context = NullContext()
    result = adapter.publish(make_request("x", text="Launch day"), context)

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["text"] == "Launch day"
    assert entry["params"] == {}
    assert result.url == f"https://x.com/{username_of(sandbox)}/status/{entry['id']}"
    rate_limit = result.details["rate_limit"]
    assert (rate_limit["limit"], rate_limit["remaining"]) == (100, 99)
    assert rate_limit["reset_at"] > time.time()
    assert context.irreversible
    assert context.handle["posted_at"]


@pytest.mark.parametrize(
    ("reply_settings", "expected"),
    [("following", "following"), ("mentionedUsers", "mentionedUsers"), ("everyone", None)],
)
def test_reply_settings_reach_x_as_reply_settings(
    adapter: XAdapter, sandbox: httpx.Client, reply_settings: str, expected: str | None
) -> None:
    request = make_request("x", settings={"replySettings": reply_settings})
    adapter.publish(request, NullContext())

    [entry] = ledger(sandbox)
    assert entry["params"].get("reply_settings") == expected


def test_publishes_images_uploaded_one_shot(
    adapter: XAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    result = adapter.publish(make_request("x", media=[image_item, image_item]), NullContext())

    [entry] = ledger(sandbox)
    assert [m["kind"] for m in entry["media"]] == ["image", "image"]
    assert [m["media_category"] for m in entry["media"]] == ["tweet_image", "tweet_image"]
    assert entry["params"]["media"]["media_ids"] == result.details["media_ids"]
    assert len(set(result.details["media_ids"])) == 2


def test_publishes_video_in_chunks_after_processing(
    adapter: XAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    faults(sandbox, processing_seconds=0.3)
    adapter.upload_chunk_bytes = 512  # the 2 KB clip goes up in five segments

    started = time.monotonic()
    adapter.publish(make_request("x", text="Clip", media=[video_item]), NullContext())

    [entry] = ledger(sandbox)
    assert entry["media"][0]["kind"] == "video"
    assert entry["media"][0]["size"] == video_item.size_bytes
    assert entry["media"][0]["media_category"] == "tweet_video"
    # X said check_after_secs=1 while processing: the adapter waited for it.
    assert time.monotonic() - started >= 1


def test_unprocessable_video_is_permanent(
    adapter: XAdapter, sandbox: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "not-a-video.mp4"
    path.write_bytes(b"plain text, not a video" * 10)
    item = MediaItem(
        id="3",
        kind="video",
        mime_type="video/mp4",
        size_bytes=230,
        path=str(path),
        public_url="https://crier.example/x",
    )
    with pytest.raises(PermanentError) as raised:
        adapter.publish(make_request("x", media=[item]), NullContext())
    assert raised.value.code == "x_media_processing_failed"
    assert ledger(sandbox) == []


def test_rate_limit_reads_x_rate_limit_reset(adapter: XAdapter, sandbox: httpx.Client) -> None:
    faults(sandbox, rate_limit_every=1, retry_after=42)

    with pytest.raises(RateLimitedError) as raised:
        adapter.publish(make_request("x"), NullContext())
    # Whole seconds from X's Date to its reset epoch; the clock may tick between the two.
    assert raised.value.retry_after in (41, 42)
    assert raised.value.code == "x_rate_limited"
    assert raised.value.http_status == 429


def test_exhausted_24_hour_user_limit_is_quota(adapter: XAdapter, sandbox: httpx.Client) -> None:
    headers = {"Authorization": "Bearer sandbox-token"}
    for n in range(USER_DAILY_LIMIT):
        sandbox.post("/x/2/tweets", json={"text": f"post {n}"}, headers=headers).raise_for_status()
    probe = sandbox.post("/x/2/tweets", json={"text": "probe"}, headers=headers)
    assert probe.status_code == 429
    reset = int(probe.headers["x-user-limit-24hour-reset"])

    with pytest.raises(QuotaExhaustedError) as raised:
        adapter.publish(make_request("x", text="one too many"), NullContext())
    assert raised.value.retry_at == datetime.fromtimestamp(reset, UTC)
    assert raised.value.code == "x_user_daily_limit"


def test_duplicate_text_is_duplicate(adapter: XAdapter, sandbox: httpx.Client) -> None:
    adapter.publish(make_request("x", text="Same words"), NullContext())
    with pytest.raises(DuplicateError) as raised:
        adapter.publish(make_request("x", text="Same words"), NullContext())
    assert raised.value.code == "x_duplicate_content"
    assert raised.value.http_status == 403
    assert len(ledger(sandbox)) == 1


def test_server_error_is_transient(adapter: XAdapter, sandbox: httpx.Client) -> None:
    faults(sandbox, error_rate=1.0, error_status=503)
    with pytest.raises(TransientError) as raised:
        adapter.publish(make_request("x"), NullContext())
    assert (raised.value.code, raised.value.http_status) == ("x_server_error", 503)


def test_too_long_text_is_permanent(adapter: XAdapter, sandbox: httpx.Client) -> None:
    with pytest.raises(PermanentError) as raised:
        adapter.publish(make_request("x", text="x" * 281), NullContext())
    assert (raised.value.code, raised.value.http_status) == ("x_invalid_request", 400)
    assert "280" in raised.value.message
    assert ledger(sandbox) == []


def test_expired_token_is_refreshed_once_and_the_new_one_publishes(
    adapter: XAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, expired_tokens=["sandbox-token"])
    request = make_request("x")
    with pytest.raises(AuthExpiredError):
        adapter.publish(request, NullContext())

    tokens = adapter.refresh_token(request.account)
    assert tokens.access_token != "sandbox-token"
    assert tokens.refresh_token and tokens.refresh_token != "sandbox-refresh"
    assert tokens.expires_at is not None

    adapter.publish(make_request("x", access_token=tokens.access_token), NullContext())
    assert len(ledger(sandbox)) == 1
    # X refresh tokens are single-use: the old one is now refused.
    with pytest.raises(AuthRevokedError) as raised:
        adapter.refresh_token(request.account)
    assert raised.value.code == "x_refresh_refused"


def test_revoked_token_fails_publish_then_refresh(adapter: XAdapter, sandbox: httpx.Client) -> None:
    faults(sandbox, revoked_tokens=["sandbox-token", "sandbox-refresh"])
    request = make_request("x")
    # X answers a revoked token with the same 401 as an expired one; refresh tells them apart.
    with pytest.raises(AuthExpiredError):
        adapter.publish(request, NullContext())
    with pytest.raises(AuthRevokedError):
        adapter.refresh_token(request.account)


def test_reconcile_finds_a_post_whose_response_was_lost(
    adapter: XAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    faults(sandbox, lose_response_every=1)
    text = "Lost & found: see https://example.com/news <today>"
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(make_request("x", text=text, media=[image_item]), context)
    [entry] = ledger(sandbox)

    outcome = adapter.reconcile(make_request("x", text=text, handle=context.handle))
    assert outcome.status == ReconcileStatus.FOUND
    assert outcome.result.platform_post_id == entry["id"]
    assert outcome.result.url == f"https://x.com/{username_of(sandbox)}/status/{entry['id']}"


def test_reconcile_not_found_when_nothing_was_posted(
    adapter: XAdapter, sandbox: httpx.Client
) -> None:
    adapter.publish(make_request("x", text="Another post"), NullContext())
    handle = {"posted_at": datetime.now(UTC).isoformat()}

    outcome = adapter.reconcile(make_request("x", text="Never sent", handle=handle))
    assert outcome.status == ReconcileStatus.NOT_FOUND


def test_resume_after_lost_response_adopts_the_post(
    adapter: XAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(make_request("x", text="Only once"), context)
    sandbox.post("/_faults", json={}).raise_for_status()

    result = adapter.publish(
        make_request("x", text="Only once", handle=context.handle), NullContext()
    )
    [entry] = ledger(sandbox)
    assert result.platform_post_id == entry["id"]


def test_resume_reuses_uploaded_media(
    adapter: XAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    context = NullContext()
    with pytest.raises(PermanentError):  # uploaded, then refused at POST /2/tweets
        adapter.publish(make_request("x", text="y" * 300, media=[image_item]), context)
    assert ledger(sandbox) == []
    handle = {key: context.handle[key] for key in ("media_ids", "media_keys", "media_expires_at")}

    adapter.publish(
        make_request("x", text="fixed", media=[image_item], handle=handle), NullContext()
    )
    [entry] = ledger(sandbox)
    assert entry["params"]["media"]["media_ids"] == handle["media_ids"]


def test_normalized_text_ignores_x_link_rewriting() -> None:
    sent = "Fish & chips <3 https://example.com/menu"
    returned = "Fish &amp; chips &lt;3 https://t.co/abc123 https://t.co/media9"
    assert normalize_post_text(returned) == normalize_post_text(sent) == "Fish & chips <3"

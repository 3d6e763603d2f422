"""Threads adapter against the sandbox over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
from workers.adapters.threads import ThreadsAdapter

THREADS_USER = "1784140000000001"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> ThreadsAdapter:
    threads = ThreadsAdapter(http, base_url=sandbox_url)
    threads.poll_interval = 0.05
    threads.max_wait = 2.0
    return threads


def ledger(sandbox: httpx.Client) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": "threads"}).json()


def set_faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"threads": config}).raise_for_status()


def test_text_post(sandbox: httpx.Client, adapter: ThreadsAdapter) -> None:
    context = NullContext()
    result = adapter.publish(make_request("threads", "Plain words 🧵"), context)

    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["account"] == THREADS_USER
    assert entry["text"] == "Plain words 🧵"
    assert entry["params"] == {"media_type": "TEXT"}
    assert entry["media"] == []
    assert result.url == f"https://www.threads.net/@sandbox_{THREADS_USER}/post/" + str(
        result.details["shortcode"]
    )
    assert result.details["rate_limit"]["remaining"] == 99  # 1 of 250
    assert context.irreversible


def test_image_and_video_posts(
    sandbox: httpx.Client, adapter: ThreadsAdapter, image_item: MediaItem, video_item: MediaItem
) -> None:
    adapter.publish(make_request("threads", "Picture", media=[image_item]), NullContext())
    adapter.publish(make_request("threads", "Movie", media=[video_item]), NullContext())

    image, video = ledger(sandbox)
    assert image["params"] == {"media_type": "IMAGE"}
    assert image["media"] == [{"kind": "image", "url": image_item.public_url}]
    assert video["params"] == {"media_type": "VIDEO"}
    assert video["media"] == [{"kind": "video", "url": video_item.public_url}]


def test_several_media_make_a_carousel(
    sandbox: httpx.Client, adapter: ThreadsAdapter, image_item: MediaItem, video_item: MediaItem
) -> None:
    result = adapter.publish(
        make_request("threads", "Both", media=[image_item, video_item]), NullContext()
    )
    [entry] = ledger(sandbox)
    assert entry["id"] == result.platform_post_id
    assert entry["params"] == {
        "media_type": "CAROUSEL",
        "children": [
            {"media_type": "IMAGE", "is_carousel_item": True},
            {"media_type": "VIDEO", "is_carousel_item": True},
        ],
    }
    assert result.details["media_type"] == "CAROUSEL_ALBUM"


def test_app_throttle_is_rate_limited_app_wide(
    sandbox: httpx.Client, adapter: ThreadsAdapter
) -> None:
    set_faults(sandbox, rate_limit_every=1, retry_after=90)
    with pytest.raises(RateLimitedError) as caught:
        adapter.publish(make_request("threads", "Throttled"), NullContext())
    error = caught.value
    assert error.details["graph_code"] == 4
    assert error.scope == "app"
    assert error.retry_after == 120.0  # 90 s reported as 2 whole minutes


def test_daily_cap_is_quota_exhausted(sandbox: httpx.Client, adapter: ThreadsAdapter) -> None:
    for number in range(250):
        adapter.publish(make_request("threads", f"note {number}"), NullContext())
    with pytest.raises(QuotaExhaustedError) as caught:
        adapter.publish(make_request("threads", "note 250"), NullContext())
    retry_at = caught.value.retry_at
    assert retry_at is not None
    assert abs((retry_at - (datetime.now(UTC) + timedelta(hours=24))).total_seconds()) < 90
    assert len(ledger(sandbox)) == 250


def test_server_error_is_transient(sandbox: httpx.Client, adapter: ThreadsAdapter) -> None:
    set_faults(sandbox, error_rate=1.0, error_status=500)
    with pytest.raises(TransientError) as caught:
        adapter.publish(make_request("threads", "Later"), NullContext())
    assert caught.value.http_status == 500


def test_text_over_the_limit_is_permanent(sandbox: httpx.Client, adapter: ThreadsAdapter) -> None:
    # 499 letters and one emoji of 4 UTF-8 bytes: 503 by Threads' count.
    with pytest.raises(PermanentError) as caught:
        adapter.publish(make_request("threads", "a" * 499 + "😀"), NullContext())
    assert caught.value.code == "threads_invalid_parameter"
    assert caught.value.message == "Param text must be at most 500 characters long."
    assert ledger(sandbox) == []


def test_expired_token_is_refreshed_and_the_new_one_publishes(
    sandbox: httpx.Client, adapter: ThreadsAdapter
) -> None:
    set_faults(sandbox, expired_tokens=["stale"])
    request = make_request("threads", "Fresh", access_token="stale")
    with pytest.raises(AuthExpiredError):
        adapter.publish(request, NullContext())

    tokens = adapter.refresh_token(request.account)
    assert tokens.access_token.startswith("THAA")
    assert tokens.refresh_token is None
    result = adapter.publish(
        make_request("threads", "Fresh", access_token=tokens.access_token), NullContext()
    )
    assert [e["id"] for e in ledger(sandbox)] == [result.platform_post_id]


def test_revoked_token_fails_publish_and_refresh(
    sandbox: httpx.Client, adapter: ThreadsAdapter
) -> None:
    set_faults(sandbox, revoked_tokens=["gone"])
    request = make_request("threads", "Nope", access_token="gone")
    with pytest.raises(AuthRevokedError):
        adapter.publish(request, NullContext())
    with pytest.raises(AuthRevokedError) as caught:
        adapter.refresh_token(request.account)
    assert caught.value.code == "threads_auth_revoked"


def test_lost_response_is_found_by_reconcile_and_resume_publishes_once(
    sandbox: httpx.Client, adapter: ThreadsAdapter
) -> None:
    set_faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(make_request("threads", "Did it go?"), context)
    [entry] = ledger(sandbox)

    retry = make_request("threads", "Did it go?", handle=context.handle)
    outcome = adapter.reconcile(retry)
    assert outcome.status is ReconcileStatus.FOUND
    assert outcome.result is not None and outcome.result.platform_post_id == entry["id"]
    assert adapter.publish(retry, NullContext()).platform_post_id == entry["id"]
    assert len(ledger(sandbox)) == 1


def test_container_never_published_reconciles_as_not_found(
    sandbox: httpx.Client, adapter: ThreadsAdapter
) -> None:
    set_faults(sandbox, rate_limit_every=2)
    context = NullContext()
    with pytest.raises(RateLimitedError):
        adapter.publish(make_request("threads", "Held back"), context)
    retry = make_request("threads", "Held back", handle=context.handle)
    assert adapter.reconcile(retry).status is ReconcileStatus.NOT_FOUND

    set_faults(sandbox)
    result = adapter.publish(retry, NullContext())
    assert result.details["container_id"] == context.handle["container_id"]
    assert [e["id"] for e in ledger(sandbox)] == [result.platform_post_id]

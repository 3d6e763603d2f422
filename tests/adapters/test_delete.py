"""Deleting a published post through each adapter's delete call, against the sandbox."""

from __future__ import annotations

import httpx
import pytest

from tests.adapters.conftest import make_request
from workers.adapters import get_adapter
from workers.adapters.base import MediaItem, NullContext, PermanentError, PlatformError


@pytest.mark.parametrize("platform", ["x", "linkedin", "facebook", "threads", "youtube"])
def test_a_published_post_is_deleted_once(
    platform: str,
    http: httpx.Client,
    sandbox_url: str,
    sandbox: httpx.Client,
    video_item: MediaItem,
) -> None:
    adapter = get_adapter(platform, http, sandbox_url)
    if platform == "youtube":
        request = make_request(platform, "Soon gone", {"title": "Gone soon"}, [video_item])
    else:
        request = make_request(platform, text=f"Soon gone from {platform}")
    result = adapter.publish(request, NullContext())
    adapter.delete_post(request.account, result.platform_post_id)
    [entry] = sandbox.get("/_ledger").json()
    assert entry["id"] == result.platform_post_id and entry["deleted_at"]
    with pytest.raises(PlatformError) as missing:
        adapter.delete_post(request.account, result.platform_post_id)
    # Graph answers a missing object with 400 (code 100), the others with 404.
    assert missing.value.http_status in (400, 404)


@pytest.mark.parametrize("platform", ["instagram", "tiktok"])
def test_platforms_without_a_delete_call_say_so(
    platform: str, http: httpx.Client, sandbox_url: str
) -> None:
    adapter = get_adapter(platform, http, sandbox_url)
    with pytest.raises(PermanentError) as refused:
        adapter.delete_post(make_request(platform).account, "123")
    assert refused.value.code == "delete_not_supported"

"""The contract every registered adapter honours, checked the same way for every platform.

Each adapter is a registered `Adapter` subclass with the interface's attributes, builds its
URLs under CRIER_PLATFORM_BASE_URL, publishes the simplest post its platform allows against the
sandbox, finds that post again by reconcile, and reports a broken platform as a
classified `PlatformError`, never a bare exception.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.pinterest import DEFAULT_LOGIN, boards_of
from tests.adapters.conftest import make_request
from workers.adapters import adapter_classes, get_adapter
from workers.adapters.base import (
    Adapter,
    MediaItem,
    PlatformError,
    PublishRequest,
    PublishResult,
    ReconcileStatus,
    TransientError,
)

PLATFORMS = (
    "instagram",
    "facebook",
    "threads",
    "x",
    "linkedin",
    "tiktok",
    "youtube",
    "telegram",
    "discord",
    "bluesky",
    "mastodon",
    "pinterest",
    "wordpress",
)
# Platforms whose host is the account's own (a WordPress site): no fixed hosts.
PER_ACCOUNT_HOST = ("wordpress",)
REGISTERED = sorted(adapter_classes())

# Account ids as each platform wants them: Meta ids go in paths, LinkedIn wants an author URN.
EXTERNAL_IDS = {
    "instagram": "1784140000000001",
    "facebook": "1784140000000001",
    "threads": "1784140000000001",
    "x": "2244994945",
    "linkedin": "urn:li:person:8675309",
    "tiktok": None,
    "youtube": None,
    "telegram": "@crier_contract",
    "discord": "1300000000000000001",
    # Where the account posts: its handle, its profile URL (which names the instance).
    "bluesky": "contract.bsky.social",
    "mastodon": "https://sandbox.social/@contract",
    "pinterest": None,
    "wordpress": "https://blog.example.com",
}
# Tokens in the form a platform's credential takes, where it has one.
TOKENS = {"wordpress": "editor:contract-application-password"}

# The simplest post each platform accepts: (settings, media kind or None).
SIMPLEST: dict[str, tuple[dict[str, Any], str | None]] = {
    "x": ({}, None),
    "linkedin": ({}, None),
    "facebook": ({}, None),
    "threads": ({}, None),
    "instagram": ({"contentType": "Post"}, "image"),  # Instagram has no text-only post
    "tiktok": ({"privacyLevel": "PUBLIC_TO_EVERYONE"}, "video"),  # Direct Post: one video
    "youtube": ({"title": "Contract check"}, "video"),  # videos.insert: one video, a title
    "telegram": ({}, None),
    "discord": ({}, None),
    "bluesky": ({}, None),
    "mastodon": ({}, None),
    # A Pin: an image on a board (the sandbox's default user's first).
    "pinterest": ({"boardId": boards_of(DEFAULT_LOGIN)[0]["id"]}, "image"),
    "wordpress": ({"title": "Contract check"}, None),  # a post needs a title
}

# What reconcile answers for a post that is on the sandbox. Every platform here can be
# asked, so all find it. In production UNKNOWN is possible for: LinkedIn (the token lacks
# r_member_social / r_organization_social, 403 on the listing), YouTube (the upload
# session expired and the token may not list the channel's uploads), and Instagram /
# Threads (the container says PUBLISHED but the post is not in the recent listing). X,
# Facebook and TikTok never answer UNKNOWN: they find the post or say it is not there.
# Telegram's Bot API cannot read a chat's history: UNKNOWN always (adapter.cannot_reconcile).
RECONCILE_EXPECTED = {
    **dict.fromkeys(PLATFORMS, ReconcileStatus.FOUND),
    "telegram": ReconcileStatus.UNKNOWN,
}

# Poll intervals shortened so a test never sleeps a production interval.
FAST_POLLING = {
    "poll_interval": 0.05,
    "max_wait": 2.0,
    "status_poll_interval": 0.02,
    "status_poll_timeout": 2.0,
    "video_poll_seconds": 0.05,
}


class RecordingContext:
    """Records every saved handle and the handle as it stood at the irreversible mark."""

    def __init__(self) -> None:
        self.handle: dict[str, Any] | None = None
        self.handle_at_irreversible: dict[str, Any] | None = None
        self.irreversible_at: datetime | None = None

    def save_handle(self, handle: dict[str, Any]) -> None:
        self.handle = dict(handle)

    def mark_irreversible(self) -> None:
        self.irreversible_at = datetime.now(UTC)
        self.handle_at_irreversible = dict(self.handle) if self.handle is not None else None


def adapter_for(platform: str, http: httpx.Client, sandbox_url: str) -> Adapter:
    adapter = get_adapter(platform, http, sandbox_url)
    for name, value in FAST_POLLING.items():
        if hasattr(adapter, name):
            setattr(adapter, name, value)
    return adapter


def simplest_request(
    platform: str, image_item: MediaItem, video_item: MediaItem, text: str
) -> PublishRequest:
    settings, kind = SIMPLEST[platform]
    media = {"image": [image_item], "video": [video_item], None: []}[kind]
    return make_request(
        platform,
        text=text,
        settings=dict(settings),
        media=media,
        access_token=TOKENS.get(platform, f"{platform}-contract-token"),
        external_id=EXTERNAL_IDS[platform],
    )


def ledger(sandbox: httpx.Client, platform: str) -> list[dict[str, Any]]:
    return sandbox.get("/_ledger", params={"platform": platform}).json()


# -- the registry -------------------------------------------------------------------------


def test_every_platform_has_exactly_one_adapter() -> None:
    assert sorted(REGISTERED) == sorted(PLATFORMS)


# -- static contract ----------------------------------------------------------------------


@pytest.mark.parametrize("platform", REGISTERED)
def test_adapter_class_honours_the_interface(platform: str) -> None:
    cls = adapter_classes()[platform]
    assert issubclass(cls, Adapter)
    assert cls.platform == platform
    assert platform in PLATFORMS
    assert "api" in cls.hosts or (platform in PER_ACCOUNT_HOST and cls.hosts == {})
    for role, host in cls.hosts.items():
        assert host and "/" not in host and ":" not in host, f"{role}: {host!r} is not a host"
    assert not inspect.isabstract(cls), f"abstract: {sorted(cls.__abstractmethods__)}"
    assert cls.publish is not Adapter.publish
    assert cls.reconcile is not Adapter.reconcile
    overrides_refresh = cls.refresh_token is not Adapter.refresh_token
    assert cls.supports_refresh == overrides_refresh
    if cls.refreshes_access_token:
        assert cls.supports_refresh


@pytest.mark.parametrize("platform", REGISTERED)
def test_urls_honour_the_base_url(platform: str, http: httpx.Client) -> None:
    cls = adapter_classes()[platform]
    sandboxed = cls(http, base_url="http://127.0.0.1:8090/")
    real = cls(http)
    # A host that is another platform's API (Instagram via Facebook Login) is served under
    # that platform's prefix.
    assert set(cls.host_platforms) <= set(cls.hosts)
    assert set(cls.host_platforms.values()) <= set(REGISTERED)
    for role, host in cls.hosts.items():
        prefix = cls.host_platforms.get(role, platform)
        assert sandboxed.url("/v1/things", host=role) == f"http://127.0.0.1:8090/{prefix}/v1/things"
        assert real.url("/v1/things", host=role) == f"https://{host}/v1/things"
    assert sandboxed.url("/v1/things") == f"http://127.0.0.1:8090/{platform}/v1/things"


# -- behaviour against the sandbox --------------------------------------------------------


@pytest.mark.parametrize("platform", REGISTERED)
def test_publishes_the_simplest_post_and_reconcile_finds_it(
    platform: str,
    http: httpx.Client,
    sandbox_url: str,
    sandbox: httpx.Client,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    adapter = adapter_for(platform, http, sandbox_url)
    request = simplest_request(platform, image_item, video_item, f"Contract post on {platform}")
    context = RecordingContext()

    started = datetime.now(UTC)
    result = adapter.publish(request, context)

    assert isinstance(result, PublishResult)
    assert isinstance(result.platform_post_id, str) and result.platform_post_id
    [entry] = ledger(sandbox, platform)
    assert entry["id"] == result.platform_post_id
    assert context.irreversible_at is not None, "publish never marked its irreversible call"

    # A worker that died mid-request left the handle as it was at the irreversible mark; one
    # that died after the answer left the final handle. Both must find the same post.
    for label, handle in (
        ("at the irreversible mark", context.handle_at_irreversible),
        ("after publishing", context.handle),
    ):
        outcome = adapter.reconcile(
            replace(request, handle=handle, irreversible_started_at=started)
        )
        assert outcome.status in (ReconcileStatus.FOUND, ReconcileStatus.UNKNOWN), label
        assert outcome.status == RECONCILE_EXPECTED[platform], f"{label}: {outcome.reason}"
        if outcome.status == ReconcileStatus.FOUND:
            assert outcome.result is not None
            assert outcome.result.platform_post_id == result.platform_post_id, label
    assert len(ledger(sandbox, platform)) == 1, "reconcile must never post"


@pytest.mark.parametrize("platform", REGISTERED)
def test_reconcile_finds_nothing_when_nothing_was_posted(
    platform: str,
    http: httpx.Client,
    sandbox_url: str,
    sandbox: httpx.Client,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    adapter = adapter_for(platform, http, sandbox_url)
    request = simplest_request(platform, image_item, video_item, f"Never sent to {platform}")

    outcome = adapter.reconcile(replace(request, irreversible_started_at=datetime.now(UTC)))

    expected = ReconcileStatus.UNKNOWN if adapter.cannot_reconcile else ReconcileStatus.NOT_FOUND
    assert outcome.status == expected, outcome.reason
    assert ledger(sandbox, platform) == []


@pytest.mark.parametrize("platform", REGISTERED)
def test_server_errors_are_classified_transient(
    platform: str,
    http: httpx.Client,
    sandbox_url: str,
    sandbox: httpx.Client,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    sandbox.post(
        "/_faults", json={platform: {"error_rate": 1, "error_status": 500}}
    ).raise_for_status()
    adapter = adapter_for(platform, http, sandbox_url)
    request = simplest_request(platform, image_item, video_item, f"Broken {platform}")

    try:
        adapter.publish(request, RecordingContext())
    except Exception as exc:  # the point: whatever escapes must be a PlatformError
        raised: Exception = exc
    else:
        pytest.fail(f"{platform} published while the sandbox answered 500 to everything")

    assert isinstance(raised, PlatformError), f"bare {type(raised).__name__}: {raised}"
    assert isinstance(raised, TransientError), f"{type(raised).__name__} {raised.code}"
    assert raised.code.startswith(f"{platform}_")
    assert ledger(sandbox, platform) == []

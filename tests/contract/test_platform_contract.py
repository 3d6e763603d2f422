"""One contract, every platform: the real adapter against the real sandbox over HTTP,
through the same cases (publish, media, errors, rate limits, reconciliation,
prepare-ahead, connect).

What a platform takes comes from where Crier already declares it: the rules table
(`app.platforms.PLATFORMS`: text-only posts, images, videos) and the adapter class
(`can_prepare`). What this suite adds per platform is only test data: the
settings a minimal post needs and how the platform answers an injected rate limit. A case
that does not apply to a platform is skipped with the reason; none is left out silently.
Adding a platform means adding its row to PROFILES and passing every case.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import app.connect_flows  # noqa: F401  (registers the connect flows)
from app.config import Settings
from app.oauth import (
    ClientApp,
    ConnectedIdentity,
    credential_connect_reason,
    credential_flow_class,
    flow_class,
    get_flow,
    pkce_pair,
)
from app.platforms import PLATFORMS
from sandbox import SANDBOX_PLATFORMS
from sandbox import pinterest as pinterest_sandbox
from tests.adapters.conftest import make_request
from workers.adapters import adapter_classes, get_adapter
from workers.adapters.base import (
    Adapter,
    MediaItem,
    NullContext,
    Outcome,
    PlatformError,
    PreparingContext,
    PublishRequest,
    ReadyToPublish,
    ReconcileStatus,
)
from workers.adapters.linkedin import next_utc_midnight


@dataclass(frozen=True)
class Profile:
    """A platform's test data: what a minimal post needs, and what the sandbox's
    injected faults mean on it."""

    settings: dict[str, Any] = field(default_factory=dict)
    external_id: str | None = "1784140000000001"
    # The outcome and wait (seconds; None: until a quota resets) of a rate-limit fault
    # whose retry_after is RATE_LIMIT_FAULT_SECONDS.
    rate_limit: tuple[Outcome, float | None] = (Outcome.RATE_LIMITED, 120.0)
    # The outcome a revoked token gets (X and TikTok cannot tell it from an expired one).
    revoked: Outcome = Outcome.AUTH_REVOKED
    # What the connect page's form takes, for platforms that connect with a credential.
    credential: dict[str, str] = field(default_factory=dict)
    # The account's token made from a test token, where the platform's credential has a
    # form of its own (WordPress: `user:application-password`).
    token_form: str = "{}"


RATE_LIMIT_FAULT_SECONDS = 120
PINTEREST_BOARD = pinterest_sandbox.boards_of(pinterest_sandbox.DEFAULT_LOGIN)[0]["id"]
PROFILES: dict[str, Profile] = {
    "instagram": Profile(),
    "facebook": Profile(),
    "threads": Profile(),
    # X names the reset instant (x-rate-limit-reset); a revoked token is a plain 401.
    "x": Profile(revoked=Outcome.AUTH_EXPIRED),
    # LinkedIn's throttle is its daily quota, spent until midnight UTC.
    "linkedin": Profile(
        external_id="urn:li:person:sandbox",
        rate_limit=(Outcome.QUOTA_EXHAUSTED, None),
    ),
    # TikTok's rate limit is a one-minute window and names no wait.
    "tiktok": Profile(
        settings={"privacyLevel": "PUBLIC_TO_EVERYONE"},
        rate_limit=(Outcome.RATE_LIMITED, 60.0),
        revoked=Outcome.AUTH_EXPIRED,
    ),
    # YouTube's rateLimitExceeded names no wait: Google's quotas are per minute. Google
    # answers a revoked token as an invalid one (401): the refresh decides.
    "youtube": Profile(
        settings={"title": "Contract"},
        rate_limit=(Outcome.RATE_LIMITED, 60.0),
        revoked=Outcome.AUTH_EXPIRED,
    ),
    # Telegram names its flood wait (parameters.retry_after); a bot token never expires,
    # so a 401 is a revoked one.
    "telegram": Profile(
        external_id="@crier_contract", credential={"chat": "https://t.me/crier_contract"}
    ),
    # Discord's 429 names retry_after (seconds, a float); the contract's token is a bot's.
    "discord": Profile(external_id="1300000000000000001"),
    # Bluesky signs in with the handle and an app password (the access token); a revoked
    # app password is a refused sign-in. Its 429 names the reset (RateLimit-Reset).
    "bluesky": Profile(
        external_id="contract.bsky.social",
        credential={"handle": "contract.bsky.social", "app_password": "abcd-efgh-ijkl-mnop"},
    ),
    # Mastodon: the account's profile URL names its instance. Its 429 names the reset as
    # an ISO time (X-RateLimit-Reset); an invalid token cannot be refreshed.
    "mastodon": Profile(external_id="https://sandbox.social/@contract"),
    # Pinterest answers a revoked token as an invalid one (401); its 429 names the wait in
    # x-ratelimit-reset. The board is the default sandbox user's first.
    "pinterest": Profile(
        settings={"boardId": PINTEREST_BOARD}, external_id=None, revoked=Outcome.AUTH_EXPIRED
    ),
    # WordPress: the account is a site, its token an application password; a host's 429
    # names its wait in Retry-After.
    "wordpress": Profile(
        settings={"title": "Contract"},
        external_id="https://blog.example.com",
        token_form="editor:{}",
        credential={
            "site_url": "https://blog.example.com/",
            "username": "editor",
            "application_password": "abcd EFGH 1234 ijkl MNOP 5678",
        },
    ),
}
PLATFORM_NAMES = sorted(PROFILES)


def test_every_platform_has_a_profile() -> None:
    """A new adapter, sandbox module or rules entry cannot skip the contract."""
    assert set(PROFILES) == set(adapter_classes()) == set(SANDBOX_PLATFORMS) == set(PLATFORMS)


# -- helpers --------------------------------------------------------------------------------


@pytest.fixture
def faults(sandbox: httpx.Client, platform: str) -> Any:
    def set_faults(**config: Any) -> None:
        sandbox.post("/_faults", json={platform: config}).raise_for_status()

    return set_faults


@pytest.fixture(params=PLATFORM_NAMES)
def platform(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def adapter(platform: str, http: httpx.Client, sandbox_url: str) -> Adapter:
    adapter = get_adapter(platform, http, sandbox_url)
    # Poll the sandbox's instant processing briskly.
    for name, value in (("poll_interval", 0.05), ("status_poll_interval", 0.02)):
        if hasattr(adapter, name):
            setattr(adapter, name, value)
    return adapter


def request_for(
    platform: str,
    media: list[MediaItem],
    text: str = "Contract post",
    access_token: str = "sandbox-token",
) -> PublishRequest:
    profile = PROFILES[platform]
    return make_request(
        platform,
        text=text,
        settings=dict(profile.settings),
        media=media,
        external_id=profile.external_id,
        access_token=profile.token_form.format(access_token),
    )


def simplest(platform: str, image: MediaItem, video: MediaItem) -> list[MediaItem]:
    """The media of the simplest post the platform takes."""
    rules = PLATFORMS[platform].media
    if not rules.required:
        return []
    return [image] if rules.max_images else [video]


def staged(platform: str, image: MediaItem, video: MediaItem) -> list[MediaItem]:
    """Media for a post with something to stage ahead: an image where the platform takes
    one, else a video."""
    return [image] if PLATFORMS[platform].media.max_images else [video]


def ledger(sandbox: httpx.Client, platform: str) -> list[dict[str, Any]]:
    return list(sandbox.get("/_ledger", params={"platform": platform}).json())


def published(sandbox: httpx.Client, platform: str, post_id: str) -> dict[str, Any]:
    """The ledger entry of the post the adapter reported (TikTok reports the publish id
    while its post id is pending; the sandbox records the post under either)."""
    entries = ledger(sandbox, platform)
    assert len(entries) == 1, entries
    entry = entries[0]
    assert post_id in (entry["id"], entry["params"].get("publish_id")), (post_id, entry)
    return entry


def failure(adapter: Adapter, request: PublishRequest) -> PlatformError:
    with pytest.raises(PlatformError) as raised:
        adapter.publish(request, NullContext())
    return raised.value


# -- publish and media ------------------------------------------------------------------------


def test_publishes_text(platform: str, adapter: Adapter, sandbox: httpx.Client) -> None:
    if PLATFORMS[platform].media.required:
        pytest.skip(f"not applicable: {platform} needs {PLATFORMS[platform].media.needs}")
    result = adapter.publish(request_for(platform, []), NullContext())
    entry = published(sandbox, platform, result.platform_post_id)
    assert entry["text"] == "Contract post" and entry["media"] == []
    assert result.url and result.url.startswith("https://")


def test_publishes_an_image(
    platform: str, adapter: Adapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    if not PLATFORMS[platform].media.max_images:
        pytest.skip(f"not applicable: {platform} takes no images")
    result = adapter.publish(request_for(platform, [image_item]), NullContext())
    entry = published(sandbox, platform, result.platform_post_id)
    assert [m["kind"] for m in entry["media"]] == ["image"]
    assert result.url and result.url.startswith("https://")


def test_publishes_a_video(
    platform: str, adapter: Adapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    if not PLATFORMS[platform].media.max_videos:
        pytest.skip(f"not applicable: {platform} takes no videos")
    result = adapter.publish(request_for(platform, [video_item]), NullContext())
    entry = published(sandbox, platform, result.platform_post_id)
    assert [m["kind"] for m in entry["media"]] == ["video"]
    assert entry["text"] == "Contract post" or entry["params"]


# -- errors -----------------------------------------------------------------------------------


def test_a_server_error_is_transient(
    platform: str, adapter: Adapter, faults: Any, image_item: MediaItem, video_item: MediaItem
) -> None:
    faults(error_rate=1.0, error_status=503)
    error = failure(adapter, request_for(platform, simplest(platform, image_item, video_item)))
    assert error.outcome is Outcome.TRANSIENT, error


def test_a_rate_limit_holds_for_the_platforms_wait(
    platform: str, adapter: Adapter, faults: Any, image_item: MediaItem, video_item: MediaItem
) -> None:
    faults(rate_limit_every=1, retry_after=RATE_LIMIT_FAULT_SECONDS)
    error = failure(adapter, request_for(platform, simplest(platform, image_item, video_item)))
    outcome, wait = PROFILES[platform].rate_limit
    assert error.outcome is outcome, error
    if wait is None:
        assert error.retry_at == next_utc_midnight(datetime.now(UTC))
    else:
        assert error.retry_after == pytest.approx(wait, abs=2)


def test_a_revoked_token_is_an_auth_failure(
    platform: str, adapter: Adapter, faults: Any, image_item: MediaItem, video_item: MediaItem
) -> None:
    faults(revoked_tokens=[PROFILES[platform].token_form.format("revoked-token")])
    media = simplest(platform, image_item, video_item)
    error = failure(adapter, request_for(platform, media, access_token="revoked-token"))
    assert error.outcome is PROFILES[platform].revoked, error


# -- reconciliation ----------------------------------------------------------------------------


def test_reconcile_finds_a_post_whose_answer_was_lost(
    platform: str,
    adapter: Adapter,
    sandbox: httpx.Client,
    faults: Any,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    if adapter.cannot_reconcile:
        pytest.skip(f"not applicable: {adapter.cannot_reconcile}")
    faults(lose_response_every=1)
    request = request_for(platform, simplest(platform, image_item, video_item))
    context = NullContext()
    started = datetime.now(UTC)
    with pytest.raises(PlatformError) as lost:
        adapter.publish(request, context)
    assert lost.value.outcome is Outcome.TRANSIENT
    [entry] = ledger(sandbox, platform)
    faults()

    after = replace(request, handle=context.handle, irreversible_started_at=started)
    found = adapter.reconcile(after)

    assert found.status is ReconcileStatus.FOUND, found
    assert found.result is not None
    assert found.result.platform_post_id in (entry["id"], entry["params"].get("publish_id"))


def test_reconcile_reports_a_post_that_never_went_out(
    platform: str,
    adapter: Adapter,
    sandbox: httpx.Client,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    if adapter.cannot_reconcile:
        pytest.skip(f"not applicable: {adapter.cannot_reconcile}")
    request = request_for(platform, simplest(platform, image_item, video_item))
    started = datetime.now(UTC)
    result = adapter.reconcile(replace(request, irreversible_started_at=started))
    assert result.status is ReconcileStatus.NOT_FOUND, result
    assert ledger(sandbox, platform) == []


# -- prepare ahead -----------------------------------------------------------------------------


def test_prepare_ahead_leaves_only_the_irreversible_call(
    platform: str,
    adapter: Adapter,
    sandbox: httpx.Client,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    if not adapter.can_prepare:
        pytest.skip(f"not applicable: {platform} publishes by itself once processing ends")
    request = request_for(platform, staged(platform, image_item, video_item))
    preparing = PreparingContext()
    with pytest.raises(ReadyToPublish):
        adapter.publish(request, preparing)
    assert preparing.handle, "the prepare saved what it staged"
    assert ledger(sandbox, platform) == [], "nothing public before the instant"
    uploads = sandbox.get("/_uploads", params={"platform": platform}).json()

    at_instant = NullContext()
    result = adapter.publish(replace(request, handle=preparing.handle), at_instant)

    published(sandbox, platform, result.platform_post_id)
    assert at_instant.irreversible
    assert sandbox.get("/_uploads", params={"platform": platform}).json() == uploads, (
        "nothing uploaded again at the instant"
    )


# -- connect -----------------------------------------------------------------------------------


def connected_identity(platform: str, http: httpx.Client, sandbox_url: str) -> ConnectedIdentity:
    """The first account a connect gives: through the sandbox's consent page (OAuth), or
    the credential form's check (Bluesky); a per-instance platform registers its app on
    the instance first (Mastodon)."""
    credential = credential_flow_class(platform)
    if credential is not None and PROFILES[platform].credential:
        # Telegram connects with Crier's own bot: a token of the bot's form.
        settings = Settings(telegram_bot_token=CONTRACT_BOT_TOKEN)
        flow = credential(http, sandbox_url, settings)
        return flow.verify(dict(PROFILES[platform].credential))[0]
    flow = get_flow(platform, http, sandbox_url)
    client = ClientApp(f"crier-{platform}-client", "secret", "https://crier.example/callback")
    if flow.per_instance:
        flow.instance = "https://sandbox.social"
        client, _limits = flow.register_app(client.redirect_uri)
    verifier, challenge = pkce_pair()
    consent = http.get(flow.authorize_url(client, "contract", challenge if flow.pkce else None))
    assert consent.is_redirect, consent.text
    query = parse_qs(urlsplit(consent.headers["location"]).query)
    assert query["state"] == ["contract"]
    return flow.connect(client, query["code"][0], verifier if flow.pkce else None)[0]


def test_connect_gives_a_token_the_adapter_publishes_with(
    platform: str,
    adapter: Adapter,
    http: httpx.Client,
    sandbox_url: str,
    sandbox: httpx.Client,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    if not PROFILES[platform].credential and flow_class(platform) is None:
        pytest.skip(f"not applicable: {credential_connect_reason(platform)}")
    identity = connected_identity(platform, http, sandbox_url)
    request = request_for(platform, simplest(platform, image_item, video_item))
    account = replace(
        request.account,
        access_token=identity.access_token,
        refresh_token=identity.refresh_token,
        external_id=identity.external_id,
        settings=dict(identity.settings),
    )
    if platform == "linkedin" and not identity.external_id.startswith("urn:"):
        account = replace(account, external_id=f"urn:li:person:{identity.external_id}")
    result = adapter.publish(replace(request, account=account), NullContext())
    published(sandbox, platform, result.platform_post_id)


# Crier's Telegram bot in the contract's connect case.
CONTRACT_BOT_TOKEN = "7000000042:sandbox-contract-bot"

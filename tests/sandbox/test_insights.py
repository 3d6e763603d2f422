"""The sandbox's insights, read through each platform's adapter: figures that grow with
the sandbox clock and match `figures()`, and faults in each platform's own shape that the
collector classifies as it should (a limit, a missing permission, a dead token)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import create_sandbox_app
from sandbox.bluesky import did_for
from sandbox.core import SandboxState
from sandbox.insights import figures
from workers.adapters import get_adapter
from workers.adapters.base import (
    AccountCredentials,
    MetricsPermissionError,
    Outcome,
    PlatformError,
    as_metrics_error,
)

BASE = "http://sandbox.test"
EXTERNAL_IDS = {
    "instagram": "1784140000000101",
    "facebook": "1784140000000201",
    "threads": "1784140000000301",
    "x": "2244994945",
    "linkedin": "urn:li:organization:5500",
    "tiktok": "tiktok-open-id-1",
    "youtube": "UCsandbox0000000000000001",
    "pinterest": "sandbox",
    "bluesky": "brand.bsky.social",
    "mastodon": "https://sandbox.social/@brand",
    "wordpress": "https://blog.example.com",
}
POST_IDS = {
    "linkedin": "urn:li:share:7001",
    "facebook": "1784140000000201_5501",
    "bluesky": f"at://{did_for('brand.bsky.social')}/app.bsky.feed.post/3lcrier2jx2a",
}
# One figure each platform has (Crier's name and the sandbox's are the same): likes, but
# saves on Pinterest and comments on WordPress, which have no likes.
FIGURE = {"pinterest": "saves", "wordpress": "comments"}
# Platforms that report no audience figures.
NO_AUDIENCE = {"wordpress"}
# Where the ledger's account is not the external id: Bluesky's DID, Mastodon's account id.
LEDGER_ACCOUNTS = {"bluesky": did_for("brand.bsky.social"), "mastodon": "1"}


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxState, httpx.Client]]:
    app = create_sandbox_app()
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE) as client:
        yield app.extensions["sandbox.state"], client


def published(state: SandboxState, platform: str) -> str:
    post_id = POST_IDS.get(platform, "9001")
    owner = LEDGER_ACCOUNTS.get(platform, EXTERNAL_IDS[platform])
    state.record(platform, owner, post_id, "hello", [], {})
    if platform == "youtube":
        state.store("youtube").setdefault("videos", {})[post_id] = {
            "id": post_id,
            "status": {"privacyStatus": "public"},
            "snippet": {"channelId": EXTERNAL_IDS["youtube"]},
        }
    return post_id


def credential(platform: str, token: str) -> str:
    """The token as the platform takes it: WordPress's is `user:application-password`."""
    return f"editor:{token}" if platform == "wordpress" else token


def account(platform: str, token: str = "tok") -> AccountCredentials:
    return AccountCredentials(
        1, platform, "brand", EXTERNAL_IDS[platform], access_token=credential(platform, token)
    )


def test_figures_are_deterministic_and_grow() -> None:
    early, late = figures("x", "1", 3600), figures("x", "1", 86400)
    assert early == figures("x", "1", 3600) and early != figures("x", "2", 3600)
    assert all(late[name] >= early[name] for name in early) and late["views"] > early["views"]
    assert figures("x", "1", 0) == dict.fromkeys(early, 0)


@pytest.mark.parametrize("platform", sorted(EXTERNAL_IDS))
def test_each_platform_reads_the_sandbox_figures_at_its_clock(
    platform: str, sandbox: tuple[SandboxState, httpx.Client]
) -> None:
    state, client = sandbox
    post_id = published(state, platform)
    adapter = get_adapter(platform, client, BASE)
    client.post("/_clock", json={"advance_seconds": 7200}).raise_for_status()
    found = adapter.fetch_metrics(
        account(platform), [post_id, "404404"][: adapter.metrics_batch_size]
    )
    assert set(found) == {post_id}
    [reading] = client.get("/_insights").json()
    assert 7200 <= reading["age_seconds"] < 7260
    name = FIGURE.get(platform, "likes")
    expected = figures(platform, post_id, reading["age_seconds"])[name]
    assert getattr(found[post_id], name) == expected > 0
    followers = adapter.fetch_account_metrics(account(platform))
    if platform in NO_AUDIENCE:
        assert followers is None
    else:
        assert followers is not None and (followers.followers or 0) > 1000


@pytest.mark.parametrize("platform", sorted(EXTERNAL_IDS))
def test_faults_are_classified_as_the_collector_needs(
    platform: str, sandbox: tuple[SandboxState, httpx.Client]
) -> None:
    state, client = sandbox
    post_id = published(state, platform)
    adapter = get_adapter(platform, client, BASE)

    def failure(config: dict[str, Any], token: str = "tok") -> PlatformError:
        client.post("/_faults", json={platform: config}).raise_for_status()
        with pytest.raises(PlatformError) as caught:
            adapter.fetch_metrics(account(platform, token), [post_id])
        client.post("/_faults", json={}).raise_for_status()
        return as_metrics_error(caught.value)

    limited = failure({"metrics_rate_limit_every": 1})
    assert limited.outcome in (Outcome.RATE_LIMITED, Outcome.QUOTA_EXHAUSTED), limited.code
    forbidden = failure({"metrics_forbidden_tokens": [credential(platform, "tok")]})
    assert isinstance(forbidden, MetricsPermissionError), forbidden.code
    dead = failure({"revoked_tokens": [credential(platform, "dead")]}, token="dead")
    assert dead.outcome in (Outcome.AUTH_EXPIRED, Outcome.AUTH_REVOKED), dead.code


@pytest.mark.parametrize("platform", ["telegram", "discord"])
def test_platforms_without_insights_have_no_collector(platform: str) -> None:
    with httpx.Client() as client:
        adapter = get_adapter(platform, client, BASE)
    assert not adapter.collects_metrics
    with pytest.raises(PlatformError) as caught:
        adapter.fetch_metrics(account("x"), ["1"])
    assert caught.value.code == "metrics_not_supported"


def test_a_telegram_channels_subscribers_are_its_followers(
    sandbox: tuple[SandboxState, httpx.Client],
) -> None:
    _, client = sandbox
    adapter = get_adapter("telegram", client, BASE)
    channel = AccountCredentials(1, "telegram", "news", "@crier_news", access_token="123:abc")
    first = adapter.fetch_account_metrics(channel)
    client.post("/_clock", json={"advance_seconds": 7 * 86400}).raise_for_status()
    week_later = adapter.fetch_account_metrics(channel)
    assert first is not None and week_later is not None
    assert (week_later.followers or 0) > (first.followers or 0) > 0
    assert first.raw == {"member_count": first.followers}


def test_an_instance_before_mastodon_4_3_is_read_status_by_status(
    sandbox: tuple[SandboxState, httpx.Client],
) -> None:
    state, client = sandbox
    post_id = published(state, "mastodon")
    state.store("mastodon").setdefault("statuses", {})[post_id] = {
        "id": post_id,
        "owner": LEDGER_ACCOUNTS["mastodon"],
        "text": "hello",
    }
    client.post("/mastodon/_instance", json={"version": "4.2.10"}).raise_for_status()
    adapter = get_adapter("mastodon", client, BASE)
    client.post("/_clock", json={"advance_seconds": 86400}).raise_for_status()

    found = adapter.fetch_metrics(account("mastodon"), [post_id, "404404"])

    [reading] = client.get("/_insights").json()
    assert set(found) == {post_id}
    expected = figures("mastodon", post_id, reading["age_seconds"])
    got = found[post_id]
    assert (got.likes, got.shares, got.comments) == tuple(
        expected[k] for k in ("likes", "shares", "comments")
    )

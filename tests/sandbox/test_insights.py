"""The sandbox's insights, read through each platform's adapter: figures that grow with
the sandbox clock and match `figures()`, and faults in each platform's own shape that the
collector classifies as it should (a limit, a missing permission, a dead token)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox import create_sandbox_app
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
}
POST_IDS = {"linkedin": "urn:li:share:7001", "facebook": "1784140000000201_5501"}
# Crier's figure → the sandbox's, for one figure every platform has.
LIKES = "likes"


@pytest.fixture
def sandbox() -> Iterator[tuple[SandboxState, httpx.Client]]:
    app = create_sandbox_app()
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE) as client:
        yield app.extensions["sandbox.state"], client


def published(state: SandboxState, platform: str) -> str:
    post_id = POST_IDS.get(platform, "9001")
    state.record(platform, EXTERNAL_IDS[platform], post_id, "hello", [], {})
    if platform == "youtube":
        state.store("youtube").setdefault("videos", {})[post_id] = {
            "id": post_id,
            "status": {"privacyStatus": "public"},
            "snippet": {"channelId": EXTERNAL_IDS["youtube"]},
        }
    return post_id


def account(platform: str, token: str = "tok") -> AccountCredentials:
    return AccountCredentials(1, platform, "brand", EXTERNAL_IDS[platform], access_token=token)


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
    assert found[post_id].likes == figures(platform, post_id, reading["age_seconds"])[LIKES]
    followers = adapter.fetch_account_metrics(account(platform))
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
    assert isinstance(failure({"metrics_forbidden_tokens": ["tok"]}), MetricsPermissionError)
    dead = failure({"revoked_tokens": ["dead"]}, token="dead")
    assert dead.outcome in (Outcome.AUTH_EXPIRED, Outcome.AUTH_REVOKED), dead.code

"""The Mastodon adapter against the sandbox, over real HTTP: the instance's own limits,
media processing, the Idempotency-Key that keeps a resent status single, and the
instance's error answers."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthRevokedError,
    MediaItem,
    NullContext,
    PermanentError,
    PublishRequest,
    RateLimitedError,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.mastodon import MastodonAdapter, classify

PROFILE = "https://sandbox.social/@alice"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> MastodonAdapter:
    adapter = MastodonAdapter(http, base_url=sandbox_url)
    adapter.poll_interval = 0.02
    return adapter


def ledger(sandbox: httpx.Client) -> list[dict[str, Any]]:
    return list(sandbox.get("/_ledger", params={"platform": "mastodon"}).json())


def faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"mastodon": config}).raise_for_status()


def request(text: str = "Hello Mastodon", **kwargs: Any) -> PublishRequest:
    return make_request("mastodon", text=text, external_id=PROFILE, **kwargs)


def test_the_instances_own_limit_applies(adapter: MastodonAdapter, sandbox: httpx.Client) -> None:
    sandbox.post("/mastodon/_instance", json={"max_characters": 40}).raise_for_status()
    with pytest.raises(PermanentError) as refused:
        adapter.publish(request("x" * 41), NullContext())
    assert refused.value.code == "mastodon_text_too_long"
    assert "allows 40" in refused.value.message
    assert ledger(sandbox) == [] and sandbox.get("/_arrived").json().get("mastodon") is None


def test_a_larger_instance_limit_takes_longer_texts(
    http: httpx.Client, sandbox_url: str, sandbox: httpx.Client
) -> None:
    sandbox.post("/mastodon/_instance", json={"max_characters": 1000}).raise_for_status()
    adapter = MastodonAdapter(http, base_url=sandbox_url)  # nothing cached yet
    adapter.publish(request("y" * 900), NullContext())
    assert len(ledger(sandbox)[0]["text"]) == 900


def test_a_url_counts_23_characters(adapter: MastodonAdapter, sandbox: httpx.Client) -> None:
    text = "z" * 470 + " https://example.com/" + "p" * 100
    assert len(text) > 500
    adapter.publish(request(text), NullContext())
    assert ledger(sandbox)[0]["text"] == text


def test_settings_reach_the_status(
    adapter: MastodonAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    settings = {
        "visibility": "unlisted",
        "spoilerText": "Spoilers",
        "sensitive": True,
        "language": "en",
        "altTexts": ["A lighthouse"],
    }
    result = adapter.publish(request(media=[image_item], settings=settings), NullContext())
    [entry] = ledger(sandbox)
    assert entry["params"]["visibility"] == "unlisted"
    assert entry["params"]["spoiler_text"] == "Spoilers" and entry["params"]["sensitive"]
    assert entry["params"]["language"] == "en"
    assert entry["media"] == [
        {"kind": "image", "id": entry["media"][0]["id"], "description": "A lighthouse"}
    ]
    assert result.url == f"https://sandbox.social/@{result.url.split('@')[1]}"
    assert result.url.endswith(f"/{result.platform_post_id}")


def test_a_video_is_awaited_until_processed(
    adapter: MastodonAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    faults(sandbox, processing_seconds=0.4)
    context = NullContext()
    adapter.publish(request(media=[video_item]), context)
    [entry] = ledger(sandbox)
    assert entry["media"][0]["kind"] == "video"
    assert context.handle and context.handle["media_pending"] == []


def test_a_resent_status_is_not_doubled(adapter: MastodonAdapter, sandbox: httpx.Client) -> None:
    faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request(), context)
    faults(sandbox)
    assert context.handle

    again = adapter.publish(request(handle=context.handle), NullContext())

    [entry] = ledger(sandbox)
    assert again.platform_post_id == entry["id"]
    assert entry["params"]["idempotency_key"] == context.handle["idempotency_key"]


def test_past_the_keys_hour_the_earlier_status_is_looked_for(
    adapter: MastodonAdapter, sandbox: httpx.Client
) -> None:
    first = adapter.publish(request(), NullContext())
    long_ago = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    handle = {"posted_at": long_ago, "idempotency_key": "crier-target-old"}
    late = replace(request(handle=handle), irreversible_started_at=datetime.now(UTC))

    found = adapter.publish(late, NullContext())

    assert found.platform_post_id == first.platform_post_id and found.details["reconciled"]
    assert len(ledger(sandbox)) == 1


def test_reconcile_matches_the_status_text(adapter: MastodonAdapter, sandbox: httpx.Client) -> None:
    text = "Tom & Jerry <3\nsecond line"
    adapter.publish(request(text), NullContext())
    assert adapter.reconcile(request(text)).status is ReconcileStatus.FOUND
    assert adapter.reconcile(request("Other")).status is ReconcileStatus.NOT_FOUND


def test_an_invalid_token_needs_a_reconnect(
    adapter: MastodonAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, revoked_tokens=["gone"])
    with pytest.raises(AuthRevokedError) as refused:
        adapter.publish(request(access_token="gone"), NullContext())
    assert refused.value.code == "mastodon_token_invalid"
    assert not adapter.can_refresh(request().account)


def test_a_rate_limit_waits_for_the_iso_reset(
    adapter: MastodonAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, rate_limit_every=1, retry_after=90)
    with pytest.raises(RateLimitedError) as held:
        adapter.publish(request(), NullContext())
    assert held.value.code == "mastodon_rate_limited"
    assert held.value.retry_after == pytest.approx(90, abs=2)


@pytest.mark.parametrize(
    ("status", "body", "code", "outcome"),
    [
        (
            422,
            {"error": "Cannot attach files that have not finished processing. Try again!"},
            "mastodon_media_processing",
            "transient",
        ),
        (
            422,
            {"error": "Validation failed: Text can't be blank"},
            "mastodon_validation_failed",
            "permanent",
        ),
        (
            403,
            {"error": "Your login is currently disabled"},
            "mastodon_account_disabled",
            "auth_revoked",
        ),
        (503, {"error": "Unavailable"}, "mastodon_server_error", "transient"),
        (404, {"error": "Record not found"}, "mastodon_not_found", "permanent"),
    ],
)
def test_errors_are_classified_by_their_message(
    status: int, body: dict[str, str], code: str, outcome: str
) -> None:
    error = classify(httpx.Response(status, json=body))
    assert (error.code, error.outcome.value) == (code, outcome)


def test_delete_takes_the_status_down(adapter: MastodonAdapter, sandbox: httpx.Client) -> None:
    result = adapter.publish(request(), NullContext())
    adapter.delete_post(request().account, result.platform_post_id)
    assert "deleted_at" in ledger(sandbox)[0]


def test_the_instance_comes_from_the_profile_url(http: httpx.Client) -> None:
    adapter = MastodonAdapter(http)
    account = request().account
    assert adapter.api(account, "/api/v1/statuses") == "https://sandbox.social/api/v1/statuses"
    other = replace(account, settings={"instance": "https://fosstodon.org"})
    assert adapter.api(other, "/api/v2/instance") == "https://fosstodon.org/api/v2/instance"

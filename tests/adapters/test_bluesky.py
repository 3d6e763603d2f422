"""The Bluesky adapter against the sandbox, over real HTTP: sessions made sparingly,
facets in UTF-8 bytes, images with alt text, link cards, and a record key chosen from
the target so a retried create is never a second post."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest

from app.connect_flows.bluesky import BlueskyFlow
from app.platforms import PLATFORMS, count_graphemes
from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthExpiredError,
    AuthRevokedError,
    MediaItem,
    NullContext,
    PermanentError,
    PreparingContext,
    PublishRequest,
    RateLimitedError,
    ReadyToPublish,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.bluesky import BlueskyAdapter, Session

APP_PASSWORD = "abcd-efgh-ijkl-mnop"
HANDLE = "alice.bsky.social"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # one grapheme, five code points
THUMB = "\U0001f44d\U0001f3fd"  # thumbs up, medium skin tone: one grapheme, 8 bytes


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> BlueskyAdapter:
    adapter = BlueskyAdapter(http, base_url=sandbox_url)
    adapter.poll_interval = 0.02
    return adapter


def ledger(sandbox: httpx.Client) -> list[dict[str, Any]]:
    return list(sandbox.get("/_ledger", params={"platform": "bluesky"}).json())


def faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"bluesky": config}).raise_for_status()


def request(text: str = "Hello Bluesky", **kwargs: Any) -> PublishRequest:
    kwargs.setdefault("access_token", APP_PASSWORD)
    kwargs.setdefault("refresh_token", None)
    return make_request("bluesky", text=text, external_id=HANDLE, **kwargs)


def test_the_limit_counts_graphemes_not_code_points(
    adapter: BlueskyAdapter, sandbox: httpx.Client
) -> None:
    text = THUMB * PLATFORMS["bluesky"].text_limit
    assert count_graphemes(text) == 300 and len(text) == 600
    adapter.publish(request(text), NullContext())
    [entry] = ledger(sandbox)
    assert entry["text"] == text
    assert count_graphemes(text + "e\u0301") == 301  # e + combining accent: one more


def test_a_text_over_3000_bytes_is_refused_before_any_call(
    adapter: BlueskyAdapter, sandbox: httpx.Client
) -> None:
    text = FAMILY * 200  # 200 graphemes, 3,600 bytes
    with pytest.raises(PermanentError) as refused:
        adapter.publish(request(text), NullContext())
    assert refused.value.code == "bluesky_text_too_long"
    assert ledger(sandbox) == [] and sandbox.get("/_arrived").json().get("bluesky") is None


def test_facets_are_utf8_byte_ranges(adapter: BlueskyAdapter, sandbox: httpx.Client) -> None:
    text = f"{FAMILY} café @bob.bsky.social @ghost.invalid see https://example.com/a. #launch!"
    adapter.publish(request(text), NullContext())
    [entry] = ledger(sandbox)
    data = text.encode()
    found = {}
    for facet in entry["params"]["facets"]:
        feature = facet["features"][0]
        piece = data[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode()
        found[feature["$type"].rsplit("#", 1)[1]] = (piece, feature)
    assert found["link"][0] == "https://example.com/a"
    assert found["tag"][0] == "#launch" and found["tag"][1]["tag"] == "launch"
    assert found["mention"][0] == "@bob.bsky.social"
    assert found["mention"][1]["did"].startswith("did:plc:")
    assert len(entry["params"]["facets"]) == 3, "an unresolvable handle stays plain text"


def test_images_carry_their_alt_text(
    adapter: BlueskyAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    second = replace(image_item, id="33333333-3333-4333-8333-333333333333")
    settings = {"altTexts": ["A cat", "A dog"]}
    adapter.publish(request(media=[image_item, second], settings=settings), NullContext())
    [entry] = ledger(sandbox)
    assert [m["alt"] for m in entry["media"]] == ["A cat", "A dog"]
    assert entry["params"]["embed"]["images"][0]["aspectRatio"] == {"width": 1, "height": 1}


def test_a_link_without_media_becomes_a_card(
    adapter: BlueskyAdapter, sandbox: httpx.Client
) -> None:
    adapter.publish(request("Read https://example.com/post"), NullContext())
    adapter.publish(
        request("Also https://example.org/x", settings={"linkCard": False}, target_id=2),
        NullContext(),
    )
    first, second = ledger(sandbox)
    assert first["params"]["embed"]["$type"] == "app.bsky.embed.external"
    assert first["params"]["embed"]["external"]["uri"] == "https://example.com/post"
    assert "embed" not in second["params"]


def test_a_video_goes_through_the_video_service(
    adapter: BlueskyAdapter, sandbox: httpx.Client, video_item: MediaItem
) -> None:
    faults(sandbox, processing_seconds=0.3)
    context = NullContext()
    result = adapter.publish(request(media=[video_item]), context)
    [entry] = ledger(sandbox)
    assert entry["media"][0]["kind"] == "video" and result.platform_post_id == entry["id"]
    assert context.handle and context.handle["video_job"] and context.handle["blobs"]


def test_a_lost_answer_is_found_by_its_record_key_not_posted_again(
    adapter: BlueskyAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request(), context)
    faults(sandbox)
    assert context.handle and context.handle["rkey"]

    again = adapter.publish(request(handle=context.handle), NullContext())

    [entry] = ledger(sandbox)
    assert again.platform_post_id == entry["id"] and again.details["reconciled"]
    assert entry["id"].endswith("/" + context.handle["rkey"])
    found = adapter.reconcile(request(handle=context.handle))
    assert found.status is ReconcileStatus.FOUND


def test_a_create_refused_for_its_existing_key_is_adopted(
    adapter: BlueskyAdapter, sandbox: httpx.Client
) -> None:
    session = adapter.session(request().account)
    record = {"$type": "app.bsky.feed.post", "text": "Once", "createdAt": "2026-12-05T00:00:00Z"}
    first = adapter.create_post(session, record, "3lzzzzzzzzz22")
    second = adapter.create_post(session, record, "3lzzzzzzzzz22")
    assert first["uri"] == second["uri"] and len(ledger(sandbox)) == 1


def test_reconcile_without_a_key_matches_text_among_recent_records(
    adapter: BlueskyAdapter, sandbox: httpx.Client
) -> None:
    adapter.publish(request("Find me"), NullContext())
    found = adapter.reconcile(request("Find me"))
    missing = adapter.reconcile(request("Never sent"))
    assert found.status is ReconcileStatus.FOUND
    assert found.result and found.result.platform_post_id == ledger(sandbox)[0]["id"]
    assert missing.status is ReconcileStatus.NOT_FOUND


def test_a_session_is_made_once_and_reused(
    adapter: BlueskyAdapter, sandbox: httpx.Client, sandbox_url: str
) -> None:
    adapter.publish(request("One"), NullContext())
    adapter.publish(request("Two", target_id=2), NullContext())
    with httpx.Client(base_url=sandbox_url) as client:
        calls = client.post(
            "/bluesky/xrpc/com.atproto.server.createSession",
            json={"identifier": HANDLE, "password": APP_PASSWORD},
        )
    # 30 per 5 minutes: two publishes and this probe spent two.
    assert calls.headers["ratelimit-remaining"] == "28"


def test_a_stored_session_is_used_and_refreshed_without_signing_in(
    adapter: BlueskyAdapter, sandbox: httpx.Client, http: httpx.Client, sandbox_url: str
) -> None:
    [identity] = BlueskyFlow(http, sandbox_url).verify(
        {"handle": HANDLE, "app_password": APP_PASSWORD}
    )
    stored = Session.from_json(identity.refresh_token)
    assert stored is not None and stored.usable()
    account_request = request(refresh_token=identity.refresh_token)
    faults(sandbox, expired_tokens=[stored.access_jwt])
    with pytest.raises(AuthExpiredError) as expired:
        adapter.publish(account_request, NullContext())
    assert expired.value.code == "bluesky_token_expired"

    tokens = adapter.refresh_token(account_request.account)

    assert tokens.access_token == APP_PASSWORD, "the app password stays the access token"
    fresh = Session.from_json(tokens.refresh_token)
    assert fresh is not None and fresh.access_jwt != stored.access_jwt
    assert fresh.refresh_jwt != stored.refresh_jwt
    renewed = replace(account_request.account, refresh_token=tokens.refresh_token)
    adapter.publish(replace(account_request, account=renewed), NullContext())
    assert len(ledger(sandbox)) == 1
    with httpx.Client(base_url=sandbox_url) as client:
        probe = client.post(
            "/bluesky/xrpc/com.atproto.server.createSession",
            json={"identifier": HANDLE, "password": APP_PASSWORD},
        )
    assert probe.headers["ratelimit-remaining"] == "28", "only the connect signed in"


def test_a_spent_refresh_falls_back_to_signing_in(
    adapter: BlueskyAdapter, http: httpx.Client, sandbox_url: str
) -> None:
    [identity] = BlueskyFlow(http, sandbox_url).verify(
        {"handle": HANDLE, "app_password": APP_PASSWORD}
    )
    stored = Session.from_json(identity.refresh_token)
    assert stored is not None
    http.post(
        f"{sandbox_url}/bluesky/xrpc/com.atproto.server.refreshSession",
        headers={"Authorization": f"Bearer {stored.refresh_jwt}"},
    ).raise_for_status()  # someone else used the refresh JWT

    tokens = adapter.refresh_token(request(refresh_token=identity.refresh_token).account)

    assert json.loads(tokens.refresh_token or "{}")["did"] == stored.did


def test_a_revoked_app_password_needs_a_reconnect(
    adapter: BlueskyAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, revoked_tokens=[APP_PASSWORD])
    with pytest.raises(AuthRevokedError) as refused:
        adapter.publish(request(), NullContext())
    assert refused.value.code == "bluesky_invalid_credentials"


def test_sign_ins_beyond_their_limit_hold_the_account(
    adapter: BlueskyAdapter, sandbox: httpx.Client, sandbox_url: str
) -> None:
    with httpx.Client(base_url=sandbox_url) as client:
        for _ in range(30):
            client.post(
                "/bluesky/xrpc/com.atproto.server.createSession",
                json={"identifier": HANDLE, "password": APP_PASSWORD},
            )
    with pytest.raises(RateLimitedError) as held:
        adapter.publish(request(), NullContext())
    assert held.value.code == "bluesky_sign_in_rate_limited"
    assert 0 < (held.value.retry_after or 0) <= 300


def test_delete_removes_the_record(adapter: BlueskyAdapter, sandbox: httpx.Client) -> None:
    result = adapter.publish(request(), NullContext())
    adapter.delete_post(request().account, result.platform_post_id)
    assert "deleted_at" in ledger(sandbox)[0]


def test_a_prepared_post_takes_its_time_at_the_instant_and_keeps_its_key(
    adapter: BlueskyAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    preparing = PreparingContext()
    with pytest.raises(ReadyToPublish):
        adapter.publish(request(media=[image_item]), preparing)
    prepared = preparing.handle
    assert prepared and prepared["blobs"]
    time.sleep(0.01)

    result = adapter.publish(request(media=[image_item], handle=prepared), NullContext())

    [entry] = ledger(sandbox)
    assert entry["params"]["createdAt"] > prepared["created_at"]
    assert result.platform_post_id.endswith("/" + prepared["rkey"]), "the key stays"

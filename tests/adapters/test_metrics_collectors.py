"""The collectors of Pinterest, Bluesky, Mastodon and WordPress against the sandbox, over
real HTTP: the calls each makes, posts gone from the platform left out, Bluesky's session
reused and refreshed rather than signed in again, Mastodon before 4.3 read status by
status, and WordPress's comment count from its listing's total."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.connect_flows.bluesky import BlueskyFlow
from sandbox.insights import figures
from sandbox.pinterest import DEFAULT_LOGIN, boards_of
from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthExpiredError,
    MediaItem,
    Metrics,
    MetricsPermissionError,
    NullContext,
    Outcome,
    as_metrics_error,
)
from workers.adapters.bluesky import BlueskyAdapter, Session
from workers.adapters.mastodon import MastodonAdapter
from workers.adapters.pinterest import PinterestAdapter, classify
from workers.adapters.wordpress import WordPressAdapter

DAY = 86400


@pytest.fixture
def sent() -> list[httpx.Request]:
    return []


@pytest.fixture
def watched(sent: list[httpx.Request]) -> Iterator[httpx.Client]:
    """A client that keeps every request it sends."""
    with httpx.Client(timeout=10, event_hooks={"request": [sent.append]}) as client:
        yield client


def advance(sandbox: httpx.Client, seconds: int) -> None:
    sandbox.post("/_clock", json={"advance_seconds": seconds}).raise_for_status()


def reading(sandbox: httpx.Client, platform: str, post_id: str) -> dict[str, Any]:
    [found] = [
        r for r in sandbox.get("/_insights", params={"platform": platform}).json()
        if r["id"] == post_id
    ]  # fmt: skip
    assert found["figures"] == figures(platform, post_id, found["age_seconds"])
    return dict(found["figures"])


def paths(sent: list[httpx.Request], suffix: str) -> list[httpx.Request]:
    return [r for r in sent if r.url.path.endswith(suffix)]


# -- Pinterest ----------------------------------------------------------------------------


def test_a_pins_analytics_cover_the_last_90_days_and_a_gone_pin_is_left_out(
    watched: httpx.Client,
    sent: list[httpx.Request],
    sandbox_url: str,
    sandbox: httpx.Client,
    image_item: MediaItem,
) -> None:
    adapter = PinterestAdapter(watched, base_url=sandbox_url)
    board = boards_of(DEFAULT_LOGIN)[0]["id"]
    request = make_request("pinterest", settings={"boardId": board}, media=[image_item])
    pin = adapter.publish(request, NullContext()).platform_post_id
    advance(sandbox, 2 * DAY)

    found = adapter.fetch_metrics(request.account, [pin])

    [call] = paths(sent, f"/v5/pins/{pin}/analytics")
    today = datetime.now(UTC).date()
    assert date.fromisoformat(call.url.params["end_date"]) == today
    assert date.fromisoformat(call.url.params["start_date"]) == today - timedelta(days=89)
    assert "PIN_CLICK" in call.url.params["metric_types"]
    expected = reading(sandbox, "pinterest", pin)
    assert found[pin] == Metrics(
        impressions=expected["impressions"],
        clicks=expected["clicks"],
        saves=expected["saves"],
        raw=found[pin].raw,
    ), "an image Pin has no video views"
    audience = adapter.fetch_account_metrics(request.account)
    assert audience is not None and audience.posts_count == 1 and audience.followers

    adapter.delete_post(request.account, pin)
    assert adapter.fetch_metrics(request.account, [pin]) == {}


def test_a_pinterest_token_without_the_scope_is_a_missing_permission() -> None:
    body = {"code": 3, "message": "Your token does not have sufficient permissions."}
    error = classify(httpx.Response(401, json=body))
    assert (error.code, error.outcome) == ("pinterest_insufficient_scope", Outcome.PERMANENT)
    assert isinstance(as_metrics_error(error), MetricsPermissionError)


# -- Bluesky ------------------------------------------------------------------------------

HANDLE = "alice.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"


def test_bluesky_figures_use_the_stored_session_and_refresh_it_never_signing_in(
    watched: httpx.Client,
    sent: list[httpx.Request],
    http: httpx.Client,
    sandbox_url: str,
    sandbox: httpx.Client,
) -> None:
    [identity] = BlueskyFlow(http, sandbox_url).verify(
        {"handle": HANDLE, "app_password": APP_PASSWORD}
    )
    stored = Session.from_json(identity.refresh_token)
    assert stored is not None
    requests = [
        make_request(
            "bluesky",
            text=f"Post {n}",
            access_token=APP_PASSWORD,
            refresh_token=identity.refresh_token,
            external_id=HANDLE,
            target_id=n,
        )
        for n in (1, 2)
    ]
    publisher = BlueskyAdapter(http, base_url=sandbox_url)
    uris = [publisher.publish(r, NullContext()).platform_post_id for r in requests]
    never_made = uris[0].rsplit("/", 1)[0] + "/3zzzzzzzzzzzz"
    account = requests[0].account
    adapter = BlueskyAdapter(watched, base_url=sandbox_url)  # a collector's own process
    advance(sandbox, DAY)

    found = adapter.fetch_metrics(account, [*uris, never_made])
    audience = adapter.fetch_account_metrics(account)

    assert set(found) == set(uris)
    [call] = paths(sent, "app.bsky.feed.getPosts")
    assert call.url.params.get_list("uris") == [*uris, never_made]
    for uri in uris:
        expected = reading(sandbox, "bluesky", uri)
        assert (found[uri].likes, found[uri].comments, found[uri].shares) == (
            expected["likes"],
            expected["comments"],
            expected["shares"],
        )
    assert audience is not None and audience.posts_count == 2
    assert (audience.followers or 0) > 1000

    # The session runs out: the collector's one refresh renews it with refreshSession.
    sandbox.post("/_faults", json={"bluesky": {"expired_tokens": [stored.access_jwt]}})
    with pytest.raises(AuthExpiredError):
        adapter.fetch_metrics(account, uris)
    tokens = adapter.refresh_token(account)
    renewed = replace(account, refresh_token=tokens.refresh_token)
    assert set(adapter.fetch_metrics(renewed, uris)) == set(uris)
    assert paths(sent, "refreshSession") and not paths(sent, "createSession")


# -- Mastodon -----------------------------------------------------------------------------

PROFILE = "https://sandbox.social/@alice"


def test_mastodon_statuses_are_read_in_one_call_or_one_by_one_before_4_3(
    watched: httpx.Client, sent: list[httpx.Request], sandbox_url: str, sandbox: httpx.Client
) -> None:
    adapter = MastodonAdapter(watched, base_url=sandbox_url)
    requests = [
        make_request("mastodon", text=f"Status {n}", external_id=PROFILE, target_id=n)
        for n in (1, 2, 3)
    ]
    ids = [adapter.publish(r, NullContext()).platform_post_id for r in requests]
    adapter.delete_post(requests[0].account, ids[2])
    account = requests[0].account
    advance(sandbox, DAY)

    found = adapter.fetch_metrics(account, ids)

    assert set(found) == set(ids[:2]), "a deleted status is left out"
    [call] = [r for r in paths(sent, "/api/v1/statuses") if r.method == "GET"]
    assert call.url.params.get_list("id[]") == ids
    expected = reading(sandbox, "mastodon", ids[0])
    assert (found[ids[0]].likes, found[ids[0]].shares, found[ids[0]].comments) == (
        expected["likes"],
        expected["shares"],
        expected["comments"],
    )
    audience = adapter.fetch_account_metrics(account)
    assert audience is not None and audience.posts_count == 2

    sandbox.post("/mastodon/_instance", json={"version": "4.2.8"}).raise_for_status()
    sent.clear()
    assert set(adapter.fetch_metrics(account, ids)) == set(ids[:2])
    assert set(adapter.fetch_metrics(account, ids)) == set(ids[:2])
    gets = [r for r in sent if r.method == "GET"]
    # The batch form's 404 once, then each status: the instance is remembered.
    assert len(paths(gets, "/api/v1/statuses")) == 1 and len(gets) == 1 + 2 * len(ids)

    sandbox.post("/mastodon/_instance", json={"version": "4.4.0"}).raise_for_status()
    adapter._no_batch_read = {k: time.time() - 3601 for k in adapter._no_batch_read}
    sent.clear()
    assert set(adapter.fetch_metrics(account, ids)) == set(ids[:2])
    assert len(sent) == 1, "an hour on, the batch form is tried again"


# -- WordPress ----------------------------------------------------------------------------


def test_wordpress_reads_a_posts_comments_from_the_listings_total(
    watched: httpx.Client, sent: list[httpx.Request], sandbox_url: str, sandbox: httpx.Client
) -> None:
    adapter = WordPressAdapter(watched, base_url=sandbox_url)
    request = make_request(
        "wordpress",
        text="<p>Spring menu</p>",
        settings={"title": "Spring menu"},
        access_token="editor:abcd efgh",
        external_id="https://blog.example.com",
    )
    post_id = adapter.publish(request, NullContext()).platform_post_id
    httpx.post(
        f"{sandbox_url}/wordpress/wp-json/wp/v2/comments",
        json={"post": int(post_id), "content": "Lovely"},
        auth=("reader", "pw"),
    ).raise_for_status()
    advance(sandbox, 3 * DAY)

    found = adapter.fetch_metrics(request.account, [post_id])

    [call] = paths(sent, "/wp-json/wp/v2/comments")
    assert call.url.params["post"] == post_id and call.url.params["per_page"] == "1"
    readers = reading(sandbox, "wordpress", post_id)["comments"]
    assert found[post_id] == Metrics(comments=1 + readers, raw={"comments_total": 1 + readers})
    assert adapter.fetch_account_metrics(request.account) is None

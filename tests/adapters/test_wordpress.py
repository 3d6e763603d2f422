"""The WordPress adapter against the sandbox site, over real HTTP: terms resolved or
created, featured and inline images staged ahead, its errors, and the slug that keeps a
retried create from doubling a post."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.connect_flows.wordpress import WordPressFlow
from app.oauth import OAuthError
from tests.adapters.conftest import make_request
from workers.adapters.base import (
    AuthRevokedError,
    MediaItem,
    NullContext,
    Outcome,
    PermanentError,
    PreparingContext,
    PublishRequest,
    ReadyToPublish,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.wordpress import WordPressAdapter, classify, post_slug

SITE = "https://blog.example.com"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> WordPressAdapter:
    return WordPressAdapter(http, base_url=sandbox_url)


def ledger(sandbox: httpx.Client) -> list[dict[str, Any]]:
    return list(sandbox.get("/_ledger", params={"platform": "wordpress"}).json())


def faults(sandbox: httpx.Client, **config: object) -> None:
    sandbox.post("/_faults", json={"wordpress": config}).raise_for_status()


def request_for(
    media: list[MediaItem] | None = None, login: str = "editor", **settings: Any
) -> PublishRequest:
    return make_request(
        "wordpress",
        text="<p>Our spring menu is here.</p>",
        settings={"title": "Spring menu", **settings},
        media=media or [],
        access_token=f"{login}:abcd efgh ijkl",
        external_id=SITE,
        target_id=4242,
    )


def site(sandbox_url: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        kwargs.pop("method", "GET"),
        f"{sandbox_url}/wordpress/wp-json/wp/v2{path}",
        auth=("editor", "pw"),
        **kwargs,
    )


def test_a_post_goes_out_with_its_settings_and_permalink(
    adapter: WordPressAdapter, sandbox: httpx.Client
) -> None:
    result = adapter.publish(request_for(excerpt="Menu", slug="spring-menu"), NullContext())
    [post] = ledger(sandbox)
    assert post["text"] == "<p>Our spring menu is here.</p>" and post["account"] == "editor"
    params = post["params"]
    assert (params["title"], params["excerpt"], params["status"], params["slug"]) == (
        "Spring menu",
        "Menu",
        "publish",
        "spring-menu",
    )
    assert result.url == f"{SITE}/spring-menu/" and result.platform_post_id == post["id"]


def test_without_a_slug_the_target_names_one(
    adapter: WordPressAdapter, sandbox: httpx.Client
) -> None:
    adapter.publish(request_for(), NullContext())
    [post] = ledger(sandbox)
    assert post["params"]["slug"] == post_slug(request_for()) and post["params"]["slug"].startswith(
        "spring-menu-"
    )
    other = replace(request_for(), target_id=4243)
    assert post_slug(other) != post_slug(request_for())


def test_a_draft_has_the_sites_draft_link(adapter: WordPressAdapter) -> None:
    result = adapter.publish(request_for(status="draft"), NullContext())
    assert result.url == f"{SITE}/?p={result.platform_post_id}"
    assert result.details["status"] == "draft"


def test_categories_are_found_or_created_and_tags_too(
    adapter: WordPressAdapter, sandbox: httpx.Client, sandbox_url: str
) -> None:
    existing = site(sandbox_url, "/categories", method="POST", json={"name": "News"}).json()
    adapter.publish(request_for(categories=["news", "Menus"], tags=["spring"]), NullContext())
    categories = site(sandbox_url, "/categories").json()
    tags = site(sandbox_url, "/tags").json()
    assert sorted(c["name"] for c in categories) == ["Menus", "News"]
    [post] = ledger(sandbox)
    menus = next(c["id"] for c in categories if c["name"] == "Menus")
    assert post["params"]["categories"] == [existing["id"], menus]
    assert post["params"]["tags"] == [tags[0]["id"]]


def test_the_first_image_is_featured_and_the_others_go_in_the_content(
    adapter: WordPressAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    second = replace(image_item, id="second", filename="second.jpg")
    adapter.publish(request_for([image_item, second], altText='A "bowl"'), NullContext())
    [post] = ledger(sandbox)
    featured, inline = post["media"]
    assert post["params"]["featured_media"] == featured["media_id"]
    assert (featured["role"], inline["role"], inline["kind"]) == ("featured", "content", "image")
    assert (
        '<figure class="wp-block-image"><img src="https://blog.example.com/wp-content/'
        in post["text"]
    )
    assert "second.jpg" in post["text"] and 'alt="A &quot;bowl&quot;"' in post["text"]
    assert "photo.jpg" not in post["text"]


def test_a_video_is_embedded_and_an_image_after_it_is_still_featured(
    adapter: WordPressAdapter, sandbox: httpx.Client, image_item: MediaItem, video_item: MediaItem
) -> None:
    adapter.publish(request_for([video_item, image_item]), NullContext())
    [post] = ledger(sandbox)
    assert [(m["role"], m["kind"]) for m in post["media"]] == [
        ("featured", "image"),
        ("content", "video"),
    ]
    assert (
        '<figure class="wp-block-video"><video controls src="https://blog.example.com/'
        in (post["text"])
    )
    assert "<img" not in post["text"]


def test_images_are_uploaded_ahead_and_only_the_post_is_made_at_the_instant(
    adapter: WordPressAdapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    request = request_for([image_item], categories=["News"])
    preparing = PreparingContext()
    with pytest.raises(ReadyToPublish):
        adapter.publish(request, preparing)
    handle = preparing.handle or {}
    assert len(handle["media"]) == 1 and handle["categories"] and handle["slug"]
    assert ledger(sandbox) == []
    arrived = sandbox.get("/_arrived").json()["wordpress"]

    adapter.publish(replace(request, handle=handle), NullContext())

    assert len(ledger(sandbox)) == 1
    assert sandbox.get("/_arrived").json()["wordpress"] == arrived + 1, "only POST /posts"


def test_discarding_a_prepared_post_deletes_its_uploads(
    adapter: WordPressAdapter, sandbox_url: str, image_item: MediaItem
) -> None:
    preparing = PreparingContext()
    request = request_for([image_item])
    with pytest.raises(ReadyToPublish):
        adapter.publish(request, preparing)
    media_id = (preparing.handle or {})["media"][0]["id"]
    assert site(sandbox_url, f"/media/{media_id}").status_code == 200
    assert adapter.discard_prepared(request.account, preparing.handle or {}) == 1
    assert site(sandbox_url, f"/media/{media_id}").status_code == 404


def test_a_lost_answer_is_adopted_on_retry_rather_than_posted_twice(
    adapter: WordPressAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request_for(), context)
    faults(sandbox)

    again = adapter.publish(replace(request_for(), handle=context.handle), NullContext())

    [post] = ledger(sandbox)
    assert again.platform_post_id == post["id"] and again.details["reconciled"]


def test_reconcile_finds_a_post_whose_slug_the_site_made_unique(
    adapter: WordPressAdapter, sandbox: httpx.Client, sandbox_url: str
) -> None:
    older = site(
        sandbox_url,
        "/posts",
        method="POST",
        json={"title": "x", "slug": "spring-menu", "status": "publish"},
    ).json()
    faults(sandbox, lose_response_every=1)
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request_for(slug="spring-menu"), context)
    faults(sandbox)
    found = adapter.reconcile(replace(request_for(slug="spring-menu"), handle=context.handle))
    assert found.status is ReconcileStatus.FOUND and found.result is not None
    assert found.result.platform_post_id != str(older["id"])
    assert found.result.details["slug"] == "spring-menu-2"


def test_reconcile_does_not_adopt_an_older_post_with_our_slug(
    adapter: WordPressAdapter, sandbox_url: str
) -> None:
    site(
        sandbox_url,
        "/posts",
        method="POST",
        json={"title": "Spring menu", "slug": "spring-menu", "status": "publish"},
    )
    later = datetime.now(UTC) + timedelta(hours=1)
    found = adapter.reconcile(
        replace(request_for(slug="spring-menu"), irreversible_started_at=later)
    )
    assert found.status is ReconcileStatus.NOT_FOUND


def test_a_user_who_may_not_post_is_refused_for_good(adapter: WordPressAdapter) -> None:
    with pytest.raises(PermanentError) as refused:
        adapter.publish(request_for(login="subscriber1"), NullContext())
    assert refused.value.code == "wordpress_cannot_create" and refused.value.http_status == 403


def test_a_revoked_application_password_needs_a_reconnect(
    adapter: WordPressAdapter, sandbox: httpx.Client
) -> None:
    faults(sandbox, revoked_tokens=["editor:abcd efgh ijkl"])
    with pytest.raises(AuthRevokedError) as refused:
        adapter.publish(request_for(), NullContext())
    assert refused.value.code == "wordpress_credential_refused"
    assert refused.value.details == {"wordpress_code": "incorrect_password"}


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "outcome"),
    [
        (401, {"code": "rest_not_logged_in"}, {}, "wordpress_not_logged_in", Outcome.AUTH_REVOKED),
        (
            401,
            {"code": "invalid_username"},
            {},
            "wordpress_credential_refused",
            Outcome.AUTH_REVOKED,
        ),
        (403, {"code": "rest_cannot_publish"}, {}, "wordpress_cannot_publish", Outcome.PERMANENT),
        (404, {"code": "rest_no_route"}, {}, "wordpress_rest_unavailable", Outcome.PERMANENT),
        (400, {"code": "rest_invalid_param"}, {}, "wordpress_invalid_request", Outcome.PERMANENT),
        (429, {}, {"Retry-After": "30"}, "wordpress_rate_limited", Outcome.RATE_LIMITED),
        (502, {}, {}, "wordpress_server_error", Outcome.TRANSIENT),
    ],
)
def test_classify(
    status: int, body: dict[str, Any], headers: dict[str, str], code: str, outcome: Outcome
) -> None:
    error = classify(httpx.Response(status, json=body, headers=headers))
    assert (error.code, error.outcome) == (code, outcome)
    if status == 429:
        assert error.retry_after == 30


def test_without_a_base_url_the_account_site_is_the_host(http: httpx.Client) -> None:
    adapter = WordPressAdapter(http, settings=Settings(allow_private_urls=False))
    account = replace(request_for().account, external_id="https://93.184.215.14/blog/")
    url = adapter.site_url(account, "/wp-json/wp/v2/posts")
    assert url == "https://93.184.215.14/blog/wp-json/wp/v2/posts"
    broken = replace(account, external_id="blog.example.com")
    with pytest.raises(PermanentError) as invalid:
        adapter.site_url(broken, "/x")
    assert invalid.value.code == "wordpress_site_invalid"


@pytest.mark.parametrize(
    "site",
    [
        "https://127.0.0.1",
        "http://10.0.0.7/wp",
        "https://169.254.169.254",
        "https://93.184.215.14:8443",
    ],
)
def test_a_site_inside_our_network_is_refused(http: httpx.Client, site: str) -> None:
    adapter = WordPressAdapter(http, settings=Settings(allow_private_urls=False))
    account = replace(request_for().account, external_id=site)
    with pytest.raises(PermanentError) as refused:
        adapter.publish(replace(request_for(), account=account), NullContext())
    assert refused.value.code == "wordpress_site_refused"


def test_connecting_a_site_inside_our_network_is_refused(http: httpx.Client) -> None:
    flow = WordPressFlow(http, None, Settings(allow_private_urls=False))
    values = {"site_url": "http://127.0.0.1:5432", "username": "u", "application_password": "p"}
    with pytest.raises(OAuthError) as refused:
        flow.verify(values)
    assert refused.value.code == "site_refused"

"""The WordPress adapter for a blog on WordPress.com, against the sandbox over real HTTP:
the same wp/v2 requests under /wp/v2/sites/{blog_id} with the blog's Bearer token, terms
and media staged ahead, a lost answer adopted rather than posted twice, and the blog's
token refused where it no longer works."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.adapters.conftest import make_request
from tests.media_samples import jpeg_bytes
from workers.adapters.base import (
    AuthRevokedError,
    MediaItem,
    NullContext,
    Outcome,
    PermanentError,
    PublishRequest,
    ReconcileStatus,
    TransientError,
)
from workers.adapters.wordpress import WordPressAdapter, classify

REDIRECT = "https://crier.example/oauth/wordpress/callback"


@pytest.fixture
def adapter(http: httpx.Client, sandbox_url: str) -> WordPressAdapter:
    return WordPressAdapter(http, base_url=sandbox_url)


def blog_token(sandbox: httpx.Client, blog: str = "") -> dict[str, Any]:
    """A per-blog token from the sandbox's WordPress.com consent (the first blog, or
    `blog`)."""
    query = {
        "client_id": "crier",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "state": "s",
        "sandbox_blog": blog,
    }
    consent = sandbox.get("/wordpress/oauth2/authorize", params=query)
    assert consent.status_code == 302, consent.text
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    form = {
        "client_id": "crier",
        "client_secret": "secret",
        "redirect_uri": REDIRECT,
        "code": code,
        "grant_type": "authorization_code",
    }
    token = sandbox.post("/wordpress/oauth2/token", data=form)
    assert token.status_code == 200, token.text
    return dict(token.json())


def request_for(token: dict[str, Any], media: list[MediaItem] | None = None) -> PublishRequest:
    request = make_request(
        "wordpress",
        text="<p>Fresh from the blog.</p>",
        settings={"title": "Blog news", "categories": ["News"], "tags": ["crier"]},
        media=media or [],
        access_token=token["access_token"],
        refresh_token=None,
        external_id=token["blog_url"],
        target_id=77,
    )
    account = replace(request.account, settings={"blog_id": token["blog_id"], "kind": "blog"})
    return replace(request, account=account)


def ledger(sandbox: httpx.Client) -> list[dict[str, Any]]:
    return list(sandbox.get("/_ledger", params={"platform": "wordpress"}).json())


def test_a_blog_post_goes_out_with_bearer_under_its_site(
    adapter: WordPressAdapter, sandbox: httpx.Client, tmp_path: Any
) -> None:
    token = blog_token(sandbox)
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(jpeg_bytes())
    media = [MediaItem("m1", "image", "image/jpeg", photo.stat().st_size, str(photo), "", "p.jpg")]

    result = adapter.publish(request_for(token, media), NullContext())

    [post] = ledger(sandbox)
    assert post["account"] == token["blog_id"] and result.platform_post_id == post["id"]
    assert post["params"]["featured_media"] and post["params"]["categories"]
    assert result.url is not None and result.url.startswith(token["blog_url"])
    # The blog has posts of its own: the self-hosted sandbox site has none.
    site = httpx.get(
        f"{str(sandbox.base_url).rstrip('/')}/wordpress/wp-json/wp/v2/posts", auth=("e", "pw")
    )
    assert site.json() == []


def test_a_lost_answer_is_adopted_on_retry(
    adapter: WordPressAdapter, sandbox: httpx.Client
) -> None:
    token = blog_token(sandbox)
    sandbox.post("/_faults", json={"wordpress": {"lose_response_every": 1}})
    context = NullContext()
    with pytest.raises(TransientError):
        adapter.publish(request_for(token), context)
    sandbox.post("/_faults", json={})

    found = adapter.reconcile(replace(request_for(token), handle=context.handle))
    assert found.status is ReconcileStatus.FOUND and found.result is not None
    again = adapter.publish(replace(request_for(token), handle=context.handle), NullContext())
    [post] = ledger(sandbox)
    assert again.platform_post_id == found.result.platform_post_id == post["id"]


def test_another_blogs_id_is_refused(adapter: WordPressAdapter, sandbox: httpx.Client) -> None:
    token = blog_token(sandbox)
    second = blog_token(sandbox, blog="")
    assert second["blog_id"] == token["blog_id"]  # the first blog unless another is picked
    mixed = request_for({**token, "blog_id": "299999999"})
    with pytest.raises(PermanentError) as refused:
        adapter.publish(mixed, NullContext())
    assert refused.value.code == "wordpress_forbidden" and ledger(sandbox) == []


def test_a_revoked_blog_token_needs_a_reconnect(
    adapter: WordPressAdapter, sandbox: httpx.Client
) -> None:
    token = blog_token(sandbox)
    sandbox.post("/_faults", json={"wordpress": {"revoked_tokens": [token["access_token"]]}})
    with pytest.raises(AuthRevokedError) as refused:
        adapter.publish(request_for(token), NullContext())
    assert refused.value.code == "wordpress_token_refused"


def test_without_a_base_url_a_blog_goes_to_the_public_api(http: httpx.Client) -> None:
    adapter = WordPressAdapter(http)
    account = request_for({"access_token": "t", "blog_url": "https://x.blog", "blog_id": "42"})
    url = adapter.site_url(account.account, "/wp-json/wp/v2/posts")
    assert url == "https://public-api.wordpress.com/wp/v2/sites/42/posts"


@pytest.mark.parametrize(
    ("status", "body", "code", "outcome"),
    [
        (401, {"code": "rest_not_logged_in"}, "wordpress_token_refused", Outcome.AUTH_REVOKED),
        (400, {"error": "invalid_token"}, "wordpress_token_refused", Outcome.AUTH_REVOKED),
        (403, {"code": "rest_cannot_publish"}, "wordpress_cannot_publish", Outcome.PERMANENT),
        (502, {}, "wordpress_server_error", Outcome.TRANSIENT),
    ],
)
def test_classify_a_blogs_answers(
    status: int, body: dict[str, Any], code: str, outcome: Outcome
) -> None:
    request = httpx.Request("POST", "https://public-api.wordpress.com/wp/v2/sites/42/posts")
    error = classify(httpx.Response(status, json=body, request=request))
    assert (error.code, error.outcome) == (code, outcome)

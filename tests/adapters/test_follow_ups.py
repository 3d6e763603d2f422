"""Replies and comments under a post (a thread's items, a first comment), per platform,
against the sandbox over real HTTP: the call each platform's API takes, the ledger's
`reply_to`, and finding an item whose answer was lost instead of posting it again."""

from __future__ import annotations

import httpx
import pytest

from app.platforms import PLATFORMS
from tests.adapters.conftest import make_request
from tests.adapters.test_bluesky import APP_PASSWORD as BLUESKY_APP_PASSWORD
from tests.adapters.test_bluesky import HANDLE as BLUESKY_HANDLE
from tests.adapters.test_linkedin import MEMBER as LINKEDIN_MEMBER
from tests.adapters.test_mastodon import PROFILE as MASTODON_PROFILE
from tests.adapters.test_wordpress import request_for as wordpress_request
from tests.adapters.test_youtube import SETTINGS as YOUTUBE_SETTINGS
from workers.adapters import adapter_classes
from workers.adapters.base import (
    Adapter,
    FollowUp,
    MediaItem,
    NullContext,
    PermanentError,
    PlatformError,
    PublishRequest,
    PublishResult,
    ReconcileStatus,
)
from workers.adapters.bluesky import BlueskyAdapter
from workers.adapters.facebook import FacebookAdapter
from workers.adapters.instagram import InstagramAdapter
from workers.adapters.linkedin import LinkedInAdapter
from workers.adapters.mastodon import MastodonAdapter
from workers.adapters.threads import ThreadsAdapter
from workers.adapters.wordpress import WordPressAdapter
from workers.adapters.x import XAdapter
from workers.adapters.youtube import YouTubeAdapter


def ledger(sandbox: httpx.Client, platform: str) -> list[dict]:
    return sandbox.get("/_ledger", params={"platform": platform}).json()


def faults(sandbox: httpx.Client, platform: str, **config: object) -> None:
    sandbox.post("/_faults", json={platform: config}).raise_for_status()


@pytest.fixture(params=["x", "threads", "bluesky", "mastodon"])
def threading(request: pytest.FixtureRequest, http: httpx.Client, sandbox_url: str) -> Adapter:
    if request.param == "x":
        return XAdapter(http, base_url=sandbox_url)
    if request.param == "bluesky":
        return BlueskyAdapter(http, base_url=sandbox_url)
    if request.param == "mastodon":
        return MastodonAdapter(http, base_url=sandbox_url)
    adapter = ThreadsAdapter(http, base_url=sandbox_url)
    adapter.poll_interval = 0.05
    return adapter


def post_request(platform: str, text: str) -> PublishRequest:
    """A post on the platform's test account: Bluesky's handle and app password, a
    Mastodon profile URL; the defaults elsewhere."""
    if platform == "bluesky":
        return make_request(
            platform, text, access_token=BLUESKY_APP_PASSWORD, refresh_token=None,
            external_id=BLUESKY_HANDLE,
        )  # fmt: skip
    if platform == "mastodon":
        return make_request(platform, text, external_id=MASTODON_PROFILE)
    return make_request(platform, text=text)


def test_a_thread_chains_each_item_to_the_one_before(
    threading: Adapter, sandbox: httpx.Client, image_item: MediaItem
) -> None:
    platform = threading.platform
    request = post_request(platform, "A thread, 1/3")
    parent = threading.publish(request, NullContext())
    first = threading.publish_reply(
        request, parent, FollowUp("thread_item", 1, "2/3 with a photo", [image_item]), NullContext()
    )
    second = threading.publish_reply(
        request, first, FollowUp("thread_item", 2, "3/3"), NullContext()
    )
    entries = {e["id"]: e for e in ledger(sandbox, platform)}
    assert entries[parent.platform_post_id]["reply_to"] is None
    assert entries[first.platform_post_id]["reply_to"] == parent.platform_post_id
    assert len(entries[first.platform_post_id]["media"]) == 1
    assert entries[second.platform_post_id]["reply_to"] == first.platform_post_id
    assert entries[second.platform_post_id]["text"] == "3/3"
    assert second.url


def test_a_first_comment_is_a_reply_to_the_post(threading: Adapter, sandbox: httpx.Client) -> None:
    platform = threading.platform
    request = post_request(platform, "Launch")
    parent = threading.publish(request, NullContext())
    comment = threading.publish_comment(
        request, parent, FollowUp("comment", 0, "#launch https://crier.example"), NullContext()
    )
    entry = next(e for e in ledger(sandbox, platform) if e["id"] == comment.platform_post_id)
    assert entry["reply_to"] == parent.platform_post_id
    assert entry["text"] == "#launch https://crier.example"


def test_a_reply_whose_answer_was_lost_is_found_not_posted_again(
    threading: Adapter, sandbox: httpx.Client
) -> None:
    platform = threading.platform
    request = post_request(platform, "Lost answers")
    parent = threading.publish(request, NullContext())
    item = FollowUp("thread_item", 1, "the reply whose answer is lost")
    assert threading.find_follow_up(request, parent, item).status == ReconcileStatus.NOT_FOUND
    faults(sandbox, platform, lose_response_every=1)
    context = NullContext()
    with pytest.raises(PlatformError):
        threading.publish_reply(request, parent, item, context)
    faults(sandbox, platform)
    assert context.irreversible
    saved = FollowUp(item.kind, item.position, item.text, handle=context.handle)
    found = threading.find_follow_up(request, parent, saved)
    assert found.status == ReconcileStatus.FOUND and found.result is not None
    replies = [e for e in ledger(sandbox, platform) if e["reply_to"] == parent.platform_post_id]
    assert [e["id"] for e in replies] == [found.result.platform_post_id]
    # Without the handle (lost in a crash), the text under the parent finds it too.
    bare = threading.find_follow_up(request, parent, item)
    assert bare.result is not None
    assert bare.result.platform_post_id == found.result.platform_post_id
    # Another parent's replies are not this item.
    other = threading.publish(post_request(platform, "Another post"), NullContext())
    assert threading.find_follow_up(request, other, item).status == ReconcileStatus.NOT_FOUND


def test_a_reply_to_a_post_that_is_gone_is_refused(threading: Adapter) -> None:
    request = post_request(threading.platform, "Gone")
    with pytest.raises(PermanentError):
        threading.publish_reply(
            request, PublishResult("999", None), FollowUp("thread_item", 1, "orphan"), NullContext()
        )


# -- first comments where the platform has comments ---------------------------------------


def test_a_wordpress_comment_goes_under_the_post_as_the_account_user(
    http: httpx.Client, sandbox_url: str, sandbox: httpx.Client
) -> None:
    adapter = WordPressAdapter(http, base_url=sandbox_url)
    request = wordpress_request()
    parent = adapter.publish(request, NullContext())
    result = adapter.publish_comment(
        request, parent, FollowUp("comment", 0, "Menu & hours <b>below</b>"), NullContext()
    )
    assert result.url == f"{parent.url}#comment-{result.platform_post_id}"
    assert result.details["reply_to"] == parent.platform_post_id
    [entry] = [e for e in ledger(sandbox, "wordpress") if e["reply_to"] is not None]
    assert (entry["account"], entry["text"]) == ("editor", "Menu & hours <b>below</b>")
    # A post that is not on the site (trashed, or never made) takes no comment.
    with pytest.raises(PermanentError):
        adapter.publish_comment(
            request, PublishResult("999999", None), FollowUp("comment", 0, "x"), NullContext()
        )


def _commenting(
    platform: str, http: httpx.Client, sandbox_url: str, image: MediaItem, video: MediaItem
) -> tuple[Adapter, PublishRequest]:
    if platform == "instagram":
        adapter: Adapter = InstagramAdapter(http, base_url=sandbox_url)
        adapter.poll_interval = 0.05  # type: ignore[attr-defined]
        return adapter, make_request("instagram", "With a comment", media=[image])
    if platform == "facebook":
        return FacebookAdapter(http, base_url=sandbox_url), make_request("facebook", "Page post")
    if platform == "linkedin":
        request = make_request("linkedin", "Member post", external_id=LINKEDIN_MEMBER)
        return LinkedInAdapter(http, base_url=sandbox_url), request
    if platform == "wordpress":
        return WordPressAdapter(http, base_url=sandbox_url), wordpress_request()
    request = make_request("youtube", "A video", settings=YOUTUBE_SETTINGS, media=[video])
    return YouTubeAdapter(http, base_url=sandbox_url), request


@pytest.mark.parametrize("platform", ["instagram", "facebook", "linkedin", "youtube", "wordpress"])
def test_a_first_comment_goes_under_the_post_once_even_when_its_answer_is_lost(
    platform: str,
    http: httpx.Client,
    sandbox_url: str,
    sandbox: httpx.Client,
    image_item: MediaItem,
    video_item: MediaItem,
) -> None:
    adapter, request = _commenting(platform, http, sandbox_url, image_item, video_item)
    parent = adapter.publish(request, NullContext())
    comment = FollowUp("comment", 0, "#launch and a link https://crier.example")
    assert adapter.find_follow_up(request, parent, comment).status == ReconcileStatus.NOT_FOUND

    context = NullContext()
    result = adapter.publish_comment(request, parent, comment, context)
    assert context.irreversible and context.handle and context.handle["started_at"]
    entries = ledger(sandbox, platform)
    [entry] = [e for e in entries if e["reply_to"] is not None]
    assert entry["reply_to"] == parent.platform_post_id
    assert entry["id"] == result.platform_post_id
    assert entry["text"] == comment.text
    assert result.url

    # A second comment whose answer is lost: found by its text under the post, not sent twice.
    second = FollowUp("comment", 0, "the comment whose answer is lost")
    faults(sandbox, platform, lose_response_every=1)
    lost = NullContext()
    with pytest.raises(PlatformError):
        adapter.publish_comment(request, parent, second, lost)
    faults(sandbox, platform)
    saved = FollowUp("comment", 0, second.text, handle=lost.handle)
    found = adapter.find_follow_up(request, parent, saved)
    assert found.status == ReconcileStatus.FOUND and found.result is not None
    [lost_entry] = [e for e in ledger(sandbox, platform) if e["text"] == second.text]
    assert found.result.platform_post_id == lost_entry["id"]
    # Comments are not posts: the account's posts are still the one.
    assert len([e for e in ledger(sandbox, platform) if e["reply_to"] is None]) == 1


def test_each_platform_implements_what_its_rules_promise() -> None:
    """The rules table's `first_comment` and `threads` flags (intake and GET
    /platform-rules) hold only where the adapter has the calls behind them."""
    for name, cls in adapter_classes().items():
        rules = PLATFORMS[name]
        finds = cls.find_follow_up is not Adapter.find_follow_up
        comments = cls.publish_comment is not Adapter.publish_comment
        replies = cls.publish_reply is not Adapter.publish_reply
        assert rules.first_comment == (finds and (comments or replies)), name
        assert rules.threads == (finds and replies), name

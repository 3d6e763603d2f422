"""Instagram's content publishing API under /instagram (docs/platforms.md): containers
with their status lifecycle, media_publish with the 24 h posting cap, media reads and
listings, and the long-lived token refresh.

The same calls are served on graph.facebook.com (under /facebook, beside the Pages API)
for accounts connected through Facebook Login, with the token of the Page the account is
linked to. Both hosts share one store, so a post is the same ledger entry whichever host
it came through. Each host refuses the other login's tokens, as Meta does; a token the
sandbox did not issue (tests, `crier accounts add`) is taken on either.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

from flask import Response

from sandbox import oauth
from sandbox._containers import ContainerPlatform, container_routes
from sandbox.core import PullFailure, Route, SandboxState, media_entry, state
from sandbox.graph import (
    DAY_SECONDS,
    MEDIA_NOT_READY,
    GraphGuard,
    carousel_children,
    graph_error,
    graph_failure,
    graph_time,
    invalid_parameter,
    is_public_url,
    listing,
    media_of,
    meta_fault_style,
    object_not_found,
    parse_bool,
    parse_id_list,
    parse_json_param,
    pull_failure,
    refresh_long_lived_token,
    requested_fields,
    shortcode,
)
from sandbox.rules import PLATFORMS, count_hashtags, count_mentions

PLATFORM = "instagram"
USAGE_TYPE = "instagram"
DAILY_POST_CAP = PLATFORMS[PLATFORM].daily_post_cap or 50
CAPTION_LIMIT = PLATFORMS[PLATFORM].text_limit
API_HASHTAG_LIMIT = 30  # the API reference's figure; intake applies the product's 5
MENTION_LIMIT = 20
ALT_TEXT_LIMIT = 1000
CAROUSEL_MIN, CAROUSEL_MAX = 2, 10
MEDIA_TYPES = frozenset({"IMAGE", "VIDEO", "REELS", "STORIES", "CAROUSEL"})
GRADUATION_STRATEGIES = frozenset({"MANUAL", "SS_PERFORMANCE"})
STATUS_TEXT = {
    "IN_PROGRESS": "In Progress: Media is still being processed.",
    "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
    "PUBLISHED": "Published: Media has been successfully published.",
    "EXPIRED": "Expired: Media was not published within 24 hours.",
}


STYLE = meta_fault_style(
    80002,
    "(#80002) There have been too many calls to this Instagram account. Wait a bit and try again.",
    USAGE_TYPE,
    "user_id",
)


def _cannot_parse() -> Response:
    return graph_error("Invalid OAuth access token - Cannot parse access token", 190)


def _instagram_host_token(token: str, account: str | None) -> Response | None:
    """graph.instagram.com takes Instagram user tokens: a Facebook token is refused."""
    grant = oauth.owner(state, token)
    if grant is not None and grant["platform"] == "facebook":
        return _cannot_parse()
    return None


def _facebook_host_token(token: str, account: str | None) -> Response | None:
    """graph.facebook.com takes Facebook tokens: an Instagram Login token is refused, and
    a Page token acts only for the Instagram account linked to its Page (and not once the
    user's grant is revoked)."""
    if oauth.revoked(state, token):
        return STYLE.auth_revoked()
    grant = oauth.owner(state, token)
    if grant is None:
        return None
    if grant["platform"] != "facebook":
        return _cannot_parse()
    if account is not None and "page" in grant and grant.get("instagram") != account:
        return object_not_found(account)
    return None


def list_stories(guard: GraphGuard, version: str, user_id: str) -> Response:
    owner, failure = guard.check_account(version, user_id, publishing=False)
    if failure is not None:
        return failure
    cutoff = time.time() - DAY_SECONDS
    owned = media_of(state, PLATFORM, owner)
    live = [m for m in owned if m["media_product_type"] == "STORY" and m["created_at"] > cutoff]
    return listing(live, requested_fields(("id",)))


def refresh_access_token() -> Response:
    return refresh_long_lived_token(state, PLATFORM, STYLE, "ig_refresh_token", "IGAA")


def _published_media(container: dict[str, Any], media_id: str, now: float) -> dict[str, Any]:
    """The media object a published container becomes: feed post, reel or story."""
    media_type = container["params"]["media_type"]
    product_type = {"REELS": "REELS", "STORIES": "STORY"}.get(media_type, "FEED")
    code = shortcode(media_id)
    owner = container["owner"]
    if product_type == "STORY":
        permalink = f"https://www.instagram.com/stories/sandbox_{owner}/{media_id}/"
    else:
        section = "reel" if product_type == "REELS" else "p"
        permalink = f"https://www.instagram.com/{section}/{code}/"
    return {
        "id": media_id,
        "owner": owner,
        "created_at": now,
        "timestamp": graph_time(now),
        "caption": container["caption"] or None,
        "media_type": {"CAROUSEL": "CAROUSEL_ALBUM", "IMAGE": "IMAGE"}.get(
            media_type, "VIDEO" if container["media"][0]["kind"] == "video" else "IMAGE"
        ),
        "media_product_type": product_type,
        "shortcode": code,
        "permalink": permalink,
    }


def _not_ready() -> Response:
    return graph_error(
        MEDIA_NOT_READY,
        9007,
        2207027,
        user_title="Media ID is not available",
        user_msg=MEDIA_NOT_READY,
    )


def _expired() -> Response:
    return graph_error(
        "The media you are trying to access has expired. Please try uploading again.",
        -2,
        2207020,
    )


def _status_fields(container: dict[str, Any], status: str) -> dict[str, Any]:
    """Instagram reports status_code, and a sentence in status."""
    detail = STATUS_TEXT.get(status) or f"Error: {container.get('error', 'unknown')}"
    return {"status_code": status, "status": detail}


def _in_feed(media: dict[str, Any]) -> bool:
    """GET /{ig-user-id}/media leaves stories to /stories."""
    return media["media_product_type"] != "STORY"


def _validate_container(
    state: SandboxState, owner: str, p: dict[str, Any]
) -> dict[str, Any] | Response:
    """Check one POST /{ig-user-id}/media as the reference documents it."""
    media_type = str(p.get("media_type") or "IMAGE").upper()
    is_item = parse_bool(p.get("is_carousel_item")) is True
    caption = str(p.get("caption") or "")
    image_url, video_url = p.get("image_url"), p.get("video_url")
    if media_type not in MEDIA_TYPES:
        return invalid_parameter(f"The media type {media_type} is not supported", 2207023)
    if media_type == "VIDEO" and not is_item:
        return invalid_parameter(
            "The VIDEO media type is not supported for feed videos; use REELS", 2207023
        )
    if is_item and media_type not in ("IMAGE", "VIDEO"):
        return invalid_parameter("Only images and videos can be carousel items", 2207023)

    params: dict[str, Any] = {"media_type": media_type}
    child_ids: list[str] = []
    if media_type == "CAROUSEL":
        if image_url or video_url:
            return invalid_parameter("A carousel container takes children, not a media URL")
        child_ids = parse_id_list(p.get("children"))
        if not CAROUSEL_MIN <= len(child_ids) <= CAROUSEL_MAX:
            return graph_error(
                f"The carousel must have between {CAROUSEL_MIN} and {CAROUSEL_MAX} items",
                100,
                2207028,
            )
        carousel = carousel_children(state, PLATFORM, owner, child_ids)
        if isinstance(carousel, Response):
            return carousel
        media, params["children"] = carousel
    else:
        if media_type == "STORIES":
            if bool(image_url) == bool(video_url):
                return invalid_parameter("A story takes exactly one of image_url or video_url")
        elif media_type == "IMAGE":
            if not image_url or video_url:
                return invalid_parameter("The parameter image_url is required")
        elif not video_url or image_url:
            return invalid_parameter("The parameter video_url is required")
        url = image_url or video_url
        if not is_public_url(url):
            return graph_error("Media could not be fetched from this URI", 9004, 2207052)
        media = [{"kind": "image" if image_url else "video", "url": url}]

    if len(caption) > CAPTION_LIMIT or count_hashtags(caption) > API_HASHTAG_LIMIT:
        return graph_error("The caption is too long", 36004, 2207010)
    if count_mentions(caption) > MENTION_LIMIT:
        return invalid_parameter(f"More than {MENTION_LIMIT} @tags in the caption", 2207040)

    failure = _platform_fields(p, media_type, bool(image_url), params)
    if failure is not None:
        return failure
    if is_item:
        params["is_carousel_item"] = True
    fields = {"caption": caption, "media": media, "params": params, "children": child_ids}
    if not child_ids:  # a carousel's media are its children's, pulled when they were made
        refused = _pull(state, fields)
        if refused is not None:
            return refused
    return fields


def _pull(state: SandboxState, fields: dict[str, Any]) -> Response | None:
    """With fetch_media on, download the container's media as Instagram does: an image
    while the container is created (a failure refuses the request), a video and its cover
    while it processes (a failure leaves the container in ERROR, with the subcode in its
    status, and publishing it answers the same error)."""
    [item] = fields["media"]
    entry = media_entry(state, PLATFORM, item["kind"], item["url"])
    if isinstance(entry, PullFailure):
        failure = pull_failure(item["url"], item["kind"], entry)
        if item["kind"] == "image":
            return graph_failure(failure)
        _fail_container(fields, failure)
        return None
    cover_url = fields["params"].get("cover_url")
    if cover_url:
        cover = media_entry(state, PLATFORM, "image", cover_url)
        if isinstance(cover, PullFailure):
            _fail_container(fields, pull_failure(cover_url, "image", cover))
        elif "sha256" in cover:
            entry["cover"] = {k: v for k, v in cover.items() if k != "kind"}
    fields["media"] = [entry]
    return None


def _fail_container(fields: dict[str, Any], failure: dict[str, Any]) -> None:
    fields["error"] = f"{failure['user_title']} (error subcode {failure['subcode']})"
    fields["failure"] = failure


def _platform_fields(
    p: dict[str, Any], media_type: str, is_image: bool, params: dict[str, Any]
) -> Response | None:
    """alt_text (images), share_to_feed and trial_params (reels), thumb_offset (videos)."""
    if p.get("alt_text") is not None:
        alt_text = str(p["alt_text"])
        if not is_image or media_type == "CAROUSEL":
            return invalid_parameter("alt_text is only supported for images")
        if len(alt_text) > ALT_TEXT_LIMIT:
            return invalid_parameter(f"alt_text must be at most {ALT_TEXT_LIMIT} characters")
        params["alt_text"] = alt_text
    if p.get("cover_url") is not None:
        if media_type != "REELS":
            return invalid_parameter("cover_url is only supported for REELS")
        if not is_public_url(p["cover_url"]):
            return graph_error("Media could not be fetched from this URI", 9004, 2207052)
        params["cover_url"] = str(p["cover_url"])
    if p.get("share_to_feed") is not None:
        share = parse_bool(p["share_to_feed"])
        if media_type != "REELS" or share is None:
            return invalid_parameter("share_to_feed is a boolean for REELS only")
        params["share_to_feed"] = share
    if p.get("thumb_offset") is not None:
        if media_type not in ("REELS", "VIDEO"):
            return invalid_parameter("thumb_offset is only supported for videos")
        try:
            offset = int(str(p["thumb_offset"]))
        except ValueError:
            return invalid_parameter("thumb_offset must be an integer number of milliseconds")
        if offset < 0:
            return graph_error("The thumb_offset is out of range", 1, 2207057)
        params["thumb_offset"] = offset
    if p.get("trial_params") is not None:
        trial = parse_json_param(p["trial_params"])
        if media_type != "REELS":
            return invalid_parameter("trial_params requires media_type REELS")
        if not isinstance(trial, dict) or trial.get("graduation_strategy") not in (
            GRADUATION_STRATEGIES
        ):
            return invalid_parameter(
                "trial_params.graduation_strategy must be MANUAL or SS_PERFORMANCE"
            )
        params["trial_params"] = trial
    return None


# POST and GET /<version>/<user_id>/media, POST .../media_publish, GET /<version>/<id>:
# served on both hosts, over the one store.
CONTAINERS = ContainerPlatform(
    platform=PLATFORM,
    usage_type=USAGE_TYPE,
    daily_post_cap=DAILY_POST_CAP,
    quota_subcode=2207042,
    create_edge="media",
    publish_edge="media_publish",
    text_field="caption",
    validate=_validate_container,
    published_media=_published_media,
    status_refusals={"IN_PROGRESS": _not_ready, "EXPIRED": _expired},
    status_fields=_status_fields,
    listed=_in_feed,
)


GUARD = GraphGuard(state, PLATFORM, STYLE, token_rule=_instagram_host_token)
# The same publishing calls on graph.facebook.com (served by the Facebook blueprint) for
# accounts connected through Facebook Login; Facebook's GET /{id} asks `instagram_object`
# before its own objects.
FACEBOOK_HOST_GUARD = GraphGuard(state, PLATFORM, STYLE, token_rule=_facebook_host_token)
_FACEBOOK_HOST_CONTAINERS, instagram_object = container_routes(
    FACEBOOK_HOST_GUARD, CONTAINERS, serve_reads=False, endpoint_prefix="instagram_"
)
FACEBOOK_HOST_ROUTES = (
    *_FACEBOOK_HOST_CONTAINERS,
    Route(
        "GET",
        "/<version>/<user_id>/stories",
        partial(list_stories, FACEBOOK_HOST_GUARD),
        "instagram_stories",
    ),
)

# The platform's paths, served under /instagram.
ROUTES = (
    *container_routes(GUARD, CONTAINERS)[0],
    Route("GET", "/<version>/<user_id>/stories", partial(list_stories, GUARD), "list_stories"),
    Route("GET", "/refresh_access_token", refresh_access_token),
)
BLUEPRINT_NAME = PLATFORM

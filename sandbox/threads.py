"""Threads' publishing API under /threads (docs/platforms.md): containers (TEXT, IMAGE,
VIDEO, CAROUSEL) with their status, threads_publish with the 250-per-24 h cap, reads,
the profile's thread listing, and the long-lived token refresh."""

from __future__ import annotations

import re
from typing import Any

from flask import Response

from sandbox._containers import ContainerPlatform, container_routes
from sandbox.core import PullFailure, Route, SandboxState, media_entry, state
from sandbox.graph import (
    MEDIA_NOT_READY,
    GraphGuard,
    carousel_children,
    get_media,
    graph_error,
    graph_failure,
    graph_time,
    invalid_parameter,
    is_public_url,
    listing,
    meta_fault_style,
    object_not_found,
    parse_bool,
    parse_id_list,
    pull_failure,
    refresh_long_lived_token,
    requested_fields,
    shortcode,
)
from sandbox.rules import PLATFORMS, count_threads

PLATFORM = "threads"
USAGE_TYPE = "threads"
DAILY_POST_CAP = PLATFORMS[PLATFORM].daily_post_cap or 250
TEXT_LIMIT = PLATFORMS[PLATFORM].text_limit
LINK_LIMIT = 5
ALT_TEXT_LIMIT = 1000
CAROUSEL_MIN, CAROUSEL_MAX = 2, 20
MEDIA_TYPES = frozenset({"TEXT", "IMAGE", "VIDEO", "CAROUSEL"})
REPLY_CONTROLS = frozenset(
    {
        "everyone",
        "accounts_you_follow",
        "mentioned_only",
        "parent_post_author_only",
        "followers_only",
    }
)
LISTED_MEDIA_TYPES = {"TEXT": "TEXT_POST", "CAROUSEL": "CAROUSEL_ALBUM"}
_LINK_RE = re.compile(r"https?://\S+", re.IGNORECASE)


def _published_media(container: dict[str, Any], media_id: str, now: float) -> dict[str, Any]:
    """The thread a published container becomes (a reply: `replied_to` names its parent)."""
    code = shortcode(media_id)
    owner = container["owner"]
    media_type = container["params"]["media_type"]
    reply_to = container["params"].get("reply_to_id")
    return {
        "is_reply": bool(reply_to),
        "replied_to": {"id": reply_to} if reply_to else None,
        "id": media_id,
        "owner": owner,
        "created_at": now,
        "timestamp": graph_time(now),
        "text": container["text"] or None,
        "media_type": LISTED_MEDIA_TYPES.get(media_type, media_type),
        "shortcode": code,
        "permalink": f"https://www.threads.net/@sandbox_{owner}/post/{code}",
    }


def _not_ready() -> Response:
    return graph_error(MEDIA_NOT_READY, 9007, 2207027)


def _status_fields(container: dict[str, Any], status: str) -> dict[str, Any]:
    """Threads reports the status itself, and why a container failed in error_message."""
    return {"status": status, "error_message": container.get("error")}


def _validate_container(
    state: SandboxState, owner: str, p: dict[str, Any]
) -> dict[str, Any] | Response:
    """Check one POST /{threads-user-id}/threads as the posts guide documents it."""
    media_type = str(p.get("media_type") or "").upper()
    is_item = parse_bool(p.get("is_carousel_item")) is True
    text = str(p.get("text") or "")
    image_url, video_url = p.get("image_url"), p.get("video_url")
    if media_type not in MEDIA_TYPES:
        return invalid_parameter("The parameter media_type must be TEXT, IMAGE, VIDEO or CAROUSEL")
    if is_item and media_type not in ("IMAGE", "VIDEO"):
        return invalid_parameter("Only images and videos can be carousel items")

    params: dict[str, Any] = {"media_type": media_type}
    child_ids: list[str] = []
    media: list[dict[str, Any]] = []
    if media_type == "TEXT":
        if not text:
            return invalid_parameter("The parameter text is required for TEXT posts")
        if image_url or video_url:
            return invalid_parameter("A TEXT post takes no media URL")
    elif media_type == "CAROUSEL":
        child_ids = parse_id_list(p.get("children"))
        if not CAROUSEL_MIN <= len(child_ids) <= CAROUSEL_MAX:
            return invalid_parameter(
                f"A carousel must have between {CAROUSEL_MIN} and {CAROUSEL_MAX} items"
            )
        carousel = carousel_children(state, PLATFORM, owner, child_ids)
        if isinstance(carousel, Response):
            return carousel
        media, params["children"] = carousel
    else:
        url = image_url if media_type == "IMAGE" else video_url
        if not url or (video_url if media_type == "IMAGE" else image_url):
            field = "image_url" if media_type == "IMAGE" else "video_url"
            return invalid_parameter(f"The parameter {field} is required for {media_type}")
        if not is_public_url(url):
            return invalid_parameter("The media could not be fetched from this URI", 2207052)
        media = [{"kind": media_type.lower(), "url": url}]

    if count_threads(text) > TEXT_LIMIT:
        return invalid_parameter(f"Param text must be at most {TEXT_LIMIT} characters long.")
    if len(set(_LINK_RE.findall(text))) > LINK_LIMIT:
        return graph_error(
            f"A post may contain at most {LINK_LIMIT} links",
            100,
            user_title="THREADS_API__LINK_LIMIT_EXCEEDED",
            user_msg=f"A post may contain at most {LINK_LIMIT} links.",
        )
    if p.get("reply_control") is not None:
        if p["reply_control"] not in REPLY_CONTROLS:
            return invalid_parameter("Invalid reply_control")
        params["reply_control"] = p["reply_control"]
    if p.get("alt_text") is not None:
        if media_type not in ("IMAGE", "VIDEO") or len(str(p["alt_text"])) > ALT_TEXT_LIMIT:
            return invalid_parameter("alt_text applies to one image or video, ≤1000 characters")
        params["alt_text"] = str(p["alt_text"])
    if p.get("reply_to_id") is not None:
        if is_item:
            return invalid_parameter("A carousel item cannot be a reply")
        parent = get_media(state, PLATFORM, str(p["reply_to_id"]))
        if parent is None:
            return invalid_parameter("The parameter reply_to_id must name a published thread")
        params["reply_to_id"] = str(p["reply_to_id"])
    if is_item:
        params["is_carousel_item"] = True
    fields = {"text": text, "media": media, "params": params, "children": child_ids}
    if media_type in ("IMAGE", "VIDEO"):
        refused = _pull(state, fields)
        if refused is not None:
            return refused
    return fields


def _pull(state: SandboxState, fields: dict[str, Any]) -> Response | None:
    """With fetch_media on, download the container's media as Threads does: an image while
    the container is created (a failure refuses the request), a video while it processes
    (a failure leaves the container in ERROR with FAILED_DOWNLOADING_VIDEO, or
    FAILED_PROCESSING_VIDEO when the file is no video; publishing it answers the error)."""
    [item] = fields["media"]
    entry = media_entry(state, PLATFORM, item["kind"], item["url"])
    if not isinstance(entry, PullFailure):
        fields["media"] = [entry]
        return None
    failure = pull_failure(item["url"], item["kind"], entry)
    if item["kind"] == "image":
        return graph_failure(failure)
    fields["error"] = "FAILED_PROCESSING_VIDEO" if entry.wrong_kind else "FAILED_DOWNLOADING_VIDEO"
    fields["failure"] = failure
    return None


def replies(version: str, media_id: str) -> Response:
    """GET /{threads-media-id}/replies: the replies directly under one post, oldest first."""
    guard = GraphGuard(state, PLATFORM, STYLE)
    _, failure = guard.check(version, publishing=False)
    if failure is not None:
        return failure
    if get_media(state, PLATFORM, media_id) is None:
        return object_not_found(media_id)
    with state.lock:
        found = [
            m
            for m in state.store(PLATFORM).setdefault("media", {}).values()
            if (m.get("replied_to") or {}).get("id") == media_id
        ]
    found.sort(key=lambda m: m["created_at"])
    return listing(found, requested_fields(("id",)))


def refresh_access_token() -> Response:
    return refresh_long_lived_token(state, PLATFORM, STYLE, "th_refresh_token", "THAA")


# Threads' call budget is the app-user pair's; the canonical throttle is code 4.
STYLE = meta_fault_style(4, "(#4) Application request limit reached", USAGE_TYPE, "user_id")
# POST and GET /<version>/<user_id>/threads, POST .../threads_publish, GET /<version>/<id>.
CONTAINERS = ContainerPlatform(
    platform=PLATFORM,
    usage_type=USAGE_TYPE,
    daily_post_cap=DAILY_POST_CAP,
    # The docs name no code for the 250-post cap; it mirrors Instagram's code 9.
    quota_subcode=None,
    create_edge="threads",
    publish_edge="threads_publish",
    text_field="text",
    validate=_validate_container,
    published_media=_published_media,
    # An EXPIRED container gets the plain "cannot be published" error.
    status_refusals={"IN_PROGRESS": _not_ready},
    status_fields=_status_fields,
    # The profile's threads; replies are listed under the post they answer.
    listed=lambda media: not media.get("is_reply"),
    deletable=True,
)

# The platform's paths, served under /threads.
ROUTES = (
    *container_routes(GraphGuard(state, PLATFORM, STYLE), CONTAINERS)[0],
    Route("GET", "/refresh_access_token", refresh_access_token),
    Route("GET", "/<version>/<media_id>/replies", replies),
)
BLUEPRINT_NAME = PLATFORM

"""Threads' publishing API under /threads (PLATFORMS.md section 3): containers (TEXT, IMAGE,
VIDEO, CAROUSEL) with their status, threads_publish with the 250-per-24 h cap, reads,
the profile's thread listing, and the long-lived token refresh."""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, Response, request

from app.platforms import PLATFORMS, count_threads
from workers.sandbox._meta import (
    access_token,
    bad_version,
    buc_usage,
    container_status,
    failed_container_error,
    get_container,
    get_media,
    graph_error,
    graph_failure,
    graph_params,
    graph_time,
    invalid_parameter,
    is_public_url,
    listing,
    lost_response,
    media_of,
    meta_fault_style,
    missing_token,
    new_container,
    note_publish,
    object_not_found,
    parse_bool,
    parse_id_list,
    pick_fields,
    publishes_in_window,
    pull_failure,
    quota_exhausted,
    refresh_long_lived_token,
    requested_fields,
    resolve_user,
    shortcode,
    store_media,
    token_user_id,
)
from workers.sandbox.core import (
    PullFailure,
    SandboxState,
    inject_faults,
    json_response,
    media_entry,
    should_lose_response,
)

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


def _account_of_request() -> str:
    user_id = (request.view_args or {}).get("user_id")
    return resolve_user(user_id, access_token()) if user_id else token_user_id(access_token())


def make_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint(PLATFORM, __name__)
    # Threads' call budget is the app-user pair's; the canonical throttle is code 4.
    style = meta_fault_style(
        4, "(#4) Application request limit reached", USAGE_TYPE, _account_of_request
    )

    def guard(version: str | None, publishing: bool) -> tuple[str, Response | None]:
        token = access_token()
        failure = (bad_version(version) if version else None) or inject_faults(
            state, PLATFORM, style, token, publishing
        )
        if failure is None and not token:
            failure = missing_token()
        return token or "", failure

    @bp.post("/<version>/<user_id>/threads")
    def create_container(version: str, user_id: str) -> Response:
        token, failure = guard(version, publishing=True)
        if failure is not None:
            return failure
        owner = resolve_user(user_id, token)
        fields = _validate_container(state, owner, graph_params())
        if isinstance(fields, Response):
            return fields
        container = new_container(state, PLATFORM, owner, fields)
        return json_response({"id": container["id"]})

    @bp.post("/<version>/<user_id>/threads_publish")
    def threads_publish(version: str, user_id: str) -> Response:
        token, failure = guard(version, publishing=True)
        if failure is not None:
            return failure
        owner = resolve_user(user_id, token)
        creation_id = str(graph_params().get("creation_id") or "")
        if not creation_id:
            return invalid_parameter("The parameter creation_id is required")
        container = get_container(state, PLATFORM, creation_id)
        if container is None or container["owner"] != owner:
            return object_not_found(creation_id, "post")
        if container["params"].get("is_carousel_item"):
            return invalid_parameter("A carousel item cannot be published on its own")
        with state.lock:
            stamps = publishes_in_window(state, PLATFORM, owner)
            status = container_status(state, PLATFORM, container)
            if status == "IN_PROGRESS":
                return graph_error(
                    "The media is not ready for publishing, please wait for a moment",
                    9007,
                    2207027,
                )
            failed = failed_container_error(state, PLATFORM, container)
            if status == "ERROR" and failed is not None:
                return failed  # its media could not be pulled
            if status != "FINISHED":
                return invalid_parameter(f"The media container is {status} and cannot be published")
            if len(stamps) >= DAILY_POST_CAP:
                # The docs name no code for this cap; it mirrors Instagram's code 9.
                return quota_exhausted(owner, USAGE_TYPE, stamps[0], DAILY_POST_CAP, subcode=None)
            media = _publish(state, container)
        if should_lose_response(state, PLATFORM):
            return lost_response()
        percent = min(99, (len(stamps) + 1) * 100 // DAILY_POST_CAP)
        return json_response({"id": media["id"]}, headers=buc_usage(owner, USAGE_TYPE, percent))

    @bp.get("/<version>/<object_id>")
    def read_object(version: str, object_id: str) -> Response:
        _, failure = guard(version, publishing=False)
        if failure is not None:
            return failure
        container = get_container(state, PLATFORM, object_id)
        if container is not None:
            item = {
                "id": object_id,
                "status": container_status(state, PLATFORM, container),
                "error_message": container.get("error"),
            }
            return json_response(pick_fields(item, requested_fields(("id",))))
        media = get_media(state, PLATFORM, object_id)
        if media is None:
            return object_not_found(object_id)
        return json_response(pick_fields(media, requested_fields(("id",))))

    @bp.get("/<version>/<user_id>/threads")
    def list_threads(version: str, user_id: str) -> Response:
        token, failure = guard(version, publishing=False)
        if failure is not None:
            return failure
        owned = media_of(state, PLATFORM, resolve_user(user_id, token))
        return listing(owned, requested_fields(("id",)))

    @bp.get("/refresh_access_token")
    def refresh_access_token() -> Response:
        return refresh_long_lived_token(state, PLATFORM, style, "th_refresh_token", "THAA")

    return bp


def _publish(state: SandboxState, container: dict[str, Any]) -> dict[str, Any]:
    """Turn a FINISHED container into a published thread: once, under the state lock."""
    media_id = str(state.next_id())
    code = shortcode(media_id)
    owner = container["owner"]
    media_type = container["params"]["media_type"]
    now = time.time()
    media = {
        "id": media_id,
        "owner": owner,
        "created_at": now,
        "timestamp": graph_time(now),
        "text": container["text"] or None,
        "media_type": LISTED_MEDIA_TYPES.get(media_type, media_type),
        "shortcode": code,
        "permalink": f"https://www.threads.net/@sandbox_{owner}/post/{code}",
    }
    container["media_id"] = media_id
    store_media(state, PLATFORM, media)
    note_publish(state, PLATFORM, owner)
    state.record(
        PLATFORM, owner, media_id, container["text"], container["media"], container["params"]
    )
    return media


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
        children = [get_container(state, PLATFORM, cid) for cid in child_ids]
        for cid, child in zip(child_ids, children, strict=True):
            if (
                child is None
                or child["owner"] != owner
                or not child["params"].get("is_carousel_item")
                or container_status(state, PLATFORM, child) in ("ERROR", "EXPIRED", "PUBLISHED")
            ):
                return invalid_parameter(f"The carousel item {cid} is not a valid child")
        media = [m for child in children if child for m in child["media"]]
        params["children"] = [child["params"] for child in children if child]
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

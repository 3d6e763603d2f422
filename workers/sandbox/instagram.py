"""Instagram's content publishing API under /instagram (PLATFORMS.md section 1): containers
with their status lifecycle, media_publish with the 24 h posting cap, media reads and
listings, and the long-lived token refresh."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, Response, request

from app.platforms import PLATFORMS, count_hashtags, count_mentions
from workers.sandbox._meta import (
    DAY_SECONDS,
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
    parse_json_param,
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


def _account_of_request() -> str:
    user_id = (request.view_args or {}).get("user_id")
    return resolve_user(user_id, access_token()) if user_id else token_user_id(access_token())


def make_blueprint(state: SandboxState) -> Blueprint:
    bp = Blueprint(PLATFORM, __name__)
    style = meta_fault_style(
        80002,
        "(#80002) There have been too many calls to this Instagram account. "
        "Wait a bit and try again.",
        USAGE_TYPE,
        _account_of_request,
    )

    def guard(version: str | None, publishing: bool) -> tuple[str, Response | None]:
        token = access_token()
        failure = (bad_version(version) if version else None) or inject_faults(
            state, PLATFORM, style, token, publishing
        )
        if failure is None and not token:
            failure = missing_token()
        return token or "", failure

    @bp.post("/<version>/<user_id>/media")
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

    @bp.post("/<version>/<user_id>/media_publish")
    def media_publish(version: str, user_id: str) -> Response:
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
                    user_title="Media ID is not available",
                    user_msg="The media is not ready for publishing, please wait for a moment",
                )
            if status == "EXPIRED":
                return graph_error(
                    "The media you are trying to access has expired. Please try uploading again.",
                    -2,
                    2207020,
                )
            failed = failed_container_error(state, PLATFORM, container)
            if status == "ERROR" and failed is not None:
                return failed  # its media could not be pulled
            if status != "FINISHED":
                return invalid_parameter(f"The media container is {status} and cannot be published")
            if len(stamps) >= DAILY_POST_CAP:
                return quota_exhausted(owner, USAGE_TYPE, stamps[0], DAILY_POST_CAP)
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
            status = container_status(state, PLATFORM, container)
            detail = STATUS_TEXT.get(status) or f"Error: {container.get('error', 'unknown')}"
            item = {"id": object_id, "status_code": status, "status": detail}
            return json_response(pick_fields(item, requested_fields(("id",))))
        media = get_media(state, PLATFORM, object_id)
        if media is None:
            return object_not_found(object_id)
        return json_response(pick_fields(media, requested_fields(("id",))))

    @bp.get("/<version>/<user_id>/media")
    def list_media(version: str, user_id: str) -> Response:
        token, failure = guard(version, publishing=False)
        if failure is not None:
            return failure
        owned = media_of(state, PLATFORM, resolve_user(user_id, token))
        feed = [m for m in owned if m["media_product_type"] != "STORY"]
        return listing(feed, requested_fields(("id",)))

    @bp.get("/<version>/<user_id>/stories")
    def list_stories(version: str, user_id: str) -> Response:
        token, failure = guard(version, publishing=False)
        if failure is not None:
            return failure
        cutoff = time.time() - DAY_SECONDS
        owned = media_of(state, PLATFORM, resolve_user(user_id, token))
        live = [m for m in owned if m["media_product_type"] == "STORY" and m["created_at"] > cutoff]
        return listing(live, requested_fields(("id",)))

    @bp.get("/refresh_access_token")
    def refresh_access_token() -> Response:
        return refresh_long_lived_token(state, PLATFORM, style, "ig_refresh_token", "IGAA")

    return bp


def _publish(state: SandboxState, container: dict[str, Any]) -> dict[str, Any]:
    """Turn a FINISHED container into published media: once, under the state lock."""
    media_type = container["params"]["media_type"]
    product_type = {"REELS": "REELS", "STORIES": "STORY"}.get(media_type, "FEED")
    media_id = str(state.next_id())
    code = shortcode(media_id)
    owner = container["owner"]
    if product_type == "STORY":
        permalink = f"https://www.instagram.com/stories/sandbox_{owner}/{media_id}/"
    else:
        section = "reel" if product_type == "REELS" else "p"
        permalink = f"https://www.instagram.com/{section}/{code}/"
    now = time.time()
    media = {
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
    container["media_id"] = media_id
    store_media(state, PLATFORM, media)
    note_publish(state, PLATFORM, owner)
    state.record(
        PLATFORM, owner, media_id, container["caption"], container["media"], container["params"]
    )
    return media


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

"""Facebook Pages under /facebook (docs/platforms.md): feed posts (with attached
unpublished photos), photos, videos, the three-phase reels flow with its rupload host,
object reads (permalink_url, reel status) and the Page's post and video listings. This
host also serves Instagram's publishing calls for accounts connected through Facebook
Login (`sandbox/instagram.py`)."""

from __future__ import annotations

import time
from typing import Any

from flask import Response, request, url_for

from sandbox.core import PullFailure, Route, SandboxState, json_response, media_entry, state
from sandbox.graph import (
    DAY_SECONDS,
    GraphGuard,
    answer_published,
    buc_usage,
    graph_error,
    graph_params,
    graph_time,
    invalid_parameter,
    is_public_url,
    listing,
    meta_fault_style,
    note_publish,
    object_not_found,
    parse_bool,
    parse_json_param,
    pick_fields,
    publishes_in_window,
    quota_exhausted,
    requested_fields,
)
from sandbox.insights import graph_account_fields
from sandbox.instagram import FACEBOOK_HOST_ROUTES, instagram_object

PLATFORM = "facebook"
USAGE_TYPE = "pages"
REELS_DAILY_CAP = 30  # per Page, rolling 24 h, enforced on video_reels
VIDEO_STATES = frozenset({"PUBLISHED", "DRAFT", "SCHEDULED"})
SCHEDULE_MIN_SECONDS = 10 * 60
REEL_SCHEDULE_MAX_SECONDS = 29 * DAY_SECONDS
PUBLISH_STATUS = {"PUBLISHED": "published", "SCHEDULED": "scheduled", "DRAFT": "draft"}


STYLE = meta_fault_style(
    80001,
    "(#80001) There have been too many calls to this Page account. Wait a bit and try "
    "again. For more info, please refer to "
    "https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
    USAGE_TYPE,
    "page_id",
)
GUARD = GraphGuard(state, PLATFORM, STYLE)


def usage_headers(page: str) -> dict[str, str]:
    recent = [o for o in _page_posts(state, page) if o["created_at"] > time.time() - 3600]
    return buc_usage(page, USAGE_TYPE, min(99, len(recent)))


def create_feed_post(version: str, page_id: str) -> Response:
    page, failure = GUARD.check_account(version, page_id, publishing=True)
    if failure is not None:
        return failure
    params = graph_params()
    message = str(params.get("message") or "")
    link = params.get("link")
    fbids = _attached_media_ids(params)
    if fbids is None:
        return invalid_parameter("(#100) attached_media must be a list of {media_fbid}")
    if not (message or link or fbids):
        return invalid_parameter("(#100) Missing message or attachment")
    with state.lock:
        photos = [_objects(state).get(fbid) for fbid in fbids]
        for fbid, photo in zip(fbids, photos, strict=True):
            if (
                photo is None
                or photo["kind"] != "photo"
                or photo["page"] != page
                or photo["published"]
                or photo.get("attached_to")
            ):
                return invalid_parameter(f"(#100) Invalid media_fbid {fbid} in attached_media")
        repeated = _refuse_repeated_message(state, page, message)
        if repeated is not None:
            return repeated
        post = _new_post(state, page, message, "status")
        for photo in photos:
            if photo is not None:
                photo["attached_to"] = post["id"]
        post_params: dict[str, Any] = {}
        if fbids:
            post_params["attached_media"] = [{"media_fbid": fbid} for fbid in fbids]
        if link:
            post_params["link"] = link
        media = [p["media"] for p in photos if p is not None]
        state.record(PLATFORM, page, post["id"], message, media, post_params)
    return answer_published(state, PLATFORM, {"id": post["id"]}, usage_headers(page))


def create_photo(version: str, page_id: str) -> Response:
    page, failure = GUARD.check_account(version, page_id, publishing=True)
    if failure is not None:
        return failure
    params = graph_params()
    url = params.get("url")
    if not url and "source" not in request.files:
        return graph_error("(#324) Requires upload file", 324)
    if url and not is_public_url(url):
        return invalid_parameter("(#100) url should represent a valid URL")
    published = parse_bool(params.get("published"))
    caption = str(params.get("caption") or params.get("message") or "")
    # Facebook downloads `url` before it answers (with fetch_media on, so do we).
    entry = media_entry(state, PLATFORM, "image", url) if url else None
    if isinstance(entry, PullFailure):
        return graph_error("(#324) Missing or invalid image file", 324)
    photo = {
        "kind": "photo",
        "id": str(state.next_id()),
        "page": page,
        "url": url or "multipart:source",
        "media": entry or {"kind": "image", "url": "multipart:source"},
        "published": published is not False,
        "created_at": time.time(),
    }
    with state.lock:
        _store_object(state, photo)
        if not photo["published"]:
            return json_response({"id": photo["id"]})
        repeated = _refuse_repeated_message(state, page, caption)
        if repeated is not None:
            return repeated
        post = _new_post(state, page, caption, "photo")
        photo["attached_to"] = post["id"]
        state.record(
            PLATFORM,
            page,
            post["id"],
            caption,
            [photo["media"]],
            {"published": True},
        )
    body = {"id": photo["id"], "post_id": post["id"]}
    return answer_published(state, PLATFORM, body, usage_headers(page))


def create_video(version: str, page_id: str) -> Response:
    page, failure = GUARD.check_account(version, page_id, publishing=True)
    if failure is not None:
        return failure
    params = graph_params()
    file_url = params.get("file_url")
    has_file = bool(file_url or params.get("fbuploader_video_file_chunk"))
    if not has_file and "source" not in request.files:
        return invalid_parameter(
            "(#100) One of file_url, source or fbuploader_video_file_chunk is required"
        )
    if file_url and not is_public_url(file_url):
        return invalid_parameter("(#100) file_url should represent a valid URL")
    description = str(params.get("description") or "")
    # Facebook downloads `file_url` before it answers (with fetch_media on, so do we).
    entry = media_entry(state, PLATFORM, "video", file_url) if file_url else None
    if isinstance(entry, PullFailure):
        if entry.wrong_kind:
            return graph_error(
                "(#352) Sorry, the video file you selected is in a format that we don't support.",
                352,
            )
        return graph_error("(#389) Unable to fetch video file from URL.", 389)
    published = parse_bool(params.get("published")) is not False
    with state.lock:
        video = _new_video(state, page, reel=False)
        state.note_upload(PLATFORM, "video", str(video["id"]))
        video.update(
            description=description,
            file_url=file_url,
            uploaded=True,
            processing_from=time.time(),
            media_entry=entry or {"kind": "video", "url": "upload"},
            ledger_params={"edge": "videos"}
            | ({"title": params["title"]} if params.get("title") else {}),
            published=False,
        )
        if not published:
            # Unpublished: uploaded and processed, on no timeline until POST /{video-id}.
            return json_response({"id": video["id"]})
        _publish_video(state, video)
    return answer_published(state, PLATFORM, {"id": video["id"]}, usage_headers(page))


def update_object(version: str, object_id: str) -> Response:
    """Updating a video: `published=true` publishes an unpublished video (once; again
    it changes nothing). Other objects and fields are not served."""
    _, failure = GUARD.check(version, publishing=True)
    if failure is not None:
        return failure
    params = graph_params()
    with state.lock:
        video = _objects(state).get(object_id)
        if video is None or video["kind"] != "video" or video["reel"]:
            return object_not_found(object_id, "post")
        if parse_bool(params.get("published")) is not True:
            return invalid_parameter("(#100) The sandbox updates published=true only")
        if video.get("published"):
            return json_response({"success": True})
        if params.get("description") is not None:
            video["description"] = str(params["description"])
        _publish_video(state, video)
    return answer_published(state, PLATFORM, {"success": True}, usage_headers(video["page"]))


def video_reels(version: str, page_id: str) -> Response:
    page, failure = GUARD.check_account(version, page_id, publishing=True)
    if failure is not None:
        return failure
    params = graph_params()
    phase = params.get("upload_phase")
    if phase == "start":
        video = _new_video(state, page, reel=True)
        upload_url = url_for(
            f"{PLATFORM}.rupload", version=version, video_id=video["id"], _external=True
        )
        return json_response({"video_id": video["id"], "upload_url": upload_url})
    if phase != "finish":
        return invalid_parameter("(#100) upload_phase must be start or finish")
    return _finish_reel(state, page, params)


def rupload(version: str, video_id: str) -> Response:
    _, failure = GUARD.check(version, publishing=True)
    if failure is not None:
        return failure
    video = _objects(state).get(video_id)
    if video is None or video["kind"] != "video" or not video["reel"]:
        return _upload_error("NotFoundError", f"No upload session for video {video_id}")
    # WSGI servers drop headers spelled with "_" (file_url, file_size), so a hosted
    # file cannot be announced here; bytes are checked by `offset` and their length.
    offset = request.headers.get("offset", type=int)
    body = request.get_data()
    with state.lock:
        if offset is None or offset != video.get("bytes_transferred", 0):
            return _upload_error("OffsetInvalidError", "offset does not match the upload")
        if not body:
            return _upload_error("PartialRequestError", "the request carried no bytes")
        file_size = request.headers.get("file_size", type=int) or offset + len(body)
        if offset + len(body) > file_size:
            return _upload_error("PartialRequestError", "more bytes than file_size")
        video["bytes_transferred"] = offset + len(body)
        video["file_size"] = file_size
        video["uploaded"] = video["bytes_transferred"] == file_size
    return json_response({"success": True})


def delete_object(version: str, object_id: str) -> Response:
    """Deleting a photo, video or post: it no longer reads, lists or attaches (the
    ledger keeps what was published, as a record of what went out)."""
    _, failure = GUARD.check(version, publishing=False)
    if failure is not None:
        return failure
    with state.lock:
        if _objects(state).pop(object_id, None) is None:
            return object_not_found(object_id, "delete")
    state.delete(PLATFORM, object_id)
    return json_response({"success": True})


def read_object(version: str, object_id: str) -> Response:
    answer = instagram_object(version, object_id)  # an Instagram container or media
    if answer is not None:
        return answer
    _, failure = GUARD.check(version, publishing=False)
    if failure is not None:
        return failure
    item = _objects(state).get(object_id)
    if item is None:
        return graph_account_fields(PLATFORM, object_id) or object_not_found(object_id)
    if item["kind"] == "video":
        item = {**item, "status": _video_status(state, item)}
    return json_response(pick_fields(item, requested_fields(("id",))))


def list_posts(version: str, page_id: str) -> Response:
    page, failure = GUARD.check_account(version, page_id, publishing=False)
    if failure is not None:
        return failure
    since = request.args.get("since", type=int) or 0
    posts = [p for p in _page_posts(state, page) if p["created_at"] >= since]
    return listing(posts, requested_fields(("id", "message", "created_time")))


def list_videos(version: str, page_id: str) -> Response:
    page, failure = GUARD.check_account(version, page_id, publishing=False)
    if failure is not None:
        return failure
    since = request.args.get("since", type=int) or 0
    videos = [
        v
        for v in _page_objects(state, page, "video")
        if v.get("finished") and v["created_at"] >= since
    ]
    return listing(videos, requested_fields(("id", "description", "created_time")))


def _finish_reel(state: SandboxState, page: str, params: dict[str, Any]) -> Response:
    """upload_phase=finish: the call that makes the reel public (once per video id)."""
    video_id = str(params.get("video_id") or "")
    video_state = str(params.get("video_state") or "")
    description = str(params.get("description") or "")
    if video_state not in VIDEO_STATES:
        return invalid_parameter("(#100) video_state must be PUBLISHED, DRAFT or SCHEDULED")
    scheduled_at = None
    if video_state == "SCHEDULED":
        scheduled_at = parse_json_param(params.get("scheduled_publish_time"))
        ahead = (scheduled_at or 0) - time.time() if isinstance(scheduled_at, int) else -1
        if not SCHEDULE_MIN_SECONDS <= ahead <= REEL_SCHEDULE_MAX_SECONDS:
            return invalid_parameter(
                "(#100) scheduled_publish_time must be 10 minutes to 29 days ahead"
            )
    with state.lock:
        video = _objects(state).get(video_id)
        if video is None or video["kind"] != "video" or not video["reel"] or video["page"] != page:
            return object_not_found(video_id, "post")
        if video.get("finished"):
            return json_response({"success": True})
        if not video.get("uploaded"):
            return invalid_parameter("(#100) The video has not been uploaded yet")
        stamps = publishes_in_window(state, PLATFORM, page)
        if len(stamps) >= REELS_DAILY_CAP:
            # The docs name no code for the reels cap; it answers like Meta's other caps.
            return quota_exhausted(page, USAGE_TYPE, stamps[0], REELS_DAILY_CAP, subcode=None)
        now = time.time()
        video.update(
            description=description,
            finished=True,
            finished_at=now,
            video_state=video_state,
            created_at=now,
            created_time=graph_time(now),
            scheduled_publish_time=scheduled_at,
        )
        note_publish(state, PLATFORM, page)
        if video_state == "PUBLISHED":
            _new_post(state, page, description, "reel", object_id=video_id)
        ledger_params: dict[str, Any] = {"edge": "video_reels", "video_state": video_state}
        if scheduled_at is not None:
            ledger_params["scheduled_publish_time"] = scheduled_at
        size_or_url = (
            {"url": video["file_url"]}
            if video.get("file_url")
            else {"size": video.get("file_size", 0)}
        )
        state.record(
            PLATFORM,
            page,
            video_id,
            description,
            [{"kind": "video", **size_or_url}],
            ledger_params,
        )
    return answer_published(state, PLATFORM, {"success": True})


def _publish_video(state: SandboxState, video: dict[str, Any]) -> None:
    """A non-reel video goes on the Page's timeline now (under the lock): its post, its
    listing and the ledger entry."""
    now = time.time()
    video.update(
        published=True,
        finished=True,
        finished_at=video.get("processing_from") or now,
        video_state="PUBLISHED",
    )
    _new_post(state, video["page"], video["description"], "video", object_id=video["id"])
    state.record(
        PLATFORM,
        video["page"],
        video["id"],
        video["description"],
        [video["media_entry"]],
        dict(video["ledger_params"]),
    )


def _new_video(state: SandboxState, page: str, reel: bool) -> dict[str, Any]:
    now = time.time()
    video_id = str(state.next_id())
    video = {
        "kind": "video",
        "id": video_id,
        "page": page,
        "reel": reel,
        "created_at": now,
        "created_time": graph_time(now),
        "uploaded": False,
        "finished": False,
        "permalink_url": f"/reel/{video_id}/" if reel else f"/{page}/videos/{video_id}/",
    }
    _store_object(state, video)
    return video


def _video_status(state: SandboxState, video: dict[str, Any]) -> dict[str, Any]:
    """The reel/video status object: uploading → processing → publishing phases."""
    processing = state.faults_for(PLATFORM).processing_seconds
    finished_at = video.get("finished_at")
    uploaded = bool(video.get("uploaded"))
    # A reel is processed after its finish phase, a Page video from its upload on.
    started = video.get("processing_from") or finished_at
    ready = started is not None and time.time() >= started + processing
    publish_status = PUBLISH_STATUS.get(video.get("video_state", ""))
    if ready:
        video_status = "ready"
    elif started:
        video_status = "processing"
    else:
        video_status = "upload_complete" if uploaded else "uploading"
    return {
        "video_status": video_status,
        "uploading_phase": {
            "status": "complete" if uploaded else "not_started",
            "bytes_transferred": video.get("bytes_transferred", 0),
        },
        "processing_phase": {
            "status": "complete" if ready else ("in_progress" if started else "not_started")
        },
        "publishing_phase": {
            "status": "complete" if finished_at else "not_started",
            **({"publish_status": publish_status} if publish_status else {}),
        },
    }


def _new_post(
    state: SandboxState, page: str, message: str, post_type: str, object_id: str | None = None
) -> dict[str, Any]:
    """A Page post ({page}_{id}) that lists under /posts and reads by id."""
    now = time.time()
    number = object_id or str(state.next_id())
    post_id = f"{page}_{number}"
    post = {
        "kind": "post",
        "id": post_id,
        "page": page,
        "message": message or None,
        "type": post_type,
        "created_at": now,
        "created_time": graph_time(now),
        "permalink_url": f"https://www.facebook.com/{page}/posts/{number}",
    }
    _store_object(state, post)
    return post


def _objects(state: SandboxState) -> dict[str, dict[str, Any]]:
    """Everything that reads by id: photos, videos (reels too) and posts."""
    return state.store(PLATFORM).setdefault("objects", {})


def _store_object(state: SandboxState, item: dict[str, Any]) -> None:
    with state.lock:
        _objects(state)[item["id"]] = item


def _page_objects(state: SandboxState, page: str, kind: str) -> list[dict[str, Any]]:
    """The Page's objects of one kind, newest first."""
    with state.lock:
        found = [o for o in _objects(state).values() if o["kind"] == kind and o["page"] == page]
    return sorted(found, key=lambda o: o["created_at"], reverse=True)


def _page_posts(state: SandboxState, page: str) -> list[dict[str, Any]]:
    return _page_objects(state, page, "post")


def _refuse_repeated_message(state: SandboxState, page: str, message: str) -> Response | None:
    """506 for a status or photo message repeating the Page's last one, else None."""
    if message and _latest_message(state, page) == message:
        return graph_error("(#506) Duplicate status message", 506)
    return None


def _latest_message(state: SandboxState, page: str) -> str | None:
    """The Page's last status or photo message (Facebook refuses to repeat it at once)."""
    for post in _page_posts(state, page):
        if post["type"] in ("status", "photo"):
            return post["message"]
    return None


def _attached_media_ids(params: dict[str, Any]) -> list[str] | None:
    """attached_media as a JSON list, or as attached_media[0]=..., attached_media[1]=..."""
    raw = params.get("attached_media")
    if raw is None:
        indexed = sorted(
            (k for k in params if k.startswith("attached_media[")),
            key=lambda k: int(k[len("attached_media[") : -1] or 0),
        )
        raw = [parse_json_param(params[k]) for k in indexed]
    items = parse_json_param(raw)
    if not isinstance(items, list):
        return None
    ids = []
    for item in items:
        if not isinstance(item, dict) or not item.get("media_fbid"):
            return None
        ids.append(str(item["media_fbid"]))
    return ids


def _upload_error(error_type: str, message: str) -> Response:
    """rupload's error shape differs from Graph's."""
    return json_response(
        {"debug_info": {"retriable": False, "type": error_type, "message": message}}, 400
    )


# The platform's paths, served under /facebook; first the Instagram publishing calls
# that accounts connected through Facebook Login make on this host.
ROUTES = (
    *FACEBOOK_HOST_ROUTES,
    Route("POST", "/<version>/<page_id>/feed", create_feed_post),
    Route("POST", "/<version>/<page_id>/photos", create_photo),
    Route("POST", "/<version>/<page_id>/videos", create_video),
    Route("POST", "/<version>/<object_id>", update_object),
    Route("POST", "/<version>/<page_id>/video_reels", video_reels),
    Route("POST", "/video-upload/<version>/<video_id>", rupload),
    Route("DELETE", "/<version>/<object_id>", delete_object),
    Route("GET", "/<version>/<object_id>", read_object),
    Route("GET", "/<version>/<page_id>/posts", list_posts, endpoint="list_posts"),
    Route("GET", "/<version>/<page_id>/feed", list_posts, endpoint="list_feed"),
    Route("GET", "/<version>/<page_id>/videos", list_videos),
)
BLUEPRINT_NAME = PLATFORM

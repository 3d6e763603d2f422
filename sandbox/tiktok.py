"""TikTok Content Posting API stand-in (docs/platforms.md): creator_info, Direct Post
init, the chunked FILE_UPLOAD, status/fetch, the Display API's video list and OAuth refresh
with rotating refresh tokens.

Creators are derived from tokens. The first token seen for a creator sets its profile: a
token containing "private" is a private account (FOLLOWER_OF_CREATOR, MUTUAL_FOLLOW_FRIENDS,
SELF_ONLY), and "no-comment", "no-duet", "no-stitch" turn those interactions off. Tokens
issued by the refresh endpoint keep their creator. Every error answers in TikTok's
`{"data", "error": {"code", "message", "log_id"}}` shape.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Response, request, url_for

from sandbox.core import (
    FaultStyle,
    Route,
    authorize_bearer,
    inject_faults,
    json_response,
    should_lose_response,
    state,
)
from sandbox.oauth import token_endpoint
from sandbox.rules import MB, MP4_MOV_WEBM, PLATFORMS, count_utf16

PLATFORM = "tiktok"
PUBLIC_PRIVACY_OPTIONS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
PRIVATE_PRIVACY_OPTIONS = ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"]
PRIVACY_LEVELS = frozenset(PUBLIC_PRIVACY_OPTIONS + PRIVATE_PRIVACY_OPTIONS)
MAX_VIDEO_POST_DURATION_SEC = 600
TITLE_MAX_UTF16 = PLATFORMS["tiktok"].text_limit
DAILY_POST_CAP = PLATFORMS["tiktok"].daily_post_cap or 15
POST_CAP_WINDOW_SECONDS = 24 * 3600
# Media transfer guide: 5-64 MB chunks, final chunk up to 128 MB, 1-1000 chunks.
MIN_CHUNK_BYTES = 5 * MB
MAX_CHUNK_BYTES = 64 * MB
MAX_FINAL_CHUNK_BYTES = 128 * MB
MAX_CHUNKS = 1000
VIDEO_LIST_MAX_COUNT = 20
# The Video Object fields the sandbox fills (the real list is longer).
VIDEO_FIELDS = frozenset({"id", "title", "video_description", "create_time", "share_url"})
ACCESS_TOKEN_SECONDS = 2 * 3600  # Nov 2026 docs: 2 h access, 180 d rotating refresh
REFRESH_TOKEN_SECONDS = 180 * 24 * 3600
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def _log_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(8).upper()


def _error(code: str, message: str, status: int) -> Response:
    body = {"data": {}, "error": {"code": code, "message": message, "log_id": _log_id()}}
    return json_response(body, status)


def _ok(data: dict[str, Any]) -> Response:
    error = {"code": "ok", "message": "", "log_id": _log_id()}
    return json_response({"data": data, "error": error})


def _error_for_status(status: int) -> Response:
    if status >= 500:
        return _error("internal_error", "Something went wrong. Please try again later.", status)
    if status == 401:
        return _error("access_token_invalid", "The access token is invalid or not found.", 401)
    if status == 429:
        return _error("rate_limit_exceeded", "The API rate limit was exceeded.", 429)
    return _error("invalid_params", "One or more fields in the request is invalid.", status)


def _token_invalid() -> Response:
    # TikTok answers expired and revoked access tokens alike; only the refresh tells them apart.
    return _error(
        "access_token_invalid",
        "The access token is invalid or not found in the request. Please refresh the token.",
        401,
    )


STYLE = FaultStyle(
    rate_limited=lambda _retry_after: _error(
        "rate_limit_exceeded", "The API rate limit was exceeded. Please try again later.", 429
    ),
    error=_error_for_status,
    auth_expired=_token_invalid,
    auth_revoked=_token_invalid,
)


def _looks_like_video(head: bytes) -> bool:
    """MP4/MOV carry an ftyp box at offset 4; WebM starts with the EBML magic."""
    return head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"


def store() -> dict[str, Any]:
    data = state.store(PLATFORM)
    for key in ("tokens", "creators", "publishes", "uploads", "videos"):
        data.setdefault(key, {})
    data.setdefault("retired_refresh_tokens", set())
    return data


def open_id_of(token: str) -> str:
    """The creator behind a token; first sight fixes its profile from the token's marks."""
    with state.lock:
        data = store()
        open_id = data["tokens"].setdefault(
            token, str(uuid.uuid5(uuid.NAMESPACE_URL, f"tiktok:{token}"))
        )
        data["creators"].setdefault(
            open_id,
            {
                "creator_username": f"sandbox.{open_id[:8]}",
                "creator_nickname": f"Sandbox {open_id[:8]}",
                "privacy_level_options": PRIVATE_PRIVACY_OPTIONS
                if "private" in token
                else PUBLIC_PRIVACY_OPTIONS,
                "comment_disabled": "no-comment" in token,
                "duet_disabled": "no-duet" in token,
                "stitch_disabled": "no-stitch" in token,
                "max_video_post_duration_sec": MAX_VIDEO_POST_DURATION_SEC,
            },
        )
        return open_id


def creator(open_id: str) -> dict[str, Any]:
    with state.lock:
        return dict(store()["creators"][open_id])


def over_daily_cap(open_id: str) -> bool:
    since = time.time() - POST_CAP_WINDOW_SECONDS
    with state.lock:
        recent = [
            v
            for v in store()["videos"].values()
            if v["open_id"] == open_id and v["create_time"] > since
        ]
    return len(recent) >= DAILY_POST_CAP


def authorize(publishing: bool) -> tuple[str | None, Response | None]:
    return authorize_bearer(state, PLATFORM, STYLE, publishing, missing_token=_token_invalid)


def creator_info() -> Response:
    token, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    open_id = open_id_of(token)
    if over_daily_cap(open_id):
        # Documented as intentional: the cap comes back from creator_info with HTTP 200.
        return _error(
            "spam_risk_too_many_posts",
            "The user has reached the daily post limit for Direct Post.",
            200,
        )
    profile = creator(open_id)
    profile["creator_avatar_url"] = f"https://p16-sign.tiktokcdn.com/{open_id}.jpeg"
    return _ok(profile)


def video_init() -> Response:
    token, failure = authorize(publishing=True)
    if failure is not None:
        return failure
    open_id = open_id_of(token)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error("invalid_params", "The request body must be a JSON object.", 400)
    post_info = body.get("post_info") or {}
    source_info = body.get("source_info") or {}
    problem = _post_info_problem(post_info) or _source_info_problem(source_info)
    if problem:
        return _error("invalid_params", problem, 400)
    if source_info["source"] == "PULL_FROM_URL":
        return _error(
            "url_ownership_unverified",
            "The domain or URL prefix of video_url is not verified for this client.",
            403,
        )
    if over_daily_cap(open_id):
        return _error(
            "spam_risk_too_many_posts",
            "The user has reached the daily post limit for Direct Post.",
            403,
        )
    profile = creator(open_id)
    if post_info["privacy_level"] not in profile["privacy_level_options"]:
        return _error(
            "privacy_level_option_mismatch",
            "privacy_level is not among the creator's privacy_level_options.",
            403,
        )
    for switch, field in (
        ("comment_disabled", "disable_comment"),
        ("duet_disabled", "disable_duet"),
        ("stitch_disabled", "disable_stitch"),
    ):
        if profile[switch] and post_info.get(field) is False:
            return _error("invalid_params", f"{field} must be true: the creator has {switch}.", 400)
    publish_id = f"v_pub_file~v2-1.{state.next_id()}"
    upload_id = str(state.next_id())
    upload_token = secrets.token_urlsafe(16)
    with state.lock:
        store()["publishes"][publish_id] = {
            "open_id": open_id,
            "post_info": post_info,
            "source_info": source_info,
            "mime_type": None,
            "received": 0,
            "head": b"",
            "completed_at": None,
            "fail_reason": None,
            "video_id": None,
        }
        store()["uploads"][upload_id] = (publish_id, upload_token)
    upload_url = url_for(
        f"{PLATFORM}.upload_video",
        upload_id=upload_id,
        upload_token=upload_token,
        _external=True,
    )
    return _ok({"publish_id": publish_id, "upload_url": upload_url})


def upload_video() -> Response:
    fault = inject_faults(state, PLATFORM, STYLE, None, publishing=False)
    if fault is not None:
        return fault
    with state.lock:
        known = store()["uploads"].get(request.args.get("upload_id", ""))
    if known is None or known[1] != request.args.get("upload_token"):
        return _error("invalid_params", "upload_id or upload_token is invalid.", 404)
    publish_id = known[0]
    if request.mimetype not in MP4_MOV_WEBM:
        return _error(
            "invalid_file_upload",
            "Content-Type must be video/mp4, video/quicktime or video/webm.",
            400,
        )
    match = _CONTENT_RANGE.match(request.headers.get("Content-Range", ""))
    if match is None:
        return _error("invalid_params", "Content-Range: bytes {first}-{last}/{total}.", 400)
    chunk = request.get_data()
    with state.lock:
        publish = store()["publishes"][publish_id]
        source = publish["source_info"]
        size, chunk_size = source["video_size"], source["chunk_size"]
        count = source["total_chunk_count"]
        first, last, total = (int(g) for g in match.groups())
        index = first // chunk_size
        expected_last = size - 1 if index == count - 1 else first + chunk_size - 1
        if (
            total != size
            or first != publish["received"]
            or first % chunk_size
            or index >= count
            or last != expected_last
            or len(chunk) != last - first + 1
        ):
            return _error(
                "invalid_params",
                f"Content-Range {first}-{last}/{total} does not match the next chunk "
                f"(received {publish['received']} of {size} bytes in chunks of {chunk_size}).",
                416,
            )
        if first == 0:
            publish["head"] = chunk[:16]
            publish["mime_type"] = request.mimetype
        publish["received"] = last + 1
        if publish["received"] < size:
            return Response(status=206)
        publish["completed_at"] = time.time()
        if not _looks_like_video(publish["head"]):
            publish["fail_reason"] = "file_format_check_failed"
            return Response(status=201)
        publish["video_id"] = create_video(publish, publish_id)
    if should_lose_response(state, PLATFORM):
        return _error("internal_error", "Gateway timeout.", 504)
    return Response(status=201)


def create_video(publish: dict[str, Any], publish_id: str) -> str:
    """The upload completed: the video exists (under the lock) and goes to the ledger."""
    video_id = str(7_300_000_000_000_000_000 + state.next_id())
    post_info = publish["post_info"]
    profile = store()["creators"][publish["open_id"]]
    store()["videos"][video_id] = {
        "id": video_id,
        "open_id": publish["open_id"],
        "title": post_info.get("title", ""),
        "create_time": int(publish["completed_at"]),
        "privacy_level": post_info["privacy_level"],
        "share_url": f"https://www.tiktok.com/@{profile['creator_username']}/video/{video_id}",
    }
    params = {key: value for key, value in post_info.items() if key != "title"}
    source = publish["source_info"]
    params.update(
        publish_id=publish_id,
        source=source["source"],
        chunk_size=source["chunk_size"],
        total_chunk_count=source["total_chunk_count"],
    )
    state.record(
        PLATFORM,
        publish["open_id"],
        video_id,
        post_info.get("title", ""),
        [{"kind": "video", "mime_type": publish["mime_type"], "size": source["video_size"]}],
        params,
    )
    return video_id


def status_fetch() -> Response:
    token, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    open_id = open_id_of(token)
    publish_id = (request.get_json(silent=True) or {}).get("publish_id")
    with state.lock:
        publish = store()["publishes"].get(publish_id)
        publish = dict(publish) if publish else None
    if publish is None:
        return _error("invalid_publish_id", "publish_id does not exist.", 400)
    if publish["open_id"] != open_id:
        return _error(
            "token_not_authorized_for_specified_publish_id",
            "The token is not authorized for this publish_id.",
            400,
        )
    size = publish["source_info"]["video_size"]
    data: dict[str, Any] = {"uploaded_bytes": publish["received"]}
    processing = state.faults_for(PLATFORM).processing_seconds
    if publish["fail_reason"]:
        data.update(status="FAILED", fail_reason=publish["fail_reason"])
    elif publish["received"] < size or time.time() < publish["completed_at"] + processing:
        data["status"] = "PROCESSING_UPLOAD"
    else:
        public = publish["post_info"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
        data.update(
            status="PUBLISH_COMPLETE",
            # Only public posts get their id, and only after moderation.
            publicaly_available_post_id=[int(publish["video_id"])] if public else [],
        )
    data.setdefault("publicaly_available_post_id", [])
    return _ok(data)


def video_list() -> Response:
    token, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    open_id = open_id_of(token)
    fields = [f for f in request.args.get("fields", "").split(",") if f]
    if not fields or set(fields) - VIDEO_FIELDS:
        return _error("invalid_params", f"fields must be a subset of {sorted(VIDEO_FIELDS)}.", 400)
    body = request.get_json(silent=True) or {}
    max_count = body.get("max_count", 10)
    if not isinstance(max_count, int) or not 1 <= max_count <= VIDEO_LIST_MAX_COUNT:
        return _error("invalid_params", "max_count must be between 1 and 20.", 400)
    cursor_ms = body.get("cursor")
    with state.lock:
        # The Display API lists the creator's public videos only, newest first.
        videos = sorted(
            (
                v
                for v in store()["videos"].values()
                if v["open_id"] == open_id
                and v["privacy_level"] == "PUBLIC_TO_EVERYONE"
                and (cursor_ms is None or v["create_time"] * 1000 < cursor_ms)
            ),
            key=lambda v: v["create_time"],
            reverse=True,
        )
    page = videos[:max_count]
    rows = [{f: v["title"] if f == "video_description" else v[f] for f in fields} for v in page]
    return _ok(
        {
            "videos": rows,
            "cursor": page[-1]["create_time"] * 1000 if page else 0,
            "has_more": len(videos) > max_count,
        }
    )


def oauth_token() -> Response:
    return token_endpoint(
        state,
        PLATFORM,
        STYLE,
        _refresh,
        lambda: _oauth_error("unsupported_grant_type", "Only refresh_token is served here."),
    )


def _refresh(refresh_token: str) -> Response:
    with state.lock:
        data = store()
        refused = (
            not refresh_token
            or refresh_token in state.faults_for(PLATFORM).revoked_tokens
            or refresh_token in data["retired_refresh_tokens"]
        )
        if refused:
            return _oauth_error(
                "invalid_grant", "The refresh token is invalid, expired or revoked."
            )
        open_id = open_id_of(refresh_token)
        # Rotation: the previous refresh token stops working once a new one is issued.
        data["retired_refresh_tokens"].add(refresh_token)
        access_token = f"act.{secrets.token_hex(16)}"
        new_refresh = f"rft.{secrets.token_hex(16)}"
        data["tokens"][access_token] = open_id
        data["tokens"][new_refresh] = open_id
    return json_response(
        {
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "open_id": open_id,
            "refresh_expires_in": REFRESH_TOKEN_SECONDS,
            "refresh_token": new_refresh,
            "scope": "user.info.basic,video.publish,video.list",
            "token_type": "Bearer",
        }
    )


def _oauth_error(error: str, description: str) -> Response:
    return json_response(
        {"error": error, "error_description": description, "log_id": _log_id()}, 400
    )


def _post_info_problem(post_info: Any) -> str | None:
    if not isinstance(post_info, dict):
        return "post_info must be an object."
    title = post_info.get("title", "")
    if not isinstance(title, str) or count_utf16(title) > TITLE_MAX_UTF16:
        return f"post_info.title must be a string of at most {TITLE_MAX_UTF16} UTF-16 runes."
    if post_info.get("privacy_level") not in PRIVACY_LEVELS:
        return "post_info.privacy_level is missing or unknown."
    for field in ("disable_comment", "disable_duet", "disable_stitch"):
        if field in post_info and not isinstance(post_info[field], bool):
            return f"post_info.{field} must be a boolean."
    return None


def _source_info_problem(source_info: Any) -> str | None:
    """FILE_UPLOAD chunking per the media transfer guide; PULL_FROM_URL needs a video_url."""
    if not isinstance(source_info, dict):
        return "source_info must be an object."
    source = source_info.get("source")
    if source == "PULL_FROM_URL":
        return None if source_info.get("video_url") else "source_info.video_url is required."
    if source != "FILE_UPLOAD":
        return "source_info.source must be FILE_UPLOAD or PULL_FROM_URL."
    size, chunk, count = (
        source_info.get("video_size"),
        source_info.get("chunk_size"),
        source_info.get("total_chunk_count"),
    )
    if not all(isinstance(v, int) and v > 0 for v in (size, chunk, count)):
        return "video_size, chunk_size and total_chunk_count must be positive integers."
    if size < MIN_CHUNK_BYTES:
        if chunk != size or count != 1:
            return "Videos under 5 MB must be uploaded whole: chunk_size = video_size, one chunk."
        return None
    if not MIN_CHUNK_BYTES <= chunk <= MAX_CHUNK_BYTES:
        return "chunk_size must be between 5 MB and 64 MB."
    if count != size // chunk or count > MAX_CHUNKS:
        return "total_chunk_count must be floor(video_size / chunk_size), at most 1000."
    if size - (count - 1) * chunk > MAX_FINAL_CHUNK_BYTES:
        return "The final chunk may not exceed 128 MB."
    return None


# The platform's paths, served under /<platform>.
ROUTES = (
    Route("POST", "/v2/post/publish/creator_info/query/", creator_info),
    Route("POST", "/v2/post/publish/video/init/", video_init),
    Route("PUT", "/video/", upload_video),
    Route("POST", "/v2/post/publish/status/fetch/", status_fetch),
    Route("POST", "/v2/video/list/", video_list),
    Route("POST", "/v2/oauth/token/", oauth_token),
)
BLUEPRINT_NAME = PLATFORM

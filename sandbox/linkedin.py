"""LinkedIn versioned REST stand-in: Images and Videos upload, Posts (create, by author), OAuth.

Every /rest call must carry a live LinkedIn-Version and X-Restli-Protocol-Version 2.0.0.
The commentary is read as "little" text, the way LinkedIn shows it: escapes resolved and
the post cut at the first unescaped reserved character. The same author posting the same
commentary within 10 minutes gets 422, and a member posts at most 150 times per UTC day.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import filetype
from flask import Response, request, url_for

from sandbox.core import (
    FaultStyle,
    Route,
    bearer_token,
    inject_faults,
    json_response,
    should_lose_response,
    sniffed_media_kind,
    state,
)
from sandbox.oauth import token_endpoint, unsupported_grant
from sandbox.rules import PLATFORMS

PLATFORM = "linkedin"
# Versions older than this are sunset here; versions after the current month do not exist.
OLDEST_ACTIVE_VERSION = "202511"
RESTLI_PROTOCOL_VERSION = "2.0.0"
COMMENTARY_LIMIT = PLATFORMS["linkedin"].text_limit
VIDEO_MAX_BYTES = PLATFORMS["linkedin"].media.video_max_bytes
VIDEO_PART_BYTES = 4 * 1024 * 1024
MULTI_IMAGE_RANGE = (2, 20)
DUPLICATE_WINDOW_SECONDS = 10 * 60
MEMBER_DAILY_POST_LIMIT = 150
UPLOAD_URL_SECONDS = 24 * 60 * 60
ACCESS_TOKEN_SECONDS = 60 * 24 * 60 * 60
REFRESH_TOKEN_SECONDS = 365 * 24 * 60 * 60
VISIBILITIES = frozenset({"PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"})
FEED_DISTRIBUTIONS = frozenset({"MAIN_FEED", "NONE"})
_VERSION_RE = re.compile(r"^(\d{6})(\.\d{2})?$")
_AUTHOR_RE = re.compile(r"^urn:li:(person|organization):[A-Za-z0-9_-]+$")
_URL_RE = re.compile(r"https?://[^\s()<>\[\]{}|\\]+")
_HASHTAG_RE = re.compile(r"#\w+")
_RESERVED = frozenset("\\|{}@[]()<>#*_~")


def render_little_text(commentary: str) -> str:
    """What LinkedIn shows for little text: escapes resolved, cut at a stray reserved char."""
    shown: list[str] = []
    position = 0
    while position < len(commentary):
        char = commentary[position]
        token = _URL_RE.match(commentary, position) or _HASHTAG_RE.match(commentary, position)
        if token:
            shown.append(token.group(0))
            position = token.end()
        elif char == "\\" and position + 1 < len(commentary):
            shown.append(commentary[position + 1])
            position += 2
        elif char in _RESERVED:
            break
        else:
            shown.append(char)
            position += 1
    return "".join(shown)


def _error(status: int, message: str, code: str | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"status": status, "message": message}
    if code:
        body["code"] = code
    body.update(extra)
    return json_response(body, status)


def _input_error(code: str, field: str, description: str) -> Response:
    """LinkedIn's validation failure shape (errorDetails.inputErrors)."""
    body = {
        "errorDetailType": "com.linkedin.common.error.BadRequest",
        "message": "Multiple errors occurred during the input validation. "
        "Please see errorDetails for more information.",
        "errorDetails": {
            "inputErrors": [
                {
                    "description": description,
                    "input": {"inputPath": {"fieldPath": field}},
                    "code": code,
                }
            ]
        },
        "status": 400,
    }
    return json_response(body, 400)


def _rate_limited(retry_after: int) -> Response:
    # LinkedIn names no wait: no Retry-After, no limit headers.
    return _error(
        429,
        "Resource level throttle limit for calls to this resource is reached.",
        "TOO_MANY_REQUESTS",
        serviceErrorCode=101,
    )


def _server_error(status: int) -> Response:
    phrase = HTTPStatus(status).phrase
    return _error(status, phrase, phrase.upper().replace(" ", "_"))


def _expired() -> Response:
    return _error(
        401,
        "The token used in the request has expired",
        "EXPIRED_ACCESS_TOKEN",
        serviceErrorCode=65602,
    )


def _revoked() -> Response:
    return _error(
        401,
        "The token used in the request has been revoked by the user",
        "REVOKED_ACCESS_TOKEN",
        serviceErrorCode=65601,
    )


STYLE = FaultStyle(
    rate_limited=_rate_limited, error=_server_error, auth_expired=_expired, auth_revoked=_revoked
)


def _epoch_ms(moment: float | None = None) -> int:
    return int((time.time() if moment is None else moment) * 1000)


def store() -> dict[str, Any]:
    return state.store(PLATFORM)


def check_request(publishing: bool) -> Response | None:
    """Bearer token, faults, then the version headers every /rest call needs."""
    token = bearer_token()
    if token is None:
        return _error(
            401, "Empty oauth2 access token", "EMPTY_ACCESS_TOKEN", serviceErrorCode=65604
        )
    fault = inject_faults(state, PLATFORM, STYLE, token, publishing)
    if fault:
        return fault
    version = request.headers.get("LinkedIn-Version")
    if not version:
        return _error(
            400,
            "A version must be present. Please specify a version by adding the "
            "LinkedIn-Version header.",
            "VERSION_MISSING",
        )
    match = _VERSION_RE.match(version)
    current = datetime.now(UTC).strftime("%Y%m")
    if not match or not OLDEST_ACTIVE_VERSION <= match.group(1) <= current:
        return _error(426, f"Requested version {version} is not active", "NONEXISTENT_VERSION")
    if request.headers.get("X-Restli-Protocol-Version") != RESTLI_PROTOCOL_VERSION:
        return _error(
            400,
            f"X-Restli-Protocol-Version {RESTLI_PROTOCOL_VERSION} is required",
            "INVALID_PROTOCOL_VERSION",
        )
    return None


def owner_of(body: dict[str, Any], action: str) -> tuple[dict[str, Any], str | None]:
    payload = body.get(f"{action}Request")
    if not isinstance(payload, dict):
        return {}, None
    owner = payload.get("owner")
    return payload, owner if isinstance(owner, str) and _AUTHOR_RE.match(owner) else None


def find_asset(urn: str) -> dict[str, Any] | None:
    with state.lock:
        kind = "images" if urn.startswith("urn:li:image:") else "videos"
        return store().get(kind, {}).get(urn)


# -- images ----------------------------------------------------------------------------


def images_action() -> Response:
    failure = check_request(publishing=True)
    if failure:
        return failure
    if request.args.get("action") != "initializeUpload":
        return _error(400, "Unsupported action", "UNSUPPORTED_ACTION")
    _, owner = owner_of(request.get_json(silent=True) or {}, "initializeUpload")
    if owner is None:
        return _input_error(
            "INVALID_URN_TYPE",
            "/initializeUploadRequest/owner",
            "owner must be a person or organization URN",
        )
    key = f"D4E10AQ{secrets.token_hex(8)}"
    urn = f"urn:li:image:{key}"
    with state.lock:
        store().setdefault("images", {})[urn] = {
            "owner": owner,
            "status": "WAITING_UPLOAD",
            "mime_type": None,
            "size": 0,
        }
    state.note_upload(PLATFORM, "image", urn)
    return json_response(
        {
            "value": {
                "uploadUrlExpiresAt": _epoch_ms(time.time() + UPLOAD_URL_SECONDS),
                "uploadUrl": url_for(".upload_image", key=key, _external=True),
                "image": urn,
            }
        }
    )


def upload_image(key: str) -> Response:
    data = request.get_data()
    with state.lock:
        image = store().get("images", {}).get(f"urn:li:image:{key}")
        if image is None or image["status"] != "WAITING_UPLOAD":
            return _error(400, "The upload URL is invalid or was used", "EXPIRED_UPLOAD_URL")
        if sniffed_media_kind(data) != "image":
            return _error(400, "The uploaded file is not a supported image", "INVALID_MEDIA")
        image.update(status="AVAILABLE", mime_type=filetype.guess_mime(data), size=len(data))
    return Response(status=201)


# -- videos ----------------------------------------------------------------------------


def videos_action() -> Response:
    failure = check_request(publishing=True)
    if failure:
        return failure
    action = request.args.get("action")
    body = request.get_json(silent=True) or {}
    if action == "initializeUpload":
        return initialize_video(body)
    if action == "finalizeUpload":
        return finalize_video(body)
    return _error(400, "Unsupported action", "UNSUPPORTED_ACTION")


def initialize_video(body: dict[str, Any]) -> Response:
    payload, owner = owner_of(body, "initializeUpload")
    if owner is None:
        return _input_error(
            "INVALID_URN_TYPE",
            "/initializeUploadRequest/owner",
            "owner must be a person or organization URN",
        )
    size = payload.get("fileSizeBytes")
    if not isinstance(size, int) or not 0 < size <= VIDEO_MAX_BYTES:
        return _input_error(
            "INVALID_VALUE_FOR_FIELD",
            "/initializeUploadRequest/fileSizeBytes",
            f"fileSizeBytes must be between 1 and {VIDEO_MAX_BYTES}",
        )
    key = f"C5F10AQ{secrets.token_hex(8)}"
    urn = f"urn:li:video:{key}"
    parts = [
        (first, min(first + VIDEO_PART_BYTES, size) - 1)
        for first in range(0, size, VIDEO_PART_BYTES)
    ]
    upload_token = secrets.token_urlsafe(12) if len(parts) > 1 else ""
    with state.lock:
        store().setdefault("videos", {})[urn] = {
            "owner": owner,
            "size": size,
            "parts": parts,
            "etags": {},
            "head": b"",
            "upload_token": upload_token,
            "status": "WAITING_UPLOAD",
            "ready_at": 0.0,
            "failure": None,
        }
    state.note_upload(PLATFORM, "video", urn)
    instructions = [
        {
            "uploadUrl": url_for(".upload_video_part", key=key, index=index, _external=True),
            "firstByte": first,
            "lastByte": last,
        }
        for index, (first, last) in enumerate(parts)
    ]
    return json_response(
        {
            "value": {
                "uploadUrlsExpireAt": _epoch_ms(time.time() + UPLOAD_URL_SECONDS),
                "video": urn,
                "uploadInstructions": instructions,
                "uploadToken": upload_token,
                "thumbnailUploadUrl": "",
                "captionsUploadUrl": "",
            }
        }
    )


def upload_video_part(key: str, index: int) -> Response:
    data = request.get_data()
    with state.lock:
        video = store().get("videos", {}).get(f"urn:li:video:{key}")
        if video is None or video["status"] != "WAITING_UPLOAD" or index >= len(video["parts"]):
            return _error(400, "The upload URL is invalid or was used", "EXPIRED_UPLOAD_URL")
        first, last = video["parts"][index]
        if len(data) != last - first + 1:
            return _error(400, f"Expected {last - first + 1} bytes for this part", "BAD_PART")
        etag = hashlib.md5(data).hexdigest()
        video["etags"][index] = etag
        if index == 0:
            video["head"] = data[:262]
    response = Response(status=200)
    response.headers["ETag"] = etag
    return response


def finalize_video(body: dict[str, Any]) -> Response:
    payload = body.get("finalizeUploadRequest") or {}
    with state.lock:
        video = store().get("videos", {}).get(payload.get("video", ""))
        if video is None or video["status"] != "WAITING_UPLOAD":
            return _error(400, "Unknown video or upload already finalized", "INVALID_VIDEO")
        expected = [video["etags"].get(i) for i in range(len(video["parts"]))]
        if None in expected or payload.get("uploadedPartIds") != expected:
            return _error(
                400,
                "uploadedPartIds do not match the uploaded parts",
                "INVALID_UPLOADED_PART_IDS",
            )
        if payload.get("uploadToken", "") != video["upload_token"]:
            return _error(400, "uploadToken does not match", "INVALID_UPLOAD_TOKEN")
        if sniffed_media_kind(video["head"]) != "video":
            video.update(status="PROCESSING_FAILED", failure="INVALID_VIDEO_FORMAT")
        else:
            processing = state.faults_for(PLATFORM).processing_seconds
            video.update(status="PROCESSING", ready_at=time.time() + processing)
    return Response(status=200)


def get_video(urn: str) -> Response:
    failure = check_request(publishing=False)
    if failure:
        return failure
    with state.lock:
        video = store().get("videos", {}).get(urn)
        if video is None:
            return _error(404, f"Video {urn} not found", "NOT_FOUND")
        if video["status"] == "PROCESSING" and time.time() >= video["ready_at"]:
            video["status"] = "AVAILABLE"
        body: dict[str, Any] = {"id": urn, "owner": video["owner"], "status": video["status"]}
        if video["failure"]:
            body["processingFailureReason"] = video["failure"]
    return json_response(body)


# -- posts -----------------------------------------------------------------------------


def resolve_content(content: Any, author: str) -> tuple[list[dict[str, Any]], Response | None]:
    """The post's media as ledger entries, or the error LinkedIn would answer."""
    if content is None:
        return [], None
    if not isinstance(content, dict):
        return [], _input_error("INVALID_VALUE_FOR_FIELD", "/content", "content must be an object")
    if "media" in content:
        urns = [(content["media"] or {}).get("id", "")]
    elif "multiImage" in content:
        urns = [(i or {}).get("id", "") for i in (content["multiImage"] or {}).get("images", [])]
        low, high = MULTI_IMAGE_RANGE
        if not low <= len(urns) <= high or any(not u.startswith("urn:li:image:") for u in urns):
            return [], _input_error(
                "INVALID_VALUE_FOR_FIELD",
                "/content/multiImage/images",
                f"multiImage takes {low} to {high} images",
            )
    else:
        return [], _input_error("INVALID_VALUE_FOR_FIELD", "/content", "unsupported content")
    media = []
    for urn in urns:
        asset = find_asset(urn)
        if asset is None or asset["owner"] != author:
            return [], _input_error("INVALID_URN_TYPE", "/content", f"unknown media {urn}")
        if asset["status"] == "PROCESSING" and time.time() >= asset["ready_at"]:
            asset["status"] = "AVAILABLE"
        if asset["status"] != "AVAILABLE":
            return [], _error(
                400,
                f"Media {urn} is not ready: {asset['status']}",
                "MEDIA_ASSET_WAITING_UPLOAD",
            )
        if urn.startswith("urn:li:image:"):
            media.append(
                {
                    "kind": "image",
                    "mime_type": asset["mime_type"],
                    "size": asset["size"],
                    "id": urn,
                }
            )
        else:
            media.append(
                {"kind": "video", "mime_type": "video/mp4", "size": asset["size"], "id": urn}
            )
    return media, None


def create_post() -> Response:
    failure = check_request(publishing=True)
    if failure:
        return failure
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "The request body must be a JSON object", "INVALID_REQUEST")
    author = body.get("author")
    if not isinstance(author, str) or not _AUTHOR_RE.match(author):
        return _input_error(
            "INVALID_URN_TYPE", "/author", "author must be a person or organization URN"
        )
    commentary = body.get("commentary", "")
    if not isinstance(commentary, str):
        return _input_error("INVALID_VALUE_FOR_FIELD", "/commentary", "commentary must be a string")
    shown = render_little_text(commentary)
    if len(shown) > COMMENTARY_LIMIT:
        return _input_error(
            "FIELD_LENGTH_TOO_LONG",
            "/commentary",
            f"commentary is longer than {COMMENTARY_LIMIT} characters",
        )
    if body.get("visibility") not in VISIBILITIES:
        return _input_error(
            "INVALID_VALUE_FOR_FIELD",
            "/visibility",
            f"visibility must be one of {sorted(VISIBILITIES)}",
        )
    distribution = body.get("distribution") or {}
    if distribution.get("feedDistribution") not in FEED_DISTRIBUTIONS:
        return _input_error(
            "INVALID_VALUE_FOR_FIELD",
            "/distribution/feedDistribution",
            "distribution.feedDistribution is required",
        )
    if body.get("lifecycleState") != "PUBLISHED":
        return _input_error(
            "INVALID_VALUE_FOR_FIELD", "/lifecycleState", "lifecycleState must be PUBLISHED"
        )
    with state.lock:
        media, failure = resolve_content(body.get("content"), author)
        if failure:
            return failure
        if not shown and not media:
            return _input_error("MISSING_FIELD", "/commentary", "a post needs text or media")
        now = time.time()
        posts = state.posts_of(PLATFORM, author)
        for entry in reversed(posts):
            recent = now - entry["params"]["createdAt"] / 1000 < DUPLICATE_WINDOW_SECONDS
            if recent and entry["params"]["commentary"] == commentary and commentary:
                return _error(
                    422,
                    f"Content is a duplicate of {entry['id']}",
                    "DUPLICATE_POST",
                )
        today = datetime.now(UTC).date()
        posted_today = sum(
            1 for e in posts if datetime.fromisoformat(e["received_at"]).date() == today
        )
        if posted_today >= MEMBER_DAILY_POST_LIMIT:
            return _rate_limited(0)
        urn = f"urn:li:share:{7_300_000_000_000_000_000 + state.next_id()}"
        params = {key: value for key, value in body.items() if key != "author"}
        params["createdAt"] = _epoch_ms(now)
        state.record(PLATFORM, author, urn, shown, media, params)
    if should_lose_response(state, PLATFORM):
        return _error(504, "Gateway Timeout", "GATEWAY_TIMEOUT")
    response = Response(status=201)
    response.headers["x-restli-id"] = urn
    return response


def delete_post(urn: str) -> Response:
    failure = check_request(publishing=False)
    if failure:
        return failure
    if not state.delete(PLATFORM, urn):
        return _error(404, f"Post {urn} does not exist", "NOT_FOUND")
    return Response(status=204)


def posts_by_author() -> Response:
    failure = check_request(publishing=False)
    if failure:
        return failure
    author = request.args.get("author", "")
    if request.args.get("q") != "author" or not _AUTHOR_RE.match(author):
        return _error(400, "Use q=author with an author URN", "INVALID_FINDER")
    try:
        start = int(request.args.get("start", 0))
        count = min(int(request.args.get("count", 10)), 100)
    except ValueError:
        return _error(400, "start and count must be numbers", "INVALID_PAGING")
    posts = list(reversed(state.posts_of(PLATFORM, author)))
    elements = []
    for entry in posts[start : start + count]:
        params = entry["params"]
        element = {
            "id": entry["id"],
            "author": author,
            "commentary": params.get("commentary", ""),
            "visibility": params.get("visibility"),
            "distribution": params.get("distribution"),
            "lifecycleState": params.get("lifecycleState"),
            "isReshareDisabledByAuthor": params.get("isReshareDisabledByAuthor", False),
            "createdAt": params["createdAt"],
            "publishedAt": params["createdAt"],
            "lastModifiedAt": params["createdAt"],
        }
        if params.get("content"):
            element["content"] = params["content"]
        elements.append(element)
    paging = {"start": start, "count": count, "links": [], "total": len(posts)}
    return json_response({"paging": paging, "elements": elements})


# -- OAuth -----------------------------------------------------------------------------


def access_token() -> Response:
    return token_endpoint(state, PLATFORM, STYLE, _refresh, unsupported_grant)


def _refresh(refresh_token: str) -> Response:
    if not refresh_token or refresh_token in state.faults_for(PLATFORM).revoked_tokens:
        return json_response(
            {
                "error": "invalid_request",
                "error_description": "The provided authorization grant or refresh token "
                "is invalid, expired or revoked",
            },
            400,
        )
    # LinkedIn does not rotate refresh tokens: the same one comes back.
    return json_response(
        {
            "access_token": f"li-at-{secrets.token_urlsafe(18)}",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "refresh_token": refresh_token,
            "refresh_token_expires_in": REFRESH_TOKEN_SECONDS,
        }
    )


# The platform's paths, served under /<platform>.
ROUTES = (
    Route("POST", "/rest/images", images_action),
    Route("PUT", "/dms-uploads/images/<key>", upload_image),
    Route("POST", "/rest/videos", videos_action),
    Route("PUT", "/dms-uploads/videos/<key>/parts/<int:index>", upload_video_part),
    Route("GET", "/rest/videos/<path:urn>", get_video),
    Route("POST", "/rest/posts", create_post),
    Route("DELETE", "/rest/posts/<path:urn>", delete_post),
    Route("GET", "/rest/posts", posts_by_author),
    Route("POST", "/oauth/v2/accessToken", access_token),
)
BLUEPRINT_NAME = "sandbox_linkedin"

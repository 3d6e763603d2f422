"""YouTube Data API v3 stand-in (docs/platforms.md): the resumable videos.insert
(session POST, byte PUTs with 308 Resume Incomplete and `bytes */N` status queries), the
channel's uploads playlist for reconciliation, videos.list by id, videos.update of the
status (privacy), videos.delete, and Google's OAuth refresh.

A video uploaded public or unlisted is published, and recorded in the ledger, when its
upload completes. One uploaded private (how Crier prepares a video ahead of its instant)
is not in the ledger: it is recorded when videos.update makes it public or unlisted, with
`received_at` and `publishedAt` at that moment, or confirms it private.

Validates the video resource as YouTube documents it (title, description, tags,
privacyStatus) and keeps the project's videos.insert bucket of 100 calls a day, reset at
midnight Pacific Time; invalid calls are charged too. Channels are derived from tokens;
tokens minted by the refresh endpoint keep the channel of their refresh token. Errors use
Google's `{"error": {"code", "message", "errors": [{"domain", "reason", ...}]}}` shape.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, request, url_for

from sandbox.core import (
    FaultStyle,
    Route,
    authorize_bearer,
    bearer_token,
    inject_faults,
    json_response,
    should_lose_response,
    state,
)
from sandbox.insights import channel_statistics, metrics_fault, video_statistics
from sandbox.oauth import token_endpoint

PLATFORM = "youtube"
QUOTA_TIMEZONE = ZoneInfo("America/Los_Angeles")
VIDEOS_INSERT_DAILY_CALLS = 100  # own bucket since 1 Jun 2026, 1 per call
TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
TAGS_MAX_CHARS = 500
PRIVACY_STATUSES = frozenset({"public", "private", "unlisted"})
VIDEO_PARTS = frozenset(
    {"snippet", "status", "contentDetails", "recordingDetails", "localizations"}
)
PLAYLIST_MAX_RESULTS = 50
ACCESS_TOKEN_SECONDS = 3599
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")


def google_error(
    status: int,
    reason: str,
    message: str,
    domain: str = "global",
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
    }
    return json_response(body, status, headers)


def _no_scope() -> Response:
    return google_error(
        403, "insufficientPermissions", "Request had insufficient authentication scopes."
    )


def _invalid_credentials() -> Response:
    # Google answers expired and revoked access tokens alike; only the refresh tells them apart.
    return google_error(
        401,
        "authError",
        "Invalid Credentials",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'
        },
    )


_STATUS_REASONS = {400: "badRequest", 403: "forbidden", 404: "notFound", 409: "conflict"}

STYLE = FaultStyle(
    rate_limited=lambda _retry_after: google_error(
        403,
        "rateLimitExceeded",
        "The request cannot be completed because you have exceeded your rate limit.",
        domain="usageLimits",
    ),
    error=lambda status: google_error(
        status,
        "backendError" if status >= 500 else _STATUS_REASONS.get(status, "badRequest"),
        "Backend Error" if status >= 500 else "Bad Request",
    ),
    auth_expired=_invalid_credentials,
    auth_revoked=_invalid_credentials,
)


def _derived(prefix: str, seed: str, length: int) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(seed.encode()).digest()).decode()
    return prefix + digest[:length]


def _tags_length(tags: list[str]) -> int:
    """YouTube counts the commas between tags, and quotes around tags with spaces."""
    return sum(len(t) + (2 if " " in t else 0) for t in tags) + max(len(tags) - 1, 0)


def _resource_problem(resource: Any) -> tuple[str, str] | None:
    """(reason, message) for the first thing YouTube would refuse in the video resource."""
    if not isinstance(resource, dict) or not isinstance(resource.get("snippet"), dict):
        return "invalidVideoMetadata", "The request metadata must include a snippet."
    snippet = resource["snippet"]
    status = resource.get("status") or {}
    title = snippet.get("title")
    if (
        not isinstance(title, str)
        or not title.strip()
        or len(title) > TITLE_MAX_CHARS
        or "<" in title
        or ">" in title
    ):
        return "invalidTitle", "The request metadata specifies an invalid or empty video title."
    description = snippet.get("description", "")
    if (
        not isinstance(description, str)
        or len(description.encode()) > DESCRIPTION_MAX_BYTES
        or "<" in description
        or ">" in description
    ):
        return "invalidDescription", "The request metadata specifies an invalid video description."
    tags = snippet.get("tags", [])
    if (
        not isinstance(tags, list)
        or not all(isinstance(t, str) for t in tags)
        or _tags_length(tags) > TAGS_MAX_CHARS
    ):
        return "invalidTags", "The request metadata specifies invalid video keywords."
    if (
        not isinstance(status, dict)
        or status.get("privacyStatus", "public") not in PRIVACY_STATUSES
    ):
        return "invalidVideoMetadata", "status.privacyStatus must be public, private or unlisted."
    return None


def store() -> dict[str, Any]:
    data = state.store(PLATFORM)
    for key in ("channels", "sessions", "videos", "uploads_of"):
        data.setdefault(key, {})
    data.setdefault("quota", {"day": None, "used": 0})
    return data


def channel_of(token: str) -> str:
    with state.lock:
        return store()["channels"].setdefault(token, _derived("UC", f"yt:{token}", 22))


def authorize(publishing: bool) -> tuple[str | None, Response | None]:
    return authorize_bearer(state, PLATFORM, STYLE, publishing, missing_token=_invalid_credentials)


def charge_insert() -> bool:
    """Spend one call of today's (Pacific) videos.insert bucket; False when empty."""
    today = datetime.now(QUOTA_TIMEZONE).date().isoformat()
    with state.lock:
        quota = store()["quota"]
        if quota["day"] != today:
            quota.update(day=today, used=0)
        if quota["used"] >= VIDEOS_INSERT_DAILY_CALLS:
            return False
        quota["used"] += 1
        return True


def insert_video() -> Response:
    token, failure = authorize(publishing=True)
    if failure is not None:
        return failure
    if not charge_insert():
        return google_error(
            403,
            "quotaExceeded",
            "The request cannot be completed because you have exceeded your quota.",
            domain="youtube.quota",
        )
    if request.args.get("uploadType") != "resumable":
        return google_error(400, "badRequest", "The sandbox serves uploadType=resumable only.")
    parts = {p for p in request.args.get("part", "").split(",") if p}
    if "snippet" not in parts or parts - VIDEO_PARTS:
        return google_error(
            400, "unexpectedPart", f"part must list snippet and only {sorted(VIDEO_PARTS)}."
        )
    resource = request.get_json(silent=True)
    problem = _resource_problem(resource)
    if problem:
        return google_error(400, problem[0], problem[1], domain="youtube.video")
    media_type = request.headers.get("X-Upload-Content-Type", "video/*")
    if not media_type.startswith("video/") and media_type != "application/octet-stream":
        return google_error(
            400,
            "badContent",
            f"Media type '{media_type}' is not supported. "
            "Valid media types: [video/*, application/octet-stream]",
        )
    declared = request.headers.get("X-Upload-Content-Length")
    if declared is not None and not declared.isdigit():
        return google_error(400, "badRequest", "X-Upload-Content-Length must be a number.")
    upload_id = secrets.token_urlsafe(24)
    with state.lock:
        store()["sessions"][upload_id] = {
            "channel": channel_of(token),
            "snippet": resource["snippet"],
            "status": {"privacyStatus": "public", **(resource.get("status") or {})},
            "mime_type": media_type,
            "total": int(declared) if declared is not None else None,
            "received": 0,
            "video_id": None,
        }
    state.note_upload(PLATFORM, "video", upload_id)
    session_uri = url_for(
        f"{PLATFORM}.upload_bytes", uploadType="resumable", upload_id=upload_id, _external=True
    )
    return Response(
        status=200, headers={"Location": session_uri, "X-GUploader-UploadID": upload_id}
    )


def upload_bytes() -> Response:
    fault = inject_faults(state, PLATFORM, STYLE, bearer_token(), publishing=False)
    if fault is not None:
        return fault
    upload_id = request.args.get("upload_id", "")
    content_range = request.headers.get("Content-Range")
    chunk = request.get_data()
    with state.lock:
        session = store()["sessions"].get(upload_id)
        if session is None:
            return google_error(404, "notFound", "The upload session does not exist.")
        if session["video_id"]:
            video = store()["videos"].get(session["video_id"])
            if video is None:  # deleted since its upload completed
                return google_error(404, "notFound", "The upload session does not exist.")
            return json_response(video, 200)
        if content_range is None:
            first, total = 0, len(chunk)
        else:
            match = _CONTENT_RANGE.match(content_range)
            if match is None:
                return google_error(
                    400, "badRequest", f"Malformed Content-Range {content_range!r}."
                )
            total = int(match.group(3))
            first = int(match.group(1)) if match.group(1) is not None else None
            if match.group(2) is not None and int(match.group(2)) - first + 1 != len(chunk):
                return google_error(400, "badRequest", "Content-Range and body length differ.")
        if total == 0:
            return google_error(400, "mediaBodyRequired", "The request has no video bytes.")
        if session["total"] not in (None, total):
            return google_error(400, "badRequest", "The total size differs from the session's.")
        session["total"] = total
        if first is not None:  # bytes a-b/N: data; an overlap with what arrived is skipped
            if first > session["received"]:
                return google_error(
                    400, "badRequest", f"Expected bytes from {session['received']}."
                )
            session["received"] = max(session["received"], first + len(chunk))
        if session["received"] < total:
            headers = {"X-GUploader-UploadID": upload_id}
            if session["received"]:
                headers["Range"] = f"bytes=0-{session['received'] - 1}"
            return Response(status=308, headers=headers)
        video = create_video(session)
    if video["status"]["privacyStatus"] != "private" and should_lose_response(state, PLATFORM):
        return google_error(504, "backendError", "Gateway Timeout")
    return json_response(video, 200)


def create_video(session: dict[str, Any]) -> dict[str, Any]:
    """The upload completed (under the lock): the video exists. Uploaded public or
    unlisted, it is published now and goes to the ledger; uploaded private, it waits
    for videos.update to set its privacy."""
    video_id = _derived("", f"video:{state.next_id()}", 11)
    snippet = dict(session["snippet"])
    video = {
        "kind": "youtube#video",
        "etag": secrets.token_urlsafe(20),
        "id": video_id,
        "snippet": {
            "publishedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "channelId": session["channel"],
            **snippet,
            "channelTitle": f"Sandbox {session['channel'][2:10]}",
            "liveBroadcastContent": "none",
        },
        "status": {
            "uploadStatus": "uploaded",
            "privacyStatus": session["status"]["privacyStatus"],
            "license": "youtube",
            "embeddable": True,
            "publicStatsViewable": True,
        },
    }
    store()["videos"][video_id] = video
    store()["uploads_of"][video_id] = {
        "mime_type": session["mime_type"],
        "size": session["total"],
        "snippet": dict(session["snippet"]),
        "status": dict(session["status"]),
        "recorded": False,
    }
    session["video_id"] = video_id
    if video["status"]["privacyStatus"] != "private":
        record_video(video)
    return video


def record_video(video: dict[str, Any]) -> None:
    """The video is published (under the lock): it goes to the ledger, once."""
    upload = store()["uploads_of"][video["id"]]
    if upload["recorded"]:
        return
    upload["recorded"] = True
    snippet = {k: v for k, v in upload["snippet"].items() if k != "description"}
    state.record(
        PLATFORM,
        video["snippet"]["channelId"],
        video["id"],
        video["snippet"].get("description", ""),
        [{"kind": "video", "mime_type": upload["mime_type"], "size": upload["size"]}],
        {
            "snippet": snippet,
            "status": {**upload["status"], "privacyStatus": video["status"]["privacyStatus"]},
        },
    )


def update_video() -> Response:
    """videos.update(part=status): setting a private video public or unlisted publishes
    it (publishedAt becomes that moment, as YouTube documents); setting the privacy it
    has changes nothing. A video still private is recorded when an update confirms it
    private: the owner's choice for a post meant to stay private."""
    token, failure = authorize(publishing=True)
    if failure is not None:
        return failure
    parts = {p for p in request.args.get("part", "").split(",") if p}
    if "status" not in parts or parts - VIDEO_PARTS:
        return google_error(
            400, "unexpectedPart", f"part must list status and only {sorted(VIDEO_PARTS)}."
        )
    resource = request.get_json(silent=True)
    if not isinstance(resource, dict) or not isinstance(resource.get("status"), dict):
        return google_error(400, "invalidVideoMetadata", "The request must include a status.")
    privacy = resource["status"].get("privacyStatus", "public")
    if privacy not in PRIVACY_STATUSES:
        return google_error(
            400,
            "invalidVideoMetadata",
            "status.privacyStatus must be public, private or unlisted.",
            domain="youtube.video",
        )
    with state.lock:
        video = store()["videos"].get(str(resource.get("id", "")))
        if video is None:
            return google_error(
                404,
                "videoNotFound",
                "The video that you are trying to update cannot be found.",
                domain="youtube.video",
            )
        if video["snippet"]["channelId"] != channel_of(token):
            return google_error(
                403, "forbidden", "The video that you are trying to update is not yours."
            )
        publishes = not store()["uploads_of"][video["id"]]["recorded"]
        if publishes and privacy != "private" and video["status"]["privacyStatus"] == "private":
            video["snippet"]["publishedAt"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        video["status"]["privacyStatus"] = privacy
        if publishes:
            record_video(video)
        answer = copy.deepcopy(video)
    if publishes and should_lose_response(state, PLATFORM):
        return google_error(504, "backendError", "Gateway Timeout")
    return json_response(answer, 200)


def delete_video() -> Response:
    """videos.delete: 204, the video gone from listings (the ledger keeps its record)."""
    token, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    video_id = request.args.get("id", "")
    with state.lock:
        video = store()["videos"].get(video_id)
        if video is None:
            return google_error(
                404,
                "videoNotFound",
                "The video that you are trying to delete cannot be found.",
                domain="youtube.video",
            )
        if video["snippet"]["channelId"] != channel_of(token):
            return google_error(
                403, "forbidden", "The video that you are trying to delete is not yours."
            )
        del store()["videos"][video_id]
    state.delete(PLATFORM, video_id)
    return Response(status=204)


def list_videos() -> Response:
    """videos.list by id: the owner sees its private videos, others do not."""
    token, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    ids = [i for i in request.args.get("id", "").split(",") if i]
    if not ids:
        return google_error(400, "missingRequiredParameter", "No filter selected.")
    channel = channel_of(token)
    statistics = "statistics" in request.args.get("part", "")
    if statistics and (fault := metrics_fault(state, PLATFORM, STYLE, token, _no_scope)):
        return fault
    with state.lock:
        found = [store()["videos"].get(i) for i in ids]
        items = [
            copy.deepcopy(v)
            for v in found
            if v is not None
            and (v["status"]["privacyStatus"] != "private" or v["snippet"]["channelId"] == channel)
        ]
    for item in items if statistics else []:
        item["statistics"] = video_statistics(item["id"])
    return json_response(
        {
            "kind": "youtube#videoListResponse",
            "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)},
            "items": items,
        }
    )


def channels() -> Response:
    token, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    parts = request.args.get("part", "")
    if request.args.get("mine") != "true" or not (
        "contentDetails" in parts or "statistics" in parts
    ):
        return google_error(
            400, "badRequest", "The sandbox serves part=contentDetails|statistics&mine=true."
        )
    if "statistics" in parts and (fault := metrics_fault(state, PLATFORM, STYLE, token, _no_scope)):
        return fault
    channel = channel_of(token)
    return json_response(
        {
            "kind": "youtube#channelListResponse",
            "pageInfo": {"totalResults": 1, "resultsPerPage": 1},
            "items": [
                {
                    "kind": "youtube#channel",
                    "id": channel,
                    "snippet": {"title": f"Sandbox channel {channel[-6:]}"},
                    "contentDetails": {
                        "relatedPlaylists": {"likes": "", "uploads": "UU" + channel[2:]}
                    },
                    **(
                        {"statistics": channel_statistics(channel)} if "statistics" in parts else {}
                    ),
                }
            ],
        }
    )


def playlist_items() -> Response:
    token, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    channel = channel_of(token)
    if request.args.get("playlistId") != "UU" + channel[2:]:
        return google_error(
            404,
            "playlistNotFound",
            "The playlist identified with the request's playlistId parameter cannot be found.",
            domain="youtube.playlistItem",
        )
    parts = {p for p in request.args.get("part", "").split(",") if p}
    max_results = request.args.get("maxResults", "5")
    if not max_results.isdigit() or not 0 <= int(max_results) <= PLAYLIST_MAX_RESULTS:
        return google_error(400, "invalidValue", "maxResults must be between 0 and 50.")
    with state.lock:
        # The uploads playlist lists newest first.
        videos = [v for v in store()["videos"].values() if v["snippet"]["channelId"] == channel]
    videos.reverse()
    items = [
        {
            "kind": "youtube#playlistItem",
            "id": _derived("", f"item:{v['id']}", 40),
            "snippet": {
                "publishedAt": v["snippet"]["publishedAt"],
                "channelId": channel,
                "title": v["snippet"]["title"],
                "description": v["snippet"].get("description", ""),
                "playlistId": request.args["playlistId"],
                "position": position,
                "resourceId": {"kind": "youtube#video", "videoId": v["id"]},
            },
            **(
                {"status": {"privacyStatus": v["status"]["privacyStatus"]}}
                if "status" in parts
                else {}
            ),
        }
        for position, v in enumerate(videos[: int(max_results)])
    ]
    return json_response(
        {
            "kind": "youtube#playlistItemListResponse",
            "pageInfo": {"totalResults": len(videos), "resultsPerPage": int(max_results)},
            "items": items,
        }
    )


def oauth_token() -> Response:
    return token_endpoint(
        state,
        PLATFORM,
        STYLE,
        _refresh,
        lambda: json_response({"error": "unsupported_grant_type"}, 400),
    )


def _refresh(refresh_token: str) -> Response:
    if not refresh_token:
        return json_response(
            {
                "error": "invalid_request",
                "error_description": "Missing required parameter: refresh_token",
            },
            400,
        )
    if refresh_token in state.faults_for(PLATFORM).revoked_tokens:
        return json_response(
            {
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            },
            400,
        )
    access_token = f"ya29.sandbox-{secrets.token_urlsafe(24)}"
    with state.lock:
        store()["channels"][access_token] = channel_of(refresh_token)
    # Google does not rotate refresh tokens: none comes back.
    return json_response(
        {
            "access_token": access_token,
            "expires_in": ACCESS_TOKEN_SECONDS,
            "scope": "https://www.googleapis.com/auth/youtube.upload "
            "https://www.googleapis.com/auth/youtube.readonly",
            "token_type": "Bearer",
        }
    )


# The platform's paths, served under /<platform>.
ROUTES = (
    Route("POST", "/upload/youtube/v3/videos", insert_video),
    Route("PUT", "/upload/youtube/v3/videos", upload_bytes),
    Route("PUT", "/youtube/v3/videos", update_video),
    Route("DELETE", "/youtube/v3/videos", delete_video),
    Route("GET", "/youtube/v3/videos", list_videos),
    Route("GET", "/youtube/v3/channels", channels),
    Route("GET", "/youtube/v3/playlistItems", playlist_items),
    Route("POST", "/token", oauth_token),
)
BLUEPRINT_NAME = PLATFORM

"""X API v2 stand-in: media upload (one-shot and chunked), POST /2/tweets, timelines, OAuth 2.

Users are derived from the bearer token (X takes no user id when posting); tokens issued by
a refresh stay with the user of their refresh chain. Limits follow X's headers: 100 posts
per 15 minutes per user (x-rate-limit-*) and the legacy Basic tier's 100 posts per 24 hours
per user (x-user-limit-24hour-*), so both kinds of 429 can be exercised.
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import secrets
import time
from datetime import datetime
from http import HTTPStatus
from typing import Any

import filetype
from flask import Response, request

from sandbox.core import (
    FaultStyle,
    Route,
    SandboxState,
    bearer_token,
    inject_faults,
    json_response,
    should_lose_response,
    sniffed_media_kind,
    state,
)
from sandbox.insights import user_metrics
from sandbox.oauth import token_endpoint, unsupported_grant
from sandbox.rules import PLATFORMS, count_x_weighted

PLATFORM = "x"
TEXT_LIMIT = PLATFORMS["x"].text_limit
WINDOW_SECONDS = 15 * 60
WINDOW_LIMIT = 100
DAY_SECONDS = 24 * 60 * 60
USER_DAILY_LIMIT = 100
MEDIA_EXPIRES_SECONDS = 24 * 60 * 60
MAX_SEGMENT_INDEX = 999
MAX_MEDIA_PER_POST = 4
GIF_MAX_BYTES = 15 * 1024 * 1024
IMAGE_CATEGORIES = frozenset({"tweet_image", "tweet_gif", "dm_image", "dm_gif"})
VIDEO_CATEGORIES = frozenset({"tweet_video", "amplify_video", "dm_video"})
REPLY_SETTINGS = frozenset({"following", "mentionedUsers", "subscribers", "verified"})
ACCESS_TOKEN_SECONDS = 2 * 60 * 60
TOKEN_SCOPE = "tweet.read tweet.write users.read media.write offline.access"
INVALID_REQUEST_TYPE = "https://api.twitter.com/2/problems/invalid-request"
_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)


def _problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
) -> Response:
    title = title or HTTPStatus(status).phrase
    body = {"title": title, "detail": detail, "type": type_, "status": status}
    return json_response(body, status, headers)


def _invalid(message: str) -> Response:
    body = {
        "errors": [{"parameters": {}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": INVALID_REQUEST_TYPE,
    }
    return json_response(body, 400)


def _unauthorized() -> Response:
    return _problem(401, "Unauthorized")


def _rate_limited(retry_after: int) -> Response:
    now = int(time.time())
    headers = {
        "x-rate-limit-limit": str(WINDOW_LIMIT),
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(now + retry_after),
    }
    return _problem(429, "Too Many Requests", headers=headers)


def _server_error(status: int) -> Response:
    return _problem(status, HTTPStatus(status).phrase)


STYLE = FaultStyle(
    rate_limited=_rate_limited,
    error=_server_error,
    auth_expired=_unauthorized,
    # X does not tell a revoked token from an expired one: both are a plain 401.
    auth_revoked=_unauthorized,
)


def _derived_user_id(secret: str) -> str:
    """A stable 19-digit user id for a token the sandbox never issued."""
    digest = int(hashlib.sha256(secret.encode()).hexdigest()[:16], 16)
    return str(10**18 + digest % (9 * 10**18))


def _snowflake(state: SandboxState) -> str:
    return str(1_900_000_000_000_000_000 + state.next_id())


def _processing_info(media: dict[str, Any], now: float) -> dict[str, Any] | None:
    """X's processing_info for a media object, advancing pending work whose time has come."""
    if media["state"] == "pending" and now >= media["ready_at"]:
        media["state"] = "succeeded"
    if media["state"] == "pending":
        total = max(media["ready_at"] - media["finalized_at"], 0.001)
        return {
            "state": "in_progress",
            "check_after_secs": max(1, math.ceil(media["ready_at"] - now)),
            "progress_percent": int(100 * (now - media["finalized_at"]) / total),
        }
    if media["state"] == "failed":
        return {
            "state": "failed",
            "progress_percent": 0,
            "error": {"code": 1, "name": "InvalidMedia", "message": "Unsupported media format"},
        }
    if media["kind"] == "video":
        return {"state": "succeeded", "progress_percent": 100}
    return None


def _display_text(entry: dict[str, Any]) -> str:
    """How X returns a post's text: links through t.co, entities escaped, media link appended."""

    def shorten(match: re.Match[str]) -> str:
        return "https://t.co/" + hashlib.sha1(match.group(0).encode()).hexdigest()[:10]

    text = html.escape(_URL_RE.sub(shorten, entry["text"]), quote=False)
    if entry["media"]:
        text = f"{text} https://t.co/{entry['id'][-10:]}".strip()
    return text


def store() -> dict[str, Any]:
    return state.store(PLATFORM)


def user_for(token: str) -> str:
    with state.lock:
        users = store().setdefault("token_users", {})
        return users.setdefault(token, _derived_user_id(token))


def authorize(publishing: bool) -> tuple[str, Response | None]:
    token = bearer_token()
    if token is None:
        return "", _unauthorized()
    return token, inject_faults(state, PLATFORM, STYLE, token, publishing)


def new_media(owner: str, kind: str, mime: str, category: str, total: int) -> dict[str, Any]:
    media_id = _snowflake(state)
    # X's media_key prefixes: 3 photo, 7 video, 16 animated GIF.
    prefix = "16" if category.endswith("_gif") else {"image": "3", "video": "7"}[kind]
    media = {
        "id": media_id,
        "media_key": f"{prefix}_{media_id}",
        "owner": owner,
        "kind": kind,
        "mime_type": mime,
        "category": category,
        "total_bytes": total,
        "segments": {},
        "head": b"",
        "state": "uploading",
        "finalized_at": 0.0,
        "ready_at": 0.0,
        "expires_at": time.time() + MEDIA_EXPIRES_SECONDS,
    }
    with state.lock:
        store().setdefault("media", {})[media_id] = media
    return media


def find_media(media_id: str, owner: str) -> dict[str, Any] | None:
    with state.lock:
        media = store().get("media", {}).get(str(media_id))
    if media is None or media["owner"] != owner or media["expires_at"] < time.time():
        return None
    return media


def media_data(media: dict[str, Any]) -> dict[str, Any]:
    data = {
        "id": media["id"],
        "media_key": media["media_key"],
        "size": media["total_bytes"],
        "expires_after_secs": max(0, int(media["expires_at"] - time.time())),
    }
    info = _processing_info(media, time.time())
    if info:
        data["processing_info"] = info
    return data


def check_category(kind: str, category: str | None, mime: str, size: int) -> str | None:
    """The reason X would refuse this media, or None."""
    rules = PLATFORMS["x"].media
    allowed = rules.image_mime_types if kind == "image" else rules.video_mime_types
    if mime not in allowed:
        return f"media_type {mime!r} is not supported"
    if category not in (IMAGE_CATEGORIES if kind == "image" else VIDEO_CATEGORIES):
        return f"media_category {category!r} does not fit {mime}"
    limit = rules.image_max_bytes if kind == "image" else rules.video_max_bytes
    if category.endswith("_gif"):
        limit = GIF_MAX_BYTES
    if size <= 0 or size > limit:
        return f"total_bytes must be between 1 and {limit}"
    return None


# -- users -----------------------------------------------------------------------------


def users_me() -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    user_id = user_for(token)
    username = f"sandbox_{user_id[-6:]}"
    data: dict[str, Any] = {"id": user_id, "name": "Sandbox User", "username": username}
    if "public_metrics" in request.args.get("user.fields", ""):
        data["public_metrics"] = user_metrics(user_id)
    return json_response({"data": data})


def user_tweets(user_id: str) -> Response:
    _, fault = authorize(publishing=False)
    if fault:
        return fault
    try:
        max_results = int(request.args.get("max_results", 10))
    except ValueError:
        return _invalid("max_results must be a number")
    if not 5 <= max_results <= 100:
        return _invalid("The `max_results` query parameter value must be between 5 and 100")
    try:
        start = request.args.get("start_time")
        start_at = datetime.fromisoformat(start) if start else None
    except ValueError:
        return _invalid("start_time must be an RFC 3339 timestamp")
    fields = set(filter(None, request.args.get("tweet.fields", "").split(",")))
    excluded = set(filter(None, request.args.get("exclude", "").split(",")))
    entries = [
        entry
        for entry in reversed(state.posts_of(PLATFORM, user_id))
        if (start_at is None or datetime.fromisoformat(entry["received_at"]) >= start_at)
        and not ("replies" in excluded and entry.get("reply_to"))
    ][:max_results]
    posts = []
    for entry in entries:
        post: dict[str, Any] = {
            "id": entry["id"],
            "text": _display_text(entry),
            "edit_history_tweet_ids": [entry["id"]],
        }
        if "created_at" in fields:
            post["created_at"] = entry["received_at"]
        if "attachments" in fields and entry["media"]:
            post["attachments"] = {"media_keys": [m["media_key"] for m in entry["media"]]}
        if "referenced_tweets" in fields and entry.get("reply_to"):
            post["referenced_tweets"] = [{"type": "replied_to", "id": entry["reply_to"]}]
        posts.append(post)
    meta: dict[str, Any] = {"result_count": len(posts)}
    if posts:
        meta.update(newest_id=posts[0]["id"], oldest_id=posts[-1]["id"])
        return json_response({"data": posts, "meta": meta})
    return json_response({"meta": meta})


# -- media -----------------------------------------------------------------------------


def upload_one_shot() -> Response:
    token, fault = authorize(publishing=True)
    if fault:
        return fault
    upload = request.files.get("media")
    if upload is None:
        return _invalid("The `media` field is required")
    data = upload.read()
    kind = sniffed_media_kind(data)
    if kind != "image":
        return _invalid("Only images and GIFs can be uploaded in one request; use chunks")
    mime = request.form.get("media_type") or filetype.guess_mime(data)
    category = request.form.get("media_category")
    reason = check_category("image", category, mime, len(data))
    if reason:
        return _invalid(reason)
    media = new_media(user_for(token), "image", mime, category, len(data))
    state.note_upload(PLATFORM, "image", str(media["id"]))
    media["state"] = "succeeded"
    return json_response({"data": media_data(media)})


def upload_status() -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    if request.args.get("command", "STATUS") != "STATUS":
        return _invalid("command must be STATUS")
    with state.lock:
        media = find_media(request.args.get("media_id", ""), user_for(token))
        if media is None:
            return _invalid("Invalid media_id")
        return json_response({"data": media_data(media)})


def upload_initialize() -> Response:
    token, fault = authorize(publishing=True)
    if fault:
        return fault
    body = request.get_json(silent=True) or {}
    mime = str(body.get("media_type", ""))
    kind = mime.split("/")[0]
    if kind not in ("image", "video"):
        return _invalid("media_type must be an image or video MIME type")
    try:
        total = int(body.get("total_bytes", 0))
    except (TypeError, ValueError):
        return _invalid("total_bytes must be an integer")
    reason = check_category(kind, body.get("media_category"), mime, total)
    if reason:
        return _invalid(reason)
    media = new_media(user_for(token), kind, mime, body["media_category"], total)
    state.note_upload(PLATFORM, kind, str(media["id"]))
    data = {k: media_data(media)[k] for k in ("id", "media_key", "expires_after_secs")}
    return json_response({"data": data})


def upload_append(media_id: str) -> Response:
    token, fault = authorize(publishing=True)
    if fault:
        return fault
    upload = request.files.get("media")
    try:
        index = int(request.form.get("segment_index", ""))
    except ValueError:
        return _invalid("segment_index must be an integer")
    if upload is None or not 0 <= index <= MAX_SEGMENT_INDEX:
        return _invalid(f"media and a segment_index of 0..{MAX_SEGMENT_INDEX} are required")
    chunk = upload.read()
    with state.lock:
        media = find_media(media_id, user_for(token))
        if media is None or media["state"] != "uploading":
            return _invalid("Invalid media_id or the upload is already finalized")
        media["segments"][index] = len(chunk)
        if index == 0:
            media["head"] = chunk[:262]
        return json_response({"data": {"expires_at": int(media["expires_at"])}})


def upload_finalize(media_id: str) -> Response:
    token, fault = authorize(publishing=True)
    if fault:
        return fault
    processing = state.faults_for(PLATFORM).processing_seconds
    with state.lock:
        media = find_media(media_id, user_for(token))
        if media is None or media["state"] != "uploading":
            return _invalid("Invalid media_id or the upload is already finalized")
        if sum(media["segments"].values()) != media["total_bytes"]:
            return _invalid("Segments do not add up to provided total file size.")
        now = time.time()
        media["finalized_at"] = now
        if sniffed_media_kind(media["head"]) != media["kind"]:
            media["state"] = "failed"
        elif media["kind"] == "video" and processing > 0:
            media.update(state="pending", ready_at=now + processing)
        else:
            media["state"] = "succeeded"
        return json_response({"data": media_data(media)})


# -- posts -----------------------------------------------------------------------------


def create_post() -> Response:
    token, fault = authorize(publishing=True)
    if fault:
        return fault
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _invalid("The request body must be a JSON object")
    text = body.get("text", "")
    media_ids = (body.get("media") or {}).get("media_ids") or []
    if not isinstance(text, str) or not isinstance(media_ids, list):
        return _invalid("text must be a string and media.media_ids a list")
    if not text and not media_ids:
        return _invalid("Either text or media is required")
    if count_x_weighted(text) > TEXT_LIMIT:
        return _invalid(f"Your Tweet text is longer than {TEXT_LIMIT} weighted characters")
    reply_settings = body.get("reply_settings")
    if reply_settings is not None and reply_settings not in REPLY_SETTINGS:
        return _invalid(f"reply_settings must be one of {sorted(REPLY_SETTINGS)}")
    if len(media_ids) > MAX_MEDIA_PER_POST:
        return _invalid(f"A post can have at most {MAX_MEDIA_PER_POST} media")
    reply = body.get("reply")
    reply_to = None
    if reply is not None:
        reply_to = (
            str((reply or {}).get("in_reply_to_tweet_id") or "") if isinstance(reply, dict) else ""
        )
        if not reply_to:
            return _invalid("reply.in_reply_to_tweet_id is required in a reply")
        if state.find_entry(PLATFORM, reply_to) is None:
            return _problem(
                403,
                "You attempted to reply to a Tweet that is deleted or not visible to you.",
            )
    user_id = user_for(token)
    with state.lock:
        found = [find_media(media_id, user_id) for media_id in media_ids]
        for item in found:
            if item is not None:
                _processing_info(item, time.time())
        media = [item for item in found if item is not None and item["state"] == "succeeded"]
        if len(media) != len(found):
            return _invalid("Your media IDs are invalid.")
        if any(item["kind"] == "video" for item in media) and len(media) > 1:
            return _invalid("A post can have one video, or up to 4 images, not both")
        if text and any(entry["text"] == text for entry in state.posts_of(PLATFORM, user_id)):
            return _problem(403, "You are not allowed to create a Tweet with duplicate content.")
        now = time.time()
        history = store().setdefault("posted_at", {})
        posted = [t for t in history.get(user_id, []) if t > now - DAY_SECONDS]
        history[user_id] = posted
        headers = _limit_headers(posted, now)
        if len(posted) >= USER_DAILY_LIMIT or headers["x-rate-limit-remaining"] == "0":
            return _problem(429, "Too Many Requests", headers=headers)
        post_id = _snowflake(state)
        params = {key: value for key, value in body.items() if key != "text"}
        ledger_media = [
            {
                "kind": item["kind"],
                "mime_type": item["mime_type"],
                "size": item["total_bytes"],
                "media_key": item["media_key"],
                "media_category": item["category"],
            }
            for item in media
        ]
        state.record(PLATFORM, user_id, post_id, text, ledger_media, params, reply_to)
        posted.append(now)
        headers = _limit_headers(posted, now)
    if should_lose_response(state, PLATFORM):
        return _problem(504, "Gateway Timeout")
    data = {"id": post_id, "text": text, "edit_history_post_ids": [post_id]}
    return json_response({"data": data}, 201, headers)


def delete_post(tweet_id: str) -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    if not state.delete(PLATFORM, tweet_id, user_for(token)):
        return _problem(404, "Not Found")
    return json_response({"data": {"deleted": True}})


# -- OAuth 2 ---------------------------------------------------------------------------


def oauth_token() -> Response:
    return token_endpoint(state, PLATFORM, STYLE, _refresh, unsupported_grant)


def _refresh(refresh_token: str) -> Response:
    revoked = state.faults_for(PLATFORM).revoked_tokens
    if refresh_token in state.faults_for(PLATFORM).malformed_refresh_tokens:
        # What a misbehaving proxy in front of the token endpoint answers.
        return Response("<html><body>Service temporarily unavailable</body></html>", 200)
    with state.lock:
        used = store().setdefault("used_refresh_tokens", set())
        if not refresh_token or refresh_token in used or refresh_token in revoked:
            return json_response(
                {
                    "error": "invalid_request",
                    "error_description": "Value passed for the token was invalid.",
                },
                400,
            )
        # Refresh tokens are single-use: the new pair replaces this one for good.
        used.add(refresh_token)
        users = store().setdefault("token_users", {})
        user_id = users.get(refresh_token) or _derived_user_id(refresh_token)
        access_token = f"x-at-{secrets.token_urlsafe(18)}"
        new_refresh_token = f"x-rt-{secrets.token_urlsafe(18)}"
        users[access_token] = user_id
        users[new_refresh_token] = user_id
    return json_response(
        {
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "access_token": access_token,
            "scope": TOKEN_SCOPE,
            "refresh_token": new_refresh_token,
        }
    )


def _limit_headers(posted: list[float], now: float) -> dict[str, str]:
    """X's 15-minute and 24-hour headers for a user's posts so far."""
    window = [t for t in posted if t > now - WINDOW_SECONDS]
    window_reset = (window[0] + WINDOW_SECONDS) if window else now + WINDOW_SECONDS
    day_reset = (posted[0] + DAY_SECONDS) if posted else now + DAY_SECONDS
    return {
        "x-rate-limit-limit": str(WINDOW_LIMIT),
        "x-rate-limit-remaining": str(max(0, WINDOW_LIMIT - len(window))),
        "x-rate-limit-reset": str(int(window_reset)),
        "x-user-limit-24hour-limit": str(USER_DAILY_LIMIT),
        "x-user-limit-24hour-remaining": str(max(0, USER_DAILY_LIMIT - len(posted))),
        "x-user-limit-24hour-reset": str(int(day_reset)),
    }


# The platform's paths, served under /<platform>.
ROUTES = (
    Route("GET", "/2/users/me", users_me),
    Route("GET", "/2/users/<user_id>/tweets", user_tweets),
    Route("POST", "/2/media/upload", upload_one_shot),
    Route("GET", "/2/media/upload", upload_status),
    Route("POST", "/2/media/upload/initialize", upload_initialize),
    Route("POST", "/2/media/upload/<media_id>/append", upload_append),
    Route("POST", "/2/media/upload/<media_id>/finalize", upload_finalize),
    Route("POST", "/2/tweets", create_post),
    Route("DELETE", "/2/tweets/<tweet_id>", delete_post),
    Route("POST", "/2/oauth2/token", oauth_token),
)
BLUEPRINT_NAME = "sandbox_x"

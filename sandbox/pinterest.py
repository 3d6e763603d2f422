"""Pinterest API v5 stand-in: user account, boards, Pins (image, multi-image, video), the
video media upload (register, upload to the returned URL, processing), OAuth 2 tokens.

Users come from the bearer token: a token issued by the consent page belongs to its
user; any other token to the default sandbox user ("sandbox", the consent page's default
too). Each user has two boards with ids derived from the login. Errors are Pinterest's
`{"code": int, "message": str}`; a rate limit is a 429 with `x-ratelimit-*` headers.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from flask import Response, request, url_for

from sandbox import oauth
from sandbox.core import (
    FaultStyle,
    PullFailure,
    Route,
    bearer_token,
    inject_faults,
    json_response,
    media_entry,
    should_lose_response,
    sniffed_media_kind,
    state,
)
from sandbox.insights import posts_of, read_followers

PLATFORM = "pinterest"
BLUEPRINT_NAME = "sandbox_pinterest"
DEFAULT_LOGIN = "sandbox"
# The API schema's limits (the product shows 500 description characters; the API takes 800).
TITLE_MAX = 100
DESCRIPTION_MAX = 800
ALT_TEXT_MAX = 500
LINK_MAX = 2048
CAROUSEL_MIN, CAROUSEL_MAX = 2, 5
PAGE_SIZE_MAX = 250
ACCESS_TOKEN_SECONDS = 30 * 24 * 3600
REFRESH_TOKEN_SECONDS = 60 * 24 * 3600
TOKEN_SCOPE = "boards:read,boards:write,pins:read,pins:write,user_accounts:read"
BOARD_NAMES = ("Recipes", "Travel")


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"code": code, "message": message}, status, headers)


def _rate_limited(retry_after: int) -> Response:
    headers = {
        "x-ratelimit-limit": "100",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset": str(retry_after),
    }
    return _error(429, 29, "You have exceeded your rate limit. Try again later.", headers)


def _server_error(status: int) -> Response:
    return _error(status, 0, "Something went wrong on our end. Sorry about that.")


def _unauthorized() -> Response:
    return _error(401, 2, "Authentication failed.")


# Pinterest answers an expired and a revoked token alike.
STYLE = FaultStyle(
    rate_limited=_rate_limited,
    error=_server_error,
    auth_expired=_unauthorized,
    auth_revoked=_unauthorized,
)


def _digits(seed: str, length: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:length]


def login_for(token: str) -> str:
    grant = oauth.owner(state, token)
    return str(grant["login"]) if grant else DEFAULT_LOGIN


def boards_of(login: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "1" + _digits(f"pin-board:{login}:{n}", 17),
            "name": f"{login.title()} {name}",
            "description": "",
            "privacy": "PUBLIC",
        }
        for n, name in enumerate(BOARD_NAMES)
    ]


def authorize(publishing: bool) -> tuple[str, Response | None]:
    token = bearer_token()
    if token is None:
        return "", _unauthorized()
    return token, inject_faults(state, PLATFORM, STYLE, token, publishing)


def store() -> dict[str, Any]:
    return state.store(PLATFORM)


def _page_size() -> int | Response:
    try:
        size = int(request.args.get("page_size", 25))
    except ValueError:
        return _error(400, 1, "page_size must be an integer")
    if not 1 <= size <= PAGE_SIZE_MAX:
        return _error(400, 1, f"page_size must be between 1 and {PAGE_SIZE_MAX}")
    return size


def _paged(items: list[dict[str, Any]]) -> Response:
    size = _page_size()
    if isinstance(size, Response):
        return size
    start = int(request.args.get("bookmark") or 0)
    page = items[start : start + size]
    more = start + size < len(items)
    return json_response({"items": page, "bookmark": str(start + size) if more else None})


# -- account and boards ------------------------------------------------------------------


def user_account() -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    login = login_for(token)
    return json_response(
        {
            "id": oauth.identity(PLATFORM, login)["id"],
            "username": login,
            "account_type": "BUSINESS",
            "profile_image": "",
            "website_url": "",
            "board_count": len(BOARD_NAMES),
            "pin_count": posts_of(PLATFORM, login),
            "follower_count": read_followers(state, PLATFORM, login),
            "following_count": 12,
        }
    )


def list_boards() -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    return _paged(boards_of(login_for(token)))


def board_pins(board_id: str) -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    login = login_for(token)
    if board_id not in {b["id"] for b in boards_of(login)}:
        return _error(404, 40, "Board not found.")
    pins = [
        _pin_json(entry)
        for entry in reversed(state.posts_of(PLATFORM, login))
        if entry["params"]["board_id"] == board_id
    ]
    return _paged(pins)


# -- video media -----------------------------------------------------------------------


def register_media() -> Response:
    token, fault = authorize(publishing=True)
    if fault:
        return fault
    body = request.get_json(silent=True) or {}
    if body.get("media_type") != "video":
        return _error(400, 1, "media_type must be 'video'")
    media_id = str(state.next_id())
    key = secrets.token_hex(8)
    with state.lock:
        store().setdefault("media", {})[media_id] = {
            "owner": login_for(token),
            "status": "registered",
            "key": key,
            "ready_at": 0.0,
            "size": 0,
        }
    state.note_upload(PLATFORM, "video", media_id)
    upload_url = url_for(f"{BLUEPRINT_NAME}.upload_media", _external=True)
    parameters = {
        "key": f"uploads/{media_id}/{key}",
        "x-amz-algorithm": "AWS4-HMAC-SHA256",
        "x-amz-signature": hashlib.sha256(key.encode()).hexdigest(),
        "policy": secrets.token_urlsafe(12),
    }
    return json_response(
        {
            "media_id": media_id,
            "media_type": "video",
            "upload_url": upload_url,
            "upload_parameters": parameters,
        },
        201,
    )


def upload_media() -> Response:
    """The storage host's form upload: every upload parameter, then `file`."""
    key = request.form.get("key", "")
    upload = request.files.get("file")
    media_id = key.split("/")[1] if key.count("/") == 2 else ""
    with state.lock:
        media = store().get("media", {}).get(media_id)
        if media is None or key != f"uploads/{media_id}/{media['key']}":
            return Response("<Error><Code>AccessDenied</Code></Error>", 403, mimetype="text/xml")
        if not request.form.get("x-amz-signature") or upload is None:
            return Response("<Error><Code>InvalidArgument</Code></Error>", 400, mimetype="text/xml")
    data = upload.read()
    processing = state.faults_for(PLATFORM).processing_seconds
    with state.lock:
        media["size"] = len(data)
        if sniffed_media_kind(data[:262]) != "video":
            media["status"] = "failed"
        else:
            media.update(status="processing", ready_at=time.time() + processing)
    return Response(status=204)


def _media_status(media: dict[str, Any]) -> str:
    if media["status"] == "processing" and time.time() >= media["ready_at"]:
        media["status"] = "succeeded"
    return str(media["status"])


def read_media(media_id: str) -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    with state.lock:
        media = store().get("media", {}).get(media_id)
        if media is None or media["owner"] != login_for(token):
            return _error(404, 404, "Media not found.")
        status = _media_status(media)
    return json_response({"media_id": media_id, "media_type": "video", "status": status})


# -- Pins ----------------------------------------------------------------------------------


def _pin_json(entry: dict[str, Any]) -> dict[str, Any]:
    params = entry["params"]
    return {
        "id": entry["id"],
        "created_at": entry["received_at"].removesuffix("Z"),
        "board_id": params["board_id"],
        "title": params.get("title"),
        "description": entry["text"],
        "link": params.get("link"),
        "alt_text": params.get("alt_text"),
        "media": {"media_type": params["media_type"]},
    }


def _media_of(source: dict[str, Any], login: str) -> list[dict[str, Any]] | Response:
    kind = source.get("source_type")
    if kind == "image_url":
        urls = [source.get("url")]
    elif kind == "multiple_image_urls":
        urls = [item.get("url") for item in source.get("items") or [] if isinstance(item, dict)]
        if not CAROUSEL_MIN <= len(urls) <= CAROUSEL_MAX:
            return _error(400, 1, f"A carousel takes {CAROUSEL_MIN} to {CAROUSEL_MAX} images.")
    elif kind == "video_id":
        return _video_of(source, login)
    else:
        return _error(400, 1, f"Unsupported media_source.source_type: {kind!r}")
    found = []
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return _error(400, 1, "media_source url must be an absolute URL")
        entry = media_entry(state, PLATFORM, "image", url)
        if isinstance(entry, PullFailure):
            return _error(400, 1, f"Sorry, we could not fetch the image ({entry}).")
        found.append(entry)
    return found


def _video_of(source: dict[str, Any], login: str) -> list[dict[str, Any]] | Response:
    media_id = str(source.get("media_id", ""))
    with state.lock:
        media = store().get("media", {}).get(media_id)
        if media is None or media["owner"] != login:
            return _error(400, 1, "Invalid media_id.")
        status = _media_status(media)
    if status != "succeeded":
        return _error(400, 1, f"The video is not ready (status {status}).")
    cover = source.get("cover_image_url") or source.get("cover_image_data")
    if not cover and source.get("cover_image_key_frame_time") is None:
        return _error(400, 1, "cover_image_url or cover_image_key_frame_time is required.")
    return [{"kind": "video", "media_id": media_id, "bytes": media["size"], "cover": bool(cover)}]


def _check_texts(body: dict[str, Any]) -> str | None:
    for name, limit in (
        ("title", TITLE_MAX),
        ("description", DESCRIPTION_MAX),
        ("alt_text", ALT_TEXT_MAX),
        ("link", LINK_MAX),
    ):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            return f"{name} must be a string of at most {limit} characters"
    return None


def create_pin() -> Response:
    token, fault = authorize(publishing=True)
    if fault:
        return fault
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("media_source"), dict):
        return _error(400, 1, "board_id and media_source are required")
    login = login_for(token)
    board_id = str(body.get("board_id", ""))
    if board_id not in {b["id"] for b in boards_of(login)}:
        return _error(404, 40, "Board not found.")
    problem = _check_texts(body)
    if problem:
        return _error(400, 1, problem)
    media = _media_of(body["media_source"], login)
    if isinstance(media, Response):
        return media
    source_type = body["media_source"]["source_type"]
    media_type = {"image_url": "image", "multiple_image_urls": "multiple_images"}.get(
        source_type, "video"
    )
    pin_id = str(10**17 + state.next_id())
    params = {k: v for k, v in body.items() if k not in ("description", "media_source")}
    params.update(board_id=board_id, media_type=media_type, source_type=source_type)
    entry = state.record(PLATFORM, login, pin_id, body.get("description") or "", media, params)
    if should_lose_response(state, PLATFORM):
        return _error(504, 0, "Gateway Timeout")
    return json_response(_pin_json(entry), 201)


def delete_pin(pin_id: str) -> Response:
    token, fault = authorize(publishing=False)
    if fault:
        return fault
    if not state.delete(PLATFORM, pin_id, login_for(token)):
        return _error(404, 50, "Pin not found.")
    return Response(status=204)


# -- OAuth 2 -------------------------------------------------------------------------------


def oauth_token() -> Response:
    status = state.faults_for(PLATFORM).oauth_error_status
    if status:
        return _error(status, 0, "The sandbox was told to fail (oauth_error_status).")
    grant = request.form.get("grant_type")
    if grant == "authorization_code":
        issued = oauth.exchange_code(state, PLATFORM, request.form)
        if isinstance(issued, Response):
            return issued
    elif grant == "refresh_token":
        refresh = request.form.get("refresh_token", "")
        revoked = refresh in state.faults_for(PLATFORM).revoked_tokens or oauth.revoked(
            state, refresh
        )
        if not refresh or revoked:
            return _error(400, 283, "Refresh token not found or revoked.")
        owner = oauth.owner(state, refresh)
        issued = oauth.issue(state, PLATFORM, owner["login"] if owner else DEFAULT_LOGIN, {})
    else:
        return _error(400, 1, "grant_type must be authorization_code or refresh_token")
    return json_response(
        {
            "access_token": issued["access_token"],
            "refresh_token": issued["refresh_token"],
            "response_type": grant,
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_SECONDS,
            "refresh_token_expires_in": REFRESH_TOKEN_SECONDS,
            "refresh_token_expires_at": int(time.time()) + REFRESH_TOKEN_SECONDS,
            "scope": TOKEN_SCOPE,
        }
    )


ROUTES = (
    Route("GET", "/v5/user_account", user_account),
    Route("GET", "/v5/boards", list_boards),
    Route("GET", "/v5/boards/<board_id>/pins", board_pins),
    Route("POST", "/v5/media", register_media),
    Route("GET", "/v5/media/<media_id>", read_media),
    Route("POST", "/media-upload/", upload_media),
    Route("POST", "/v5/pins", create_pin),
    Route("DELETE", "/v5/pins/<pin_id>", delete_pin),
    Route("POST", "/v5/oauth/token", oauth_token),
)

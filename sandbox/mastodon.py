"""Mastodon stand-in: one instance (`sandbox.social`) with apps, OAuth, media and statuses.

Apps register at connect time (POST /api/v1/apps) and sign users in with the
authorization code flow (the consent page is in sandbox/oauth.py); tokens do not expire.
Media upload through POST /api/v2/media: images are ready at once (200), videos answer
202 and are processed for `processing_seconds` (GET /api/v1/media/:id answers 206 until
then); a status naming unprocessed media is refused with 422. POST /api/v1/statuses
honours `Idempotency-Key` for an hour: the same key gives back the same status. Limits
come from GET /api/v2/instance (500 characters, 4 media by default; `POST
/mastodon/_instance {"max_characters": n, ...}` changes them); rate limits are 300
requests per 5 minutes with `X-RateLimit-*` headers (the reset as an ISO 8601 time).
A status read carries its favourites, boosts and replies, and the signed-in account its
followers, by the sandbox clock (sandbox/insights.py).
"""

from __future__ import annotations

import hashlib
import html
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from flask import Response, request

from sandbox.core import (
    FaultStyle,
    Route,
    bearer_token,
    inject_faults,
    json_response,
    now_iso,
    should_lose_response,
    sniffed_media_kind,
    state,
)
from sandbox.insights import posts_of, read_followers, read_post
from sandbox.oauth import exchange_code, identity, owner
from sandbox.rules import PLATFORMS, count_mastodon

PLATFORM = "mastodon"
RULES = PLATFORMS["mastodon"]
DOMAIN = "sandbox.social"
WINDOW_LIMIT = 300
WINDOW_SECONDS = 5 * 60
IDEMPOTENCY_SECONDS = 60 * 60
VERSION = "4.4.0"
DEFAULT_CONFIGURATION: dict[str, Any] = {
    "max_characters": RULES.text_limit,
    "max_media_attachments": RULES.media.max_images,
    "image_size_limit": RULES.media.image_max_bytes,
    "video_size_limit": RULES.media.video_max_bytes,
    "description_limit": 1500,
}
NOT_PROCESSED = "Cannot attach files that have not finished processing. Try again in a moment!"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": message}, status, headers)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")


def _rate_limited(retry_after: int) -> Response:
    headers = {
        "X-RateLimit-Limit": str(WINDOW_LIMIT),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": _iso(time.time() + retry_after),
    }
    return _error(429, "Too many requests", headers)


STYLE = FaultStyle(
    rate_limited=_rate_limited,
    error=lambda status: _error(status, "We're sorry, but something went wrong on our end."),
    auth_expired=lambda: _error(401, "The access token is invalid"),
    auth_revoked=lambda: _error(401, "The access token is invalid"),
)


def store() -> dict[str, Any]:
    data = state.store(PLATFORM)
    for key in ("apps", "media", "statuses", "idempotency", "requests"):
        data.setdefault(key, {})
    data.setdefault("configuration", dict(DEFAULT_CONFIGURATION))
    data.setdefault("version", VERSION)
    return data


def account_for(token: str) -> dict[str, Any]:
    """The account a token belongs to: its consent's user, or one derived from it."""
    grant = owner(state, token)
    login = grant["login"] if grant else "user" + hashlib.sha256(token.encode()).hexdigest()[:8]
    who = identity(PLATFORM, login)
    return {
        "id": who["id"],
        "username": who["username"],
        "acct": who["username"],
        "display_name": who["username"].title(),
        "url": f"https://{DOMAIN}/@{who['username']}",
    }


def authorize(publishing: bool) -> tuple[dict[str, Any] | None, Response | None]:
    token = bearer_token()
    if token is None:
        return None, _error(401, "The access token is invalid")
    fault = inject_faults(state, PLATFORM, STYLE, token, publishing)
    if fault is not None:
        return None, fault
    return account_for(token), None


def _window_headers(account_id: str) -> tuple[dict[str, str], bool]:
    """X-RateLimit-* for one more request of the account; True when over the limit."""
    now = time.time()
    with state.lock:
        calls = [t for t in store()["requests"].get(account_id, []) if t > now - WINDOW_SECONDS]
        over = len(calls) >= WINDOW_LIMIT
        if not over:
            calls.append(now)
        store()["requests"][account_id] = calls
    reset = (calls[0] if calls else now) + WINDOW_SECONDS
    headers = {
        "X-RateLimit-Limit": str(WINDOW_LIMIT),
        "X-RateLimit-Remaining": str(max(0, WINDOW_LIMIT - len(calls))),
        "X-RateLimit-Reset": _iso(reset),
    }
    return headers, over


# -- apps and OAuth ------------------------------------------------------------------------


def create_app() -> Response:
    values = request.get_json(silent=True) or request.form
    name = str(values.get("client_name") or "")
    redirect_uris = values.get("redirect_uris") or ""
    if not name or not redirect_uris:
        return _error(422, "Validation failed: Application name can't be blank")
    client_id = secrets.token_urlsafe(32)
    app = {
        "id": str(state.next_id()),
        "name": name,
        "website": values.get("website"),
        "scopes": str(values.get("scopes") or "read").split(),
        "redirect_uri": redirect_uris if isinstance(redirect_uris, str) else redirect_uris[0],
        "client_id": client_id,
        "client_secret": secrets.token_urlsafe(32),
    }
    with state.lock:
        store()["apps"][client_id] = app
    return json_response({**app, "redirect_uris": [app["redirect_uri"]]})


def oauth_token() -> Response:
    form = request.form
    with state.lock:
        app = store()["apps"].get(form.get("client_id", ""))
    if app is None or form.get("client_secret") != app["client_secret"]:
        return json_response(
            {
                "error": "invalid_client",
                "error_description": "Client authentication failed due to unknown client.",
            },
            401,
        )
    if form.get("grant_type") != "authorization_code":
        return json_response({"error": "unsupported_grant_type"}, 400)
    issued = exchange_code(state, PLATFORM, form)
    if isinstance(issued, Response):
        return issued
    return json_response(
        {
            "access_token": issued["access_token"],
            "token_type": "Bearer",
            "scope": " ".join(app["scopes"]),
            "created_at": int(time.time()),
        }
    )


def verify_credentials() -> Response:
    account, fault = authorize(publishing=False)
    if fault is not None or account is None:
        return fault or _error(401, "The access token is invalid")
    counts = {
        "followers_count": read_followers(state, PLATFORM, account["id"]),
        "following_count": 64,
        "statuses_count": posts_of(PLATFORM, account["id"]),
    }
    return json_response({**account, **counts})


def instance() -> Response:
    with state.lock:
        config = dict(store()["configuration"])
    return json_response(
        {
            "domain": DOMAIN,
            "title": "Sandbox Social",
            "version": store()["version"],
            "configuration": {
                "urls": {"streaming": f"wss://{DOMAIN}"},
                "statuses": {
                    "max_characters": config["max_characters"],
                    "max_media_attachments": config["max_media_attachments"],
                    "characters_reserved_per_url": 23,
                },
                "media_attachments": {
                    "supported_mime_types": sorted(
                        RULES.media.image_mime_types | RULES.media.video_mime_types
                    ),
                    "description_limit": config["description_limit"],
                    "image_size_limit": config["image_size_limit"],
                    "video_size_limit": config["video_size_limit"],
                },
            },
        }
    )


def set_instance() -> Response:
    """Sandbox control: change the instance's limits or its version (reset by POST
    /_reset); a version before 4.3 has no GET /api/v1/statuses?id[]=…."""
    body = request.get_json(silent=True) or {}
    with state.lock:
        config = store()["configuration"]
        for key in DEFAULT_CONFIGURATION:
            if key in body:
                config[key] = int(body[key])
        if "version" in body:
            store()["version"] = str(body["version"])
    return json_response({"ok": True})


def batch_reads() -> bool:
    """Whether the instance is 4.3 or later (reads several statuses in one call)."""
    with state.lock:
        version = store()["version"]
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]]
    return tuple(parts) >= (4, 3)


def with_counts(status: dict[str, Any]) -> dict[str, Any] | None:
    """The status as read, with its favourites, boosts and replies at the sandbox clock
    (an insights answer, logged); None for a status the ledger does not hold (gone)."""
    values = read_post(state, PLATFORM, status["id"])
    if values is None:
        return None
    boosts_and_replies = {"reblogs_count": values["shares"], "replies_count": values["comments"]}
    return {**status, "favourites_count": values["likes"], **boosts_and_replies}


# -- media ---------------------------------------------------------------------------------


def _media_json(media: dict[str, Any]) -> dict[str, Any]:
    ready = time.time() >= media["ready_at"]
    url = f"https://files.{DOMAIN}/media/{media['id']}" if ready else None
    return {
        "id": media["id"],
        "type": media["kind"],
        "url": url,
        "preview_url": url,
        "description": media["description"],
    }


def upload_media() -> Response:
    account, fault = authorize(publishing=True)
    if fault is not None or account is None:
        return fault or _error(401, "The access token is invalid")
    upload = request.files.get("file")
    if upload is None:
        return _error(422, "Validation failed: File can't be blank")
    data = upload.read()
    kind = sniffed_media_kind(data)
    with state.lock:
        config = dict(store()["configuration"])
    if kind not in ("image", "video"):
        return _error(422, "Validation failed: File content type is invalid")
    limit = config["image_size_limit"] if kind == "image" else config["video_size_limit"]
    if len(data) > limit:
        return _error(422, f"Validation failed: File file size must be less than {limit} Bytes")
    description = request.form.get("description")
    if description and len(description) > config["description_limit"]:
        return _error(422, "Validation failed: Description is too long")
    processing = state.faults_for(PLATFORM).processing_seconds if kind == "video" else 0.0
    media = {
        "id": str(state.next_id()),
        "owner": account["id"],
        "kind": kind,
        "size": len(data),
        "description": description,
        "ready_at": time.time() + processing,
    }
    with state.lock:
        store()["media"][media["id"]] = media
    state.note_upload(PLATFORM, kind, media["id"])
    # Images are processed at once; videos asynchronously (202, url null).
    return json_response(_media_json(media), 200 if kind == "image" else 202)


def read_media(media_id: str) -> Response:
    account, fault = authorize(publishing=False)
    if fault is not None or account is None:
        return fault or _error(401, "The access token is invalid")
    with state.lock:
        media = store()["media"].get(media_id)
    if media is None or media["owner"] != account["id"]:
        return _error(404, "Record not found")
    body = _media_json(media)
    return json_response(body, 200 if body["url"] else 206)


# -- statuses ------------------------------------------------------------------------------


def _render(text: str) -> str:
    """A status's HTML as Mastodon renders it: escaped, paragraphs and line breaks."""
    paragraphs = [p for p in html.escape(text, quote=False).split("\n\n") if p]
    return "".join(f"<p>{p.replace(chr(10), '<br />')}</p>" for p in paragraphs)


def _status_json(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k not in ("text", "owner")}


def _values() -> tuple[dict[str, Any], list[str]]:
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        return body, [str(m) for m in body.get("media_ids") or []]
    return dict(request.form), request.form.getlist("media_ids[]")


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def create_status() -> Response:
    account, fault = authorize(publishing=True)
    if fault is not None or account is None:
        return fault or _error(401, "The access token is invalid")
    headers, over = _window_headers(account["id"])
    if over:
        return _error(429, "Too many requests", headers)
    values, media_ids = _values()
    text = str(values.get("status") or "")
    key = request.headers.get("Idempotency-Key")
    now = time.time()
    with state.lock:
        config = dict(store()["configuration"])
        if key:
            seen = store()["idempotency"].get((account["id"], key))
            if seen is not None and seen[0] > now - IDEMPOTENCY_SECONDS:
                return json_response(_status_json(store()["statuses"][seen[1]]), 200, headers)
        media = [store()["media"].get(m) for m in media_ids]
    if not text and not media_ids:
        return _error(422, "Validation failed: Text can't be blank")
    if count_mastodon(text) > config["max_characters"]:
        limit = config["max_characters"]
        return _error(422, f"Validation failed: Text character limit of {limit} exceeded")
    if len(media_ids) > config["max_media_attachments"]:
        return _error(422, "Validation failed: Media attachments too many")
    if any(m is None or m["owner"] != account["id"] for m in media):
        return _error(422, "Validation failed: Media attachments are invalid")
    if any(time.time() < m["ready_at"] for m in media):  # type: ignore[index]
        return _error(422, NOT_PROCESSED)
    kinds = [m["kind"] for m in media]  # type: ignore[index]
    if "video" in kinds and len(kinds) > 1:
        return _error(422, "Cannot attach a video to a post that already contains images")
    visibility = str(values.get("visibility") or "public")
    if visibility not in ("public", "unlisted", "private", "direct"):
        return _error(422, "Validation failed: Visibility is not included in the list")
    reply_to = str(values.get("in_reply_to_id") or "") or None
    if reply_to is not None and _live_status(reply_to) is None:
        return _error(404, "Record not found")
    status_id = str(10**17 + state.next_id())
    status = {
        "id": status_id,
        "created_at": now_iso(),
        "uri": f"https://{DOMAIN}/users/{account['username']}/statuses/{status_id}",
        "url": f"https://{DOMAIN}/@{account['username']}/{status_id}",
        "content": _render(text),
        "text": text,
        "owner": account["id"],
        "visibility": visibility,
        "sensitive": _truthy(values.get("sensitive")),
        "spoiler_text": str(values.get("spoiler_text") or ""),
        "language": values.get("language"),
        "in_reply_to_id": reply_to,
        "media_attachments": [_media_json(m) for m in media],  # type: ignore[arg-type]
        "account": account,
    }
    params = {k: status[k] for k in ("visibility", "sensitive", "spoiler_text", "language", "url")}
    params["idempotency_key"] = key
    ledger_media = [
        {"kind": m["kind"], "id": m["id"], "description": m["description"]}  # type: ignore[index]
        for m in media
    ]
    with state.lock:
        store()["statuses"][status_id] = status
        if key:
            store()["idempotency"][(account["id"], key)] = (now, status_id)
        state.record(PLATFORM, account["id"], status_id, text, ledger_media, params, reply_to)
    if should_lose_response(state, PLATFORM):
        return _error(504, "Gateway Timeout")
    return json_response(_status_json(status), 200, headers)


def _live_status(status_id: str) -> dict[str, Any] | None:
    with state.lock:
        status = store()["statuses"].get(status_id)
        if status is None:
            return None
        live = {e["id"] for e in state.posts_of(PLATFORM, status["owner"])}
    return status if status_id in live else None


def read_status(status_id: str) -> Response:
    _, fault = authorize(publishing=False)
    if fault is not None:
        return fault
    status = _live_status(status_id)
    if status is None:
        return _error(404, "Record not found")
    shown = _status_json(status)
    return json_response(with_counts(shown) or shown)


def account_statuses(account_id: str) -> Response:
    _, fault = authorize(publishing=False)
    if fault is not None:
        return fault
    try:
        limit = min(int(request.args.get("limit", 20)), 40)
    except ValueError:
        return _error(422, "limit must be a number")
    max_id = request.args.get("max_id")
    with state.lock:
        entries = list(reversed(state.posts_of(PLATFORM, account_id)))
        statuses = [store()["statuses"][e["id"]] for e in entries]
    if max_id and re.fullmatch(r"\d+", max_id):
        statuses = [s for s in statuses if int(s["id"]) < int(max_id)]
    return json_response([_status_json(s) for s in statuses[:limit]])


def delete_status(status_id: str) -> Response:
    account, fault = authorize(publishing=False)
    if fault is not None or account is None:
        return fault or _error(401, "The access token is invalid")
    status = _live_status(status_id)
    if status is None or status["owner"] != account["id"]:
        return _error(404, "Record not found")
    state.delete(PLATFORM, status_id, account["id"])
    return json_response({**_status_json(status), "text": status["text"]})


# The platform's paths, served under /<platform>.
ROUTES = (
    Route("POST", "/api/v1/apps", create_app),
    Route("POST", "/oauth/token", oauth_token),
    Route("GET", "/api/v1/accounts/verify_credentials", verify_credentials),
    Route("GET", "/api/v2/instance", instance),
    Route("POST", "/_instance", set_instance),
    Route("POST", "/api/v2/media", upload_media),
    Route("GET", "/api/v1/media/<media_id>", read_media),
    Route("POST", "/api/v1/statuses", create_status),
    Route("GET", "/api/v1/statuses/<status_id>", read_status),
    Route("DELETE", "/api/v1/statuses/<status_id>", delete_status),
    Route("GET", "/api/v1/accounts/<account_id>/statuses", account_statuses),
)
BLUEPRINT_NAME = "sandbox_mastodon"

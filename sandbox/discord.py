"""Discord stand-in: channel webhooks (execute, read, delete) and the bot's channel
messages, under `/api/v10` as Discord serves them.

Webhooks made by the OAuth `webhook.incoming` consent are known with their channel and
server; any other `/webhooks/<id>/<token>` is taken as a webhook of its own channel (its
id derived from the webhook's), so a URL added by hand works too. DELETE on a webhook
removes it: it answers 404 Unknown Webhook from then on. A bot token (`Authorization: Bot
…`) posts in any channel; `nonce` with `enforce_nonce` returns the message an earlier
create with the same nonce made within NONCE_SECONDS instead of posting again. Message ids
are snowflakes of their instant, so `?after=` reads as on Discord. A server the bot was
added to (a `bot` consent, sandbox/oauth_routes.py) lists its channels to a bot token.
Each webhook or channel is a bucket of BUCKET_LIMIT requests per BUCKET_SECONDS, told in
X-RateLimit-* headers and refused with a 429 whose body names `retry_after` in seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import filetype
from flask import Response, request

from sandbox.core import (
    FaultStyle,
    Route,
    inject_faults,
    json_response,
    should_lose_response,
    state,
)
from sandbox.rules import PLATFORMS

PLATFORM = "discord"
RULES = PLATFORMS["discord"]
DISCORD_EPOCH_MS = 1_420_070_400_000
CONTENT_LIMIT = RULES.text_limit
MAX_EMBEDS, EMBED_TOTAL = 10, 6000
MAX_FILES = 10
FILE_MAX_BYTES = RULES.media.image_max_bytes
NONCE_SECONDS = 5 * 60
BUCKET_LIMIT, BUCKET_SECONDS = 5, 2.0
MESSAGES_PAGE_MAX = 100


def _error(status: int, message: str, code: int = 0, **extra: Any) -> Response:
    return json_response({"message": message, "code": code, **extra}, status)


def _rate_limited(wait: float, scope: str = "user", bucket: str = "sandbox") -> Response:
    headers = {
        "Retry-After": str(math.ceil(wait)),
        "X-RateLimit-Limit": str(BUCKET_LIMIT),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": f"{time.time() + wait:.3f}",
        "X-RateLimit-Reset-After": f"{wait:.3f}",
        "X-RateLimit-Bucket": bucket,
        "X-RateLimit-Scope": scope,
    }
    if scope == "global":
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": wait}
    body["global"] = scope == "global"
    return json_response(body, 429, headers)


STYLE = FaultStyle(
    rate_limited=lambda wait: _rate_limited(float(wait)),
    error=lambda status: _error(status, f"{status}: Internal Server Error"),
    auth_expired=lambda: _error(401, "401: Unauthorized"),
    auth_revoked=lambda: _error(401, "401: Unauthorized"),
)


def _digits(seed: str, length: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:length]


def snowflake(moment_ms: float | None = None) -> str:
    """A Discord id made at `moment_ms` (now by default), unique within the sandbox."""
    moment = int(moment_ms if moment_ms is not None else time.time() * 1000)
    return str(((moment - DISCORD_EPOCH_MS) << 22) | (state.next_id() % 4096))


def _store() -> dict[str, Any]:
    return state.store(PLATFORM)


def webhook(webhook_id: str, token: str) -> dict[str, Any] | None:
    """The webhook the URL names; None once deleted or when the token is not its own."""
    with state.lock:
        hooks = _store().setdefault("webhooks", {})
        if webhook_id in _store().setdefault("deleted_webhooks", set()):
            return None
        hook = hooks.setdefault(
            webhook_id,
            {
                "id": webhook_id,
                "token": token,
                "type": 1,
                "name": "Crier",
                "channel_id": "13" + _digits(f"channel:{webhook_id}", 17),
                "guild_id": "12" + _digits(f"guild:{webhook_id}", 17),
            },
        )
        return hook if hook["token"] == token else None


def _guild_of(channel_id: str) -> str:
    with state.lock:
        for hook in _store().get("webhooks", {}).values():
            if hook["channel_id"] == channel_id:
                return str(hook["guild_id"])
        for guild in _store().get("guilds", {}).values():
            if any(c["id"] == channel_id for c in guild["channels"]):
                return str(guild["id"])
    return "12" + _digits(f"guild-of:{channel_id}", 17)


def _installed_channel(channel_id: str) -> dict[str, Any] | None:
    """The channel of a server the bot was added to (by a `bot` consent), if it is one."""
    with state.lock:
        for guild in _store().get("guilds", {}).values():
            for channel in guild["channels"]:
                if channel["id"] == channel_id:
                    return {**channel, "guild_id": guild["id"]}
    return None


def _bot_user(token: str) -> dict[str, Any]:
    return {"id": "11" + _digits(f"bot:{token}", 17), "username": "crier", "bot": True}


def _bot_token() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[4:].strip() or None if header.startswith("Bot ") else None


def _take(bucket: str) -> tuple[Response | None, dict[str, str]]:
    """Spend one request of the bucket: the 429 when it is empty, and the headers."""
    now = time.time()
    with state.lock:
        buckets = _store().setdefault("buckets", {})
        spent = [t for t in buckets.get(bucket, []) if t > now - BUCKET_SECONDS]
        if len(spent) >= BUCKET_LIMIT:
            buckets[bucket] = spent
            return _rate_limited(round(spent[0] + BUCKET_SECONDS - now, 3), bucket=bucket), {}
        spent.append(now)
        buckets[bucket] = spent
    reset = spent[0] + BUCKET_SECONDS
    return None, {
        "X-RateLimit-Limit": str(BUCKET_LIMIT),
        "X-RateLimit-Remaining": str(BUCKET_LIMIT - len(spent)),
        "X-RateLimit-Reset": f"{reset:.3f}",
        "X-RateLimit-Reset-After": f"{max(reset - now, 0):.3f}",
        "X-RateLimit-Bucket": hashlib.sha1(bucket.encode()).hexdigest()[:16],
    }


# -- reading a create request ---------------------------------------------------------------


def _payload() -> tuple[dict[str, Any], list[dict[str, Any]]] | Response:
    """The JSON payload (a body, or `payload_json` of a multipart form) and its files."""
    if request.files or request.form:
        try:
            payload = json.loads(request.form.get("payload_json") or "{}")
        except ValueError:
            return _error(400, "Invalid Form Body", 50035)
    else:
        payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _error(400, "Invalid Form Body", 50035)
    files: list[dict[str, Any]] = []
    described = {
        str(a.get("id")): a for a in payload.get("attachments") or [] if isinstance(a, dict)
    }
    for name, upload in request.files.items(multi=True):
        data = upload.read()
        if len(data) > FILE_MAX_BYTES:
            return _error(413, "Request entity too large", 40005)
        index = name.removeprefix("files[").removesuffix("]")
        mime = filetype.guess_mime(data) or upload.mimetype or "application/octet-stream"
        files.append(
            {
                "kind": mime.split("/")[0],
                "mime_type": mime,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "filename": upload.filename or name,
                "description": (described.get(index) or {}).get("description"),
            }
        )
    if len(files) > MAX_FILES:
        return _error(400, "Invalid Form Body", 50035, errors={"files": "at most 10"})
    return payload, files


def _invalid(payload: dict[str, Any], files: list[dict[str, Any]]) -> Response | None:
    content = payload.get("content") or ""
    embeds = payload.get("embeds") or []
    if not isinstance(content, str) or not isinstance(embeds, list):
        return _error(400, "Invalid Form Body", 50035)
    if not content and not embeds and not files:
        return _error(400, "Cannot send an empty message", 50006)
    if len(content) > CONTENT_LIMIT:
        errors = {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH"}]}}
        return _error(400, "Invalid Form Body", 50035, errors=errors)
    total = sum(
        len(str(e.get(k) or ""))
        for e in embeds
        if isinstance(e, dict)
        for k in ("title", "description")
    ) + sum(
        len(str((e.get("footer") or {}).get("text") or "")) for e in embeds if isinstance(e, dict)
    )
    if len(embeds) > MAX_EMBEDS or total > EMBED_TOTAL:
        return _error(400, "Invalid Form Body", 50035, errors={"embeds": "too long"})
    nonce = payload.get("nonce")
    if nonce is not None and len(str(nonce)) > 25:
        return _error(400, "Invalid Form Body", 50035, errors={"nonce": "at most 25"})
    return None


def _message(
    channel_id: str,
    author: dict[str, Any],
    payload: dict[str, Any],
    files: list[dict[str, Any]],
    webhook_id: str | None,
) -> dict[str, Any]:
    message_id = snowflake()
    message: dict[str, Any] = {
        "id": message_id,
        "type": 0,
        "channel_id": channel_id,
        "author": author,
        "content": payload.get("content") or "",
        "timestamp": datetime.now(UTC).isoformat(),
        "embeds": payload.get("embeds") or [],
        "attachments": [
            {"id": snowflake(), "filename": f["filename"], "size": f["bytes"]} for f in files
        ],
        "flags": int(payload.get("flags") or 0),
    }
    if webhook_id:
        message["webhook_id"] = webhook_id
    if payload.get("nonce") is not None:
        message["nonce"] = payload["nonce"]
    return message


def _create(
    channel_id: str, author: dict[str, Any], webhook_id: str | None, bucket: str
) -> Response:
    read = _payload()
    if isinstance(read, Response):
        return read
    payload, files = read
    refusal = _invalid(payload, files)
    if refusal is not None:
        return refusal
    limited, headers = _take(bucket)
    if limited is not None:
        return limited
    nonce = payload.get("nonce")
    key = f"{author['id']}:{nonce}"
    with state.lock:
        nonces = _store().setdefault("nonces", {})
        earlier = nonces.get(key) if nonce is not None and payload.get("enforce_nonce") else None
        if earlier is not None and earlier[1] > time.time() - NONCE_SECONDS:
            return json_response(earlier[0], 200, headers)
        where = request.args.get("thread_id") or channel_id
        message = _message(where, author, payload, files, webhook_id)
        params = {k: v for k, v in payload.items() if k not in ("content", "attachments")}
        if request.args.get("thread_id"):
            params["thread_id"] = request.args["thread_id"]
        params["author_id"] = author["id"]
        state.record(PLATFORM, channel_id, message["id"], message["content"], files, params)
        with state.lock:
            _store().setdefault("messages", {})[message["id"]] = message
        if nonce is not None:
            nonces[key] = (message, time.time())
    if should_lose_response(state, PLATFORM):
        return _error(502, "502: Bad Gateway")
    return json_response(message, 200, headers)


# -- webhooks ---------------------------------------------------------------------------------


def execute_webhook(webhook_id: str, webhook_token: str) -> Response:
    fault = inject_faults(state, PLATFORM, STYLE, webhook_token, publishing=True)
    if fault is not None:
        return fault
    hook = webhook(webhook_id, webhook_token)
    if hook is None:
        return _error(404, "Unknown Webhook", 10015)
    author = {"id": webhook_id, "username": hook["name"], "bot": True}
    answer = _create(str(hook["channel_id"]), author, webhook_id, f"webhook:{webhook_id}")
    if request.args.get("wait") not in ("true", "1", "True") and answer.status_code == 200:
        return Response(status=204)
    return answer


def get_webhook(webhook_id: str, webhook_token: str) -> Response:
    fault = inject_faults(state, PLATFORM, STYLE, webhook_token, publishing=False)
    if fault is not None:
        return fault
    hook = webhook(webhook_id, webhook_token)
    if hook is None:
        return _error(404, "Unknown Webhook", 10015)
    return json_response({k: v for k, v in hook.items() if k != "token"})


def delete_webhook(webhook_id: str, webhook_token: str) -> Response:
    if webhook(webhook_id, webhook_token) is None:
        return _error(404, "Unknown Webhook", 10015)
    with state.lock:
        _store().setdefault("deleted_webhooks", set()).add(webhook_id)
    return Response(status=204)


def _own_message(message_id: str, channel_id: str) -> dict[str, Any] | None:
    with state.lock:
        message = _store().get("messages", {}).get(message_id)
        alive = any(e["id"] == message_id for e in state.posts_of(PLATFORM, channel_id))
    return message if message is not None and alive else None


def webhook_message(webhook_id: str, webhook_token: str, message_id: str) -> Response:
    hook = webhook(webhook_id, webhook_token)
    if hook is None:
        return _error(404, "Unknown Webhook", 10015)
    message = _own_message(message_id, str(hook["channel_id"]))
    if message is None or message.get("webhook_id") != webhook_id:
        return _error(404, "Unknown Message", 10008)
    if request.method == "DELETE":
        state.delete(PLATFORM, message_id, str(hook["channel_id"]))
        return Response(status=204)
    return json_response(message)


# -- the bot ------------------------------------------------------------------------------------


def _bot(publishing: bool) -> tuple[str, Response | None]:
    token = _bot_token()
    if token is None:
        return "", _error(401, "401: Unauthorized")
    return token, inject_faults(state, PLATFORM, STYLE, token, publishing)


def users_me() -> Response:
    token, fault = _bot(publishing=False)
    return fault or json_response(_bot_user(token))


def get_channel(channel_id: str) -> Response:
    _, fault = _bot(publishing=False)
    if fault is not None:
        return fault
    body = _installed_channel(channel_id) or {
        "id": channel_id,
        "type": 0,
        "guild_id": _guild_of(channel_id),
        "name": "general",
    }
    return json_response(body)


def guild_channels(guild_id: str) -> Response:
    """The channels of a server the bot was added to; Missing Access (50001) elsewhere."""
    _, fault = _bot(publishing=False)
    if fault is not None:
        return fault
    with state.lock:
        guild = _store().get("guilds", {}).get(guild_id)
    if guild is None:
        return _error(403, "Missing Access", 50001)
    return json_response([{**c, "guild_id": guild_id} for c in guild["channels"]])


def create_message(channel_id: str) -> Response:
    token, fault = _bot(publishing=True)
    if fault is not None:
        return fault
    return _create(channel_id, _bot_user(token), None, f"channel:{channel_id}")


def channel_messages(channel_id: str) -> Response:
    """Newest first, at most `limit` (1-100), those after the `after` snowflake."""
    _, fault = _bot(publishing=False)
    if fault is not None:
        return fault
    try:
        limit = int(request.args.get("limit", "50"))
        after = int(request.args.get("after", "0"))
    except ValueError:
        return _error(400, "Invalid Form Body", 50035)
    if not 1 <= limit <= MESSAGES_PAGE_MAX:
        return _error(400, "Invalid Form Body", 50035, errors={"limit": "1 to 100"})
    with state.lock:
        ids = [e["id"] for e in state.posts_of(PLATFORM, channel_id)]
        messages = [_store().get("messages", {}).get(i) for i in ids]
    found = [m for m in messages if m is not None and int(m["id"]) > after]
    found.sort(key=lambda m: int(m["id"]), reverse=True)
    return json_response(found[:limit])


def delete_message(channel_id: str, message_id: str) -> Response:
    _, fault = _bot(publishing=False)
    if fault is not None:
        return fault
    if _own_message(message_id, channel_id) is None:
        return _error(404, "Unknown Message", 10008)
    state.delete(PLATFORM, message_id, channel_id)
    return Response(status=204)


ROUTES = (
    Route("POST", "/api/v10/webhooks/<webhook_id>/<webhook_token>", execute_webhook),
    Route("GET", "/api/v10/webhooks/<webhook_id>/<webhook_token>", get_webhook),
    Route("DELETE", "/api/v10/webhooks/<webhook_id>/<webhook_token>", delete_webhook),
    Route(
        "GET",
        "/api/v10/webhooks/<webhook_id>/<webhook_token>/messages/<message_id>",
        webhook_message,
        endpoint="read_webhook_message",
    ),
    Route(
        "DELETE",
        "/api/v10/webhooks/<webhook_id>/<webhook_token>/messages/<message_id>",
        webhook_message,
        endpoint="delete_webhook_message",
    ),
    Route("GET", "/api/v10/users/@me", users_me),
    Route("GET", "/api/v10/channels/<channel_id>", get_channel),
    Route("GET", "/api/v10/guilds/<guild_id>/channels", guild_channels),
    Route("POST", "/api/v10/channels/<channel_id>/messages", create_message),
    Route("GET", "/api/v10/channels/<channel_id>/messages", channel_messages),
    Route("DELETE", "/api/v10/channels/<channel_id>/messages/<message_id>", delete_message),
)
BLUEPRINT_NAME = "sandbox_discord"

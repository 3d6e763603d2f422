"""Telegram Bot API stand-in: `/bot<token>/<method>` for the methods Crier calls.

Every answer is `{"ok": true, "result": …}` or `{"ok": false, "error_code", "description",
"parameters"?}` as Telegram gives it. The bot's id is the digits before the token's colon.
Chats are named as Telegram names them: `@username` is a public channel (its numeric id
derived from the name), a bare number a private one, unless the chat was first reached by
its username. The bot is an administrator with post rights everywhere except in
`@sandbox_member` (a plain member: "need administrator rights"), `@sandbox_kicked` (403
"bot was kicked") and `@sandbox_missing` ("chat not found"). Media arrive by URL (pulled
when `fetch_media` is on) or as multipart uploads; an album (sendMediaGroup) is one
ledger entry under its first message's id. Telegram offers no way to read a channel's
history, and neither does this stand-in.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import filetype
from flask import Response, request
from werkzeug.datastructures import FileStorage

from sandbox.core import (
    FaultStyle,
    PullFailure,
    Route,
    inject_faults,
    json_response,
    media_entry,
    should_lose_response,
    sniffed_media_kind,
    state,
)
from sandbox.insights import read_followers
from sandbox.rules import PLATFORMS, count_utf16

PLATFORM = "telegram"
RULES = PLATFORMS["telegram"]
TEXT_LIMIT = RULES.text_limit
CAPTION_LIMIT = RULES.caption_limit or 1024
# Sent by URL, Telegram fetches at most 5 MB for a photo and 20 MB for anything else.
URL_PHOTO_MAX_BYTES = 5 * 1024 * 1024
ALBUM_MIN, ALBUM_MAX = 2, 10
PARSE_MODES = frozenset({"HTML", "MarkdownV2", "Markdown"})
MEMBER_CHAT, KICKED_CHAT, MISSING_CHAT = "sandbox_member", "sandbox_kicked", "sandbox_missing"
DELETE_WINDOW_SECONDS = 48 * 60 * 60
_NUMERIC = re.compile(r"^-?\d+$")


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return json_response(body, status)


def _ok(result: Any) -> Response:
    return json_response({"ok": True, "result": result})


def _bad(description: str) -> Response:
    return _error(400, f"Bad Request: {description}")


STYLE = FaultStyle(
    rate_limited=lambda wait: _error(
        429, f"Too Many Requests: retry after {wait}", {"retry_after": wait}
    ),
    error=lambda status: _error(status, "Internal Server Error"),
    # Bot tokens do not expire: a revoked or wrong token is 401 either way.
    auth_expired=lambda: _error(401, "Unauthorized"),
    auth_revoked=lambda: _error(401, "Unauthorized"),
)


def _digits(seed: str, length: int) -> int:
    return int(str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:length])


def bot_id(token: str) -> int:
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else _digits(f"bot:{token}", 10)


def _store() -> dict[str, Any]:
    return state.store(PLATFORM)


def resolve_chat(chat_id: Any) -> dict[str, Any] | None:
    """The chat `chat_id` names (`@username` or a number), remembered once seen."""
    raw = str(chat_id or "").strip()
    with state.lock:
        chats = _store().setdefault("chats", {})
        if raw.startswith("@") and len(raw) > 1:
            username = raw[1:]
            if username == MISSING_CHAT:
                return None
            numeric = -(10**12) - _digits(f"chat:{username.lower()}", 9)
            chat = chats.setdefault(
                numeric,
                {"id": numeric, "type": "channel", "title": username.title(), "username": username},
            )
            return chat
        if _NUMERIC.match(raw):
            numeric = int(raw)
            return chats.setdefault(
                numeric, {"id": numeric, "type": "channel", "title": "Sandbox private channel"}
            )
    return None


def _params() -> dict[str, Any]:
    """The call's parameters, sent as JSON, urlencoded or multipart."""
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        return body
    values: dict[str, Any] = {**request.args.to_dict(), **request.form.to_dict()}
    return values


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _rights(chat: dict[str, Any]) -> Response | None:
    """Telegram's refusal for a bot that cannot post in the chat."""
    if chat.get("username") == KICKED_CHAT:
        return _error(403, "Forbidden: bot was kicked from the channel chat")
    if chat.get("username") == MEMBER_CHAT:
        return _bad("need administrator rights in the channel chat")
    return None


def _authorize(token: str, publishing: bool) -> Response | None:
    if not re.match(r"^[\w:-]+$", token):
        return _error(401, "Unauthorized")
    return inject_faults(state, PLATFORM, STYLE, token, publishing)


def _next_message_id(chat_id: int) -> int:
    with state.lock:
        counters = _store().setdefault("message_ids", {})
        counters[chat_id] = counters.get(chat_id, 0) + 1
        return int(counters[chat_id])


def _message(chat: dict[str, Any], message_id: int, **content: Any) -> dict[str, Any]:
    return {"message_id": message_id, "date": int(time.time()), "chat": chat, **content}


def _text_error(text: str, limit: int, what: str) -> Response | None:
    if count_utf16(text) > limit:
        return _bad(f"{what} is too long")
    return None


# -- media --------------------------------------------------------------------------------


def _media(value: Any, kind: str) -> dict[str, Any] | Response:
    """One photo or video: an `attach://<name>` or direct multipart part, or a URL."""
    upload: FileStorage | None = None
    if isinstance(value, str) and value.startswith("attach://"):
        upload = request.files.get(value.removeprefix("attach://"))
        if upload is None:
            return _bad(f"file {value!r} not found in the request")
    elif value is None:
        upload = request.files.get("photo" if kind == "image" else "video")
    if upload is not None:
        data = upload.read()
        sniffed = sniffed_media_kind(data)
        if sniffed != kind:
            return _bad("wrong type of the web page content" if sniffed else "file is empty")
        limit = RULES.media.image_max_bytes if kind == "image" else RULES.media.video_max_bytes
        if len(data) > limit:
            return _error(413, "Request Entity Too Large")
        with state.lock:
            file_id = f"tg-file-{state.next_id()}"
        state.note_upload(PLATFORM, kind, file_id)
        return {
            "kind": kind,
            "mime_type": filetype.guess_mime(data),
            "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "file_id": file_id,
        }
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return _bad("wrong remote file identifier specified: Wrong string length")
    entry = media_entry(state, PLATFORM, kind, value)
    if isinstance(entry, PullFailure):
        return _bad("wrong file identifier/HTTP URL specified")
    limit = URL_PHOTO_MAX_BYTES if kind == "image" else 20 * 1024 * 1024
    if int(entry.get("bytes") or 0) > limit:
        return _bad("failed to get HTTP URL content")
    return entry


def _content_fields(kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    file_id = entry.get("file_id") or f"tg-url-{hashlib.sha1(str(entry).encode()).hexdigest()}"
    if kind == "image":
        return {"photo": [{"file_id": file_id, "width": 1080, "height": 1080}]}
    return {"video": {"file_id": file_id, "duration": 1, "width": 1280, "height": 720}}


# -- methods ----------------------------------------------------------------------------


def get_me(token: str) -> Response:
    return _ok({"id": bot_id(token), "is_bot": True, "first_name": "Crier", "username": "crierbot"})


def get_chat(token: str) -> Response:
    chat = resolve_chat(_params().get("chat_id"))
    if chat is None:
        return _bad("chat not found")
    if chat.get("username") == KICKED_CHAT:
        return _error(403, "Forbidden: bot was kicked from the channel chat")
    return _ok(chat)


def get_chat_member(token: str) -> Response:
    params = _params()
    chat = resolve_chat(params.get("chat_id"))
    if chat is None:
        return _bad("chat not found")
    if chat.get("username") == KICKED_CHAT:
        return _error(403, "Forbidden: bot was kicked from the channel chat")
    user = {"id": int(params.get("user_id") or 0), "is_bot": True, "first_name": "Crier"}
    if chat.get("username") == MEMBER_CHAT or str(user["id"]) != str(bot_id(token)):
        return _ok({"status": "member", "user": user})
    rights = {"can_post_messages": True, "can_delete_messages": True, "can_edit_messages": True}
    return _ok({"status": "administrator", "user": user, **rights})


def _publish(token: str, kind: str | None) -> Response:
    """sendMessage (kind None), sendPhoto, sendVideo."""
    params = _params()
    chat = resolve_chat(params.get("chat_id"))
    if chat is None:
        return _bad("chat not found")
    refusal = _rights(chat)
    if refusal is not None:
        return refusal
    if params.get("parse_mode") and params["parse_mode"] not in PARSE_MODES:
        return _bad(f"unsupported parse_mode {params['parse_mode']!r}")
    media: list[dict[str, Any]] = []
    if kind is None:
        text = str(params.get("text") or "")
        if not text.strip():
            return _bad("message text is empty")
        failure = _text_error(text, TEXT_LIMIT, "message text")
    else:
        text = str(params.get("caption") or "")
        failure = _text_error(text, CAPTION_LIMIT, "message caption")
        entry = _media(params.get("photo" if kind == "image" else "video"), kind)
        if isinstance(entry, Response):
            return entry
        media.append(entry)
    if failure is not None:
        return failure
    return _send(chat, text, media, params, kind)


def _send(
    chat: dict[str, Any],
    text: str,
    media: list[dict[str, Any]],
    params: dict[str, Any],
    kind: str | None,
) -> Response:
    ids = [_next_message_id(chat["id"]) for _ in media or [None]]
    recorded = {k: v for k, v in params.items() if k not in ("text", "caption")}
    recorded["message_ids"] = ids
    state.record(PLATFORM, str(chat["id"]), str(ids[0]), text, media, recorded)
    if should_lose_response(state, PLATFORM):
        return Response("<html><body><h1>502 Bad Gateway</h1></body></html>", 502)
    if kind is None:
        return _ok(_message(chat, ids[0], text=text))
    if len(media) == 1 and params.get("media") is None:
        return _ok(_message(chat, ids[0], caption=text, **_content_fields(kind, media[0])))
    messages = [
        _message(
            chat,
            message_id,
            media_group_id=str(ids[0]),
            **({"caption": text} if index == 0 and text else {}),
            **_content_fields(entry["kind"], entry),
        )
        for index, (message_id, entry) in enumerate(zip(ids, media, strict=True))
    ]
    return _ok(messages)


def send_media_group(token: str) -> Response:
    params = _params()
    chat = resolve_chat(params.get("chat_id"))
    if chat is None:
        return _bad("chat not found")
    refusal = _rights(chat)
    if refusal is not None:
        return refusal
    items = params.get("media")
    if isinstance(items, str):
        try:
            items = json.loads(items)
        except ValueError:
            return _bad("can't parse media JSON object")
    if not isinstance(items, list) or not ALBUM_MIN <= len(items) <= ALBUM_MAX:
        return _bad("media must be an array of 2-10 InputMedia")
    media: list[dict[str, Any]] = []
    caption = ""
    for index, item in enumerate(items):
        kind = {"photo": "image", "video": "video"}.get(str((item or {}).get("type")))
        if kind is None:
            return _bad("documents and audio cannot be mixed with photos and videos here")
        entry = _media(item.get("media"), kind)
        if isinstance(entry, Response):
            return entry
        media.append(entry)
        if index == 0:
            caption = str(item.get("caption") or "")
        elif item.get("caption"):
            return _bad("only the first item of an album carries Crier's caption")
    failure = _text_error(caption, CAPTION_LIMIT, "message caption")
    if failure is not None:
        return failure
    return _send(chat, caption, media, params, "album")


def delete_message(token: str) -> Response:
    params = _params()
    chat = resolve_chat(params.get("chat_id"))
    if chat is None:
        return _bad("chat not found")
    ids = params.get("message_ids") or [params.get("message_id")]
    message_id = str(ids[0] or "")
    with state.lock:
        entry = next(
            (
                e
                for e in state.posts_of(PLATFORM, str(chat["id"]))
                if message_id in {str(i) for i in e["params"].get("message_ids", [])}
            ),
            None,
        )
    if entry is None or not state.delete(PLATFORM, entry["id"], str(chat["id"])):
        return _bad("message to delete not found")
    return _ok(True)


def get_chat_member_count(token: str) -> Response:
    """A chat's members (a channel's subscribers): the sandbox's audience figure for it,
    growing with the sandbox clock as the other platforms' followers do."""
    chat = resolve_chat(_params().get("chat_id"))
    if chat is None:
        return _bad("chat not found")
    if chat.get("username") == KICKED_CHAT:
        return _error(403, "Forbidden: bot was kicked from the channel chat")
    return _ok(read_followers(state, "telegram", str(chat["id"])))


METHODS = {
    "getMe": (get_me, False),
    "getChat": (get_chat, False),
    "getChatMember": (get_chat_member, False),
    "getChatMemberCount": (get_chat_member_count, False),
    "sendMessage": (lambda token: _publish(token, None), True),
    "sendPhoto": (lambda token: _publish(token, "image"), True),
    "sendVideo": (lambda token: _publish(token, "video"), True),
    "sendMediaGroup": (send_media_group, True),
    "deleteMessage": (delete_message, False),
    "deleteMessages": (delete_message, False),
}


def bot_method(token: str, method: str) -> Response:
    """Every Bot API call: `/bot<token>/<method>`, GET or POST."""
    if method not in METHODS:
        return _error(404, "Not Found")
    handler, publishing = METHODS[method]
    refusal = _authorize(token, publishing)
    if refusal is not None:
        return refusal
    return handler(token)


ROUTES = (
    Route("POST", "/bot<token>/<method>", bot_method, endpoint="bot_method_post"),
    Route("GET", "/bot<token>/<method>", bot_method, endpoint="bot_method_get"),
)
BLUEPRINT_NAME = "sandbox_telegram"

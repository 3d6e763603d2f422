"""Telegram Bot API: sendMessage, sendPhoto / sendVideo, sendMediaGroup albums.

The account is a chat (a channel or group, `@username` or its numeric id) in which the
bot whose token the account holds is an administrator with post rights. Media go by their
signed link, which Telegram fetches (5 MB for a photo, 20 MB for a video), or as a
multipart upload when larger or when CRIER_TELEGRAM_UPLOAD_MEDIA is set. Telegram has no
idempotency key and a bot cannot read a chat's history, so a send whose answer was lost
cannot be looked for: reconcile answers "unknown" and the pipeline marks the target
unconfirmed rather than send it again.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import IO, Any

import httpx

from workers.adapters import register
from workers.adapters.base import (
    AccountCredentials,
    AccountMetrics,
    Adapter,
    AuthRevokedError,
    MediaItem,
    PermanentError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    RateLimitedError,
    ReconcileResult,
    ReconcileStatus,
    TransientError,
    count,
    json_body,
    working_handle,
)
from workers.adapters.kit import ErrorCodes, classify_status

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
# What Telegram fetches from a URL: 5 MB for photos, 20 MB for other files.
URL_PHOTO_MAX_BYTES = 5 * 1024 * 1024
URL_FILE_MAX_BYTES = 20 * 1024 * 1024
# The wait when a 429 names none (Telegram's flood waits are seconds to minutes).
DEFAULT_FLOOD_WAIT_SECONDS = 30.0
ERROR_CODES = ErrorCodes(
    rate_limited="telegram_flood_wait",
    auth_expired="telegram_unauthorized",
    server_error="telegram_server_error",
    rejected="telegram_bad_request",
)
# Descriptions that mean the bot can no longer post in the chat: the account must be
# fixed (the bot re-added as an administrator, or the chat named again).
NO_RIGHTS = (
    "bot was kicked",
    "not enough rights",
    "need administrator rights",
    "bot is not a member",
    "chat not found",
    "have no rights to send",
    "chat_write_forbidden",
)
CANNOT_RECONCILE = (
    "Telegram's Bot API has no call to read a chat's history and no idempotency key, so "
    "whether a message whose answer was lost went out cannot be checked."
)


def permalink(username: str | None, message_id: int) -> str | None:
    """The public link of a message in a chat with a username; None for a private chat,
    whose messages have no public link (t.me/c/… opens for members only)."""
    return f"https://t.me/{username}/{message_id}" if username else None


def private_link(chat_id: int, message_id: int) -> str | None:
    """The members-only link of a message in a private channel or supergroup (-100…)."""
    text = str(chat_id)
    return f"https://t.me/c/{text[4:]}/{message_id}" if text.startswith("-100") else None


@register
class TelegramAdapter(Adapter):
    platform = "telegram"
    hosts = {"api": "api.telegram.org"}
    cannot_reconcile = CANNOT_RECONCILE

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        chat_id = chat_of(request.account)
        if request.irreversible_started_at is not None:
            # An earlier send may have gone out and Telegram cannot be asked: never send
            # blind. The retry's reconcile answers "unknown": the target ends unconfirmed.
            raise TransientError(
                f"an earlier send may have reached Telegram. {CANNOT_RECONCILE}",
                code="telegram_maybe_sent",
            )
        handle = working_handle(request)
        # Nothing can be staged on Telegram: a file sent is a message. The handle records
        # where and when the send started, for the operator.
        handle.update(chat_id=chat_id, sent_at=datetime.now(UTC).isoformat())
        context.save_handle(handle)
        context.mark_irreversible()
        return self._post(request, chat_id)

    def _post(
        self, request: PublishRequest, chat_id: str, reply_to: int | None = None
    ) -> PublishResult:
        """Send the post into the chat; `reply_to` makes it a reply to that message (the
        primitive a first comment or a thread builds on)."""
        token = request.account.access_token
        common = options(request.settings)
        common["chat_id"] = chat_id
        if reply_to is not None:
            common["reply_parameters"] = {"message_id": reply_to}
        if not request.media:
            body = {**common, "text": request.text}
            if request.settings.get("disableWebPagePreview"):
                body["link_preview_options"] = {"is_disabled": True}
            result = self._call(token, "sendMessage", json=body)
            return message_result(result)
        if len(request.media) == 1:
            item = request.media[0]
            field = "photo" if item.kind == "image" else "video"
            method = "sendPhoto" if item.kind == "image" else "sendVideo"
            return message_result(
                self._send_media(token, method, common, request.text, {field: item})
            )
        return album_result(self._send_album(token, common, request))

    def _send_media(
        self,
        token: str,
        method: str,
        common: dict[str, Any],
        caption: str,
        media: dict[str, MediaItem],
    ) -> Any:
        """sendPhoto / sendVideo: by URL in JSON, or the file in a multipart form."""
        body = {**common, "caption": caption} if caption else dict(common)
        uploads = {name: item for name, item in media.items() if self._uploads(item)}
        if not uploads:
            body.update({name: item.public_url for name, item in media.items()})
            return self._call(token, method, json=body)
        return self._multipart(token, method, body, uploads)

    def _send_album(self, token: str, common: dict[str, Any], request: PublishRequest) -> Any:
        """sendMediaGroup: 2 to 10 photos and videos, the caption on the first."""
        entries: list[dict[str, Any]] = []
        uploads: dict[str, MediaItem] = {}
        for index, item in enumerate(request.media):
            entry: dict[str, Any] = {"type": "photo" if item.kind == "image" else "video"}
            if self._uploads(item):
                name = f"file{index}"
                uploads[name] = item
                entry["media"] = f"attach://{name}"
            else:
                entry["media"] = item.public_url
            if index == 0 and request.text:
                entry["caption"] = request.text
                if common.get("parse_mode"):
                    entry["parse_mode"] = common["parse_mode"]
            entries.append(entry)
        body = {k: v for k, v in common.items() if k != "parse_mode"}
        body["media"] = entries
        if not uploads:
            return self._call(token, "sendMediaGroup", json=body)
        return self._multipart(token, "sendMediaGroup", body, uploads)

    def _uploads(self, item: MediaItem) -> bool:
        """Whether the file goes as bytes: when Telegram cannot reach the link, or the file
        is larger than Telegram fetches from a URL."""
        limit = URL_PHOTO_MAX_BYTES if item.kind == "image" else URL_FILE_MAX_BYTES
        return self.settings.telegram_upload_media or item.size_bytes > limit or not item.public_url

    def _multipart(
        self, token: str, method: str, body: dict[str, Any], uploads: dict[str, MediaItem]
    ) -> Any:
        form = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in body.items()
        }
        with ExitStack() as stack:
            files: dict[str, tuple[str, IO[bytes], str]] = {}
            for name, item in uploads.items():
                source = stack.enter_context(open(item.path, "rb"))
                files[name] = (item.filename or name, source, item.mime_type)
            return self._call(token, method, data=form, files=files, timeout=UPLOAD_TIMEOUT)

    # -- reconcile, delete -------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        return ReconcileResult(ReconcileStatus.UNKNOWN, reason=CANNOT_RECONCILE)

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        """deleteMessage (an album: deleteMessages with each of its messages). Telegram
        deletes only messages less than 48 hours old."""
        ids = [int(part) for part in platform_post_id.split(",") if part]
        chat_id = chat_of(account)
        if len(ids) == 1:
            body: dict[str, Any] = {"chat_id": chat_id, "message_id": ids[0]}
            self._call(account.access_token, "deleteMessage", json=body)
        else:
            body = {"chat_id": chat_id, "message_ids": ids}
            self._call(account.access_token, "deleteMessages", json=body)

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        """getChatMemberCount: a channel's subscribers (a group's members), the only
        audience figure the Bot API gives; it has none for a message."""
        members = self._call(
            account.access_token, "getChatMemberCount", json={"chat_id": chat_of(account)}
        )
        return AccountMetrics(followers=count(members), raw={"member_count": members})

    # -- HTTP ------------------------------------------------------------------------------

    def _call(self, token: str, method: str, **kwargs: Any) -> Any:
        """One Bot API method; its `result`, or the classified error."""
        kwargs.setdefault("timeout", TIMEOUT)
        response = self.send(
            "POST",
            self.url(f"/bot{token}/{method}"),
            failure=f"Telegram {method} failed",
            classify=classify,
            **kwargs,
        )
        body = json_body(response)
        if not body.get("ok"):
            raise classify(response)
        return body.get("result")


def chat_of(account: AccountCredentials) -> str:
    if not account.external_id:
        raise AuthRevokedError(
            "the Telegram account names no chat; add it again with --external-id "
            "(a chat id or @channel)",
            code="telegram_no_chat",
        )
    return account.external_id


def options(settings: dict[str, Any]) -> dict[str, Any]:
    """The post's settings as Bot API parameters shared by every send method."""
    body: dict[str, Any] = {}
    if settings.get("parseMode"):
        body["parse_mode"] = settings["parseMode"]
    if settings.get("disableNotification"):
        body["disable_notification"] = True
    if settings.get("protectContent"):
        body["protect_content"] = True
    if settings.get("messageThreadId"):
        body["message_thread_id"] = int(settings["messageThreadId"])
    return body


def message_result(message: dict[str, Any]) -> PublishResult:
    chat = message.get("chat") or {}
    message_id = int(message["message_id"])
    details: dict[str, Any] = {"chat_id": chat.get("id"), "message_ids": [message_id]}
    if not chat.get("username") and chat.get("id") is not None:
        details["private_link"] = private_link(int(chat["id"]), message_id)
    return PublishResult(
        platform_post_id=str(message_id),
        url=permalink(chat.get("username"), message_id),
        details=details,
    )


def album_result(messages: list[dict[str, Any]]) -> PublishResult:
    """An album is several messages: its id lists them all (delete takes each), its link
    is the first's."""
    first = message_result(messages[0])
    ids = [int(message["message_id"]) for message in messages]
    return PublishResult(
        platform_post_id=",".join(str(i) for i in ids),
        url=first.url,
        details={**first.details, "message_ids": ids},
    )


def classify(response: httpx.Response) -> PlatformError:
    """`{ok: false, error_code, description, parameters}` to a PlatformError. A flood wait
    names its seconds in parameters.retry_after; 401 is a revoked or wrong bot token (bot
    tokens do not expire); a bot removed from the chat or without post rights needs the
    account fixed."""
    body = json_body(response)
    status = int(body.get("error_code") or response.status_code)
    if status < 300:  # ok: false with a 2xx: read it as the refusal it is
        status = 400
    description = str(body.get("description") or response.reason_phrase or "")
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    message = f"Telegram: {description}" if description else "Telegram refused the request"
    lowered = description.lower()
    if status == 429:
        wait = float(parameters.get("retry_after") or DEFAULT_FLOOD_WAIT_SECONDS)
        return RateLimitedError(
            message, code="telegram_flood_wait", http_status=429, retry_after=wait
        )
    if status == 401:
        return AuthRevokedError(message, code="telegram_unauthorized", http_status=401)
    if parameters.get("migrate_to_chat_id"):
        return AuthRevokedError(
            f"{message}; the group is now the supergroup {parameters['migrate_to_chat_id']}: "
            "add the account again with that chat id",
            code="telegram_chat_migrated",
            http_status=status,
            details={"migrate_to_chat_id": parameters["migrate_to_chat_id"]},
        )
    if status == 403 or any(reason in lowered for reason in NO_RIGHTS):
        return AuthRevokedError(message, code="telegram_no_rights", http_status=status)
    if status == 413 or "too big" in lowered:
        return PermanentError(message, code="telegram_file_too_large", http_status=status)
    if "message to delete not found" in lowered or "message can't be deleted" in lowered:
        return PermanentError(message, code="telegram_message_not_found", http_status=status)
    return classify_status(status, message, ERROR_CODES, rate_limit_wait=DEFAULT_FLOOD_WAIT_SECONDS)

"""Discord: a channel webhook (`?wait=true`) or a bot's Create Message, with files.

An account's credential is either the channel webhook's URL (connect links make one with
the OAuth `webhook.incoming` consent) or a bot token (`Bot …` or the bare token) with the
channel id as the account's external id. Before the message the adapter reads where it
will land (the webhook's or channel's server, for the permalink; the bot's own id), which
is what a prepare does ahead. A bot's message carries a `nonce` with `enforce_nonce`: the
same create within Discord's few minutes returns the first message instead of a second.
Reconcile reads the channel's recent messages with a bot token (the account's, or for a
webhook account CRIER_DISCORD_BOT_TOKEN); a webhook account without that bot cannot be
reconciled: the answer is "unknown" and the target ends unconfirmed.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

import httpx

from workers.adapters import register
from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    AuthRevokedError,
    PermanentError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    RateLimitedError,
    ReconcileResult,
    ReconcileStatus,
    json_body,
    resuming_prepared,
    working_handle,
)
from workers.adapters.kit import ErrorCodes, classify_status, reconcile_since, retry_after_seconds

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
API = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
# Discord keeps a nonce "for the past few minutes": a retry inside this reuses it.
NONCE_REUSE_SECONDS = 120.0
RECONCILE_CLOCK_SKEW = timedelta(minutes=2)
RECONCILE_PAGE_SIZE = 100
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 5.0
SUPPRESS_EMBEDS = 1 << 2
ERROR_CODES = ErrorCodes(
    rate_limited="discord_rate_limited",
    auth_expired="discord_unauthorized",
    server_error="discord_server_error",
    rejected="discord_invalid_request",
)
# Discord's JSON error codes that mean the credential or channel is gone or closed to us.
RECONNECT_CODES = {
    10003: "discord_unknown_channel",
    10015: "discord_unknown_webhook",
    50001: "discord_missing_access",
    50013: "discord_missing_permissions",
    50027: "discord_invalid_webhook_token",
}
REFUSAL_CODES = {
    10008: "discord_unknown_message",
    40005: "discord_file_too_large",
    50006: "discord_empty_message",
    50035: "discord_invalid_form_body",
}
_WEBHOOK_URL = re.compile(
    r"^https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/(\d+)/([\w-]+)/?$"
)
WEBHOOK_CANNOT_RECONCILE = (
    "a Discord webhook cannot list the channel's messages and takes no nonce, and no bot "
    "(CRIER_DISCORD_BOT_TOKEN) reads the channel, so whether the message went out cannot "
    "be checked"
)


@dataclass(frozen=True)
class Destination:
    """Where an account posts: a webhook (id and token), or a bot token and a channel."""

    webhook_id: str | None = None
    webhook_token: str | None = None
    bot_token: str | None = None
    channel_id: str | None = None

    @property
    def is_webhook(self) -> bool:
        return self.webhook_id is not None


def destination_of(account: AccountCredentials) -> Destination:
    credential = account.access_token.strip()
    found = _WEBHOOK_URL.match(credential)
    if found:
        return Destination(found.group(1), found.group(2), channel_id=account.external_id)
    token = credential[4:].strip() if credential.lower().startswith("bot ") else credential
    if not account.external_id:
        raise AuthRevokedError(
            "the Discord account has a bot token but no channel id; add it again with "
            "--external-id <channel id>",
            code="discord_no_channel",
        )
    return Destination(bot_token=token, channel_id=account.external_id)


def permalink(guild_id: str | None, channel_id: str, message_id: str) -> str:
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def snowflake_at(moment: datetime) -> int:
    """The smallest Discord id made at `moment` (for `?after=`)."""
    return max(0, int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS) << 22


@register
class DiscordAdapter(Adapter):
    platform = "discord"
    hosts = {"api": "discord.com"}

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        where = destination_of(request.account)
        handle = working_handle(request)
        prepared = resuming_prepared(request)
        if not handle.get("channel_id"):
            handle.update(self._locate(where))
        if request.irreversible_started_at is not None and not prepared:
            # An earlier attempt may have posted: adopt its message rather than post twice.
            found = self._find(request, where, handle)
            if found is not None:
                return found
        sent = float(handle.get("started") or 0)
        if where.bot_token and not (
            handle.get("nonce") and (prepared or time.time() - sent < NONCE_REUSE_SECONDS)
        ):
            # A prepared nonce never went out; a sent one holds for Discord's few minutes.
            handle["nonce"] = secrets.token_hex(12)  # 24 characters; Discord allows 25
        if prepared or not handle.get("posted_at"):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        handle["started"] = time.time()
        context.save_handle(handle)
        context.mark_irreversible()
        return self._post(request, where, handle)

    def _locate(self, where: Destination) -> dict[str, Any]:
        """The channel, its server and the author the message will have."""
        if where.is_webhook:
            hook = self._call("GET", self._webhook_path(where), where).json()
            return {
                "channel_id": str(hook["channel_id"]),
                "guild_id": hook.get("guild_id"),
                "author_id": str(hook.get("id") or where.webhook_id),
            }
        channel_id = str(where.channel_id)
        channel = self._call("GET", f"{API}/channels/{channel_id}", where).json()
        me = self._call("GET", f"{API}/users/@me", where).json()
        return {
            "channel_id": channel_id,
            "guild_id": channel.get("guild_id"),
            "author_id": me["id"],
        }

    def _post(
        self,
        request: PublishRequest,
        where: Destination,
        handle: dict[str, Any],
        reply_to: str | None = None,
    ) -> PublishResult:
        """Create the message; `reply_to` makes a bot's message a reply to that one (the
        primitive a first comment builds on; a webhook posts into a thread instead)."""
        payload = message_payload(request)
        params: dict[str, str] = {}
        if where.is_webhook:
            path = self._webhook_path(where)
            params["wait"] = "true"
            if request.settings.get("threadId"):
                params["thread_id"] = str(request.settings["threadId"])
        else:
            path = f"{API}/channels/{where.channel_id}/messages"
            payload.pop("username", None)
            payload.pop("avatar_url", None)
            payload.pop("thread_name", None)
            payload["nonce"] = handle["nonce"]
            payload["enforce_nonce"] = True
            if reply_to:
                payload["message_reference"] = {"message_id": reply_to}
        response = self._send_message(path, where, payload, request, params)
        message = response.json()
        channel_id = str(message.get("channel_id") or handle["channel_id"])
        details: dict[str, Any] = {"channel_id": channel_id}
        usage = rate_limit_details(response.headers)
        if usage:
            details["rate_limit"] = usage
        return PublishResult(
            platform_post_id=str(message["id"]),
            url=permalink(handle.get("guild_id"), channel_id, str(message["id"])),
            details=details,
        )

    def _send_message(
        self,
        path: str,
        where: Destination,
        payload: dict[str, Any],
        request: PublishRequest,
        params: dict[str, str],
    ) -> httpx.Response:
        if not request.media:
            return self._call("POST", path, where, json=payload, params=params)
        payload["attachments"] = [
            {"id": index, "filename": item.filename or f"file{index}"}
            for index, item in enumerate(request.media)
        ]
        with ExitStack() as stack:
            files: list[tuple[str, tuple[str, IO[bytes], str]]] = []
            for index, item in enumerate(request.media):
                source = stack.enter_context(open(item.path, "rb"))
                name = item.filename or f"file{index}"
                files.append((f"files[{index}]", (name, source, item.mime_type)))
            return self._call(
                "POST",
                path,
                where,
                data={"payload_json": json.dumps(payload)},
                files=files,
                params=params,
                timeout=UPLOAD_TIMEOUT,
            )

    # -- reconcile ---------------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        where = destination_of(request.account)
        handle = dict(request.handle or {})
        if not where.bot_token and self._operator_bot(where) is None:
            return ReconcileResult(ReconcileStatus.UNKNOWN, reason=WEBHOOK_CANNOT_RECONCILE)
        if not handle.get("channel_id"):
            handle.update(self._locate(where))
        found = self._find(request, where, handle)
        if found is None:
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND, reason="no matching message in the channel"
            )
        return ReconcileResult(ReconcileStatus.FOUND, result=found)

    def _find(
        self, request: PublishRequest, where: Destination, handle: dict[str, Any]
    ) -> PublishResult | None:
        """The attempt's message among the channel's messages since it started; None when
        none matches or no bot can read the channel (a webhook alone cannot)."""
        reader = where if where.bot_token else self._operator_bot(where)
        if reader is None:
            return None
        since = reconcile_since(
            handle.get("posted_at") or request.irreversible_started_at, RECONCILE_CLOCK_SKEW
        )
        messages = self._call(
            "GET",
            f"{API}/channels/{handle['channel_id']}/messages",
            reader,
            params={"limit": RECONCILE_PAGE_SIZE, "after": snowflake_at(since)},
        ).json()
        for message in messages if isinstance(messages, list) else []:
            if matches(message, request, handle, where):
                message_id = str(message["id"])
                channel_id = str(message.get("channel_id") or handle["channel_id"])
                return PublishResult(
                    platform_post_id=message_id,
                    url=permalink(handle.get("guild_id"), channel_id, message_id),
                    details={"reconciled": True, "channel_id": channel_id},
                )
        return None

    def _operator_bot(self, where: Destination) -> Destination | None:
        token = self.settings.discord_bot_token
        return Destination(bot_token=token, channel_id=where.channel_id) if token else None

    # -- delete ------------------------------------------------------------------------------

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        where = destination_of(account)
        if where.is_webhook:
            path = f"{self._webhook_path(where)}/messages/{platform_post_id}"
        else:
            path = f"{API}/channels/{where.channel_id}/messages/{platform_post_id}"
        self._call("DELETE", path, where)

    # -- HTTP --------------------------------------------------------------------------------

    def _webhook_path(self, where: Destination) -> str:
        return f"{API}/webhooks/{where.webhook_id}/{where.webhook_token}"

    def _call(self, method: str, path: str, where: Destination, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        headers = {"User-Agent": "DiscordBot (https://github.com/crier, 1.0)"}
        if where.bot_token and not path.startswith(f"{API}/webhooks/"):
            headers["Authorization"] = f"Bot {where.bot_token}"
        return self.send(
            method,
            self.url(path),
            failure="Discord request failed",
            classify=classify,
            headers=headers,
            **kwargs,
        )


def message_payload(request: PublishRequest) -> dict[str, Any]:
    """Execute Webhook / Create Message JSON from the post's text and settings."""
    settings = request.settings
    payload: dict[str, Any] = {"allowed_mentions": {"parse": []}}
    if request.text:
        payload["content"] = request.text
    if settings.get("username"):
        payload["username"] = settings["username"]
    if settings.get("avatarUrl"):
        payload["avatar_url"] = settings["avatarUrl"]
    if settings.get("threadName"):
        payload["thread_name"] = settings["threadName"]
    if settings.get("suppressEmbeds"):
        payload["flags"] = SUPPRESS_EMBEDS
    if settings.get("embeds"):
        payload["embeds"] = [embed_of(embed) for embed in settings["embeds"]]
    return payload


def embed_of(embed: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        key: embed[key] for key in ("title", "description", "url", "color") if key in embed
    }
    if embed.get("footer"):
        out["footer"] = {"text": embed["footer"]}
    if embed.get("imageUrl"):
        out["image"] = {"url": embed["imageUrl"]}
    return out


def matches(
    message: dict[str, Any], request: PublishRequest, handle: dict[str, Any], where: Destination
) -> bool:
    """Whether a channel message is the attempt's: its nonce where Discord kept it, else
    the same author (the webhook, or the bot), text and number of files."""
    if handle.get("nonce") and message.get("nonce") == handle["nonce"]:
        return True
    if where.is_webhook:
        if str(message.get("webhook_id") or "") != str(where.webhook_id):
            return False
    elif handle.get("author_id") and str((message.get("author") or {}).get("id")) != str(
        handle["author_id"]
    ):
        return False
    if (message.get("content") or "") != (request.text or ""):
        return False
    return len(message.get("attachments") or []) == len(request.media)


def rate_limit_details(headers: httpx.Headers) -> dict[str, Any] | None:
    """The bucket's state a success answer reports: with none left, the pipeline waits
    until its reset before the account's next call."""
    try:
        return {
            "limit": int(headers["x-ratelimit-limit"]),
            "remaining": int(headers["x-ratelimit-remaining"]),
            "reset_at": float(headers["x-ratelimit-reset"]),
            "bucket": headers.get("x-ratelimit-bucket"),
        }
    except (KeyError, ValueError):
        return None


def classify(response: httpx.Response) -> PlatformError:
    """Discord's `{code, message, errors?}` and rate-limit headers to a PlatformError."""
    status = response.status_code
    body = json_body(response)
    code = int(body.get("code") or 0) if str(body.get("code") or "0").isdigit() else 0
    text = str(body.get("message") or response.reason_phrase or "")
    message = f"Discord: {text}" if text else f"Discord answered HTTP {status}"
    if body.get("errors"):
        message = f"{message}: {json.dumps(body['errors'])[:500]}"
    if status == 429:
        return _rate_limited(response, body, message)
    if code in RECONNECT_CODES:
        return AuthRevokedError(message, code=RECONNECT_CODES[code], http_status=status)
    if status == 401:
        return AuthRevokedError(message, code="discord_unauthorized", http_status=status)
    if status == 404 and _is_webhook(response):
        return AuthRevokedError(message, code="discord_unknown_webhook", http_status=status)
    if status == 403:
        return AuthRevokedError(message, code="discord_missing_permissions", http_status=status)
    if status == 413:
        return PermanentError(message, code="discord_file_too_large", http_status=status)
    if code in REFUSAL_CODES:
        return PermanentError(message, code=REFUSAL_CODES[code], http_status=status)
    return classify_status(
        status, message, ERROR_CODES, rate_limit_wait=DEFAULT_RATE_LIMIT_WAIT_SECONDS
    )


def _is_webhook(response: httpx.Response) -> bool:
    try:
        return "/webhooks/" in response.request.url.path
    except RuntimeError:  # an answer built without its request
        return False


def _rate_limited(response: httpx.Response, body: dict[str, Any], message: str) -> PlatformError:
    """A 429: the wait is the body's retry_after (seconds, a float), else Retry-After or
    X-RateLimit-Reset-After; the global limit binds every account of the app."""
    headers = response.headers
    wait: float | None = None
    for raw in (body.get("retry_after"), headers.get("x-ratelimit-reset-after")):
        try:
            wait = float(raw)  # type: ignore[arg-type]
            break
        except (TypeError, ValueError):
            continue
    if wait is None:
        wait = retry_after_seconds(headers, DEFAULT_RATE_LIMIT_WAIT_SECONDS)
    is_global = bool(body.get("global")) or headers.get("x-ratelimit-global") == "true"
    scope = headers.get("x-ratelimit-scope") or ("global" if is_global else "user")
    return RateLimitedError(
        message,
        code="discord_global_rate_limit" if is_global else "discord_rate_limited",
        http_status=429,
        retry_after=wait,
        scope="app" if is_global else "account",
        details={"scope": scope, "bucket": headers.get("x-ratelimit-bucket")},
    )

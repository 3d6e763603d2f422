"""Telegram: no OAuth. The client names, on Crier's connect page, the channel or group in
which Crier's bot (CRIER_TELEGRAM_BOT_TOKEN) is an administrator; Crier checks with
getChat and getChatMember that the bot may post there, and adds the chat as the account
(its access token is the bot's token)."""

from __future__ import annotations

from typing import Any

import httpx

from app.config import Settings
from app.credentials import telegram_chat
from app.oauth import (
    TIMEOUT,
    ConnectedIdentity,
    CredentialField,
    CredentialFlow,
    OAuthError,
    register_credential_flow,
)


@register_credential_flow
class TelegramFlow(CredentialFlow):
    platform = "telegram"
    hosts = {"api": "api.telegram.org"}
    why = (
        "Telegram has no OAuth: the client adds Crier's bot to a channel or group as an "
        "administrator and names the chat on Crier's connect page"
    )
    fields = (
        CredentialField(
            "chat",
            "Channel or group",
            "@channelname, a t.me link, or the chat's numeric id; first add the bot as an "
            "administrator allowed to post messages",
        ),
    )

    @classmethod
    def missing_setting(cls, settings: Settings) -> str | None:
        return None if settings.telegram_bot_token else "CRIER_TELEGRAM_BOT_TOKEN"

    def verify(self, values: dict[str, str]) -> list[ConnectedIdentity]:
        token = self.settings.telegram_bot_token
        if not token:
            raise OAuthError("platform_not_configured", "Telegram is not configured.")
        chat_id = telegram_chat(values.get("chat", ""))
        if chat_id is None:
            raise OAuthError(
                "invalid_chat", "Enter the channel as @name, a t.me link or a numeric chat id."
            )
        bot = self._method(token, "getMe", {})
        chat = self._method(token, "getChat", {"chat_id": chat_id})
        member = self._method(token, "getChatMember", {"chat_id": chat["id"], "user_id": bot["id"]})
        if member.get("status") != "creator" and not (
            member.get("status") == "administrator"
            and (member.get("can_post_messages") or chat.get("type") != "channel")
        ):
            raise OAuthError(
                "bot_not_admin",
                f"@{bot.get('username')} is not an administrator allowed to post in "
                f"{chat.get('title') or chat_id}; add it as one and try again.",
            )
        username = chat.get("username")
        return [
            ConnectedIdentity(
                # A public chat is kept by its @username (permalinks need it), a private
                # one by its numeric id.
                external_id=f"@{username}" if username else str(chat["id"]),
                name=str(chat.get("title") or username or chat["id"]),
                access_token=token,
                kind=str(chat.get("type") or "channel"),
                settings={"chat_id": chat["id"]},
            )
        ]

    def _method(self, token: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.http.post(
                self.url(f"/bot{token}/{method}"), json=params, timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise OAuthError("platform_unreachable", f"telegram: {method} failed: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict) or not body.get("ok"):
            description = str(body.get("description") or response.status_code)
            code = "bot_not_admin" if response.status_code == 403 else "chat_not_found"
            if response.status_code in (401, 404) and method == "getMe":
                code = "platform_not_configured"
            elif response.status_code >= 500 or response.status_code == 429:
                code = "platform_error"
            raise OAuthError(code, f"Telegram: {description}")
        result = body.get("result")
        return result if isinstance(result, dict) else {}

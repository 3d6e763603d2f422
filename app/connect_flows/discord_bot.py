"""Discord through Crier's bot (`login: "bot"`): the OAuth `bot` scope adds the operator's
bot (CRIER_DISCORD_BOT_TOKEN, the bot of Crier's Discord app) to a server the user
manages, with the permissions it posts with. The code exchange names that server (the
`guild` of the token answer, which Discord vouches for, not the callback's `guild_id`);
Crier then lists the server's channels with the bot token and offers its text and
announcement channels, each an account that posts with the bot. The user's own OAuth
token is not needed and is revoked at once."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import httpx

from app.config import Settings
from app.connect_flows.discord import exchange_code
from app.oauth import (
    TIMEOUT,
    ClientApp,
    ConnectedIdentity,
    OAuthError,
    OAuthFlow,
    register_flow,
    token_error,
)
from app.platforms import DISCORD_BOT_LOGIN

# The channel types a bot's message can go to, as account kinds: text and announcement.
POSTABLE_CHANNELS = {0: "text_channel", 5: "announcement_channel"}
# View Channel, Send Messages, Embed Links, Attach Files, Read Message History (the last
# to reconcile a message whose answer was lost).
BOT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 15) | (1 << 16)


@register_flow
class DiscordBotFlow(OAuthFlow):
    platform = "discord"
    login = DISCORD_BOT_LOGIN
    hosts = {"authorize": "discord.com", "api": "discord.com"}
    scopes = ("bot",)
    # A server has several channels: the user picks on Crier.
    offers_choice = True
    authorize_path = ("authorize", "/oauth2/authorize")

    @classmethod
    def missing_setting(cls, settings: Settings) -> str | None:
        return None if settings.discord_bot_token else "CRIER_DISCORD_BOT_TOKEN"

    def authorize_params(
        self, client: ClientApp, state: str, code_challenge: str | None
    ) -> dict[str, str]:
        params = super().authorize_params(client, state, code_challenge)
        params["permissions"] = str(BOT_PERMISSIONS)
        params["integration_type"] = "0"  # installed in a server, not for a user
        return params

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        bot = self.settings.discord_bot_token
        if not bot:
            raise OAuthError("platform_not_configured", "Crier's Discord bot is not set.")
        token = exchange_code(self, client, code)
        self._forget(
            str(token.get("access_token") or ""), (client.client_id, client.client_secret or "")
        )
        guild = token.get("guild")
        if not isinstance(guild, dict) or not guild.get("id"):
            raise OAuthError("no_accounts", "Discord named no server: the bot was not added.")
        guild_id, guild_name = str(guild["id"]), str(guild.get("name") or guild["id"])
        channels = [
            c
            for c in self._channels(guild_id, bot)
            if c.get("type") in POSTABLE_CHANNELS and c.get("id")
        ]
        if not channels:
            raise OAuthError("no_accounts", f"{guild_name} has no text channel the bot can see.")
        channels.sort(key=lambda c: (int(c.get("position") or 0), str(c["id"])))
        return [
            ConnectedIdentity(
                external_id=str(channel["id"]),
                name=f"#{channel.get('name') or channel['id']} · {guild_name}",
                access_token=bot,
                kind=POSTABLE_CHANNELS[int(channel["type"])],
                # No `webhook_id`: a channel that posted through a webhook before now posts
                # with the bot.
                settings={"guild_id": guild_id, "guild_name": guild_name, "webhook_id": None},
            )
            for channel in channels
        ]

    def _channels(self, guild_id: str, bot: str) -> list[dict[str, Any]]:
        """GET /guilds/{id}/channels with the bot: the server's channels it can see."""
        url = self.url(f"/api/v10/guilds/{guild_id}/channels")
        try:
            response = self.http.get(url, headers={"Authorization": f"Bot {bot}"}, timeout=TIMEOUT)
        except httpx.HTTPError as exc:
            raise OAuthError(
                "platform_unreachable", f"discord: listing the channels failed: {exc}"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not response.is_success or not isinstance(body, list):
            status = response.status_code
            raise token_error("discord", "listing the server's channels", status, body)
        return [c for c in body if isinstance(c, dict)]

    def _forget(self, access: str, auth: tuple[str, str]) -> None:
        """Revoke the user's token: Crier posts with its bot and keeps none of theirs."""
        if not access:
            return
        # A refusal is no matter: the token expires by itself, and nothing depends on it.
        with suppress(OAuthError):
            self.call(
                "POST",
                self.url("/api/oauth2/token/revoke"),
                "revoking the user's token",
                data={"token": access, "token_type_hint": "access_token"},
                auth=auth,
            )

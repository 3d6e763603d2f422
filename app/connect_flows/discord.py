"""Discord: the OAuth 2 `webhook.incoming` consent. The user picks a server and channel;
the code exchange answers with a webhook made in that channel, whose URL becomes the
account's credential (the OAuth token itself is not needed to post). Each consent makes a
new webhook; revoking deletes it. Without Crier's Discord app (CRIER_DISCORD_CLIENT_ID),
a connect link opens a page on Crier where the client pastes a webhook URL they made in
the channel's settings, checked with a GET on the webhook. A link with `login: "bot"`
adds Crier's bot to a server instead (discord_bot.py)."""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.config import Settings
from app.credentials import DISCORD_WEBHOOK_URL
from app.oauth import (
    TIMEOUT,
    ClientApp,
    ConnectedIdentity,
    CredentialField,
    CredentialFlow,
    OAuthError,
    OAuthFlow,
    register_credential_flow,
    register_flow,
)

_WEBHOOK_URL = re.compile(r"/webhooks/(\d+)/([\w-]+)/?$")


@register_flow
class DiscordFlow(OAuthFlow):
    platform = "discord"
    hosts = {"authorize": "discord.com", "api": "discord.com"}
    scopes = ("webhook.incoming",)
    has_revoke = True
    authorize_path = ("authorize", "/oauth2/authorize")

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token = exchange_code(self, client, code)
        webhook = token.get("webhook")
        if not isinstance(webhook, dict) or not webhook.get("id") or not webhook.get("token"):
            raise OAuthError("no_accounts", "Discord granted no webhook.")
        return [webhook_identity(webhook, str(webhook["id"]), str(webhook["token"]))]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        """Delete the webhook the account posts through: it stops working at once."""
        found = _WEBHOOK_URL.search(identity_token)
        if found is None:
            return False
        path = f"/api/v10/webhooks/{found.group(1)}/{found.group(2)}"
        self.call("DELETE", self.url(path), "deleting the webhook")
        return True


def exchange_code(flow: OAuthFlow, client: ClientApp, code: str) -> dict[str, Any]:
    """The authorization code for Discord's token answer (a webhook, or a bot's server)."""
    return flow.exchange_code(flow.url("/api/oauth2/token"), client, code, basic_auth=True)


def webhook_identity(webhook: dict[str, Any], webhook_id: str, token: str) -> ConnectedIdentity:
    return ConnectedIdentity(
        external_id=str(webhook["channel_id"]),
        name=str(webhook.get("name") or f"Discord channel {webhook['channel_id']}"),
        access_token=f"https://discord.com/api/webhooks/{webhook_id}/{token}",
        kind="webhook",
        settings={"guild_id": webhook.get("guild_id"), "webhook_id": webhook_id},
    )


@register_credential_flow
class DiscordWebhookPage(CredentialFlow):
    platform = "discord"
    hosts = {"api": "discord.com"}
    why = (
        "Paste the URL of a webhook made in the channel (Server Settings → Integrations → "
        "Webhooks); Crier checks it with Discord"
    )
    fields = (
        CredentialField("webhook", "Webhook URL", "https://discord.com/api/webhooks/<id>/<token>"),
    )

    @classmethod
    def missing_setting(cls, settings: Settings) -> str | None:
        return None

    def verify(self, values: dict[str, str]) -> list[ConnectedIdentity]:
        found = DISCORD_WEBHOOK_URL.match(values.get("webhook", "").strip())
        if found is None:
            raise OAuthError("invalid_webhook", "That is not a Discord webhook URL.")
        webhook_id, token = found.group(1), found.group(2)
        try:
            response = self.http.get(
                self.url(f"/api/v10/webhooks/{webhook_id}/{token}"), timeout=TIMEOUT
            )
        except httpx.HTTPError as exc:
            raise OAuthError("platform_unreachable", f"discord: {exc}") from exc
        if response.status_code in (401, 404):
            raise OAuthError("invalid_webhook", "Discord does not know this webhook.")
        body = response.json() if response.is_success else None
        if not isinstance(body, dict) or not body.get("channel_id"):
            raise OAuthError("platform_error", f"Discord answered HTTP {response.status_code}.")
        return [webhook_identity(body, webhook_id, token)]

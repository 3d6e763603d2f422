"""Discord: the OAuth 2 `webhook.incoming` consent. The user picks a server and channel;
the code exchange answers with a webhook made in that channel, whose URL becomes the
account's credential (the OAuth token itself is not needed to post). Each consent makes a
new webhook; revoking deletes it."""

from __future__ import annotations

import re

from app.oauth import ClientApp, ConnectedIdentity, OAuthError, OAuthFlow, register_flow

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
        token = self.call(
            "POST",
            self.url("/api/oauth2/token"),
            "the token exchange",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": client.redirect_uri,
            },
            auth=(client.client_id, client.client_secret or ""),
        )
        webhook = token.get("webhook")
        if not isinstance(webhook, dict) or not webhook.get("id") or not webhook.get("token"):
            raise OAuthError("no_accounts", "Discord granted no webhook.")
        url = f"https://discord.com/api/webhooks/{webhook['id']}/{webhook['token']}"
        return [
            ConnectedIdentity(
                external_id=str(webhook["channel_id"]),
                name=str(webhook.get("name") or f"Discord channel {webhook['channel_id']}"),
                access_token=url,
                kind="webhook",
                settings={"guild_id": webhook.get("guild_id"), "webhook_id": str(webhook["id"])},
            )
        ]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        """Delete the webhook the account posts through: it stops working at once."""
        found = _WEBHOOK_URL.search(identity_token)
        if found is None:
            return False
        path = f"/api/v10/webhooks/{found.group(1)}/{found.group(2)}"
        self.call("DELETE", self.url(path), "deleting the webhook")
        return True

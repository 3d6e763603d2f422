"""YouTube: Google's web-server flow (offline access for a refresh token), then the channel."""

from __future__ import annotations

from app.oauth import (
    ClientApp,
    ConnectedIdentity,
    OAuthError,
    OAuthFlow,
    expires_at,
    register_flow,
)


@register_flow
class YouTubeFlow(OAuthFlow):
    platform = "youtube"
    hosts = {
        "authorize": "accounts.google.com",
        "api": "www.googleapis.com",
        "oauth": "oauth2.googleapis.com",
    }
    scopes = (
        "https://www.googleapis.com/auth/youtube.upload",
        "https://www.googleapis.com/auth/youtube.readonly",
    )
    has_revoke = True
    authorize_path = ("authorize", "/o/oauth2/v2/auth")

    def authorize_params(
        self, client: ClientApp, state: str, code_challenge: str | None
    ) -> dict[str, str]:
        params = super().authorize_params(client, state, code_challenge)
        # offline + consent: Google sends a refresh token only on a consent it shows.
        params |= {"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"}
        return params

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token = self.exchange_code(self.url("/token", "oauth"), client, code)
        channels = self.call(
            "GET",
            self.url("/youtube/v3/channels"),
            "reading the channel",
            params={"part": "snippet,contentDetails", "mine": "true"},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        items = channels.get("items") or []
        if not items:
            raise OAuthError("no_accounts", "youtube: this Google account has no YouTube channel")
        channel = items[0]
        title = (channel.get("snippet") or {}).get("title") or channel["id"]
        return [
            ConnectedIdentity(
                external_id=str(channel["id"]),
                name=title,
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                expires_at=expires_at(token.get("expires_in")),
                kind="channel",
            )
        ]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        self.call(
            "POST", self.url("/revoke", "oauth"), "the revoke call", data={"token": identity_token}
        )
        return True

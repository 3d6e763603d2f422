"""TikTok: Login Kit v2 with PKCE; `client_key` instead of client_id; rotating refresh."""

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
class TikTokFlow(OAuthFlow):
    platform = "tiktok"
    hosts = {"authorize": "www.tiktok.com", "api": "open.tiktokapis.com"}
    scopes = ("user.info.basic", "video.publish", "video.upload")
    scope_separator = ","
    pkce = True
    has_revoke = True
    authorize_path = ("authorize", "/v2/auth/authorize/")

    def authorize_params(
        self, client: ClientApp, state: str, code_challenge: str | None
    ) -> dict[str, str]:
        params = super().authorize_params(client, state, code_challenge)
        params["client_key"] = params.pop("client_id")
        return params

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token = self.call(
            "POST",
            self.url("/v2/oauth/token/"),
            "the token exchange",
            data={
                "client_key": client.client_id,
                "client_secret": client.client_secret or "",
                "code": code,
                "grant_type": "authorization_code",
                "redirect_uri": client.redirect_uri,
                "code_verifier": code_verifier or "",
            },
        )
        if "access_token" not in token:
            why = token.get("error_description") or token.get("error") or "no token"
            raise OAuthError("platform_error", f"tiktok: the token exchange failed: {why}")
        info = self.call(
            "GET",
            self.url("/v2/user/info/"),
            "reading the user",
            params={"fields": "open_id,display_name,username"},
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
        user = (info.get("data") or {}).get("user") or {}
        open_id = str(user.get("open_id") or token.get("open_id"))
        return [
            ConnectedIdentity(
                external_id=open_id,
                name=user.get("display_name") or user.get("username") or open_id,
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                expires_at=expires_at(token.get("expires_in")),
                kind="creator",
            )
        ]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        data = {"token": identity_token}
        if client is not None:
            data |= {"client_key": client.client_id, "client_secret": client.client_secret or ""}
        self.call("POST", self.url("/v2/oauth/revoke/"), "the revoke call", data=data)
        return True

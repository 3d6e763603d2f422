"""X: OAuth 2.0 authorization code with PKCE; refresh tokens with `offline.access`."""

from __future__ import annotations

from app.oauth import ClientApp, ConnectedIdentity, OAuthFlow, expires_at, register_flow


def _auth(client: ClientApp) -> dict[str, tuple[str, str]]:
    # A confidential client authenticates with HTTP Basic; a public one sends client_id.
    return {"auth": (client.client_id, client.client_secret)} if client.client_secret else {}


@register_flow
class XFlow(OAuthFlow):
    platform = "x"
    hosts = {"authorize": "x.com", "api": "api.x.com"}
    scopes = ("tweet.read", "tweet.write", "users.read", "media.write", "offline.access")
    pkce = True
    has_revoke = True
    authorize_path = ("authorize", "/i/oauth2/authorize")

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token = self.call(
            "POST",
            self.url("/2/oauth2/token"),
            "the token exchange",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": client.redirect_uri,
                "code_verifier": code_verifier or "",
                "client_id": client.client_id,
            },
            **_auth(client),
        )
        me = self.call(
            "GET",
            self.url("/2/users/me"),
            "reading the user",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )["data"]
        return [
            ConnectedIdentity(
                external_id=str(me["id"]),
                name=f"@{me.get('username') or me['id']}",
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                expires_at=expires_at(token.get("expires_in")),
                kind="user",
            )
        ]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        data = {"token": identity_token, "token_type_hint": "access_token"}
        extra = {}
        if client is not None:
            data["client_id"] = client.client_id
            extra = _auth(client)
        self.call("POST", self.url("/2/oauth2/revoke"), "the revoke call", data=data, **extra)
        return True

"""Facebook Login for Pages: code → user token → long-lived user token → the Pages the
user granted, each with its own Page token (no expiry). Several: the user picks."""

from __future__ import annotations

from app.oauth import (
    ClientApp,
    ConnectedIdentity,
    OAuthError,
    OAuthFlow,
    expires_at,
    register_flow,
)
from workers.adapters.facebook import GRAPH_VERSION


@register_flow
class FacebookFlow(OAuthFlow):
    platform = "facebook"
    hosts = {"authorize": "www.facebook.com", "api": "graph.facebook.com"}
    scopes = ("pages_show_list", "pages_manage_posts", "pages_read_engagement", "publish_video")
    scope_separator = ","
    offers_choice = True
    has_revoke = True
    authorize_path = ("authorize", f"/{GRAPH_VERSION}/dialog/oauth")

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token_url = self.url(f"/{GRAPH_VERSION}/oauth/access_token")
        short = self.call(
            "GET",
            token_url,
            "the token exchange",
            params={
                "client_id": client.client_id,
                "client_secret": client.client_secret or "",
                "redirect_uri": client.redirect_uri,
                "code": code,
            },
        )
        long_lived = self.call(
            "GET",
            token_url,
            "the long-lived token exchange",
            params={
                "grant_type": "fb_exchange_token",
                "client_id": client.client_id,
                "client_secret": client.client_secret or "",
                "fb_exchange_token": short["access_token"],
            },
        )
        user_expiry = expires_at(long_lived.get("expires_in"))
        pages = (
            self.call(
                "GET",
                self.url(f"/{GRAPH_VERSION}/me/accounts"),
                "listing the Pages",
                params={
                    "fields": "id,name,access_token",
                    "access_token": long_lived["access_token"],
                },
            ).get("data")
            or []
        )
        if not pages:
            raise OAuthError("no_accounts", "facebook: the user granted no Page")
        # A Page token fetched with a long-lived user token does not expire.
        return [
            ConnectedIdentity(
                external_id=str(page["id"]),
                name=page.get("name") or str(page["id"]),
                access_token=page["access_token"],
                kind="page",
                settings={
                    "user_token_expires_at": user_expiry.isoformat() if user_expiry else None
                },
            )
            for page in pages
            if page.get("access_token")
        ]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        self.call(
            "DELETE",
            self.url(f"/{GRAPH_VERSION}/me/permissions"),
            "the revoke call",
            params={"access_token": identity_token},
        )
        return True

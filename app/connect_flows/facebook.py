"""Facebook Login for Pages: code → user token → long-lived user token → the Pages the
user granted, each with its own Page token (no expiry). Several: the user picks.

Instagram through Facebook Login (`oauth/instagram.py`) takes the same steps and keeps
the Pages that have an Instagram professional account linked."""

from __future__ import annotations

from typing import Any

from app.oauth import (
    ClientApp,
    ConnectedIdentity,
    OAuthError,
    OAuthFlow,
    expires_at,
    register_flow,
)
from app.platforms import GRAPH_VERSION


class FacebookLoginFlow(OAuthFlow):
    """What every Facebook Login flow shares: the dialog, the two token exchanges and
    the Page listing."""

    hosts = {"authorize": "www.facebook.com", "api": "graph.facebook.com"}
    scope_separator = ","
    offers_choice = True
    authorize_path = ("authorize", f"/{GRAPH_VERSION}/dialog/oauth")

    def long_lived_user_token(self, client: ClientApp, code: str) -> dict[str, Any]:
        """code → short-lived user token → long-lived user token (fb_exchange_token)."""
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
        return self.call(
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

    def granted_pages(self, user_token: str, fields: str) -> list[dict[str, Any]]:
        """GET /me/accounts: the Pages the user granted, each with a Page token. One
        fetched with a long-lived user token does not expire."""
        pages = (
            self.call(
                "GET",
                self.url(f"/{GRAPH_VERSION}/me/accounts"),
                "listing the Pages",
                params={"fields": fields, "access_token": user_token},
            ).get("data")
            or []
        )
        return [page for page in pages if isinstance(page, dict) and page.get("access_token")]


@register_flow
class FacebookFlow(FacebookLoginFlow):
    platform = "facebook"
    scopes = ("pages_show_list", "pages_manage_posts", "pages_read_engagement", "publish_video")
    has_revoke = True

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        long_lived = self.long_lived_user_token(client, code)
        user_expiry = expires_at(long_lived.get("expires_in"))
        pages = self.granted_pages(long_lived["access_token"], "id,name,access_token")
        if not pages:
            raise OAuthError("no_accounts", "facebook: the user granted no Page")
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
        ]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        self.call(
            "DELETE",
            self.url(f"/{GRAPH_VERSION}/me/permissions"),
            "the revoke call",
            params={"access_token": identity_token},
        )
        return True

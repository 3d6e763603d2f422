"""Instagram's two connect flows (docs/onboarding.md):

- Instagram Login (the default): the Instagram user's own long-lived token, used on
  graph.instagram.com and refreshed with ig_refresh_token.
- Facebook Login (`login: "facebook"`): Crier's Facebook app, a long-lived Facebook user
  token, then the Pages the user granted; each Page with an Instagram professional
  account linked yields that account, which publishes on graph.facebook.com with the
  Page's token (no expiry, so nothing to refresh). This is how most business accounts
  managed by agencies are connected.
"""

from __future__ import annotations

from typing import Any

from app.connect_flows._meta_login import MetaLoginFlow
from app.connect_flows.facebook import FacebookLoginFlow
from app.oauth import ClientApp, ConnectedIdentity, OAuthError, expires_at, register_flow
from app.platforms import FACEBOOK_LOGIN, GRAPH_VERSION, INSTAGRAM_LOGIN


@register_flow
class InstagramFlow(MetaLoginFlow):
    platform = "instagram"
    hosts = {
        "authorize": "www.instagram.com",
        "oauth": "api.instagram.com",
        "api": "graph.instagram.com",
    }
    scopes = ("instagram_business_basic", "instagram_business_content_publish")
    authorize_path = ("authorize", "/oauth/authorize")
    exchange_grant = "ig_exchange_token"
    me_path = f"/{GRAPH_VERSION}/me"
    me_fields = "user_id,username"
    id_field = "user_id"
    kind = "professional_account"
    # An account that came through Facebook Login before drops its Page on reconnecting.
    identity_settings = {
        "login": INSTAGRAM_LOGIN,
        "page_id": None,
        "page_name": None,
        "user_token_expires_at": None,
    }


@register_flow
class InstagramFacebookFlow(FacebookLoginFlow):
    platform = "instagram"
    login = FACEBOOK_LOGIN
    app_platform = "facebook"
    # pages_show_list lists the Pages (and their linked accounts); business_management is
    # needed for Pages the user manages through a Business Manager, as agencies do.
    scopes = (
        "instagram_basic",
        "instagram_content_publish",
        "pages_show_list",
        "pages_read_engagement",
        "business_management",
    )
    # The grant is the Facebook user's, covering their other Pages and accounts too:
    # removing one Instagram account must not revoke it. The token is forgotten instead.
    has_revoke = False
    page_fields = "id,name,access_token,instagram_business_account{id,username,name}"

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        long_lived = self.long_lived_user_token(client, code)
        user_expiry = expires_at(long_lived.get("expires_in"))
        pages = self.granted_pages(long_lived["access_token"], self.page_fields)
        identities = [
            identity
            for page in pages
            if (identity := self._linked_account(page, user_expiry)) is not None
        ]
        if not identities:
            raise OAuthError(
                "no_instagram_account",
                "None of the Facebook Pages granted has an Instagram professional account "
                "linked to it: link one in the Page's settings (or in Instagram, under "
                "Accounts Center), then connect again.",
            )
        return identities

    @staticmethod
    def _linked_account(page: dict[str, Any], user_expiry: Any) -> ConnectedIdentity | None:
        """The Instagram professional account linked to this Page, if any; it publishes
        with the Page's token."""
        account = page.get("instagram_business_account")
        if not isinstance(account, dict) or not account.get("id"):
            return None
        external_id = str(account["id"])
        username = account.get("username")
        return ConnectedIdentity(
            external_id=external_id,
            name=f"@{username}" if username else str(account.get("name") or external_id),
            access_token=page["access_token"],
            kind="professional_account",
            settings={
                "login": FACEBOOK_LOGIN,
                "page_id": str(page["id"]),
                "page_name": page.get("name"),
                "user_token_expires_at": user_expiry.isoformat() if user_expiry else None,
            },
        )

"""WordPress.com (and Jetpack sites): OAuth 2 at public-api.wordpress.com. The consent
grants one blog by default (a per-blog token, which does not expire and has no refresh);
the token answer names it (`blog_id`, `blog_url`). The account is the blog, by its
address, so a Jetpack site already connected with an application password is the same
account; it publishes through `/wp/v2/sites/{blog_id}` with the token as a Bearer.

A link asks for this sign-in with `login: "wordpress.com"`; a link without one opens the
application-password page, which offers it too while Crier's WordPress.com app
(CRIER_WORDPRESS_CLIENT_ID / _CLIENT_SECRET) is set."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from app.credentials import wordpress_site
from app.oauth import ClientApp, ConnectedIdentity, OAuthError, OAuthFlow, register_flow
from app.platforms import WORDPRESS_COM_LOGIN

API_HOST = "public-api.wordpress.com"


def blog_of(token: dict[str, Any]) -> str | None:
    """The blog a per-blog token is for; None for a global token (no blog, or `0`)."""
    blog = str(token.get("blog_id") or "").strip()
    return blog if blog and blog != "0" else None


@register_flow
class WordPressComFlow(OAuthFlow):
    platform = "wordpress"
    login = WORDPRESS_COM_LOGIN
    hosts = {"authorize": API_HOST, "api": API_HOST}
    # No scope: the default grant is one blog, the one the user picks on the consent.
    scopes = ()
    authorize_path = ("authorize", "/oauth2/authorize")

    def authorize_params(
        self, client: ClientApp, state: str, code_challenge: str | None
    ) -> dict[str, str]:
        params = super().authorize_params(client, state, code_challenge)
        params.pop("scope", None)
        return params

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token = self.exchange_code(self.url("/oauth2/token"), client, code)
        blog_id = blog_of(token)
        if blog_id is None or not token.get("access_token"):
            raise OAuthError("no_accounts", "WordPress.com granted no blog.")
        access = str(token["access_token"])
        site = self.call(
            "GET",
            self.url(f"/rest/v1.1/sites/{blog_id}"),
            "reading the blog",
            headers={"Authorization": f"Bearer {access}"},
        )
        address = wordpress_site(str(site.get("URL") or token.get("blog_url") or ""))
        if address is None:
            raise OAuthError("platform_error", "WordPress.com did not name the blog's address.")
        host = urlsplit(address).netloc
        return [
            ConnectedIdentity(
                external_id=address,
                name=str(site.get("name") or host),
                access_token=access,
                kind="blog",
                # `user_id` is a self-hosted site's (its application password's user).
                settings={"blog_id": blog_id, "user_id": None},
            )
        ]

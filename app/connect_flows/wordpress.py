"""WordPress (self-hosted): the site URL, a user name and an application password
(Users → Profile → Application Passwords, WordPress 5.6+), entered on Crier's connect
page and checked with GET /wp-json/wp/v2/users/me before the account is saved. While
Crier's WordPress.com app is set, the page also offers that sign-in (wordpress_com.py)."""

from __future__ import annotations

from base64 import b64encode
from urllib.parse import urlsplit

import httpx

from app.config import Settings
from app.credentials import wordpress_site
from app.oauth import (
    TIMEOUT,
    ConnectedIdentity,
    CredentialField,
    CredentialFlow,
    OAuthError,
    register_credential_flow,
)
from app.platforms import WORDPRESS_COM_LOGIN
from app.services.outbound import UnsafeURLError, safe_stream

USERS_ME = "/wp-json/wp/v2/users/me"


def credential_of(user: str, application_password: str) -> str:
    """The account's token: `user:application-password`, the password's spaces removed."""
    return f"{user.strip()}:{''.join(application_password.split())}"


@register_credential_flow
class WordPressFlow(CredentialFlow):
    platform = "wordpress"
    # A self-hosted site: its address is what the client enters.
    hosts: dict[str, str] = {}
    why = (
        "A WordPress site has no OAuth consent: create an application password in the "
        "site's admin under Users → Profile → Application Passwords, then enter it here "
        "with your user name"
    )
    fields = (
        CredentialField("site_url", "Site address", "e.g. https://blog.example.com"),
        CredentialField("username", "User name"),
        CredentialField(
            "application_password",
            "Application password",
            "WordPress 5.6 or later; it is checked at the site and stored encrypted",
            secret=True,
        ),
    )
    oauth_login = WORDPRESS_COM_LOGIN
    oauth_offer = "A blog on WordPress.com (or a site connected to it with Jetpack)?"
    oauth_action = "Sign in with WordPress.com"

    @classmethod
    def missing_setting(cls, settings: Settings) -> str | None:
        return None  # each site is the client's own: nothing to configure here

    def site_url(self, site: str, path: str) -> str:
        """`{site}{path}`, or `{CRIER_PLATFORM_BASE_URL}/wordpress{path}` when set."""
        return f"{self.base_url}/{self.platform}{path}" if self.base_url else f"{site}{path}"

    def verify(self, values: dict[str, str]) -> list[ConnectedIdentity]:
        site = wordpress_site(values.get("site_url", ""))
        user = values.get("username", "").strip()
        password = values.get("application_password", "")
        if site is None:
            raise OAuthError(
                "invalid_site", "Enter the site's address, e.g. https://blog.example.com."
            )
        if not user or not password.strip():
            raise OAuthError(
                "invalid_credentials", "Enter the user name and the application password."
            )
        credential = credential_of(user, password)
        me = self.users_me(site, credential)
        host = urlsplit(site).netloc
        return [
            ConnectedIdentity(
                external_id=site,
                name=f"{me.get('name') or user} on {host}",
                access_token=credential,
                kind="site",
                # No `blog_id`: a site that was connected through WordPress.com and comes
                # back with an application password publishes on its own REST API again.
                settings={"user_id": me.get("id"), "blog_id": None},
            )
        ]

    def users_me(self, site: str, credential: str) -> dict[str, object]:
        """The user the credential signs in as, or an OAuthError saying why not. The site
        is reached under the outbound rules (public addresses, allowed ports, no
        redirects): the address is the user's to type."""
        basic = b64encode(credential.encode()).decode()
        url = self.site_url(site, f"{USERS_ME}?context=edit")
        headers = {"Authorization": f"Basic {basic}"}
        try:
            if self.base_url:
                response = self.http.get(url, headers=headers, timeout=TIMEOUT)
            else:
                with safe_stream(
                    self.http,
                    "GET",
                    url,
                    allow_private=self.settings.allow_private_urls,
                    ports=self.settings.outbound_ports,
                    deadline=self.settings.oauth_deadline,
                    headers=headers,
                    timeout=TIMEOUT,
                ) as response:
                    response.read()
        except UnsafeURLError as exc:
            raise OAuthError("site_refused", str(exc)) from exc
        except httpx.HTTPError as exc:
            raise OAuthError(
                "platform_unreachable", f"The site could not be reached: {exc}"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 401:
            raise OAuthError(
                "invalid_credentials",
                "WordPress refused the user name or application password"
                + (f" ({body.get('code')})" if isinstance(body, dict) else "")
                + ".",
            )
        if not response.is_success or not isinstance(body, dict) or "id" not in body:
            raise OAuthError(
                "rest_unavailable",
                f"The site did not answer as the WordPress REST API (HTTP {response.status_code}); "
                "check the address and that the REST API is enabled.",
            )
        return body

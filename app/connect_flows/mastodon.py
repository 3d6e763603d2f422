"""Mastodon: any instance. The link's page asks for the instance first; Crier registers
its app there (POST /api/v1/apps, kept per instance), then runs the authorization code
flow with PKCE on that instance. Tokens do not expire and have no refresh.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from app.oauth import ClientApp, ConnectedIdentity, OAuthError, OAuthFlow, register_flow

CLIENT_NAME = "Crier"
_HOST_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$", re.IGNORECASE)


def normalise_instance(given: str) -> str:
    """`https://host[:port]` from what a user types (`mastodon.social`, a profile URL)."""
    text = given.strip()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not _HOST_RE.match(host) or "@" in parts.netloc:
        raise OAuthError("invalid_instance", "Give the address of your Mastodon server.")
    port = f":{parts.port}" if parts.port else ""
    return f"https://{parts.hostname.lower()}{port}"


def instance_limits(body: dict[str, Any]) -> dict[str, int]:
    """The text and media limits GET /api/v2/instance reports."""
    config = body.get("configuration") or {}
    statuses = config.get("statuses") or {}
    media = config.get("media_attachments") or {}
    found = {
        "max_characters": statuses.get("max_characters"),
        "max_media_attachments": statuses.get("max_media_attachments"),
        "image_size_limit": media.get("image_size_limit"),
        "video_size_limit": media.get("video_size_limit"),
        "description_limit": media.get("description_limit"),
    }
    return {k: int(v) for k, v in found.items() if isinstance(v, int)}


@register_flow
class MastodonFlow(OAuthFlow):
    platform = "mastodon"
    hosts: dict[str, str] = {}
    scopes = ("read:accounts", "read:statuses", "write:statuses", "write:media")
    pkce = True
    has_revoke = True
    per_instance = True
    authorize_path = ("authorize", "/oauth/authorize")

    def register_app(self, redirect_uri: str) -> tuple[ClientApp, dict[str, Any]]:
        app = self.call(
            "POST",
            self.url("/api/v1/apps"),
            "registering Crier on the instance",
            json={
                "client_name": CLIENT_NAME,
                "redirect_uris": redirect_uri,
                "scopes": " ".join(self.scopes),
                "website": self.settings.public_base_url,
            },
        )
        try:
            limits = instance_limits(
                self.call("GET", self.url("/api/v2/instance"), "reading the instance")
            )
        except OAuthError:
            limits = {}  # an older server: the defaults apply
        return ClientApp(str(app["client_id"]), str(app["client_secret"]), redirect_uri), limits

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        verifier = {"code_verifier": code_verifier} if code_verifier else {}
        token = self.exchange_code(
            self.url("/oauth/token"), client, code, scope=" ".join(self.scopes), **verifier
        )
        access = str(token["access_token"])
        me = self.call(
            "GET",
            self.url("/api/v1/accounts/verify_credentials"),
            "reading the account",
            headers={"Authorization": f"Bearer {access}"},
        )
        instance = self.instance or ""
        host = urlsplit(instance).hostname or ""
        try:
            limits = instance_limits(
                self.call("GET", self.url("/api/v2/instance"), "reading the instance")
            )
        except OAuthError:
            limits = {}  # an older server: the defaults apply
        username = str(me.get("username") or me.get("acct") or me["id"])
        url = str(me.get("url") or f"{instance}/@{username}")
        return [
            ConnectedIdentity(
                external_id=url,
                name=f"@{username}@{host}" if host else f"@{username}",
                access_token=access,
                kind="user",
                settings={
                    "instance": instance,
                    "account_id": str(me["id"]),
                    "username": username,
                    # The instance's own limits: intake checks texts against them.
                    "limits": limits or None,
                },
            )
        ]

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        if client is None:
            return False
        self.call(
            "POST",
            self.url("/oauth/revoke"),
            "the revoke call",
            data={
                "client_id": client.client_id,
                "client_secret": client.client_secret or "",
                "token": identity_token,
            },
        )
        return True

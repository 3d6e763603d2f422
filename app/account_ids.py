"""What an account's external id says on platforms that connect with a credential: where
the account lives and posts (Bluesky: the handle; Mastodon: the profile URL, which names
the instance). `crier accounts add` and POST /accounts check it with these."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_HANDLE_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
_DID_RE = re.compile(r"^did:(plc|web):[a-zA-Z0-9._:%-]+$")


def address_settings(platform: str, external_id: str | None) -> dict[str, str]:
    """The account settings an external id implies; ValueError says what is expected."""
    if platform == "bluesky":
        handle = (external_id or "").strip().lstrip("@").lower()
        if _DID_RE.match((external_id or "").strip()):
            return {"did": (external_id or "").strip()}
        if not _HANDLE_RE.match(handle):
            raise ValueError(
                "Bluesky accounts need the handle as external id (alice.bsky.social); "
                "the access token is an app password."
            )
        return {"handle": handle}
    if platform == "mastodon":
        parts = urlsplit((external_id or "").strip())
        username = parts.path.strip("/").removeprefix("@")
        if (
            parts.scheme != "https"
            or not parts.hostname
            or not parts.path.startswith("/@")
            or not username
            or "/" in username
        ):
            raise ValueError(
                "Mastodon accounts need the profile URL as external id "
                "(https://mastodon.social/@alice)."
            )
        port = f":{parts.port}" if parts.port else ""
        return {"instance": f"https://{parts.hostname.lower()}{port}", "username": username}
    return {}

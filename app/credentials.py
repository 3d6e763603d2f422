"""The credential forms of platforms that connect without OAuth, checked where an account
is added by hand (`crier accounts add`, POST /accounts): `--access-token` carries the
credential and `--external-id` names where the account posts.

- Telegram: the bot token, and the chat: `@channel`, a t.me link or a numeric chat id.
- Discord: the channel webhook's URL (or a bot token), and the channel id.
- Bluesky: the app password, and the handle (or DID) the account posts as.
- Mastodon: the access token, and the profile URL, which names the instance.
- WordPress: `user:application-password`, and the site's URL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_TELEGRAM_CHAT = re.compile(r"^(@[A-Za-z][A-Za-z0-9_]{3,31}|-?\d{1,20})$")
_TELEGRAM_LINK = re.compile(
    r"^(?:https?://)?(?:t\.me|telegram\.me)/([A-Za-z][A-Za-z0-9_]{3,31})/?$"
)
_TELEGRAM_TOKEN = re.compile(r"^\d+:[\w-]+$")
DISCORD_WEBHOOK_URL = re.compile(
    r"^https://(?:(?:ptb|canary)\.)?discord(?:app)?\.com/api(?:/v\d+)?/webhooks/(\d+)/([\w-]+)/?$"
)
_SNOWFLAKE = re.compile(r"^\d{5,20}$")
_HANDLE_RE = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")
_DID_RE = re.compile(r"^did:(plc|web):[a-zA-Z0-9._:%-]+$")


def telegram_chat(raw: str) -> str | None:
    """`@channel`, a numeric chat id, or a t.me link to a public chat, as a chat_id; None
    for anything else."""
    value = raw.strip()
    link = _TELEGRAM_LINK.match(value)
    if link:
        value = f"@{link.group(1)}"
    elif value and not value.startswith(("@", "-")) and not value.isdigit():
        value = f"@{value}"
    return value if _TELEGRAM_CHAT.match(value) else None


def wordpress_site(url: str) -> str | None:
    """A WordPress account's external id as its site's base URL (`https://host[/path]`,
    no trailing slash, no query), or None when it is not an http(s) URL
    (or carries a user name)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def normalise_external_id(platform: str, external_id: str | None) -> str | None:
    """The external id as the adapter reads it (a Telegram t.me link becomes @name, a
    WordPress site URL its base URL)."""
    if platform == "telegram" and external_id:
        return telegram_chat(external_id) or external_id
    if platform == "wordpress" and external_id:
        return wordpress_site(external_id) or external_id
    return external_id


def credential_problem(
    platform: str, access_token: str, external_id: str | None
) -> tuple[str, str] | None:
    """(field, message) when the credential or external id does not have the platform's
    form; None when it does (or the platform has no fixed form)."""
    token = access_token.strip()
    try:
        address_settings(platform, external_id)
    except ValueError as exc:
        return "external_id", str(exc)
    if platform == "telegram":
        if not _TELEGRAM_TOKEN.match(token):
            return "access_token", "A Telegram bot token looks like 123456789:AAH… (@BotFather)."
        if not external_id or telegram_chat(external_id) is None:
            return (
                "external_id",
                "Name the Telegram chat: @channel, a t.me link or its numeric chat id.",
            )
    if platform == "discord":
        if not external_id or not _SNOWFLAKE.match(external_id):
            return "external_id", "Name the Discord channel by its id (digits)."
        if token.startswith("http") and not DISCORD_WEBHOOK_URL.match(token):
            return (
                "access_token",
                "A Discord webhook URL looks like https://discord.com/api/webhooks/<id>/<token>.",
            )
        if not token or " " in token.removeprefix("Bot "):
            return "access_token", "Give the channel webhook's URL or a bot token."
    if platform == "wordpress":
        if wordpress_site(external_id or "") is None:
            return (
                "external_id",
                "a WordPress account's external id is its site URL, e.g. https://blog.example.com",
            )
        user, _, password = token.partition(":")
        if not user.strip() or not password.strip():
            return (
                "access_token",
                "a WordPress account's access token is `user:application-password`",
            )
    return None


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

"""What a user picks while consenting, and the consent page that asks for it.

A consent is given at once by default: the picks come from `sandbox_guild`,
`sandbox_channel` and `sandbox_blog` on the authorize URL, else the first of each. With
`POST /_faults {"<platform>": {"consent_page": true}}` the authorize URL answers a page
instead, as the platform's own does, posted back to the same URL: Discord's asks for the
server (a bot install) and the channel (a `webhook.incoming` consent), WordPress.com's for
the blog; every page has Authorize and Cancel buttons.

Each sandbox user has two Discord servers, each with a text and an announcement channel
(where a webhook or a bot can post), a voice channel and a category; and two WordPress.com
blogs.
"""

from __future__ import annotations

import hashlib
import html
from typing import Any

from flask import Response

PICKS = ("guild", "channel", "blog")
# Discord channel types a message can go to: text, announcement.
POSTABLE = (0, 5)
SERVER_NAMES = ("server", "Studio")
BLOG_NAMES = ("Journal", "Notes")


def _digits(seed: str, length: int) -> str:
    return str(int(hashlib.sha256(seed.encode()).hexdigest(), 16))[:length]


def discord_guilds(login: str) -> list[dict[str, Any]]:
    """The user's servers and their channels. The first server's `general` is the channel
    a `webhook.incoming` consent picks when nothing else is asked for."""
    guilds = []
    for n, label in enumerate(SERVER_NAMES):
        tag = "" if n == 0 else f":{n}"
        name = f"{login.title()}'s {label}" if n == 0 else f"{login.title()} {label}"
        channels = [
            ("general", 0, f"discord-channel:{login}" if n == 0 else f"dc:{login}{tag}:general"),
            ("announcements", 5, f"dc:{login}{tag}:announcements"),
            ("Lounge", 2, f"dc:{login}{tag}:voice"),
            ("Text channels", 4, f"dc:{login}{tag}:category"),
        ]
        guilds.append(
            {
                "id": "12" + _digits(f"discord-guild:{login}{tag}", 17),
                "name": name,
                "channels": [
                    {"id": "13" + _digits(seed, 17), "name": c, "type": kind, "position": i}
                    for i, (c, kind, seed) in enumerate(channels)
                ],
            }
        )
    return guilds


def wordpress_blogs(login: str) -> list[dict[str, str]]:
    """The user's WordPress.com blogs: id, name and address."""
    return [
        {
            "id": "2" + _digits(f"wpcom-blog:{login}:{n}", 8),
            "name": f"{login.title()} {label}",
            "url": f"https://{login}{'' if n == 0 else label.lower()}.wordpress.com",
        }
        for n, label in enumerate(BLOG_NAMES)
    ]


def asks(platform: str, scope: str) -> tuple[str, ...]:
    """What the consent asks the user to pick, given the scopes requested."""
    scopes = scope.replace(",", " ").split()
    if platform == "discord" and "bot" in scopes:
        return ("guild",)
    if platform == "discord" and "webhook.incoming" in scopes:
        return ("guild", "channel")
    if platform == "wordpress":
        return ("blog",)
    return ()


def resolve(platform: str, login: str, scope: str, given: dict[str, str]) -> dict[str, str] | str:
    """The picks as ids (the first of each where nothing was given), or why they do not
    do (a server, channel or blog that is not the user's)."""
    wanted = asks(platform, scope)
    picks: dict[str, str] = {}
    if "guild" in wanted:
        guilds = discord_guilds(login)
        channel_given = given.get("channel", "")
        guild_given = given.get("guild") or next(
            (g["id"] for g in guilds for c in g["channels"] if c["id"] == channel_given),
            guilds[0]["id"],
        )
        guild = next((g for g in guilds if g["id"] == guild_given), None)
        if guild is None:
            return "That server is not one you manage."
        picks["guild"] = guild["id"]
        if "channel" in wanted:
            postable = [c for c in guild["channels"] if c["type"] in POSTABLE]
            channel = next(
                (c for c in postable if c["id"] == (channel_given or postable[0]["id"])), None
            )
            if channel is None:
                return "Pick a text channel of the server picked."
            picks["channel"] = channel["id"]
    if "blog" in wanted:
        blogs = wordpress_blogs(login)
        blog = next((b for b in blogs if b["id"] == (given.get("blog") or blogs[0]["id"])), None)
        if blog is None:
            return "That blog is not yours."
        picks["blog"] = blog["id"]
    return picks


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    items = "".join(
        f"<option value='{html.escape(value)}'>{html.escape(text)}</option>"
        for value, text in options
    )
    return f"<p><label>{label}<br><select id='{name}' name='{name}'>{items}</select></label></p>"


def page(
    platform: str, login: str, client_id: str, scope: str, action: str, error: str = ""
) -> Response:
    """The consent page: what the app asks for, the picks, Authorize and Cancel."""
    fields = ""
    wanted = asks(platform, scope)
    if "guild" in wanted:
        guilds = discord_guilds(login)
        fields += _select("guild", "Server", [(g["id"], g["name"]) for g in guilds])
        if "channel" in wanted:
            channels = [
                (c["id"], f"{g['name']} · #{c['name']}")
                for g in guilds
                for c in g["channels"]
                if c["type"] in POSTABLE
            ]
            fields += _select("channel", "Channel", channels)
    if "blog" in wanted:
        blogs = wordpress_blogs(login)
        fields += _select("blog", "Blog", [(b["id"], f"{b['name']} ({b['url']})") for b in blogs])
    problem = f"<p role='alert' id='error'>{html.escape(error)}</p>" if error else ""
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(platform)} consent (sandbox)</title></head><body>"
        f"<h1>Authorize {html.escape(client_id)}</h1>"
        f"<p>Signed in as <b>{html.escape(login)}</b>. The app asks for: "
        f"<code>{html.escape(scope or 'access to one blog')}</code>.</p>{problem}"
        f"<form method='post' action='{html.escape(action)}'>{fields}"
        "<p><button type='submit' name='decision' value='approve' id='approve'>Authorize"
        "</button> <button type='submit' name='decision' value='deny' id='deny'>Cancel"
        "</button></p></form></body></html>"
    )
    return Response(body, status=400 if error else 200, mimetype="text/html")

"""The sandbox's consent side where the user picks something: the page (`consent_page`)
with Discord's server and channel and WordPress.com's blog, its Cancel button and wrong
picks; and the picks given on the authorize URL when the consent is given at once."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from sandbox import consent

CALLBACK = "https://crier.example/oauth/discord/callback"


def _authorize(platform: str, scope: str, **extra: str) -> str:
    query = {
        "client_id": "crier",
        "redirect_uri": CALLBACK,
        "response_type": "code",
        "state": "s",
        "scope": scope,
        **extra,
    }
    return f"/{platform}/oauth2/authorize?{urlencode(query)}"


def _back(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def _token(sandbox: httpx.Client, code: str) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    answer = sandbox.post("/discord/api/oauth2/token", data=form, auth=("crier", "s"))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_discord_page_asks_for_server_and_channel(sandbox: httpx.Client) -> None:
    sandbox.post("/_faults", json={"discord": {"consent_page": True}})
    url = _authorize("discord", "webhook.incoming")
    page = sandbox.get(url)
    assert page.status_code == 200 and "id='approve'" in page.text
    own, studio = consent.discord_guilds("sandbox")
    offered = re.findall(r"<option value='(\d+)'", page.text)
    texts = [c for g in (own, studio) for c in g["channels"] if c["type"] in (0, 5)]
    assert offered == [own["id"], studio["id"], *[c["id"] for c in texts]]

    # A channel of the other server: the page again, with the reason.
    wrong = sandbox.post(
        url,
        data={"guild": own["id"], "channel": studio["channels"][0]["id"], "decision": "approve"},
    )
    assert wrong.status_code == 400 and "id='error'" in wrong.text
    assert _back(sandbox.post(url, data={"decision": "deny"}))["error"] == "access_denied"

    picked = studio["channels"][1]
    back = _back(
        sandbox.post(
            url, data={"guild": studio["id"], "channel": picked["id"], "decision": "approve"}
        )
    )
    hook = _token(sandbox, back["code"])["webhook"]
    assert (hook["channel_id"], hook["guild_id"]) == (picked["id"], studio["id"])


def test_a_bot_consent_names_the_server_and_the_bot_joins_it(sandbox: httpx.Client) -> None:
    _, studio = consent.discord_guilds("sandbox")
    bot = {"Authorization": "Bot any-bot"}
    assert (
        sandbox.get(f"/discord/api/v10/guilds/{studio['id']}/channels", headers=bot).json()["code"]
        == 50001
    )

    back = _back(
        sandbox.get(_authorize("discord", "bot", permissions="3072", sandbox_guild=studio["id"]))
    )
    assert (back["guild_id"], back["permissions"]) == (studio["id"], "3072")
    answer = _token(sandbox, back["code"])
    assert answer["guild"]["id"] == studio["id"] and "webhook" not in answer

    listed = sandbox.get(f"/discord/api/v10/guilds/{studio['id']}/channels", headers=bot)
    assert [c["id"] for c in listed.json()] == [c["id"] for c in studio["channels"]]
    channel = sandbox.get(f"/discord/api/v10/channels/{studio['channels'][0]['id']}", headers=bot)
    assert channel.json()["guild_id"] == studio["id"]
    not_yours = _back(sandbox.get(_authorize("discord", "bot", sandbox_guild="12345")))
    assert not_yours["error"] == "invalid_request"


def test_a_voice_channel_cannot_take_a_webhook(sandbox: httpx.Client) -> None:
    own, _ = consent.discord_guilds("sandbox")
    voice = next(c for c in own["channels"] if c["type"] == 2)
    back = _back(
        sandbox.get(_authorize("discord", "webhook.incoming", sandbox_channel=voice["id"]))
    )
    assert back["error"] == "invalid_request"


def test_the_wordpress_com_page_asks_for_the_blog(sandbox: httpx.Client) -> None:
    sandbox.post("/_faults", json={"wordpress": {"consent_page": True}})
    _, notes = consent.wordpress_blogs("sandbox")
    url = _authorize("wordpress", "")
    assert "id='blog'" in sandbox.get(url).text
    back = _back(sandbox.post(url, data={"blog": notes["id"], "decision": "approve"}))
    form = {
        "client_id": "crier",
        "redirect_uri": CALLBACK,
        "code": back["code"],
        "grant_type": "authorization_code",
    }
    token = sandbox.post("/wordpress/oauth2/token", data=form).json()
    assert (token["blog_id"], token["blog_url"]) == (notes["id"], notes["url"])
    site = sandbox.get(
        f"/wordpress/rest/v1.1/sites/{notes['id']}",
        headers={"Authorization": f"Bearer {token['access_token']}"},
    )
    assert site.json() == {"ID": int(notes["id"]), "name": notes["name"], "URL": notes["url"]}

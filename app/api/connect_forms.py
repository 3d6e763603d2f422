"""The connect link's own pages: the page frame, the credential form of a platform without
a consent page (Telegram, Bluesky, a self-hosted WordPress site), and the server question
of a platform whose accounts live on servers of their own (Mastodon: which instance).
Small HTML, no scripts, posted back to the link's URL."""

from __future__ import annotations

import html
from urllib.parse import quote

from flask import Response

from app.oauth import CredentialFlow
from app.platforms import PLATFORMS


def page(title: str, body: str, status: int = 200) -> Response:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem;color:#1a1a1a}label{display:block;padding:.6rem;border:1px solid #ccc;"
        "border-radius:6px;margin:.5rem 0}button{padding:.6rem 1.2rem;font-size:1rem}"
        "small{color:#666}input[type=text],input[type=password],input[type=url]{width:100%;"
        "box-sizing:border-box;padding:.4rem;margin:.3rem 0}.error{color:#a00}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(document, status=status, mimetype="text/html")


def _label(platform: str) -> str:
    rules = PLATFORMS.get(platform)
    return rules.label if rules else platform


def _error(message: str | None) -> str:
    return f"<p class='error' id='error'>{html.escape(message)}</p>" if message else ""


def instance_form(token: str, platform: str, given: str = "", error: str | None = None) -> Response:
    body = (
        f"<p>Which {html.escape(_label(platform))} server is your account on? Give its "
        "address (for example <code>mastodon.social</code>); you then sign in there and "
        "allow Crier to post for you.</p>"
        f"{_error(error)}"
        f"<form method='post' action='/connect/{html.escape(token)}'>"
        "<label>Server<input type='text' name='instance' id='instance' "
        f"value='{html.escape(given)}' required></label>"
        "<p><button type='submit' id='continue'>Continue</button></p></form>"
    )
    return page(f"Connect your {_label(platform)} account", body, 400 if error else 200)


def credential_form(
    token: str,
    platform: str,
    flow: type[CredentialFlow],
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
    offer_oauth: bool = False,
) -> Response:
    """Crier's own connect page for a platform without a consent page. `secret` inputs are
    masked and never filled in again after a refusal. With `offer_oauth`, the page also
    offers the flow's OAuth sign-in (a WordPress.com blog beside a self-hosted site)."""
    inputs = "".join(
        f"<label for='{html.escape(f.name)}'>{html.escape(f.label)}<br>"
        f"<input id='{html.escape(f.name)}' name='{html.escape(f.name)}' "
        f"type='{'password' if f.secret else 'text'}' autocomplete='off'"
        f"{' required' if f.required else ''} "
        f"value='{'' if f.secret else html.escape((values or {}).get(f.name, ''))}'><br>"
        f"<small>{html.escape(f.hint)}</small></label>"
        for f in flow.fields
    )
    problem = f"<p role='alert' id='error'>{html.escape(error)}</p>" if error else ""
    offer = ""
    if offer_oauth and flow.oauth_login:
        target = f"/connect/{html.escape(token)}?login={quote(flow.oauth_login)}"
        offer = (
            f"<p>{html.escape(flow.oauth_offer)} "
            f"<a id='oauth' href='{target}'>{html.escape(flow.oauth_action)}</a>"
            "</p><p>Otherwise:</p>"
        )
    body = (
        f"{offer}<p>{html.escape(flow.why)}.</p>{flow.intro}{problem}"
        f"<form method='post' action='/connect/{html.escape(token)}'>{inputs}"
        "<p><button type='submit' id='connect'>Connect</button></p></form>"
    )
    response = page(f"Connect a {_label(platform)} account", body, status)
    response.headers["Cache-Control"] = "no-store"
    return response

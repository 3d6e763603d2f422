"""The connect pages' HTML: the small page every browser route answers with, and the
form of a platform whose accounts connect with a credential the user types (a WordPress
site address, user name and application password) rather than a consent elsewhere."""

from __future__ import annotations

import html

from flask import Response

from app.models import ConnectLink
from app.oauth import OAuthFlow
from app.platforms import PLATFORMS


def page(title: str, body: str, status: int = 200) -> Response:
    document = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<meta name='referrer' content='no-referrer'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;"
        "padding:0 1rem;color:#1a1a1a}label{display:block;padding:.6rem;border:1px solid #ccc;"
        "border-radius:6px;margin:.5rem 0}button{padding:.6rem 1.2rem;font-size:1rem}"
        "input[type=text],input[type=url],input[type=password]{display:block;width:100%;"
        "margin-top:.3rem;padding:.4rem;box-sizing:border-box}"
        "small{color:#666}.error{color:#a00}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(document, status=status, mimetype="text/html")


def credential_page(
    link: ConnectLink,
    token: str,
    flow: type[OAuthFlow],
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The form posting back to the link itself; entered values (never a password) are
    kept when the platform refused them, with the reason."""
    values = values or {}
    fields = getattr(flow, "form_fields", ())
    inputs = "".join(
        f"<label for='{html.escape(f.name)}'>{html.escape(f.label)}"
        f"<input id='{html.escape(f.name)}' name='{html.escape(f.name)}' "
        f"type='{html.escape(f.input_type)}' placeholder='{html.escape(f.placeholder)}' "
        f"value='{html.escape('' if f.input_type == 'password' else values.get(f.name, ''))}' "
        "required autocomplete='off'></label>"
        for f in fields
    )
    label = PLATFORMS[link.platform].label if link.platform in PLATFORMS else link.platform
    problem = f"<p class='error' id='error'>{html.escape(error)}</p>" if error else ""
    body = (
        f"<p>{html.escape(getattr(flow, 'form_help', ''))}</p>{problem}"
        f"<form method='post' action='/connect/{html.escape(token)}'>{inputs}"
        "<p><button type='submit' id='connect'>Connect</button></p></form>"
    )
    response = page(f"Connect {label}", body, status)
    response.headers["Cache-Control"] = "no-store"
    return response

"""The platforms' side of the connect flows: consent pages, token, refresh and revoke
endpoints, and who a token belongs to (the user, their Pages and organisations).

Each authorize page consents at once and sends the browser back with a code; with
`?sandbox_deny=1` it sends `error=access_denied` instead, and with the platform's
`consent_page` fault on it answers a page to fill in (sandbox/consent.py, which also holds
what a user picks: a Discord server and channel, a WordPress.com blog).
`sandbox_user=<login>` picks the sandbox user (default "sandbox"); `sandbox_pages=<n>` how
many Facebook Pages the user grants (default 2); `sandbox_instagram=<k>` how many of those
(the first k; default all) have an Instagram professional account linked, which
/me/accounts shows when the grant has instagram_basic and the call asks for
`instagram_business_account`. The first Page's account is the user's own Instagram account
(the one Instagram Login connects), so both logins reach the same account.
`POST /_faults {"<platform>": {"oauth_error_status": 500}}` makes the token endpoint fail.
Paths are the platforms' real ones under `/<platform>`; the routes beyond the consent are
in sandbox/oauth_routes.py.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, redirect, request

from sandbox import consent
from sandbox.core import FaultStyle, SandboxState, inject_faults, json_response

CODE_SECONDS = 600
GRAPH = "v25.0"

# The consent page of each platform, and what it calls the client id.
AUTHORIZE = {
    "x": ("/i/oauth2/authorize", "client_id", True),
    "tiktok": ("/v2/auth/authorize/", "client_key", True),
    "youtube": ("/o/oauth2/v2/auth", "client_id", False),
    "linkedin": ("/oauth/v2/authorization", "client_id", False),
    "facebook": (f"/{GRAPH}/dialog/oauth", "client_id", False),
    "instagram": ("/oauth/authorize", "client_id", False),
    "threads": ("/oauth/authorize", "client_id", False),
    "discord": ("/oauth2/authorize", "client_id", False),
    # PKCE is optional on Mastodon (4.3 and later take it).
    "mastodon": ("/oauth/authorize", "client_id", False),
    "pinterest": ("/oauth/", "client_id", False),
    # WordPress.com (the self-hosted sites of /wordpress take application passwords).
    "wordpress": ("/oauth2/authorize", "client_id", False),
}
# How long an access token lives, per platform (seconds; None: no expiry).
ACCESS_SECONDS = {
    "x": 7200,
    "tiktok": 7200,
    "youtube": 3599,
    "linkedin": 5_184_000,
    "facebook": 5_183_944,
    "instagram": 3600,
    "threads": 3600,
    "discord": 604_800,
    "mastodon": None,
    "pinterest": 2_592_000,
    "wordpress": None,
}


def digits(seed: str, length: int) -> str:
    number = int(hashlib.sha256(seed.encode()).hexdigest(), 16)
    return str(number)[:length]


def identity(platform: str, login: str) -> dict[str, Any]:
    """The sandbox user `login` as the platform sees them: stable ids from the login."""
    if platform == "x":
        return {"id": str(10**18 + int(digits(f"x:{login}", 18))), "username": login}
    if platform == "tiktok":
        return {"open_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tiktok-user:{login}"))}
    if platform == "youtube":
        raw = base64.urlsafe_b64encode(hashlib.sha256(f"yt:{login}".encode()).digest()).decode()
        return {"channel": "UC" + raw[:22], "title": f"{login} channel"}
    if platform == "linkedin":
        return {
            "sub": "li" + digits(f"li:{login}", 8),
            "name": f"{login.title()} Member",
            "orgs": [{"id": digits(f"li-org:{login}", 8), "name": f"{login.title()} Inc."}],
        }
    if platform == "facebook":
        return {"id": digits(f"fb:{login}", 15), "name": f"{login.title()}"}
    if platform == "instagram":
        return {"user_id": "17841" + digits(f"ig:{login}", 11), "username": login}
    if platform in ("mastodon", "pinterest"):
        head, key = ("1", "md") if platform == "mastodon" else ("", "pin")
        return {"id": head + digits(f"{key}:{login}", 18 - len(head)), "username": login}
    return {"id": digits(f"th:{login}", 17), "username": login}


PAGE_NAMES = ("Bakery", "Books", "Bikes", "Boats", "Beans")


def facebook_pages(login: str, count: int) -> list[dict[str, str]]:
    return [
        {
            "id": "1" + digits(f"fb-page:{login}:{n}", 14),
            "name": f"{login.title()} {PAGE_NAMES[n]}",
        }
        for n in range(count)
    ]


def linked_instagram(login: str, n: int) -> dict[str, str]:
    """The Instagram professional account linked to the user's Page number n: their own
    account for the first Page, one per business for the others."""
    if n == 0:
        own = identity("instagram", login)
        return {"id": own["user_id"], "username": own["username"], "name": login.title()}
    username = f"{login}_{PAGE_NAMES[n].lower()}"
    return {
        "id": "17841" + digits(f"ig-page:{login}:{n}", 11),
        "username": username,
        "name": f"{login.title()} {PAGE_NAMES[n]}",
    }


def grants(state: SandboxState) -> dict[str, Any]:
    data = state.store("_oauth")
    data.setdefault("codes", {})
    data.setdefault("tokens", {})
    data.setdefault("revoked", [])
    return data


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _back(redirect_uri: str, **params: str) -> Response:
    joiner = "&" if urlsplit(redirect_uri).query else "?"
    return redirect(redirect_uri + joiner + urlencode(params))


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


def issue(state: SandboxState, platform: str, login: str, extra: dict[str, Any]) -> dict[str, Any]:
    """New access and refresh tokens for the user, remembered as theirs; the platform's
    own stores learn the token's owner too (its publishing endpoints read them)."""
    access = f"{platform}-at-{secrets.token_urlsafe(18)}"
    refresh = f"{platform}-rt-{secrets.token_urlsafe(18)}"
    who = identity(platform, login)
    with state.lock:
        tokens = grants(state)["tokens"]
        grant = {"platform": platform, "login": login, **extra}
        tokens[access] = tokens[refresh] = grant  # one grant: revoking either ends both
        own = state.store(platform)
        if platform == "x":
            users = own.setdefault("token_users", {})
            users[access] = users[refresh] = who["id"]
        elif platform == "tiktok":
            known = own.setdefault("tokens", {})
            known[access] = known[refresh] = who["open_id"]
        elif platform == "youtube":
            channels = own.setdefault("channels", {})
            channels[access] = channels[refresh] = who["channel"]
    return {"access_token": access, "refresh_token": refresh, "identity": who}


def owner(state: SandboxState, token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    with state.lock:
        data = grants(state)
        if token in data["revoked"]:
            return None
        return data["tokens"].get(token)


def revoked(state: SandboxState, token: str | None) -> bool:
    with state.lock:
        return bool(token) and token in grants(state)["revoked"]


def exchange_code(state: SandboxState, platform: str, values: Any) -> dict[str, Any] | Response:
    """The authorization-code grant: the code must be fresh, for this client and
    redirect_uri, and match the PKCE challenge where one was sent. Returns the user's
    new tokens, or the platform's error answer."""
    status = state.faults_for(platform).oauth_error_status
    if status:
        return _oauth_error(
            "server_error", "The sandbox was told to fail (oauth_error_status).", status
        )
    code = values.get("code", "")
    client_param = AUTHORIZE[platform][1]
    with state.lock:
        grant = grants(state)["codes"].get(code)
        if grant is None or grant["used"] or grant["expires"] < time.time():
            return _oauth_error("invalid_grant", "The authorization code is invalid or expired.")
        if values.get("redirect_uri") != grant["redirect_uri"]:
            return _oauth_error("invalid_grant", "redirect_uri does not match the authorize call.")
        if values.get(client_param) and values.get(client_param) != grant["client_id"]:
            return _oauth_error("invalid_client", "The code was issued to another client.")
        if grant["challenge"]:
            verifier = values.get("code_verifier", "")
            if not verifier or _challenge(verifier) != grant["challenge"]:
                return _oauth_error(
                    "invalid_request",
                    "Value passed for the code verifier did not match the code challenge.",
                )
        grant["used"] = True
    return issue(state, platform, grant["login"], grant_extras(grant))


def grant_extras(grant: dict[str, Any]) -> dict[str, Any]:
    """What a grant carries from the consent to the tokens made from it (Facebook's Pages,
    the server, channel or blog picked)."""
    return {k: grant[k] for k in ("pages", "instagram", "scope", "picks") if k in grant}


def exchange_response(state: SandboxState, platform: str) -> Response:
    """The token endpoints' answer to grant_type=authorization_code (X, TikTok, YouTube,
    LinkedIn call this from their existing token routes)."""
    issued = exchange_code(state, platform, request.form)
    if isinstance(issued, Response):
        return issued
    body: dict[str, Any] = {
        "access_token": issued["access_token"],
        "refresh_token": issued["refresh_token"],
        "expires_in": ACCESS_SECONDS[platform],
        "token_type": "bearer",
    }
    if platform == "tiktok":
        body["open_id"] = issued["identity"]["open_id"]
        body["refresh_expires_in"] = 15_552_000
        body["scope"] = "user.info.basic,video.publish,video.upload"
    if platform == "linkedin":
        body["refresh_token_expires_in"] = 31_536_000
    return json_response(body)


def token_endpoint(
    state: SandboxState,
    platform: str,
    style: FaultStyle,
    refresh: Callable[[str], Response],
    unsupported: Callable[[], Response],
) -> Response:
    """A token route (X, TikTok, YouTube, LinkedIn): the injected faults first, then a
    code exchange answered here; a refresh is the platform's own (`refresh` gets the
    refresh token, maybe empty), and any other grant gets its `unsupported` answer."""
    fault = inject_faults(state, platform, style, None, publishing=False)
    if fault is not None:
        return fault
    grant = request.form.get("grant_type")
    if grant == "authorization_code":
        return exchange_response(state, platform)
    if grant != "refresh_token":
        return unsupported()
    return refresh(request.form.get("refresh_token", ""))


def unsupported_grant() -> Response:
    """X's and LinkedIn's answer to a grant other than a code or a refresh."""
    return json_response(
        {"error": "unsupported_grant_type", "error_description": "Use refresh_token"}, 400
    )


def revoke_token(state: SandboxState, platform: str, token: str) -> None:
    """Revoke the token and the grant it belongs to."""
    with state.lock:
        data = grants(state)
        data["revoked"].append(token)
        info = data["tokens"].get(token)
        # Revoking one token of a grant revokes the grant: its pair goes too.
        siblings = [t for t, i in data["tokens"].items() if info is not None and i is info]
        data["revoked"].extend(t for t in siblings if t != token)
    faults = state.faults_for(platform)
    faults.revoked_tokens.add(token)
    faults.revoked_tokens.update(siblings)


def bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.startswith("Bearer ") else None


def make_blueprint(state: SandboxState, platform: str) -> Blueprint:
    from sandbox import oauth_routes  # its routes build on this module's grants

    bp = Blueprint(f"oauth_{platform}", __name__)
    if platform not in AUTHORIZE:
        return bp  # signs in without a consent page (Bluesky: app passwords)
    path, client_param, needs_pkce = AUTHORIZE[platform]

    @bp.route(path, methods=["GET", "POST"])
    def authorize() -> Response:
        args = request.args
        redirect_uri = args.get("redirect_uri", "")
        client_id = args.get(client_param, "")
        if not redirect_uri.startswith(("http://", "https://")) or not client_id:
            return Response(
                f"<h1>{platform}: invalid request</h1><p>{client_param} and redirect_uri are "
                "required.</p>",
                400,
                mimetype="text/html",
            )
        oauth_state = args.get("state", "")
        if args.get("response_type") != "code":
            return _back(redirect_uri, error="unsupported_response_type", state=oauth_state)
        challenge = args.get("code_challenge", "")
        if needs_pkce and (not challenge or args.get("code_challenge_method") != "S256"):
            return _back(
                redirect_uri,
                error="invalid_request",
                error_description="PKCE (code_challenge, S256) is required",
                state=oauth_state,
            )
        decision = request.form.get("decision") if request.method == "POST" else "approve"
        if args.get("sandbox_deny") == "1" or decision != "approve":
            return _back(
                redirect_uri,
                error="access_denied",
                error_description="The user denied the request.",
                state=oauth_state,
            )
        login, scope = args.get("sandbox_user", "sandbox"), args.get("scope", "")
        if request.method == "GET" and state.faults_for(platform).consent_page:
            return consent.page(platform, login, client_id, scope, request.full_path)
        if request.method == "POST":
            given = {k: request.form.get(k, "") for k in consent.PICKS}
        else:
            given = {k: args.get(f"sandbox_{k}", "") for k in consent.PICKS}
        picks = consent.resolve(platform, login, scope, given)
        if isinstance(picks, str):
            if request.method == "POST":
                return consent.page(platform, login, client_id, scope, request.full_path, picks)
            return _back(
                redirect_uri, error="invalid_request", error_description=picks, state=oauth_state
            )
        code = secrets.token_urlsafe(24)
        with state.lock:
            grants(state)["codes"][code] = {
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "challenge": challenge,
                "login": login,
                "pages": int(args.get("sandbox_pages", "2")),
                "instagram": int(args.get("sandbox_instagram", args.get("sandbox_pages", "2"))),
                "scope": scope,
                "picks": picks,
                "used": False,
                "expires": time.time() + CODE_SECONDS,
            }
        extra = oauth_routes.callback_extras(platform, scope, picks, args)
        return _back(redirect_uri, code=code, state=oauth_state, **extra)

    oauth_routes.add_routes(bp, state, platform)
    return bp

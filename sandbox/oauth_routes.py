"""The connect flows' routes beyond the consent page (sandbox/oauth.py): code exchanges
that answer in a platform's own shape, who a token belongs to, and revocation.

Discord: a `webhook.incoming` code exchange makes a webhook in the channel picked at the
consent; a `bot` consent redirects with the server's `guild_id` and `permissions`, and its
code exchange answers the server as `guild` and adds the bot there (sandbox/discord.py then
lists that server's channels to a bot token). WordPress.com: the code exchange answers a
per-blog token with `blog_id` and `blog_url` (the blog picked), which then signs the blog's
`/wp/v2/sites/{blog_id}` routes (sandbox/wordpress.py); `/rest/v1.1/sites/{blog_id}` names
the blog.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Response, request
from werkzeug.datastructures import MultiDict

from sandbox import consent
from sandbox.core import SandboxState, json_response
from sandbox.oauth import (
    ACCESS_SECONDS,
    GRAPH,
    bearer,
    digits,
    exchange_code,
    facebook_pages,
    grant_extras,
    grants,
    identity,
    issue,
    linked_instagram,
    owner,
    revoke_token,
)


def add_routes(bp: Blueprint, state: SandboxState, platform: str) -> None:
    """The platform's routes beside its consent page."""
    if platform in ("instagram", "threads"):
        _meta_login_routes(bp, state, platform)
    elif platform == "facebook":
        _facebook_routes(bp, state)
    elif platform == "linkedin":
        _linkedin_routes(bp, state)
    elif platform == "tiktok":
        _tiktok_routes(bp, state)
    elif platform == "discord":
        _discord_routes(bp, state)
    elif platform == "wordpress":
        _wordpress_com_routes(bp, state)
    elif platform in ("x", "mastodon", "youtube"):
        _revoke_route(bp, state, platform)


def callback_extras(
    platform: str, scope: str, picks: dict[str, str], args: MultiDict[str, str]
) -> dict[str, str]:
    """What the consent adds to the redirect back beside the code: a Discord bot install
    names the server and the permissions granted."""
    if platform == "discord" and "guild" in picks and "channel" not in picks:
        return {"guild_id": picks["guild"], "permissions": args.get("permissions", "0")}
    return {}


def _revoke_route(bp: Blueprint, state: SandboxState, platform: str) -> None:
    if platform == "x":

        @bp.post("/2/oauth2/revoke")
        def x_revoke() -> Response:
            revoke_token(state, "x", request.form.get("token", ""))
            return json_response({"revoked": True})

    elif platform == "mastodon":

        @bp.post("/oauth/revoke")
        def mastodon_revoke() -> Response:
            revoke_token(state, "mastodon", request.form.get("token", ""))
            return json_response({})

    else:

        @bp.post("/revoke")
        def google_revoke() -> Response:
            token = request.form.get("token") or request.args.get("token", "")
            if owner(state, token) is None:
                return json_response(
                    {"error": "invalid_token", "error_description": "Token expired or revoked."},
                    400,
                )
            revoke_token(state, "youtube", token)
            return Response(status=200)


def graph_error(message: str, code: int = 190, status: int = 400) -> Response:
    return json_response(
        {"error": {"message": message, "type": "OAuthException", "code": code}}, status
    )


def _meta_login_routes(bp: Blueprint, state: SandboxState, platform: str) -> None:
    exchange_grant = "ig_exchange_token" if platform == "instagram" else "th_exchange_token"
    me_path = f"/{GRAPH}/me" if platform == "instagram" else "/v1.0/me"

    @bp.post("/oauth/access_token")
    def short_token() -> Response:
        issued = exchange_code(state, platform, request.form)
        if isinstance(issued, Response):
            return issued
        who = issued["identity"]
        return json_response(
            {
                "access_token": issued["access_token"],
                "user_id": who.get("user_id") or who.get("id"),
                "permissions": ["basic", "content_publish"],
            }
        )

    @bp.get("/access_token")
    def long_lived() -> Response:
        if request.args.get("grant_type") != exchange_grant:
            return graph_error(f"Unsupported grant_type; expected {exchange_grant}", 100)
        info = owner(state, request.args.get("access_token"))
        if info is None:
            return graph_error("Error validating access token: invalid token")
        issued = issue(state, platform, info["login"], {})
        return json_response(
            {
                "access_token": issued["access_token"],
                "token_type": "bearer",
                "expires_in": 5_183_944,
            }
        )

    @bp.get(me_path)
    def me() -> Response:
        info = owner(state, request.args.get("access_token") or bearer())
        if info is None:
            return graph_error("Error validating access token: invalid token")
        return json_response(identity(platform, info["login"]))


def _facebook_routes(bp: Blueprint, state: SandboxState) -> None:
    @bp.get(f"/{GRAPH}/oauth/access_token")
    def access_token() -> Response:
        args = request.args
        if args.get("grant_type") == "fb_exchange_token":
            info = owner(state, args.get("fb_exchange_token"))
            if info is None:
                return graph_error("Error validating access token: invalid token")
            issued = issue(state, "facebook", info["login"], grant_extras(info))
            return json_response(
                {
                    "access_token": issued["access_token"],
                    "token_type": "bearer",
                    "expires_in": ACCESS_SECONDS["facebook"],
                }
            )
        issued = exchange_code(state, "facebook", args)
        if isinstance(issued, Response):
            return issued
        return json_response(
            {"access_token": issued["access_token"], "token_type": "bearer", "expires_in": 5400}
        )

    @bp.get(f"/{GRAPH}/me/accounts")
    def pages() -> Response:
        info = owner(state, request.args.get("access_token") or bearer())
        if info is None:
            return graph_error("Error validating access token: invalid token")
        fields = request.args.get("fields", "")
        # Graph shows a Page's linked Instagram account when asked, to a grant that has
        # instagram_basic.
        show_instagram = "instagram_business_account" in fields and "instagram_basic" in str(
            info.get("scope", "")
        )
        data = []
        pages = facebook_pages(info["login"], int(info.get("pages", 2)))
        linked_count = int(info.get("instagram", len(pages)))
        for n, page in enumerate(pages):
            token = f"EAAP{secrets.token_urlsafe(24)}"
            linked = linked_instagram(info["login"], n) if n < linked_count else None
            with state.lock:
                grants(state)["tokens"][token] = {
                    "platform": "facebook",
                    "login": info["login"],
                    "page": page["id"],
                    "instagram": linked["id"] if linked else None,
                }
            entry: dict[str, Any] = {**page, "access_token": token, "category": "Local business"}
            if show_instagram and linked is not None:
                entry["instagram_business_account"] = linked
            data.append(entry)
        return json_response({"data": data, "paging": {}})

    @bp.delete(f"/{GRAPH}/me/permissions")
    def revoke() -> Response:
        token = request.args.get("access_token") or bearer() or ""
        if owner(state, token) is None:
            return graph_error("Error validating access token: invalid token")
        revoke_token(state, "facebook", token)
        return json_response({"success": True})


def _linkedin_routes(bp: Blueprint, state: SandboxState) -> None:
    def who() -> dict[str, Any] | None:
        info = owner(state, bearer())
        return identity("linkedin", info["login"]) if info else None

    def unauthorized() -> Response:
        return json_response(
            {"status": 401, "serviceErrorCode": 65600, "message": "Invalid access token"}, 401
        )

    @bp.get("/v2/userinfo")
    def userinfo() -> Response:
        member = who()
        if member is None:
            return unauthorized()
        return json_response({"sub": member["sub"], "name": member["name"], "locale": "en_US"})

    @bp.get("/rest/organizationAcls")
    def acls() -> Response:
        member = who()
        if member is None:
            return unauthorized()
        elements = [
            {
                "organization": f"urn:li:organization:{org['id']}",
                "role": "ADMINISTRATOR",
                "state": "APPROVED",
                "roleAssignee": f"urn:li:person:{member['sub']}",
            }
            for org in member["orgs"]
        ]
        return json_response({"paging": {"start": 0, "count": 10}, "elements": elements})

    @bp.get("/rest/organizations/<org_id>")
    def organization(org_id: str) -> Response:
        member = who()
        if member is None:
            return unauthorized()
        for org in member["orgs"]:
            if org["id"] == org_id:
                return json_response({"id": int(org_id), "localizedName": org["name"]})
        return json_response({"status": 404, "message": "Not found"}, 404)

    @bp.post("/oauth/v2/revoke")
    def revoke() -> Response:
        revoke_token(state, "linkedin", request.form.get("token", ""))
        return Response(status=200)


def _tiktok_routes(bp: Blueprint, state: SandboxState) -> None:
    @bp.get("/v2/user/info/")
    def user_info() -> Response:
        info = owner(state, bearer())
        if info is None:
            return json_response(
                {"data": {}, "error": {"code": "access_token_invalid", "message": "invalid"}},
                401,
            )
        user = identity("tiktok", info["login"])
        return json_response(
            {
                "data": {
                    "user": {
                        "open_id": user["open_id"],
                        "display_name": info["login"].title(),
                        "username": info["login"],
                    }
                },
                "error": {"code": "ok", "message": "", "log_id": secrets.token_hex(8)},
            }
        )

    @bp.post("/v2/oauth/revoke/")
    def revoke() -> Response:
        revoke_token(state, "tiktok", request.form.get("token", ""))
        return json_response({})


def _discord_routes(bp: Blueprint, state: SandboxState) -> None:
    """`webhook.incoming`: the code exchange also creates a webhook in the channel the user
    picked. `bot`: the code exchange names the server picked and the bot joins it."""

    @bp.post("/api/oauth2/token")
    def discord_token() -> Response:
        values = dict(request.form)
        auth = request.authorization
        if auth is not None and auth.username:
            values["client_id"] = auth.username
        issued = exchange_code(state, "discord", values)
        if isinstance(issued, Response):
            return issued
        grant = grants(state)["tokens"][issued["access_token"]]
        login, picks = grant["login"], grant.get("picks") or {}
        body: dict[str, Any] = {
            "access_token": issued["access_token"],
            "refresh_token": issued["refresh_token"],
            "expires_in": ACCESS_SECONDS["discord"],
            "token_type": "Bearer",
            "scope": grant.get("scope") or "webhook.incoming",
        }
        guilds = consent.discord_guilds(login)
        guild = next((g for g in guilds if g["id"] == picks.get("guild")), guilds[0])
        if "channel" not in picks:  # a bot install: the bot joins the server
            with state.lock:
                state.store("discord").setdefault("guilds", {})[guild["id"]] = guild
            shown = {k: v for k, v in guild.items() if k != "channels"}
            return json_response({**body, "guild": {**shown, "owner_id": identity_id(login)}})
        webhook_id = "14" + digits(f"discord-webhook:{issued['access_token']}", 17)
        token = secrets.token_urlsafe(48)
        hook = {
            "id": webhook_id,
            "token": token,
            "type": 1,
            "name": f"{login.title()} webhook",
            "channel_id": picks["channel"],
            "guild_id": guild["id"],
        }
        with state.lock:
            state.store("discord").setdefault("webhooks", {})[webhook_id] = hook
        url = f"https://discord.com/api/webhooks/{webhook_id}/{token}"
        return json_response({**body, "webhook": {**hook, "url": url}})

    @bp.post("/api/oauth2/token/revoke")
    def discord_revoke() -> Response:
        revoke_token(state, "discord", request.form.get("token", ""))
        return json_response({})


def identity_id(login: str) -> str:
    """The Discord user `login` (who owns the servers they install the bot in)."""
    return "10" + digits(f"discord-user:{login}", 17)


def _wordpress_com_routes(bp: Blueprint, state: SandboxState) -> None:
    @bp.post("/oauth2/token")
    def wordpress_token() -> Response:
        if request.form.get("grant_type") != "authorization_code":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "Use a code."}, 400
            )
        issued = exchange_code(state, "wordpress", request.form)
        if isinstance(issued, Response):
            return issued
        with state.lock:
            grant = grants(state)["tokens"][issued["access_token"]]
            blog = blog_of(grant)
            grant["blog_id"], grant["blog_url"] = blog["id"], blog["url"]
        return json_response(
            {
                "access_token": issued["access_token"],
                "token_type": "bearer",
                "blog_id": blog["id"],
                "blog_url": blog["url"],
                "scope": "",
            }
        )

    @bp.get("/rest/v1.1/sites/<blog_id>")
    def wordpress_site(blog_id: str) -> Response:
        grant = owner(state, bearer())
        if grant is None or grant.get("platform") != "wordpress":
            return json_response(
                {"error": "invalid_token", "message": "The OAuth2 token is invalid."}, 400
            )
        if str(grant.get("blog_id")) != blog_id:
            return json_response(
                {"error": "unauthorized", "message": "User cannot access this blog."}, 403
            )
        blog = blog_of(grant)
        return json_response({"ID": int(blog["id"]), "name": blog["name"], "URL": blog["url"]})


def blog_of(grant: dict[str, Any]) -> dict[str, str]:
    """The WordPress.com blog a grant is for: the one picked at the consent."""
    blogs = consent.wordpress_blogs(grant["login"])
    picked = (grant.get("picks") or {}).get("blog")
    return next((b for b in blogs if b["id"] == picked), blogs[0])

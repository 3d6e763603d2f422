"""What each API key may do: its scopes, and the one profile it may be restricted to.

Every authenticated route names the scope it needs in ROUTE_SCOPES; a route missing
from the table needs `admin` (a forgotten route is closed, not open), and a test checks
the table against the app's url_map. `None` means any valid key of the organisation.

`admin` is the organisation's: keys, profiles and the audit log. A key restricted to a
profile never holds it (see effective_scopes); which objects a key reaches is decided
in app.access.
"""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from app.api.envelope import ApiError, NotFound, ValidationError
from app.db import get_session
from app.key_scopes import ADMIN as ADMIN
from app.key_scopes import IMPLIED as IMPLIED
from app.key_scopes import PROFILE_DEFAULT_SCOPES as PROFILE_DEFAULT_SCOPES
from app.key_scopes import PROFILE_SCOPES as PROFILE_SCOPES
from app.key_scopes import SCOPES as SCOPES
from app.key_scopes import effective_scopes as effective_scopes
from app.key_scopes import granted as granted
from app.key_scopes import scopes_for_new_key as scopes_for_new_key
from app.models import Profile
from app.schemas import MAX_ID

ROUTE_SCOPES: dict[str, str | None] = {
    # posts and campaigns (a campaign groups posts)
    "posts.create_post": "posts:write",
    "posts.bulk_create_posts": "posts:write",
    "posts.list_posts": "posts:read",
    "posts.get_post": "posts:read",
    "posts.get_post_results": "posts:read",
    # analytics: what became of posts
    "analytics.summary": "posts:read",
    "analytics.export_csv": "posts:read",
    "analytics.post_analytics": "posts:read",
    "analytics.account_analytics": "posts:read",
    "posts.update_post": "posts:write",
    "posts.cancel_post": "posts:write",
    "posts.retry_post": "posts:write",
    "posts.retry_failed_posts": "posts:write",
    "posts.schedule_post": "posts:write",
    "campaigns.list_campaigns": "posts:read",
    "campaigns.get_campaign": "posts:read",
    "campaigns.create_campaign": "posts:write",
    "campaigns.update_campaign": "posts:write",
    "campaigns.delete_campaign": "posts:write",
    # AI captions: the organisation's monthly credits, spent by any key that may post
    "ai.generate_caption": "ai",
    # accounts: reading them is needed to post at all
    "accounts.list_accounts": None,
    "accounts.get_account": None,
    "accounts.get_account_health": None,
    "accounts.create_account": "accounts:write",
    "accounts.update_account": "accounts:write",
    "accounts.delete_account": "accounts:write",
    "connect.create_connect_link": "accounts:write",
    # media
    "media.upload_media": "media:write",
    "media.upload_media_from_url": "media:write",
    "media.list_media": None,
    "media.get_media": None,
    "media.delete_media": "media:write",
    "media.start_media_upload": "media:write",
    "media.complete_media_upload": "media:write",
    # webhooks (reading them shows where events go: part of managing them)
    "webhooks.list_webhooks": "webhooks:write",
    "webhooks.create_webhook": "webhooks:write",
    "webhooks.get_webhook": "webhooks:write",
    "webhooks.update_webhook": "webhooks:write",
    "webhooks.delete_webhook": "webhooks:write",
    "webhooks.test_webhook": "webhooks:write",
    "webhooks.list_deliveries": "webhooks:write",
    "webhooks.redeliver": "webhooks:write",
    # the organisation itself
    "me.me": None,
    "me.platform_rules": None,
    "profiles.list_profiles": None,
    "profiles.get_profile": None,
    "profiles.create_profile": ADMIN,
    "profiles.update_profile": ADMIN,
    "profiles.delete_profile": ADMIN,
    "keys.list_keys": ADMIN,
    "keys.create_key": ADMIN,
    "keys.revoke_key": ADMIN,
    "audit.list_audit_log": ADMIN,
}


def required_scope(endpoint: str) -> str | None:
    return ROUTE_SCOPES.get(endpoint, ADMIN)


def check_scope(endpoint: str, scopes: list[str]) -> None:
    needed = required_scope(endpoint)
    held = granted(scopes)
    if needed is None or ADMIN in held or needed in held:
        return
    raise ApiError(
        f"This API key lacks the scope {needed!r} this request needs "
        f"(it has {', '.join(sorted(scopes)) or 'none'}).",
        code="insufficient_scope",
        status=403,
        details={"required_scope": needed, "key_scopes": sorted(scopes)},
    )


# ----------------------------------------------------------------------------- profiles


def _profile_in_organisation(organisation_id: int, profile_id: int) -> Profile:
    if profile_id > MAX_ID or profile_id < 1:
        raise NotFound("Profile not found.")
    profile = get_session().scalar(
        select(Profile).where(Profile.id == profile_id, Profile.organisation_id == organisation_id)
    )
    if profile is None:
        raise NotFound("Profile not found.")
    return profile


def parse_profile_id(raw: Any, field: str = "profile_id") -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raw = "x"
    try:
        value = int(raw)
    except (TypeError, ValueError):
        message = "Not a valid profile id (an integer from GET /profiles)."
        raise ValidationError(f"{field}: {message}", details={field: [message]}) from None
    return value


def resolve_profile(organisation_id: int, restricted_to: int | None, requested: Any) -> int | None:
    """The profile a request works in: the one asked for (which must be the caller's own
    and, for a restricted key, its profile), else the key's profile, else none."""
    wanted = parse_profile_id(requested)
    if wanted is None:
        return restricted_to
    if restricted_to is not None and wanted != restricted_to:
        raise NotFound("Profile not found.")
    _profile_in_organisation(organisation_id, wanted)
    return wanted


def query_profile(organisation_id: int, restricted_to: int | None) -> int | None:
    """`?profile_id=` of a list, checked as resolve_profile does."""
    return resolve_profile(organisation_id, restricted_to, request.args.get("profile_id"))

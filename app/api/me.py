"""Who the key belongs to and what it may do (GET /me), and the platform rules as data."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import func, select

from app.api.auth import current_caller
from app.api.envelope import envelope
from app.db import get_session, utcnow
from app.models import Account, AccountStatus, ApiKey, Campaign, Media, Post, WebhookEndpoint
from app.platforms import MAX_THREAD_ITEMS, PLATFORMS, MediaRule, PlatformRules
from app.schemas import MAX_ACCOUNTS_PER_POST, MAX_CONTENT_CHARS, MAX_MEDIA_PER_POST
from app.serializers import ts
from app.services.ai_credits import ai_credits

blueprint = Blueprint("me", __name__)


def _count(statement: Any) -> int:
    return int(get_session().scalar(statement) or 0)


@blueprint.get("/me")
def me() -> Response:
    """The organisation, this key (name and prefix), its limits and current usage."""
    caller = current_caller()
    session = get_session()
    key = session.get(ApiKey, caller.api_key_id)
    assert key is not None
    organisation = key.organisation
    # What the key sees: a profile key counts its profile's rows only.
    scope = caller.scope
    settings = current_app.config["CRIER"]
    month_ago = utcnow() - timedelta(days=30)
    usage = {
        "accounts": _count(
            select(func.count(Account.id)).where(
                *scope.where(Account), Account.status != AccountStatus.DISCONNECTED
            )
        ),
        "posts": _count(select(func.count(Post.id)).where(*scope.where(Post))),
        "posts_last_30_days": _count(
            select(func.count(Post.id)).where(*scope.where(Post), Post.created_at >= month_ago)
        ),
        "media": _count(select(func.count(Media.id)).where(*scope.where(Media))),
        "media_bytes": _count(
            select(func.coalesce(func.sum(Media.size_bytes), 0)).where(*scope.where(Media))
        ),
        "webhooks": _count(
            select(func.count(WebhookEndpoint.id)).where(*scope.where(WebhookEndpoint))
        ),
        "campaigns": _count(select(func.count(Campaign.id)).where(*scope.where(Campaign))),
    }
    return envelope(
        {
            "organisation": {
                "id": organisation.id,
                "name": organisation.name,
                "created_at": ts(organisation.created_at),
            },
            "api_key": {
                "id": key.id,
                "name": key.name,
                "prefix": key.prefix,
                "scopes": list(caller.scopes),
                "profile_id": key.profile_id,
                "created_at": ts(key.created_at),
                "last_used_at": ts(key.last_used_at),
            },
            "limits": {
                "requests": settings.rate_limit,
                "posts": settings.posts_rate_limit,
                "max_upload_bytes": settings.max_upload_bytes,
                "max_accounts_per_post": MAX_ACCOUNTS_PER_POST,
                "max_media_per_post": MAX_MEDIA_PER_POST,
                "max_content_chars": MAX_CONTENT_CHARS,
                "max_posts_per_bulk": 50,
            },
            "usage": usage,
            # The organisation's, whichever key asks: a profile key spends the same credits.
            "ai_credits": ai_credits(
                session, organisation.id, utcnow(), limit=settings.ai_monthly_credits
            ),
        }
    )


def media_rule_to_dict(rule: MediaRule) -> dict[str, Any]:
    data = asdict(rule)
    data["image_mime_types"] = sorted(rule.image_mime_types)
    data["video_mime_types"] = sorted(rule.video_mime_types)
    return data


def platform_rules_to_dict(rules: PlatformRules) -> dict[str, Any]:
    window = (
        {"requests": rules.window_requests[0], "seconds": rules.window_requests[1]}
        if rules.window_requests
        else None
    )
    return {
        "platform": rules.name,
        "label": rules.label,
        "text_limit": rules.text_limit,
        "text_unit": rules.text_unit,
        "caption_limit": rules.caption_limit,
        "max_hashtags": rules.max_hashtags,
        "max_mentions": rules.max_mentions,
        "media": media_rule_to_dict(rules.media),
        "content_types": {
            name: media_rule_to_dict(rule) for name, rule in rules.content_types.items()
        },
        "daily_post_cap": rules.daily_post_cap,
        "request_window": window,
        # What can follow a post there: a first comment, a thread (at most max_thread_items).
        "first_comment": rules.first_comment,
        "threads": rules.threads,
        "max_thread_items": MAX_THREAD_ITEMS if rules.threads else None,
    }


@blueprint.get("/platform-rules")
def platform_rules() -> Response:
    """What each platform accepts: the same table intake validation uses."""
    return envelope({name: platform_rules_to_dict(rules) for name, rules in PLATFORMS.items()})

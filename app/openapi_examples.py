"""Request and response examples for the OpenAPI document: endpoint → (request, data)."""

from __future__ import annotations

from typing import Any

POST_ID = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
MEDIA_ID = "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
COVER_ID = "b2c3d4e5-f6a7-8901-bcde-f12345678901"
WEBHOOK_ID = "3d6f0a52-7c1e-4b7a-9d55-0c8a1e2f4b6d"
EVENT_ID = "9b2e4c1a-5f3d-4e8b-a7c6-1d0e2f3a4b5c"
DELIVERY_ID = "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
TS = "2026-04-10T12:00:00.000Z"

TARGET: dict[str, Any] = {
    "account_id": 2280,
    "platform": "x",
    "status": "published",
    "attempts": 1,
    "platform_post_id": "1912345678901234567",
    "url": "https://x.com/acme/status/1912345678901234567",
    "platform_post_url": "https://x.com/acme/status/1912345678901234567",
    "error": None,
    "published_at": "2026-04-15T14:30:01.120Z",
    "next_attempt_at": None,
    "next_retry_at": None,
    "platform_deletion": None,
}
POST: dict[str, Any] = {
    "post_id": POST_ID,
    "status": "published",
    "content": "Excited to share our latest update!",
    "scheduled_for": "2026-04-15T14:30:00.000Z",
    "timezone": "America/New_York",
    "media_ids": [],
    "platform_content": {},
    "accounts_count": 1,
    "campaign_id": 12,
    "cover_photo": None,
    "created_at": TS,
    "updated_at": "2026-04-15T14:30:01.130Z",
    "published_at": "2026-04-15T14:30:01.120Z",
    "targets": [TARGET],
}
DRAFT = {
    **POST,
    "status": "draft",
    "published_at": None,
    "targets": [
        {
            **TARGET,
            "status": "draft",
            "attempts": 0,
            "platform_post_id": None,
            "url": None,
            "platform_post_url": None,
            "published_at": None,
        }
    ],
}
MEDIA: dict[str, Any] = {
    "id": MEDIA_ID,
    "filename": "launch.jpg",
    "kind": "image",
    "mime_type": "image/jpeg",
    "size_bytes": 245123,
    "width": 1080,
    "height": 1350,
    "duration_seconds": None,
    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "media_status": "ready",
    "status_reason": None,
    "source_url": "https://cdn.example.com/launch.jpg",
    "created_at": TS,
}
WEBHOOK: dict[str, Any] = {
    "id": WEBHOOK_ID,
    "url": "https://hooks.example.com/crier",
    "name": "Production",
    "description": "Post outcomes for our dashboard",
    "events": ["post.published", "post.failed", "post.platform.failed"],
    "is_active": True,
    "consecutive_failures": 0,
    "disabled_reason": None,
    "disabled_at": None,
    "last_success_at": TS,
    "last_failure_at": None,
    "created_at": TS,
    "updated_at": TS,
}
DELIVERY: dict[str, Any] = {
    "id": DELIVERY_ID,
    "webhook_id": WEBHOOK_ID,
    "event_id": EVENT_ID,
    "event_type": "post.published",
    "status": "succeeded",
    "attempt": 1,
    "status_code": 200,
    "latency_ms": 84,
    "error": None,
    "next_attempt_at": None,
    "last_attempt_at": TS,
    "delivered_at": TS,
    "created_at": TS,
}
CAMPAIGN: dict[str, Any] = {
    "id": 12,
    "name": "Spring launch",
    "description": "Everything for the April launch",
    "color": "#1DA1F2",
    "status": "active",
    "posts_count": 8,
    "created_at": TS,
    "updated_at": TS,
}

PROFILE: dict[str, Any] = {
    "id": 7,
    "name": "Rosa's Bakery",
    "external_ref": "crm-1042",
    "metadata": {"plan": "growth"},
    "created_at": TS,
    "updated_at": TS,
}
KEY: dict[str, Any] = {
    "id": 31,
    "name": "bakery publisher",
    "prefix": "crier_Xa81Qe",
    "scopes": ["posts:write", "media:write"],
    "profile_id": 7,
    "created_at": TS,
    "last_used_at": None,
    "revoked_at": None,
}
ACCOUNT: dict[str, Any] = {
    "id": 2281,
    "platform": "facebook",
    "name": "Rosa's Bakery",
    "external_id": "108234567890123",
    "profile_id": 7,
    "status": "active",
    "created_at": TS,
    "health": {
        "can_post": True,
        "needs_reconnect": False,
        "reason": None,
        "token_expires_at": None,
        "has_refresh_token": False,
        "refresh_failures": 0,
        "last_refresh_error": None,
    },
    "metadata": {},
}

CAPTION = (
    "30% off running shoes until Monday! Lace up and grab your pair before they are gone. "
    "#blackfriday #running"
)

EXAMPLES: dict[str, tuple[Any, Any]] = {
    "profiles.list_profiles": (None, [PROFILE]),
    "profiles.create_profile": (
        {"name": "Rosa's Bakery", "external_ref": "crm-1042", "metadata": {"plan": "growth"}},
        PROFILE,
    ),
    "profiles.get_profile": (None, PROFILE),
    "profiles.update_profile": (
        {"name": "Rosa's Bakery Ltd"},
        {**PROFILE, "name": "Rosa's Bakery Ltd"},
    ),
    "profiles.delete_profile": (
        None,
        {"id": 7, "deleted": True, "accounts": 2, "scheduled_targets": 5, "scheduled_posts": 3},
    ),
    "keys.list_keys": (None, [KEY]),
    "keys.create_key": (
        {"name": "bakery publisher", "scopes": ["posts:write", "media:write"], "profile_id": 7},
        {**KEY, "key": "crier_Xa81Qe…(shown once)"},
    ),
    "keys.revoke_key": (None, {**KEY, "revoked_at": TS}),
    "accounts.create_account": (
        {
            "platform": "x",
            "name": "@rosasbakery",
            "access_token": "<token from your own OAuth app>",
            "refresh_token": "<refresh token>",
            "external_id": "2244994945",
            "profile_id": 7,
        },
        {**ACCOUNT, "id": 2282, "platform": "x", "name": "@rosasbakery"},
    ),
    "accounts.update_account": ({"name": "Rosa's Bakery (main)", "profile_id": 7}, ACCOUNT),
    "accounts.delete_account": (
        None,
        {
            "id": 2281,
            "deleted": True,
            "revoked": True,
            "revoke_error": None,
            "cancelled_targets": 2,
        },
    ),
    "accounts.list_accounts": (None, [ACCOUNT]),
    "accounts.get_account": (None, ACCOUNT),
    "connect.create_connect_link": (
        {
            "platform": "instagram",
            "login": "facebook",
            "profile_id": 7,
            "redirect_url": "https://agency.example/clients/1042/connected",
            "state": "onboarding-1042",
        },
        {
            "id": "5f0c2a9e-1b7d-4c3e-9a8f-2d6e4b1c0a97",
            "url": "https://crier.example.com/connect/q3J9…",
            "platform": "instagram",
            "login": "facebook",
            "profile_id": 7,
            "account_id": None,
            "redirect_url": "https://agency.example/clients/1042/connected",
            "expires_at": TS,
        },
    ),
    "posts.create_post": (
        {
            "content": "Excited to share our latest update!",
            "account_ids": [2280],
            "scheduled_at": "2026-04-15T14:30:00.000Z",
            "timezone": "America/New_York",
            "media_ids": [MEDIA_ID],
            "cover_photo": None,
            "campaign_id": 12,
            "draft": False,
            "platform_content": {"instagram": {"contentType": "Reels"}},
        },
        {
            "post_id": POST_ID,
            "status": "scheduled",
            "scheduled_for": "2026-04-15T14:30:00.000Z",
            "accounts_count": 1,
            "message": "Post scheduled for 1 account.",
        },
    ),
    "posts.list_posts": (None, [POST]),
    "posts.get_post": (None, POST),
    "posts.retry_post": ({"account_ids": [2280]}, {**POST, "status": "publishing"}),
    "posts.retry_failed_posts": (
        {"platform": "linkedin", "failed_after": "2026-04-15T00:00:00Z", "max_attempts": 5},
        {
            "retried_count": 1,
            "skipped_count": 1,
            "posts_count": 1,
            "retried": [{"post_id": POST_ID, "account_id": 2282, "platform": "linkedin"}],
            "skipped": [
                {
                    "post_id": POST_ID,
                    "account_id": 2285,
                    "platform": "linkedin",
                    "reason": "account needs reconnecting",
                }
            ],
        },
    ),
    "posts.schedule_post": (
        {"scheduled_for": "2026-04-15T14:30:00", "timezone": "America/New_York"},
        {**DRAFT, "status": "scheduled"},
    ),
    "posts.cancel_post": (None, {**POST, "status": "cancelled"}),
    "accounts.get_account_health": (
        None,
        {
            "account_id": 2280,
            "platform": "x",
            "status": "active",
            "can_post": True,
            "needs_reconnection": False,
            "needs_reconnect": False,
            "reason": None,
            "token_expires_at": "2026-06-01T00:00:00.000Z",
            "token_expired": False,
            "has_refresh_token": True,
            "refresh_failures": 0,
            "last_error": None,
            "last_published_at": "2026-04-15T14:30:01.120Z",
        },
    ),
    "media.upload_media_from_url": (
        {"url": "https://cdn.example.com/launch.jpg", "filename": "launch.jpg"},
        MEDIA,
    ),
    "media.list_media": (None, [MEDIA]),
    "media.get_media": (None, MEDIA),
    "media.delete_media": (None, {"id": MEDIA_ID, "deleted": True, "detached_from_posts": []}),
    "webhooks.list_webhooks": (None, [WEBHOOK]),
    "webhooks.create_webhook": (
        {
            "url": "https://hooks.example.com/crier",
            "events": ["post.published", "post.failed", "post.platform.failed"],
            "name": "Production",
            "description": "Post outcomes for our dashboard",
        },
        {**WEBHOOK, "secret": "whsec_3q2-7wEXAMPLEm5Yt0aP9mS0c1g4a0QqzN8kQ1xH8cY"},
    ),
    "webhooks.get_webhook": (None, WEBHOOK),
    "webhooks.update_webhook": ({"is_active": True}, WEBHOOK),
    "webhooks.delete_webhook": (None, {"id": WEBHOOK_ID, "deleted": True}),
    "webhooks.test_webhook": (
        None,
        {
            **DELIVERY,
            "event_type": "webhook.test",
            "status": "pending",
            "attempt": 0,
            "status_code": None,
            "latency_ms": None,
            "next_attempt_at": TS,
            "delivered_at": None,
            "last_attempt_at": None,
        },
    ),
    "webhooks.list_deliveries": (
        None,
        [
            DELIVERY,
            {
                **DELIVERY,
                "status": "pending",
                "attempt": 3,
                "status_code": 503,
                "error": "HTTP 503: upstream unavailable",
                "next_attempt_at": "2026-04-10T12:04:00.000Z",
                "delivered_at": None,
            },
        ],
    ),
    "webhooks.redeliver": (None, {**DELIVERY, "status": "pending", "attempt": 0}),
    "campaigns.list_campaigns": (None, [CAMPAIGN]),
    "campaigns.create_campaign": (
        {
            "name": "Spring launch",
            "description": "Everything for the April launch",
            "color": "#1DA1F2",
        },
        {**CAMPAIGN, "posts_count": 0},
    ),
    "campaigns.get_campaign": (None, CAMPAIGN),
    "campaigns.update_campaign": ({"status": "paused"}, {**CAMPAIGN, "status": "paused"}),
    "campaigns.delete_campaign": (None, {"id": 12, "deleted": True}),
    "me.me": (
        None,
        {
            "organisation": {"id": 1, "name": "Acme Agency", "created_at": TS},
            "api_key": {
                "id": 3,
                "name": "production",
                "prefix": "crier_Ab12Cd",
                "created_at": TS,
                "last_used_at": TS,
            },
            "limits": {
                "requests": "600/minute;20000/day",
                "posts": "120/minute;5000/day",
                "max_upload_bytes": 536870912,
                "max_accounts_per_post": 500,
                "max_media_per_post": 35,
                "max_content_chars": 100000,
                "max_posts_per_bulk": 50,
            },
            "usage": {
                "accounts": 42,
                "posts": 1830,
                "posts_last_30_days": 412,
                "media": 96,
                "media_bytes": 734003200,
                "webhooks": 1,
                "campaigns": 4,
            },
            "ai_credits": {
                "limit": 100,
                "used": 12,
                "remaining": 88,
                "period": "2026-04",
                "resets_at": "2026-05-01T00:00:00Z",
            },
        },
    ),
    "ai.generate_caption": (
        {
            "topic": "Black Friday sale on running shoes, 30% off through Monday",
            "platform": "x",
            "tone": "enthusiastic",
            "length": "short",
            "count": 1,
        },
        {
            "captions": [CAPTION],
            "variants": [
                {
                    "text": CAPTION,
                    "character_count": 106,
                    "character_limit": 280,
                    "hashtags": ["#blackfriday", "#running"],
                    "trimmed": False,
                }
            ],
            "platform": "x",
            "tone": "enthusiastic",
            "length": "short",
            "count_requested": 1,
            "count_returned": 1,
            "credits_used": 1,
            "credits_remaining": 87,
        },
    ),
    "me.platform_rules": (
        None,
        {
            "x": {
                "platform": "x",
                "label": "X",
                "text_limit": 280,
                "text_unit": "weighted characters",
                "caption_limit": None,
                "max_hashtags": None,
                "max_mentions": None,
                "media": {"max_images": 4},
                "content_types": {},
                "daily_post_cap": 2400,
                "request_window": None,
            }
        },
    ),
}

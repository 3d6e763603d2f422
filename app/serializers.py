"""Rows to the JSON the API returns (documented by the *Out schemas in app.schemas) and
webhook payloads carry: one shape of each resource for both, so it sits below the API
and the services alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.db import utcnow
from app.models import (
    Account,
    AccountStatus,
    Media,
    NewPost,
    Post,
    PostTarget,
    PostTargetStep,
    PrepareState,
    StepStatus,
    TargetStatus,
)


def format_timestamp(moment: datetime) -> str:
    """`2026-04-10T12:00:00.000Z`, the API contract's format."""
    # isoformat ends in "+00:00" for UTC; it costs a quarter of strftime.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def account_health(account: Account, now: datetime) -> dict[str, Any]:
    """Whether the account can post, and if not the reason a person can act on."""
    expired = account.token_expires_at is not None and account.token_expires_at <= now
    stranded = expired and account.refresh_token_encrypted is None
    needs_reconnect = account.status == AccountStatus.NEEDS_RECONNECT or (
        account.status == AccountStatus.ACTIVE and stranded
    )
    reason: str | None = None
    if account.status == AccountStatus.NEEDS_RECONNECT:
        reason = account.status_reason or "The account must be reconnected before it can post."
    elif account.status != AccountStatus.ACTIVE:
        reason = account.status_reason or f"The account is {account.status}."
    elif stranded:
        reason = "The access token expired and there is no refresh token; reconnect the account."
    return {
        "can_post": account.status == AccountStatus.ACTIVE and not needs_reconnect,
        "needs_reconnect": needs_reconnect,
        "reason": reason,
        "token_expires_at": account.token_expires_at,
        "has_refresh_token": account.refresh_token_encrypted is not None,
        # Proactive refreshes that failed in a row (they are retried), and the last reason.
        "refresh_failures": account.refresh_failures or 0,
        "last_refresh_error": account.last_refresh_error,
    }


def ts(moment: datetime | None) -> str | None:
    return format_timestamp(moment) if moment else None


def shown_status(target: PostTarget) -> str:
    """A waiting target says how far its preparation ahead of the instant has come."""
    if target.status in (TargetStatus.SCHEDULED, TargetStatus.QUEUED):
        if target.prepare_state in (PrepareState.PENDING, PrepareState.PREPARING):
            return "preparing"
        if target.prepare_state == PrepareState.PREPARED:
            return "prepared"
    return target.status


def step_to_dict(step: PostTargetStep) -> dict[str, Any]:
    error = (
        {"code": step.error_code, "message": step.error_message}
        if step.error_code or step.error_message
        else None
    )
    return {
        "position": step.position,
        "kind": step.kind,
        "status": step.status,
        "platform_post_id": step.platform_id,
        "url": step.url,
        "reply_to": step.reply_to,
        "error": error,
        "published_at": ts(step.published_at),
    }


def target_steps(target: PostTarget) -> list[dict[str, Any]] | None:
    """The first comment (position 0) and thread items (1..n) of the target's post on its
    platform, as far as they have come; None when the post has neither there."""
    entry = ((target.post.platform_content or {}) if target.post else {}).get(target.platform)
    if not isinstance(entry, dict) or (not entry.get("firstComment") and not entry.get("thread")):
        return None
    done = {step.position: step_to_dict(step) for step in target.steps}
    kinds = [(0, "comment")] if entry.get("firstComment") else []
    kinds += [(n, "thread_item") for n in range(1, len(entry.get("thread") or []) + 1)]
    return [
        done.get(position)
        or {
            "position": position,
            "kind": kind,
            "status": StepStatus.PENDING,
            "platform_post_id": None,
            "url": None,
            "reply_to": None,
            "error": None,
            "published_at": None,
        }
        for position, kind in kinds
    ]


def target_to_dict(target: PostTarget) -> dict[str, Any]:
    error = (
        {"code": target.error_code, "message": target.error_message}
        if target.error_code or target.error_message
        else None
    )
    waiting = target.status in (TargetStatus.SCHEDULED, TargetStatus.QUEUED)
    return {
        "account_id": target.account_id,
        "platform": target.platform,
        "status": shown_status(target),
        "attempts": target.attempts,
        "platform_post_id": target.platform_post_id,
        "url": target.url,
        # The API contract's name for `url`.
        "platform_post_url": target.url,
        "error": error,
        "published_at": ts(target.published_at),
        "next_attempt_at": ts(target.next_attempt_at) if waiting else None,
        # The API contract's field: set only while a failed attempt waits for its retry.
        "next_retry_at": ts(target.next_attempt_at) if waiting and target.attempts else None,
        # What follows the post there (first comment, thread items), item by item.
        "steps": target_steps(target),
        "platform_deletion": {
            "status": target.platform_delete_status,
            "error": target.platform_delete_error,
            "deleted_at": ts(target.platform_deleted_at),
        }
        if target.platform_delete_status
        else None,
    }


def post_to_dict(post: Post) -> dict[str, Any]:
    live = [t for t in post.targets if t.status != TargetStatus.CANCELLED]
    return {
        "post_id": str(post.id),
        "status": post.status,
        "content": post.content,
        "scheduled_for": ts(post.scheduled_at),
        "timezone": post.timezone,
        "media_ids": list(post.media_ids),
        "platform_content": post.platform_content,
        "accounts_count": len(live) or len(post.targets),
        "campaign_id": post.campaign_id,
        "profile_id": post.profile_id,
        "cover_photo": post.cover_photo,
        "created_at": ts(post.created_at),
        "updated_at": ts(post.updated_at),
        "published_at": ts(post.published_at),
        "targets": [target_to_dict(t) for t in post.targets],
    }


def created_message(post: Post | NewPost) -> str:
    count = len(post.targets)
    noun = "account" if count == 1 else "accounts"
    if post.publish_now:
        return f"Post is being published to {count} {noun}."
    return f"Post scheduled for {count} {noun}."


def post_created_to_dict(post: Post | NewPost) -> dict[str, Any]:
    return {
        "post_id": str(post.id),
        "status": post.status,
        "scheduled_for": ts(post.scheduled_at),
        "accounts_count": len(post.targets),
        "message": created_message(post),
    }


# What of an account's stored settings its owner may read: what the platform told Crier at
# connect that a post needs (Pinterest's boards, for `boardId`). Nothing else is shown.
PUBLIC_ACCOUNT_SETTINGS = ("boards",)


def account_metadata(account: Account) -> dict[str, Any]:
    stored = account.settings or {}
    return {key: stored[key] for key in PUBLIC_ACCOUNT_SETTINGS if key in stored}


def account_to_dict(account: Account) -> dict[str, Any]:
    health = account_health(account, utcnow())
    health["token_expires_at"] = ts(health["token_expires_at"])
    return {
        "id": account.id,
        "platform": account.platform,
        "name": account.name,
        "external_id": account.external_id,
        "profile_id": account.profile_id,
        "status": account.status,
        "created_at": ts(account.created_at),
        "health": health,
        "metadata": account_metadata(account),
    }


def media_to_dict(media: Media) -> dict[str, Any]:
    return {
        "id": str(media.id),
        "filename": media.filename,
        "kind": media.kind,
        "mime_type": media.mime_type,
        "size_bytes": media.size_bytes,
        "width": media.width,
        "height": media.height,
        "duration_seconds": media.duration_seconds,
        "sha256": media.sha256,
        "media_status": media.status,
        "status_reason": media.status_reason,
        "source_url": media.source_url,
        "profile_id": media.profile_id,
        "created_at": ts(media.created_at),
    }

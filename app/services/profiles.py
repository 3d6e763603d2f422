"""Profiles: one per end client of an organisation; what deleting one takes with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import (
    Account,
    AccountStatus,
    Post,
    PostTarget,
    Profile,
    TargetStatus,
    WebhookEndpoint,
)
from app.services.accounts import remove_account
from app.services.posts import lock_posts, refresh_post_status

OPEN_STATUSES = (TargetStatus.DRAFT, TargetStatus.SCHEDULED, TargetStatus.QUEUED)


@dataclass
class ProfileFootprint:
    """What deleting a profile would disconnect and cancel."""

    accounts: int
    scheduled_targets: int
    scheduled_posts: int

    def as_dict(self) -> dict[str, int]:
        return {
            "accounts": self.accounts,
            "scheduled_targets": self.scheduled_targets,
            "scheduled_posts": self.scheduled_posts,
        }


def create_profile(session: Session, organisation_id: int, data: dict[str, Any]) -> Profile:
    now = utcnow()
    profile = Profile(
        organisation_id=organisation_id,
        name=data["name"],
        external_ref=data.get("external_ref"),
        meta=data.get("metadata") or {},
        created_at=now,
        updated_at=now,
    )
    session.add(profile)
    session.flush()
    return profile


def update_profile(profile: Profile, data: dict[str, Any]) -> None:
    if "name" in data:
        profile.name = data["name"]
    if "external_ref" in data:
        profile.external_ref = data["external_ref"]
    if "metadata" in data:
        profile.meta = data["metadata"] or {}
    profile.updated_at = utcnow()


def _live_accounts(session: Session, profile: Profile) -> list[Account]:
    return list(
        session.scalars(
            select(Account)
            .where(Account.profile_id == profile.id, Account.status != AccountStatus.DISCONNECTED)
            .order_by(Account.id)
        )
    )


def footprint(session: Session, profile: Profile) -> ProfileFootprint:
    accounts = _live_accounts(session, profile)
    open_targets = (
        select(PostTarget.id, PostTarget.post_id)
        .join(Post, Post.id == PostTarget.post_id)
        .where(
            PostTarget.status.in_(OPEN_STATUSES),
            (Post.profile_id == profile.id) | PostTarget.account_id.in_([a.id for a in accounts]),
        )
        .subquery()
    )
    targets = session.scalar(select(func.count()).select_from(open_targets)) or 0
    posts = session.scalar(select(func.count(func.distinct(open_targets.c.post_id)))) or 0
    return ProfileFootprint(len(accounts), targets, posts)


def delete_profile(session: Session, profile: Profile) -> ProfileFootprint:
    """Disconnect its accounts (cancelling what they had scheduled), cancel the rest of
    its posts' open targets, delete its webhook endpoints and its restricted keys (the
    foreign key cascades), then the profile; posts, media and campaigns stay, unassigned."""
    done = footprint(session, profile)
    reason = f"The profile {profile.name!r} was deleted, and its accounts with it."
    accounts = _live_accounts(session, profile)
    # Every post this ends targets of, locked first and at once (in id order, before any
    # target): another account's outcome on one of them waits for this commit.
    posts = lock_posts(
        session,
        select(PostTarget.post_id)
        .join(Post, Post.id == PostTarget.post_id)
        .where(
            PostTarget.status.in_(OPEN_STATUSES),
            (Post.profile_id == profile.id) | PostTarget.account_id.in_([a.id for a in accounts]),
        ),
    )
    for account in accounts:
        remove_account(session, account, reason)
    leftover = session.scalars(
        select(PostTarget)
        .join(Post, Post.id == PostTarget.post_id)
        .where(
            Post.profile_id == profile.id,
            PostTarget.post_id.in_(list(posts)),
            PostTarget.status.in_(OPEN_STATUSES),
            PostTarget.irreversible_started_at.is_(None),
        )
        .with_for_update(of=PostTarget)
        .execution_options(populate_existing=True)
    ).all()
    changed: dict[Any, Post] = {}
    for target in leftover:
        target.status = TargetStatus.CANCELLED
        target.dispatch_token = None
        target.prepare_token = None
        target.error_code = "profile_deleted"
        target.error_message = reason
        changed[target.post_id] = posts[target.post_id]
    for post in changed.values():
        refresh_post_status(post)
    # A profile's webhook endpoints go with it: left without a profile they would start
    # receiving every event of the organisation.
    session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.profile_id == profile.id))
    session.delete(profile)
    session.flush()
    return done

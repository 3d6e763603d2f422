"""Who may touch what: the one place that loads an object a request names.

A request works inside a `Scope`: its key's organisation and, for a key restricted to
one profile, that profile. Every object named in a path (a post, account, media,
campaign, webhook, profile or key) is loaded through the functions below, and every list
is narrowed by `Scope.where`; an object outside the scope reads exactly like one that
does not exist (404 with the same message). An object referenced in a body (a post's
accounts, media, cover photo or campaign) is checked by `may_reference` /
`reference_filter`: outside the scope, or outside the profile of the post that would hold
it, it is refused with the same "… not found" validation error an unknown id gets, so
ids leak nothing across a boundary.

tests/api/test_boundary.py walks every route of the url_map through these rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from app.errors import NotFound
from app.models import (
    Account,
    AccountStatus,
    ApiKey,
    Campaign,
    Media,
    Post,
    PostTarget,
    Profile,
    WebhookEndpoint,
)
from app.schemas import MAX_ID

Row = TypeVar("Row")


@dataclass(frozen=True)
class Scope:
    """An organisation and, when set, the one profile inside it a request may touch."""

    organisation_id: int
    profile_id: int | None = None

    @property
    def restricted(self) -> bool:
        return self.profile_id is not None

    def where(self, model: Any) -> list[ColumnElement[bool]]:
        """The conditions that keep `model`'s rows inside this scope (a profile's own row
        is the profile itself)."""
        conditions = [model.organisation_id == self.organisation_id]
        if self.profile_id is not None:
            column = model.id if model is Profile else model.profile_id
            conditions.append(column == self.profile_id)
        return conditions

    def sees(self, row: Any) -> bool:
        """Python's side of `where`, for a row already loaded."""
        if row is None or row.organisation_id != self.organisation_id:
            return False
        if self.profile_id is None:
            return True
        profile = row.id if isinstance(row, Profile) else getattr(row, "profile_id", None)
        return profile == self.profile_id

    def select(self, model: type[Row]) -> Select[tuple[Row]]:
        return select(model).where(*self.where(model))


# --------------------------------------------------------------- references in a body


def may_reference(scope: Scope, row: Any, owner_profile_id: int | None, *, shared: bool) -> bool:
    """Whether a row (an account, media, a campaign) may be referenced by an object of
    `owner_profile_id` (a post): the key must see it, and it must be that profile's, or,
    when `shared`, the organisation's own (no profile; an unrestricted key's assets)."""
    if not scope.sees(row):
        return False
    if owner_profile_id is None:
        return True
    return row.profile_id == owner_profile_id or (shared and row.profile_id is None)


def reference_filter(
    scope: Scope, model: Any, owner_profile_id: int | None, *, shared: bool
) -> list[ColumnElement[bool]]:
    """SQL's side of `may_reference`."""
    conditions = scope.where(model)
    if owner_profile_id is not None:
        same = model.profile_id == owner_profile_id
        conditions.append(or_(same, model.profile_id.is_(None)) if shared else same)
    return conditions


# ------------------------------------------------------------------ objects in a path


def _int_id(raw: int | str, message: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise NotFound(message) from None
    if not 1 <= value <= MAX_ID:  # no such row, and PostgreSQL would refuse the number
        raise NotFound(message)
    return value


def _uuid(raw: str | uuid.UUID, message: str) -> uuid.UUID:
    if isinstance(raw, uuid.UUID):
        return raw
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        raise NotFound(message) from None


def _one(session: Session, statement: Select[tuple[Row]], message: str) -> Row:
    row = session.scalar(statement)
    if row is None:
        raise NotFound(message)
    return row


def post(session: Session, scope: Scope, post_id: str | uuid.UUID, *, lock: bool = False) -> Post:
    """A post with its targets; `lock` also locks the targets and reads them afresh."""
    message = "Post not found."
    key = _uuid(post_id, message)
    statement = scope.select(Post).where(Post.id == key)
    if lock:
        # FOR UPDATE takes no outer join; the targets are read again below, locked.
        statement = statement.options(selectinload(Post.targets)).with_for_update()
    else:
        # One statement, so one snapshot: the post's status and its targets' are those of
        # the same commits (read in two, an outcome committed in between shows every
        # target published under a post still publishing).
        statement = statement.options(joinedload(Post.targets))
    found = session.scalars(statement).unique().one_or_none()
    if found is None:
        raise NotFound(message)
    if lock:
        # The post's row lock does not stop a worker's claim, which updates only the target.
        # Lock the targets too and read them afresh: a claim that is under way finishes
        # first and is seen here, and one that comes later finds the token gone.
        session.scalars(
            select(PostTarget)
            .where(PostTarget.post_id == found.id)
            .order_by(PostTarget.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
    return found


def account(session: Session, scope: Scope, account_id: int | str) -> Account:
    """A connected account (a removed one no longer exists)."""
    message = "Account not found."
    key = _int_id(account_id, message)
    statement = scope.select(Account).where(
        Account.id == key, Account.status != AccountStatus.DISCONNECTED
    )
    return _one(session, statement, message)


def media(
    session: Session, scope: Scope, media_id: str | uuid.UUID, *, lock: bool = False
) -> Media:
    message = "Media not found."
    statement = scope.select(Media).where(Media.id == _uuid(media_id, message))
    if lock:
        statement = statement.with_for_update()
    return _one(session, statement, message)


def campaign(session: Session, scope: Scope, campaign_id: int | str) -> Campaign:
    message = "Campaign not found."
    statement = scope.select(Campaign).where(Campaign.id == _int_id(campaign_id, message))
    return _one(session, statement, message)


def webhook(session: Session, scope: Scope, webhook_id: str) -> WebhookEndpoint:
    message = "Webhook not found."
    statement = scope.select(WebhookEndpoint).where(
        WebhookEndpoint.id == _uuid(webhook_id, message)
    )
    return _one(session, statement, message)


def profile(session: Session, scope: Scope, profile_id: int | str) -> Profile:
    message = "Profile not found."
    statement = scope.select(Profile).where(Profile.id == _int_id(profile_id, message))
    return _one(session, statement, message)


def api_key(session: Session, scope: Scope, key_id: int | str) -> ApiKey:
    message = "API key not found."
    statement = scope.select(ApiKey).where(ApiKey.id == _int_id(key_id, message))
    return _one(session, statement, message)

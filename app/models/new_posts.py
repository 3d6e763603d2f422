"""A post and its targets as a create builds them, before they are rows.

Built as ORM objects they cost a create more CPU than its SQL (instrumented attributes, a
relationship collection, instance state), for objects that never entered the session:
app.services.post_rows writes them through the driver. These hold exactly what a create
writes; every other column of the new rows starts NULL. A later change to the post goes
through its rows loaded again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.models.posts import Post, PostTarget


@dataclass(slots=True, eq=False)
class NewTarget:
    account_id: int
    platform: str
    status: str
    next_attempt_at: datetime
    created_at: datetime
    attempts: int = 0
    worker_losses: int = 0
    dispatch_token: str | None = None
    queued_at: datetime | None = None
    prepare_due_at: datetime | None = None
    prepare_state: str | None = None
    prepare_token: str | None = None
    prepared_at: datetime | None = None
    # Nothing is prepared for a new target; set_prepare_due reads it as for an edited one.
    platform_handle: dict[str, Any] | None = None
    post_id: uuid.UUID | None = None
    # Given by the INSERT.
    id: int | None = None

    @property
    def updated_at(self) -> datetime:
        return self.created_at


@dataclass(slots=True, eq=False)
class NewPost:
    id: uuid.UUID
    organisation_id: int
    profile_id: int | None
    content: str
    scheduled_at: datetime
    publish_now: bool
    timezone: str
    platform_content: dict[str, Any]
    media_ids: list[str]
    status: str
    campaign_id: int | None
    cover_photo: str | None
    created_at: datetime
    targets: list[NewTarget] = field(default_factory=list)
    # (account id, row version) of the accounts it was checked against, when they came
    # from the process's cache: the INSERT writes it only if each is still so.
    account_versions: tuple[tuple[int, int], ...] = ()

    @property
    def updated_at(self) -> datetime:
        return self.created_at

    def as_orm(self) -> Post:
        """The same post as ORM objects, for a database the driver path does not serve."""
        post = Post(**{name: getattr(self, name) for name in NEW_POST_COLUMNS})
        post.targets = [
            PostTarget(**{name: getattr(target, name) for name in NEW_TARGET_COLUMNS})
            for target in self.targets
        ]
        return post


# The columns a create writes, in the order its INSERT names them.
NEW_POST_COLUMNS = (
    "id",
    "organisation_id",
    "profile_id",
    "content",
    "scheduled_at",
    "publish_now",
    "timezone",
    "platform_content",
    "media_ids",
    "status",
    "campaign_id",
    "cover_photo",
    "created_at",
    "updated_at",
)
NEW_TARGET_COLUMNS = (
    "post_id",
    "account_id",
    "platform",
    "status",
    "attempts",
    "worker_losses",
    "dispatch_token",
    "next_attempt_at",
    "queued_at",
    "prepare_due_at",
    "prepare_state",
    "prepare_token",
    "prepared_at",
    "created_at",
    "updated_at",
)

"""The PublishRequest an adapter gets: the post's text and settings for its platform, its
media as files and signed links, the account's credentials.

Separate because the ready phase and the preparation ahead both build it, and because it
checks the platform rules again (the same table intake uses) before any call is spent.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Media, PostTarget
from app.platform_rules import (
    ErrorBag,
    check_follow_ups,
    check_platform_rules,
    first_comment_of,
    known_text_limits,
    platform_settings,
    platform_text,
    thread_media_ids,
    thread_of,
)
from app.services.media import media_path, signed_media_url
from workers.adapters.base import (
    FollowUp,
    MediaItem,
    Outcome,
    PermanentError,
    PlatformError,
    PublishRequest,
)
from workers.pipeline.context import PipelineDeps
from workers.tokens import account_credentials


def build_request(deps: PipelineDeps, session: Session, target: PostTarget) -> PublishRequest:
    post, account = target.post, target.account
    assert post is not None and account is not None
    media_rows = (
        {
            str(m.id): m
            for m in session.scalars(
                select(Media).where(Media.id.in_([uuid.UUID(i) for i in post.media_ids]))
            )
        }
        if post.media_ids
        else {}
    )
    missing = [i for i in post.media_ids if i not in media_rows]
    if missing:
        raise _MediaMissing(f"media {', '.join(missing)} no longer exists")
    # The same rules table intake used: a post the platform would refuse fails here,
    # with intake's message, instead of spending a call (rules can change after intake).
    problems = ErrorBag()
    check_platform_rules(
        post.content,
        [target.platform],
        [media_rows[i] for i in post.media_ids],
        post.platform_content,
        problems,
        known_text_limits([account]),
    )
    if problems.errors:
        path, messages = next(iter(problems.errors.items()))
        raise PermanentError(f"{path}: {messages[0]}", code="content_rejected")
    media = [_media_item(deps.settings, media_rows[i]) for i in post.media_ids]
    # cover_photo: the video's cover image, for platforms that take one.
    cover_row = session.get(Media, uuid.UUID(post.cover_photo)) if post.cover_photo else None
    return PublishRequest(
        target_id=target.id,
        platform=target.platform,
        account=account_credentials(deps.settings, account),
        text=platform_text(target.platform, post.content, post.platform_content),
        settings=platform_settings(target.platform, post.platform_content),
        media=media,
        handle=target.platform_handle,
        irreversible_started_at=target.irreversible_started_at,
        cover=_media_item(deps.settings, cover_row) if cover_row is not None else None,
        follow_ups=_follow_ups(deps, session, target),
    )


def _follow_ups(deps: PipelineDeps, session: Session, target: PostTarget) -> tuple[FollowUp, ...]:
    """The post's first comment and thread on the target's platform, checked again by
    intake's rules, with the thread items' media."""
    post, platform = target.post, target.platform
    assert post is not None
    content = {platform: (post.platform_content or {}).get(platform) or {}}
    comment, thread = first_comment_of(platform, content), thread_of(platform, content)
    if comment is None and not thread:
        return ()
    ids = [uuid.UUID(i) for i in thread_media_ids(content)]
    rows = (
        {str(m.id): m for m in session.scalars(select(Media).where(Media.id.in_(ids)))}
        if ids
        else {}
    )
    problems = ErrorBag()
    check_follow_ups([platform], content, rows, problems)
    if problems.errors:
        path, messages = next(iter(problems.errors.items()))
        raise PermanentError(f"{path}: {messages[0]}", code="content_rejected")
    items = [FollowUp("comment", 0, comment)] if comment is not None else []
    for position, item in enumerate(thread, start=1):
        media = [_media_item(deps.settings, rows[str(i)]) for i in item.get("media_ids") or []]
        items.append(FollowUp("thread_item", position, item.get("content") or "", media))
    return tuple(items)


class _MediaMissing(PlatformError):
    outcome = Outcome.PERMANENT

    def __init__(self, message: str) -> None:
        super().__init__(message, code="media_missing")


def _media_item(settings: Settings, media: Media) -> MediaItem:
    return MediaItem(
        id=str(media.id),
        kind=media.kind,
        mime_type=media.mime_type,
        size_bytes=media.size_bytes,
        path=str(media_path(settings, media)),
        public_url=signed_media_url(settings, media),
        filename=media.filename,
        width=media.width,
        height=media.height,
        duration_seconds=media.duration_seconds,
    )

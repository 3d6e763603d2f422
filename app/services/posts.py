"""Domain verbs on posts: look them up, derive their status, create them. They flush;
callers commit. Changing an existing post is in `app.services.post_changes`."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session, object_session, selectinload

from app import access
from app.access import Scope, may_reference, reference_filter
from app.config import Settings
from app.db import utcnow
from app.dispatch import queue_new_targets
from app.errors import Conflict, ValidationError
from app.models import (
    FINAL_TARGET_STATUSES,
    OPEN_TARGET_STATUSES,
    AccountStatus,
    Campaign,
    DiscardedHandle,
    IdempotencyRecord,
    Media,
    NewPost,
    NewTarget,
    Post,
    PostStatus,
    PostTarget,
    PrepareState,
    TargetStatus,
)
from app.platform_rules import (
    ErrorBag,
    check_follow_ups,
    check_platform_rules,
    known_text_limits,
    thread_media_ids,
)
from app.platforms import PLATFORMS
from app.schedule import parse_schedule, resolve_timezone
from app.services import webhooks
from app.services.account_rows import AccountRow, forget_cached_accounts, read_accounts
from app.services.post_rows import StaleAccounts, insert_new_posts

# ------------------------------------------------------------------------------ lookups


PRELOADED_ACCOUNTS = "crier.preloaded_accounts"


def preload_accounts(session: Session, scope: Scope, account_ids: set[int]) -> None:
    """One query for the accounts of many posts (a bulk create): load_accounts then finds
    them here instead of asking once per post."""
    rows = read_accounts(session, scope.organisation_id, account_ids)
    session.info[PRELOADED_ACCOUNTS] = {a.id: a for a in rows}


def load_accounts(
    session: Session,
    scope: Scope,
    account_ids: list[int],
    errors: ErrorBag,
    profile_id: int | None = None,
    *,
    cached: bool = False,
) -> list[AccountRow]:
    """The accounts a post of `profile_id` goes to: accounts the key sees and, for a
    post of a profile, that profile's (app.access.may_reference); no other exists here.
    `cached`: see read_accounts."""
    unique_ids = list(dict.fromkeys(account_ids))
    if len(unique_ids) != len(account_ids):
        errors.add("account_ids", "Each account may appear only once.")
    preloaded: dict[int, AccountRow] = session.info.get(PRELOADED_ACCOUNTS, {})
    wanted = [i for i in unique_ids if i not in preloaded]
    rows = [preloaded[i] for i in unique_ids if i in preloaded]
    rows += read_accounts(session, scope.organisation_id, wanted, cached=cached)
    # Removed accounts, and accounts outside the key's or the post's profile, do not exist.
    rows = [
        a
        for a in rows
        if a.status != AccountStatus.DISCONNECTED
        and may_reference(scope, a, profile_id, shared=False)
    ]
    by_id = {a.id: a for a in rows}
    # Another organisation's account reads exactly like one that does not exist.
    missing = [i for i in unique_ids if i not in by_id]
    if missing:
        errors.add(
            "account_ids",
            f"Account not found: {', '.join(map(str, missing))}. Use ids from GET /accounts.",
        )
    for account in rows:
        if account.status == AccountStatus.NEEDS_RECONNECT:
            errors.add(
                "account_ids",
                f"Account {account.id} ({account.name}) needs reconnecting before it can post.",
            )
        elif account.status != AccountStatus.ACTIVE:
            errors.add("account_ids", f"Account {account.id} ({account.name}) is {account.status}.")
    return [by_id[i] for i in unique_ids if i in by_id]


def load_media(
    session: Session,
    scope: Scope,
    media_ids: list[uuid.UUID],
    errors: ErrorBag,
    profile_id: int | None = None,
) -> list[Media]:
    """The media of a post of `profile_id`: media the key sees and, for a post of a
    profile, that profile's or the organisation's own (no profile)."""
    if not media_ids:
        return []
    if len(set(media_ids)) != len(media_ids):
        errors.add("media_ids", "Each media id may appear only once.")
    query = select(Media).where(
        Media.id.in_(media_ids), *reference_filter(scope, Media, profile_id, shared=True)
    )
    # FOR SHARE: a deletion of this media waits for this post's commit (and then sees
    # the post), or this post waits for the deletion (and then finds no media).
    rows = session.scalars(query.with_for_update(read=True)).all()
    by_id = {m.id: m for m in rows}
    missing = [str(i) for i in media_ids if i not in by_id]
    if missing:
        errors.add(
            "media_ids", f"Media not found: {', '.join(missing)}. Upload with POST /media/upload."
        )
    for item in rows:
        if item.status == "uploading":
            errors.add(
                "media_ids",
                f"Media {item.id} is still being imported; wait until its media_status is ready.",
            )
        elif item.status == "failed":
            errors.add("media_ids", f"Media {item.id} failed to import: {item.status_reason}")
    return [by_id[i] for i in dict.fromkeys(media_ids) if i in by_id]


def create_needs_transaction(data: dict[str, Any]) -> bool:
    """Whether creating this post reads, through the session, rows its write depends on:
    media (its own, its cover, its threads') held FOR SHARE until it commits (load_media),
    or its campaign. Such a create runs in the session's transaction; any other reads
    its accounts and writes its rows on an autocommit connection."""
    return bool(
        data.get("media_ids")
        or data.get("cover_photo") is not None
        or data.get("campaign_id") is not None
        or thread_media_ids(data.get("platform_content") or {})
    )


def load_thread_media(
    session: Session, scope: Scope, platform_content: dict[str, Any], profile_id: int | None
) -> dict[str, Media]:
    """The ready media the threads of a post name, by id, under the same visibility as
    the post's own media; what is missing is reported at its item by check_follow_ups."""
    ids = []
    for text in thread_media_ids(platform_content):
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            continue
    if not ids:
        return {}
    query = select(Media).where(
        Media.id.in_(ids),
        Media.status.not_in(("uploading", "failed")),
        *reference_filter(scope, Media, profile_id, shared=True),
    )
    return {str(m.id): m for m in session.scalars(query.with_for_update(read=True))}


def check_post_follow_ups(
    session: Session,
    scope: Scope,
    platforms: Any,
    platform_content: dict[str, Any],
    errors: ErrorBag,
    profile_id: int | None,
) -> None:
    """A post's first comments and threads, checked as its own content is."""
    if not any(
        isinstance(entry, dict) and (entry.get("firstComment") is not None or "thread" in entry)
        for entry in platform_content.values()
    ):
        return
    media = load_thread_media(session, scope, platform_content, profile_id)
    check_follow_ups(platforms, platform_content, media, errors)


# ------------------------------------------------------------------------------ status


class TargetStatusFields(Protocol):
    status: str
    attempts: int
    platform_post_id: str | None


class PostStatusFields(Protocol):
    """What a post's status is derived from: a `Post`, or a row read without the ORM."""

    publish_now: bool

    @property
    def targets(self) -> Sequence[TargetStatusFields]: ...


def derive_post_status(post: PostStatusFields) -> str:
    """A post's status follows from its targets (docs/architecture.md, "Posts and targets")."""
    statuses = [t.status for t in post.targets]
    live = [s for s in statuses if s != TargetStatus.CANCELLED]
    if not live:
        return PostStatus.CANCELLED
    if any(s == TargetStatus.DRAFT for s in live):
        return PostStatus.DRAFT
    if any(s in OPEN_TARGET_STATUSES for s in live):
        started = post.publish_now or any(
            t.status == TargetStatus.PUBLISHING
            or t.attempts > 0
            or (t.status in FINAL_TARGET_STATUSES and t.status != TargetStatus.CANCELLED)
            for t in post.targets
        )
        return PostStatus.PUBLISHING if started else PostStatus.SCHEDULED
    published = sum(s == TargetStatus.PUBLISHED for s in live)
    if published == len(live):
        return PostStatus.PUBLISHED
    # A failed target whose post is live (a thread stopped at one of its items) is out
    # in part.
    partly = any(t.status == TargetStatus.FAILED and t.platform_post_id for t in post.targets)
    if published or partly or any(s == TargetStatus.UNCONFIRMED for s in live):
        return PostStatus.PARTIALLY_PUBLISHED
    return PostStatus.FAILED


def lock_posts(session: Session, post_ids: Any) -> dict[uuid.UUID, Post]:
    """Lock posts before ending any of their targets, and read them with their targets
    afresh. Every writer of a post's status (the claim and outcome batches, the API's
    changes, removals) locks posts first, in id order, then targets: a status derived
    under the lock sees every outcome committed before it, and a writer that comes later
    waits and derives from what this one wrote. `post_ids`: ids, or a SELECT of them."""
    locked = list(
        session.scalars(
            select(Post.id).where(Post.id.in_(post_ids)).order_by(Post.id).with_for_update()
        )
    )
    if not locked:
        return {}
    posts = session.scalars(
        select(Post)
        .where(Post.id.in_(locked))
        .options(selectinload(Post.targets))
        .execution_options(populate_existing=True)
    )
    return {post.id: post for post in posts}


def refresh_post_status(post: Post) -> None:
    """Derive the status again; reaching an end state writes its webhook event (outbox)."""
    previous = post.status
    post.status = derive_post_status(post)
    now = utcnow()
    post.updated_at = now
    if post.published_at is None and any(t.status == TargetStatus.PUBLISHED for t in post.targets):
        post.published_at = min(
            (t.published_at or now for t in post.targets if t.status == TargetStatus.PUBLISHED),
            default=now,
        )
    session = object_session(post)
    if session is not None and post.status != previous:
        webhooks.record_post_status_change(session, post, previous)


# ------------------------------------------------------------------------------ create


def request_fingerprint(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class CreateResult:
    post: Post | NewPost
    replayed: bool = False


def _idempotency_scope(scope: Scope) -> list[ColumnElement[bool]]:
    """A key's Idempotency-Keys are its organisation's and its profile's: another
    profile's key with the same value and body is another request (an organisation key's
    are the organisation's, as before profiles)."""
    profile = IdempotencyRecord.profile_id
    return [
        IdempotencyRecord.organisation_id == scope.organisation_id,
        profile.is_(None) if scope.profile_id is None else profile == scope.profile_id,
    ]


def find_idempotent_post(
    session: Session, scope: Scope, key: str, fingerprint: str, ttl_seconds: int
) -> Post | None:
    record = session.scalar(
        select(IdempotencyRecord).where(*_idempotency_scope(scope), IdempotencyRecord.key == key)
    )
    if record is None:
        return None
    if record.created_at < utcnow() - timedelta(seconds=ttl_seconds):
        session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record.id))
        session.flush()
        return None
    if record.request_hash != fingerprint:
        raise Conflict(
            "This Idempotency-Key was already used with a different request body.",
            code="idempotency_key_reused",
        )
    return access.post(session, scope, record.post_id)


def check_extras(
    session: Session,
    scope: Scope,
    data: dict[str, Any],
    errors: ErrorBag,
    profile_id: int | None = None,
) -> None:
    """campaign_id and cover_photo must name a campaign and an image the key sees and
    the post of `profile_id` may use (app.access.reference_filter), as media_ids do."""
    if data.get("campaign_id") is not None:
        campaign = session.scalar(
            select(Campaign.id).where(
                Campaign.id == data["campaign_id"],
                *reference_filter(scope, Campaign, profile_id, shared=True),
            )
        )
        if campaign is None:
            errors.add("campaign_id", "Campaign not found. Use ids from GET /campaigns.")
    if data.get("cover_photo") is not None:
        cover = session.scalar(
            select(Media).where(
                Media.id == data["cover_photo"],
                *reference_filter(scope, Media, profile_id, shared=True),
            )
        )
        if cover is None:
            errors.add("cover_photo", "Media not found. Upload with POST /media/upload.")
        elif cover.kind != "image":
            errors.add("cover_photo", "The cover photo must be an image.")


def build_post(
    session: Session,
    scope: Scope,
    data: dict[str, Any],
    now: datetime,
    settings: Settings,
    *,
    cached_accounts: bool = False,
) -> NewPost:
    """Validate a loaded CreatePostSchema payload against the database and platform rules.
    `data["profile_id"]` is the post's profile (the key's, for a profile key). The post
    is not written: `insert_new_posts` writes it (with others, in a bulk create). With
    `cached_accounts` its accounts may come from the process's cache, and the post then
    carries their versions for the INSERT to check."""
    errors = ErrorBag()
    draft = bool(data.get("draft"))
    scheduled_at, publish_now = parse_schedule(data.get("scheduled_at"), data.get("timezone"), now)
    if draft:
        publish_now = False  # a draft's time is only a suggestion until it is scheduled
    profile_id = data.get("profile_id")
    accounts = load_accounts(
        session, scope, data["account_ids"], errors, profile_id, cached=cached_accounts
    )
    if profile_id is None:
        # A post to one profile's accounts belongs to that profile.
        profiles = {a.profile_id for a in accounts}
        profile_id = profiles.pop() if len(profiles) == 1 else None
    # What it uses must fit that profile too.
    media = load_media(session, scope, data.get("media_ids") or [], errors, profile_id)
    check_extras(session, scope, data, errors, profile_id)
    platform_content = data.get("platform_content") or {}
    content = data["content"]
    if not content.strip() and not media:
        errors.add("content", "content must not be empty when no media is attached.")
    if not errors.errors:
        check_platform_rules(
            content,
            (a.platform for a in accounts),
            media,
            platform_content,
            errors,
            known_text_limits(accounts),
        )
        check_post_follow_ups(
            session, scope, [a.platform for a in accounts], platform_content, errors, profile_id
        )
    errors.raise_if_any()

    target_status = TargetStatus.DRAFT if draft else TargetStatus.SCHEDULED
    post = NewPost(
        id=uuid.uuid4(),
        organisation_id=scope.organisation_id,
        profile_id=profile_id,
        content=content,
        scheduled_at=scheduled_at,
        publish_now=publish_now,
        timezone=resolve_timezone(data.get("timezone")).key,
        platform_content=platform_content,
        media_ids=[str(m.id) for m in media],
        status=(
            PostStatus.DRAFT
            if draft
            else PostStatus.PUBLISHING
            if publish_now
            else PostStatus.SCHEDULED
        ),
        campaign_id=data.get("campaign_id"),
        cover_photo=str(data["cover_photo"]) if data.get("cover_photo") else None,
        created_at=now,
        account_versions=tuple((a.id, a.version) for a in accounts if a.version is not None)
        if cached_accounts
        else (),
        targets=[
            NewTarget(
                account_id=account.id,
                platform=account.platform,
                status=target_status,
                next_attempt_at=scheduled_at,
                created_at=now,
            )
            for account in accounts
        ],
    )
    set_prepare_due(post, media, settings)
    return post


# A post due sooner than this is not prepared ahead: the publish does the whole flow, and
# a preparation would only race it.
PREPARE_MIN_LEAD = timedelta(seconds=10)


def discard_prepared(session: Session, target: PostTarget) -> None:
    """Drop what was prepared for the target's old content; whatever the platform holds
    of it is deleted there by a worker (DiscardedHandle), where the platform allows.
    A handle whose irreversible request may have started is evidence, never discarded
    (edits and cancels refuse such targets before they get here)."""
    if target.platform_handle and target.irreversible_started_at is None:
        session.add(
            DiscardedHandle(
                account_id=target.account_id,
                platform=target.platform,
                handle=dict(target.platform_handle),
            )
        )
    target.platform_handle = None


def set_prepare_due(post: Post | NewPost, media: list[Media], settings: Settings) -> None:
    """When each target's media is to be prepared on its platform (docs/delivery.md, "Prepare
    ahead"); nothing to prepare without media, or where the platform cannot stage."""
    kinds = {m.kind for m in media}
    window = settings.prepare_window("video" if "video" in kinds else "image") if kinds else None
    for target in post.targets:
        if target.status not in (TargetStatus.SCHEDULED, TargetStatus.QUEUED):
            continue
        if target.platform_handle is None or target.prepare_state == PrepareState.PREPARING:
            # Nothing prepared survives (new, or dropped with its content), or a
            # preparation under way is overtaken: its writes are fenced off, start over.
            target.prepare_state = None
            target.prepared_at = None
        target.prepare_token = None
        # Published now (or nearly): the publish does the whole flow, nothing to stage.
        soon = target.next_attempt_at <= utcnow() + PREPARE_MIN_LEAD
        stages = window is not None and PLATFORMS[target.platform].prepares_ahead and not soon
        target.prepare_due_at = (
            target.next_attempt_at - timedelta(seconds=window) if stages and window else None
        )


def create_post(
    session: Session,
    scope: Scope,
    data: dict[str, Any],
    *,
    settings: Settings,
    idempotency_key: str | None = None,
    fingerprint: str = "",
    idempotency_ttl: int = 24 * 3600,
    enqueue_horizon: int | None = None,
) -> CreateResult:
    """Build and flush a post; with `enqueue_horizon`, its targets due within it are
    written `queued` (the caller sends their messages after commit). Its accounts may
    come from the process's cache: if one changed meanwhile, the INSERT writes nothing
    and the post is built again from the accounts read afresh."""
    now = utcnow()
    if idempotency_key:
        existing = find_idempotent_post(
            session, scope, idempotency_key, fingerprint, idempotency_ttl
        )
        if existing is not None:
            return CreateResult(existing, replayed=True)
    organisation_id, account_ids = scope.organisation_id, data["account_ids"]
    try:
        post = build_post(session, scope, data, now, settings, cached_accounts=True)
    except ValidationError:
        # Refused on rows the process kept: judged again on the rows as they are.
        forget_cached_accounts(session, organisation_id, account_ids)
        post = build_post(session, scope, data, now, settings, cached_accounts=True)

    def write(post: NewPost) -> NewPost:
        if enqueue_horizon is not None:
            queue_new_targets(post.targets, enqueue_horizon)
        insert_new_posts(session, [post])
        return post

    try:
        post = write(post)
    except StaleAccounts:
        # An account changed after it was read: read afresh, and written unchecked.
        forget_cached_accounts(session, organisation_id, account_ids)
        post = write(build_post(session, scope, data, now, settings))
    if idempotency_key:
        session.add(
            IdempotencyRecord(
                organisation_id=scope.organisation_id,
                profile_id=scope.profile_id,
                key=idempotency_key,
                request_hash=fingerprint,
                post_id=post.id,
                created_at=now,
            )
        )
        session.flush()
    return CreateResult(post)

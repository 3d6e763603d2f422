"""Domain verbs on posts: create, change, cancel, retry. They flush; callers commit."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session, object_session, selectinload

from app import access
from app.access import Scope, may_reference, reference_filter
from app.api.envelope import ApiError, Conflict, ValidationError
from app.config import prepare_window
from app.db import utcnow
from app.dispatch import queue_new_targets
from app.models import (
    FINAL_TARGET_STATUSES,
    OPEN_TARGET_STATUSES,
    Account,
    AccountStatus,
    Campaign,
    DiscardedHandle,
    IdempotencyRecord,
    Media,
    Post,
    PostStatus,
    PostTarget,
    PrepareState,
    TargetStatus,
)
from app.platforms import (
    PLATFORMS,
    count_hashtags,
    count_mentions,
    media_rule_for,
)
from app.schemas import SETTING_DEFAULTS
from app.services import webhooks

PAST_TOLERANCE = timedelta(seconds=60)
MAX_SCHEDULE_AHEAD = timedelta(days=730)


# ---------------------------------------------------------------------------- schedule


def resolve_timezone(name: str | None) -> ZoneInfo:
    if name in (None, ""):
        return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(
            f"Unknown time zone {name!r}; use an IANA name such as America/New_York.",
            details={"timezone": [f"Unknown IANA time zone: {name!r}."]},
        ) from exc


def parse_schedule(raw: str | None, tz_name: str | None, now: datetime) -> tuple[datetime, bool]:
    """The UTC instant to publish at, and whether it means "now".

    An explicit offset or `Z` is an absolute instant; a time without one is wall-clock
    time in `tz_name`. Wall times that a DST change skips are refused, repeated ones take
    the first occurrence.
    """
    zone = resolve_timezone(tz_name)
    if raw is None:
        return now, True

    def invalid(message: str) -> ValidationError:
        return ValidationError(message, details={"scheduled_at": [message]})

    text = raw.strip()
    if "T" not in text and " " not in text:
        raise invalid("scheduled_at must be an ISO 8601 date and time, e.g. 2026-04-15T14:30:00Z.")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid(
            f"scheduled_at {raw!r} is not a valid ISO 8601 date and time, "
            "e.g. 2026-04-15T14:30:00Z."
        ) from exc
    try:
        if parsed.tzinfo is None:
            local = parsed.replace(tzinfo=zone)
            round_trip = local.astimezone(UTC).astimezone(zone)
            if round_trip.replace(tzinfo=None) != parsed:
                raise invalid(
                    f"{parsed.isoformat()} does not exist in {zone.key}: the clocks skip it "
                    "for daylight saving time."
                )
            instant = local.astimezone(UTC)
        else:
            instant = parsed.astimezone(UTC)
    except OverflowError:
        # Year 1 or 9999 shifted past the calendar's edge: far outside the allowed window.
        instant = (
            datetime.min.replace(tzinfo=UTC)
            if parsed.year < 5000
            else datetime.max.replace(tzinfo=UTC)
        )
    if instant < now - PAST_TOLERANCE:
        raise invalid("scheduled_at is in the past; omit it to publish now.")
    if instant > now + MAX_SCHEDULE_AHEAD:
        raise invalid("scheduled_at may be at most 730 days ahead.")
    return max(instant, now), False


# ---------------------------------------------------------------------- platform rules


@dataclass
class ErrorBag:
    errors: dict[str, list[str]] = field(default_factory=dict)

    def add(self, path: str, message: str) -> None:
        messages = self.errors.setdefault(path, [])
        if message not in messages:
            messages.append(message)

    def raise_if_any(self, summary: str | None = None) -> None:
        if not self.errors:
            return
        first_path, first_messages = next(iter(self.errors.items()))
        message = summary or f"{first_path}: {first_messages[0]}"
        raise ValidationError(message, details=self.errors)


def platform_settings(platform: str, platform_content: dict[str, Any]) -> dict[str, Any]:
    """The settings a platform's adapter gets: defaults, the caller's, contentType folded in."""
    entry = platform_content.get(platform) or {}
    settings = dict(SETTING_DEFAULTS.get(platform, {}))
    if platform == "instagram" and entry.get("contentType"):
        settings["contentType"] = entry["contentType"]
    settings.update(entry.get("settings") or {})
    return settings


def platform_text(platform: str, content: str, platform_content: dict[str, Any]) -> str:
    override = (platform_content.get(platform) or {}).get("content")
    return override if override is not None else content


def check_platform_rules(
    content: str,
    platforms: Iterable[str],
    media: list[Media],
    platform_content: dict[str, Any],
    errors: ErrorBag,
) -> None:
    """Refuse at intake what a platform would refuse at publish time."""
    for platform in sorted(set(platforms)):
        rules = PLATFORMS[platform]
        entry = platform_content.get(platform) or {}
        text_path = f"platform_content.{platform}.content" if "content" in entry else "content"
        text = platform_text(platform, content, platform_content)
        length = rules.count_text(text)
        if length > rules.text_limit:
            errors.add(
                text_path,
                f"{rules.label} allows at most {rules.text_limit} {rules.text_unit}; "
                f"this text has {length}.",
            )
        if rules.max_hashtags is not None and count_hashtags(text) > rules.max_hashtags:
            errors.add(text_path, f"{rules.label} allows at most {rules.max_hashtags} hashtags.")
        if rules.max_mentions is not None and count_mentions(text) > rules.max_mentions:
            errors.add(text_path, f"{rules.label} allows at most {rules.max_mentions} @mentions.")
        if platform == "youtube" and ("<" in text or ">" in text):
            errors.add(text_path, "YouTube descriptions must not contain < or >.")
        if not text.strip() and not media:
            errors.add(text_path, f"{rules.label} needs text or media; both are empty.")

        settings = platform_settings(platform, platform_content)
        if platform == "youtube" and not settings.get("title"):
            errors.add(
                "platform_content.youtube.settings.title",
                "YouTube requires a title (platform_content.youtube.settings.title).",
            )
        content_type = settings.get("contentType") or settings.get("videoType")
        if platform == "facebook" and not content_type and any(m.kind == "video" for m in media):
            content_type = "video"
        _check_media(platform, content_type, media, settings, errors)


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _check_media(
    platform: str,
    content_type: str | None,
    media: list[Media],
    settings: dict[str, Any],
    errors: ErrorBag,
) -> None:
    rules = PLATFORMS[platform]
    rule = media_rule_for(platform, content_type)
    what = f"{rules.label} {content_type}" if content_type else rules.label
    images = [m for m in media if m.kind == "image"]
    videos = [m for m in media if m.kind == "video"]
    path = "media_ids"
    if rule.required and not media:
        errors.add(path, f"{what} needs {rule.needs}; no media_ids were given.")
        return
    if len(images) > rule.max_images or len(videos) > rule.max_videos:
        got = f"{_plural(len(images), 'image')} and {_plural(len(videos), 'video')}"
        errors.add(path, f"{what} takes {rule.needs}; got {got}.")
    elif images and videos and not rule.mixed:
        errors.add(path, f"{what} takes {rule.needs}; images and videos cannot be mixed.")
    elif rule.mixed and len(media) > max(rule.max_images, rule.max_videos):
        errors.add(path, f"{what} takes {rule.needs}; got {len(media)} items.")
    for item in media:
        allowed = rule.image_mime_types if item.kind == "image" else rule.video_mime_types
        limit = rule.image_max_bytes if item.kind == "image" else rule.video_max_bytes
        if allowed and item.mime_type not in allowed:
            errors.add(
                path,
                f"{what} does not accept {item.mime_type} ({item.id}); "
                f"it takes {', '.join(sorted(allowed))}.",
            )
        elif limit and item.size_bytes > limit:
            errors.add(
                path,
                f"{item.filename} is {item.size_bytes / 1048576:.1f} MB; {what} allows at most "
                f"{limit / 1048576:.0f} MB per {item.kind}.",
            )
        if item.kind == "video" and item.duration_seconds is not None:
            low, high = rule.video_min_seconds, rule.video_max_seconds
            if low is not None and item.duration_seconds < low:
                errors.add(
                    path,
                    f"{what} videos must last at least {low:g} s; "
                    f"{item.filename} lasts {item.duration_seconds:.1f} s.",
                )
            if high is not None and item.duration_seconds > high:
                errors.add(
                    path,
                    f"{what} videos may last at most {high:g} s; "
                    f"{item.filename} lasts {item.duration_seconds:.1f} s.",
                )
    if platform == "instagram" and settings.get("altText") and not images:
        errors.add(
            "platform_content.instagram.settings.altText",
            "Instagram alt text applies to images only.",
        )
    if platform == "instagram" and "coverPhotoTimestamp" in settings:
        if not videos:
            errors.add(
                "platform_content.instagram.settings.coverPhotoTimestamp",
                "coverPhotoTimestamp applies to videos only.",
            )
        elif (
            videos[0].duration_seconds is not None
            and settings["coverPhotoTimestamp"] > videos[0].duration_seconds
        ):
            errors.add(
                "platform_content.instagram.settings.coverPhotoTimestamp",
                "coverPhotoTimestamp is after the end of the video.",
            )


# ------------------------------------------------------------------------------ lookups


PRELOADED_ACCOUNTS = "crier.preloaded_accounts"


def preload_accounts(session: Session, scope: Scope, account_ids: set[int]) -> None:
    """One query for the accounts of many posts (a bulk create): load_accounts then finds
    them here instead of asking once per post."""
    rows = session.scalars(scope.select(Account).where(Account.id.in_(account_ids))).all()
    session.info[PRELOADED_ACCOUNTS] = {a.id: a for a in rows}


def load_accounts(
    session: Session,
    scope: Scope,
    account_ids: list[int],
    errors: ErrorBag,
    profile_id: int | None = None,
) -> list[Account]:
    """The accounts a post of `profile_id` goes to: accounts the key sees and, for a
    post of a profile, that profile's (app.access.may_reference); no other exists here."""
    unique_ids = list(dict.fromkeys(account_ids))
    if len(unique_ids) != len(account_ids):
        errors.add("account_ids", "Each account may appear only once.")
    preloaded: dict[int, Account] = session.info.get(PRELOADED_ACCOUNTS, {})
    wanted = [i for i in unique_ids if i not in preloaded]
    rows = [preloaded[i] for i in unique_ids if i in preloaded]
    if wanted:
        rows += session.scalars(scope.select(Account).where(Account.id.in_(wanted))).all()
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


def _organisation(scope: Scope) -> Scope:
    """For what a post already holds: re-read (its status), not judged anew against the
    key, so a post made under older rules can still be changed or scheduled."""
    return Scope(scope.organisation_id)


def _media_keys(post: Post) -> list[uuid.UUID]:
    return [uuid.UUID(m) for m in post.media_ids]


# ------------------------------------------------------------------------------ status


def derive_post_status(post: Post) -> str:
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
    if published or any(s == TargetStatus.UNCONFIRMED for s in live):
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
    post: Post
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


def build_post(session: Session, scope: Scope, data: dict[str, Any], now: datetime) -> Post:
    """Validate a loaded CreatePostSchema payload against the database and platform rules.
    `data["profile_id"]` is the post's profile (the key's, for a profile key)."""
    errors = ErrorBag()
    draft = bool(data.get("draft"))
    scheduled_at, publish_now = parse_schedule(data.get("scheduled_at"), data.get("timezone"), now)
    if draft:
        publish_now = False  # a draft's time is only a suggestion until it is scheduled
    profile_id = data.get("profile_id")
    accounts = load_accounts(session, scope, data["account_ids"], errors, profile_id)
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
            content, (a.platform for a in accounts), media, platform_content, errors
        )
    errors.raise_if_any()

    post = Post(
        id=uuid.uuid4(),
        organisation_id=scope.organisation_id,
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
        profile_id=profile_id,
        cover_photo=str(data["cover_photo"]) if data.get("cover_photo") else None,
        created_at=now,
        updated_at=now,
    )
    post.targets = [
        PostTarget(
            account_id=account.id,
            platform=account.platform,
            status=TargetStatus.DRAFT if draft else TargetStatus.SCHEDULED,
            attempts=0,
            next_attempt_at=scheduled_at,
        )
        for account in accounts
    ]
    set_prepare_due(post, media)
    session.add(post)
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


def set_prepare_due(post: Post, media: list[Media]) -> None:
    """When each target's media is to be prepared on its platform (docs/delivery.md, "Prepare
    ahead"); nothing to prepare without media, or where the platform cannot stage."""
    kinds = {m.kind for m in media}
    window = prepare_window("video" if "video" in kinds else "image") if kinds else None
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
    idempotency_key: str | None = None,
    fingerprint: str = "",
    idempotency_ttl: int = 24 * 3600,
    enqueue_horizon: int | None = None,
) -> CreateResult:
    """Build and flush a post; with `enqueue_horizon`, its targets due within it are
    written `queued` (the caller sends their messages after commit)."""
    now = utcnow()
    if idempotency_key:
        existing = find_idempotent_post(
            session, scope, idempotency_key, fingerprint, idempotency_ttl
        )
        if existing is not None:
            return CreateResult(existing, replayed=True)
    post = build_post(session, scope, data, now)
    if enqueue_horizon is not None:
        queue_new_targets(post.targets, enqueue_horizon)
    session.flush()
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


# ----------------------------------------------------------------------------- changes


def _changeable_targets(post: Post) -> list[PostTarget]:
    return [
        t
        for t in post.targets
        if t.status in (TargetStatus.DRAFT, TargetStatus.SCHEDULED, TargetStatus.QUEUED)
    ]


def _refuse_if_publishing(post: Post, action: str) -> None:
    """A target being published right now, or whose publish request may already have
    reached the platform without an answer, is neither cancelled nor edited behind the
    platform's back: its outcome is settled first (reconciled with the platform)."""
    in_flight = [
        t
        for t in post.targets
        if t.status == TargetStatus.PUBLISHING
        or (t.status in (TargetStatus.SCHEDULED, TargetStatus.QUEUED) and t.irreversible_started_at)
    ]
    if in_flight:
        names = ", ".join(f"{t.platform} account {t.account_id}" for t in in_flight)
        raise Conflict(
            f"This post is being published to {names} right now (a publish request may "
            f"already have reached the platform), so it cannot be {action} yet. Crier is "
            "settling the outcome with the platform; try again in a few seconds.",
            code="post_publishing",
        )


def update_post(session: Session, scope: Scope, post_id: str, data: dict[str, Any]) -> Post:
    """PATCH: allowed while nothing of the post has started publishing. What it newly
    references must be the key's to see and fit the post's profile, as at creation."""
    post = access.post(session, scope, post_id, lock=True)
    if post.status == PostStatus.CANCELLED:
        raise Conflict("This post was cancelled and cannot be changed.", code="post_cancelled")
    if "draft" in data:
        raise ValidationError(
            "draft cannot be changed here; schedule a draft with POST /posts/{id}/schedule.",
            details={"draft": ["Use POST /posts/{id}/schedule."]},
        )
    is_draft = post.status == PostStatus.DRAFT
    _refuse_if_publishing(post, "changed")
    untouchable = [
        t
        for t in post.targets
        if t.status
        not in (
            TargetStatus.DRAFT,
            TargetStatus.SCHEDULED,
            TargetStatus.QUEUED,
            TargetStatus.CANCELLED,
        )
    ]
    if untouchable or any(t.attempts for t in post.targets):
        raise Conflict(
            "Publishing of this post has started; it can no longer be changed.",
            code="post_already_published",
        )
    now = utcnow()
    errors = ErrorBag()
    # The zone only says how to read a wall-clock scheduled_at; alone it moves nothing.
    zone = resolve_timezone(data.get("timezone", post.timezone))
    if "scheduled_at" in data:
        scheduled_at, publish_now = parse_schedule(data["scheduled_at"], zone.key, now)
        post.scheduled_at, post.publish_now = scheduled_at, publish_now
    post.timezone = zone.key
    if "content" in data:
        post.content = data["content"]
    if "platform_content" in data:
        post.platform_content = data["platform_content"] or {}
    check_extras(session, scope, data, errors, post.profile_id)
    if is_draft:
        post.publish_now = False
    if "media_ids" in data:
        media = load_media(session, scope, data["media_ids"] or [], errors, post.profile_id)
        post.media_ids = [str(m.id) for m in media]
    else:  # what the post holds already is read again (its status), not judged anew
        media = load_media(session, _organisation(scope), _media_keys(post), errors)
    live = [t for t in post.targets if t.status != TargetStatus.CANCELLED]
    accounts = [t.account for t in live]
    if "account_ids" in data:
        accounts = load_accounts(session, scope, data["account_ids"], errors, post.profile_id)
    if not post.content.strip() and not media:
        errors.add("content", "content must not be empty when no media is attached.")
    if not errors.errors:
        check_platform_rules(
            post.content, (a.platform for a in accounts), media, post.platform_content, errors
        )
    errors.raise_if_any()
    # Set once they are known to exist: an unknown campaign would otherwise reach the
    # database (its foreign key) at the next autoflush, as a 500.
    if "campaign_id" in data:
        post.campaign_id = data["campaign_id"]
    if "cover_photo" in data:
        post.cover_photo = str(data["cover_photo"]) if data["cover_photo"] else None

    wanted = {a.id: a for a in accounts}
    for target in post.targets:
        if target.account_id not in wanted:
            session.delete(target)
    post.targets = [t for t in post.targets if t.account_id in wanted]
    present = {t.account_id for t in post.targets}
    for account in accounts:
        if account.id not in present:
            post.targets.append(
                PostTarget(
                    account_id=account.id,
                    platform=account.platform,
                    attempts=0,
                    next_attempt_at=post.scheduled_at,
                )
            )
    # What the platform prepared (containers, uploads) was made for the old content.
    content_changed = any(k in data for k in ("content", "media_ids", "platform_content"))
    # Every target starts over with no token: messages already sent become stale no-ops.
    for target in post.targets:
        target.status = TargetStatus.DRAFT if is_draft else TargetStatus.SCHEDULED
        target.dispatch_token = None
        target.queued_at = None
        target.next_attempt_at = post.scheduled_at
        if content_changed:
            discard_prepared(session, target)
    if content_changed or "scheduled_at" in data or "account_ids" in data:
        # What was prepared is dropped with its handle; a new window follows the schedule.
        set_prepare_due(post, media)
    refresh_post_status(post)
    session.flush()
    return post


# The worker task that deletes a published copy; named here so app/ needs no workers/.
DELETE_ON_PLATFORM_TASK = "crier.delete_on_platform"
DELETE_QUEUE = "maintenance"


def enqueue_platform_deletes(celery: Any, target_ids: list[int]) -> int:
    """After commit. A message that cannot be sent is resent by the periodic resume."""
    sent = 0
    for target_id in target_ids:
        try:
            celery.send_task(DELETE_ON_PLATFORM_TASK, args=[target_id], queue=DELETE_QUEUE)
            sent += 1
        except Exception:  # broker down: resume_stalled_deletes sends it later
            break
    return sent


def delete_post(
    session: Session, scope: Scope, post_id: str, platforms: set[str]
) -> tuple[Post, list[PostTarget]]:
    """DELETE with delete_on_platforms: cancel what is unpublished, and mark published
    copies on those platforms for deletion by a worker. Returns the marked targets."""
    post = access.post(session, scope, post_id, lock=True)
    _refuse_if_publishing(post, "cancelled")
    cancellable = _changeable_targets(post)
    to_delete = [
        t
        for t in post.targets
        if t.status == TargetStatus.PUBLISHED
        and t.platform in platforms
        and t.platform_post_id
        and t.platform_delete_status in (None, "failed")
    ]
    if not cancellable and not to_delete:
        return cancel_post(session, scope, post_id), []
    for target in cancellable:
        target.status = TargetStatus.CANCELLED
        target.dispatch_token = None
        discard_prepared(session, target)
    for target in to_delete:
        target.platform_delete_status = "pending"
        target.platform_delete_error = None
    refresh_post_status(post)
    session.flush()
    return post, to_delete


def cancel_post(session: Session, scope: Scope, post_id: str) -> Post:
    post = access.post(session, scope, post_id, lock=True)
    _refuse_if_publishing(post, "cancelled")
    cancellable = _changeable_targets(post)
    if not cancellable:
        if post.status == PostStatus.CANCELLED:
            raise Conflict("This post is already cancelled.", code="post_already_cancelled")
        raise Conflict(
            "Nothing left to cancel: every account of this post has been published or has "
            "finished.",
            code="post_already_published",
        )
    for target in cancellable:
        target.status = TargetStatus.CANCELLED
        target.dispatch_token = None
        discard_prepared(session, target)
    refresh_post_status(post)
    session.flush()
    return post


def _requeue_failed(target: PostTarget, now: datetime) -> None:
    target.status = TargetStatus.SCHEDULED
    target.attempts = 0
    target.error_code = None
    target.error_message = None
    target.dispatch_token = None
    target.next_attempt_at = now


def retry_post(
    session: Session, scope: Scope, post_id: str, account_ids: list[int] | None = None
) -> tuple[Post, list[PostTarget]]:
    post = access.post(session, scope, post_id, lock=True)
    failed = [t for t in post.targets if t.status == TargetStatus.FAILED]
    if account_ids:
        unknown = sorted(set(account_ids) - {t.account_id for t in post.targets})
        if unknown:
            message = f"Not an account of this post: {', '.join(map(str, unknown))}."
            raise ValidationError(message, details={"account_ids": [message]})
        failed = [t for t in failed if t.account_id in set(account_ids)]
    if not failed:
        raise Conflict("This post has no failed accounts to retry.", code="nothing_to_retry")
    now = utcnow()
    for target in failed:
        if target.account.status != AccountStatus.ACTIVE:
            raise ApiError(
                f"Account {target.account_id} needs reconnecting before it can be retried.",
                code="account_needs_reconnect",
                status=409,
            )
        _requeue_failed(target, now)
    refresh_post_status(post)
    session.flush()
    return post, failed


RETRY_FAILED_LIMIT = 1000


@dataclass
class RetryFailedResult:
    posts: list[Post]
    retried: list[PostTarget]
    skipped: list[tuple[PostTarget, str]]


def retry_failed(session: Session, scope: Scope, filters: dict[str, Any]) -> RetryFailedResult:
    """POST /posts/retry-failed: failed targets matching every filter, among the posts
    the key sees, go back to the queue."""
    query = (
        select(PostTarget.id, PostTarget.post_id)
        .join(Post, Post.id == PostTarget.post_id)
        .where(*scope.where(Post), PostTarget.status == TargetStatus.FAILED)
    )
    if filters.get("post_ids"):
        query = query.where(PostTarget.post_id.in_(filters["post_ids"]))
    if filters.get("account_id"):
        query = query.where(PostTarget.account_id == filters["account_id"])
    if filters.get("platform"):
        query = query.where(PostTarget.platform == filters["platform"])
    if filters.get("failed_after"):
        query = query.where(PostTarget.updated_at >= filters["failed_after"])
    if filters.get("failed_before"):
        query = query.where(PostTarget.updated_at < filters["failed_before"])
    if filters.get("max_attempts") is not None:
        query = query.where(PostTarget.attempts <= filters["max_attempts"])
    rows = session.execute(
        query.order_by(PostTarget.post_id, PostTarget.id).limit(RETRY_FAILED_LIMIT)
    ).all()
    wanted = {target_id for target_id, _post_id in rows}
    result = RetryFailedResult([], [], [])
    now = utcnow()
    for post_id in dict.fromkeys(post_id for _target_id, post_id in rows):
        post = access.post(session, scope, post_id, lock=True)
        changed = False
        for target in post.targets:
            if target.id not in wanted or target.status != TargetStatus.FAILED:
                continue
            if target.account.status != AccountStatus.ACTIVE:
                reason = (
                    "account needs reconnecting"
                    if target.account.status == AccountStatus.NEEDS_RECONNECT
                    else f"account is {target.account.status}"
                )
                result.skipped.append((target, reason))
                continue
            _requeue_failed(target, now)
            result.retried.append(target)
            changed = True
        if changed:
            refresh_post_status(post)
            result.posts.append(post)
    session.flush()
    return result


def schedule_draft(session: Session, scope: Scope, post_id: str, data: dict[str, Any]) -> Post:
    """POST /posts/{id}/schedule: a draft goes live, now or at its time, on accounts the
    key sees and of the post's profile (as at creation)."""
    post = access.post(session, scope, post_id, lock=True)
    if post.status != PostStatus.DRAFT:
        raise Conflict(
            f"Only a draft can be scheduled; this post is {post.status}.", code="post_not_draft"
        )
    now = utcnow()
    tz_name = data.get("timezone") or post.timezone
    if data.get("publish_now"):
        scheduled_at, publish_now = parse_schedule(None, tz_name, now)
    elif data.get("scheduled_at"):
        scheduled_at, publish_now = parse_schedule(data["scheduled_at"], tz_name, now)
    else:
        message = "Give scheduled_for (or scheduled_at), or publish_now: true."
        raise ValidationError(message, details={"scheduled_for": [message]})
    errors = ErrorBag()
    account_ids = data.get("account_ids") or [t.account_id for t in post.targets]
    accounts = load_accounts(session, scope, account_ids, errors, post.profile_id)
    media = load_media(session, _organisation(scope), _media_keys(post), errors)
    if not errors.errors:
        check_platform_rules(
            post.content, (a.platform for a in accounts), media, post.platform_content, errors
        )
    errors.raise_if_any()
    wanted = {a.id for a in accounts}
    for target in list(post.targets):
        if target.account_id not in wanted:
            session.delete(target)
    post.targets = [t for t in post.targets if t.account_id in wanted]
    present = {t.account_id for t in post.targets}
    post.targets.extend(
        PostTarget(account_id=a.id, platform=a.platform, attempts=0, next_attempt_at=scheduled_at)
        for a in accounts
        if a.id not in present
    )
    post.scheduled_at, post.publish_now = scheduled_at, publish_now
    post.timezone = resolve_timezone(tz_name).key
    for target in post.targets:
        target.status = TargetStatus.SCHEDULED
        target.dispatch_token = None
        target.next_attempt_at = scheduled_at
    refresh_post_status(post)
    session.flush()
    return post

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

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from app.api.envelope import ApiError, Conflict, NotFound, ValidationError
from app.db import utcnow
from app.models import (
    FINAL_TARGET_STATUSES,
    OPEN_TARGET_STATUSES,
    Account,
    AccountStatus,
    IdempotencyRecord,
    Media,
    Post,
    PostStatus,
    PostTarget,
    TargetStatus,
)
from app.platforms import (
    PLATFORMS,
    count_hashtags,
    count_mentions,
    media_rule_for,
)
from app.schemas import SETTING_DEFAULTS

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


def load_accounts(
    session: Session, organisation_id: int, account_ids: list[int], errors: ErrorBag
) -> list[Account]:
    unique_ids = list(dict.fromkeys(account_ids))
    if len(unique_ids) != len(account_ids):
        errors.add("account_ids", "Each account may appear only once.")
    rows = session.scalars(
        select(Account).where(
            Account.id.in_(unique_ids), Account.organisation_id == organisation_id
        )
    ).all()
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
    session: Session, organisation_id: int, media_ids: list[uuid.UUID], errors: ErrorBag
) -> list[Media]:
    if len(set(media_ids)) != len(media_ids):
        errors.add("media_ids", "Each media id may appear only once.")
    rows = session.scalars(
        select(Media)
        .where(Media.id.in_(media_ids), Media.organisation_id == organisation_id)
        # FOR SHARE: a deletion of this media waits for this post's commit (and then sees
        # the post), or this post waits for the deletion (and then finds no media).
        .with_for_update(read=True)
    ).all()
    by_id = {m.id: m for m in rows}
    missing = [str(i) for i in media_ids if i not in by_id]
    if missing:
        errors.add(
            "media_ids", f"Media not found: {', '.join(missing)}. Upload with POST /media/upload."
        )
    return [by_id[i] for i in dict.fromkeys(media_ids) if i in by_id]


def get_post(
    session: Session, organisation_id: int, post_id: str | uuid.UUID, *, lock: bool = False
) -> Post:
    try:
        key = post_id if isinstance(post_id, uuid.UUID) else uuid.UUID(str(post_id))
    except ValueError as exc:
        raise NotFound("Post not found.") from exc
    query = (
        select(Post)
        .where(Post.id == key, Post.organisation_id == organisation_id)
        .options(selectinload(Post.targets))
    )
    if lock:
        query = query.with_for_update()
    post = session.scalar(query)
    if post is None:
        raise NotFound("Post not found.")
    if lock:
        # The post's row lock does not stop a worker's claim, which updates only the target.
        # Lock the targets too and read them afresh: a claim that is under way finishes
        # first and is seen here, and one that comes later finds the token gone.
        session.scalars(
            select(PostTarget)
            .where(PostTarget.post_id == post.id)
            .order_by(PostTarget.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
    return post


# ------------------------------------------------------------------------------ status


def derive_post_status(post: Post) -> str:
    """A post's status follows from its targets (DESIGN.md "The unit of work")."""
    statuses = [t.status for t in post.targets]
    live = [s for s in statuses if s != TargetStatus.CANCELLED]
    if not live:
        return PostStatus.CANCELLED
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


def refresh_post_status(post: Post) -> None:
    post.status = derive_post_status(post)
    post.updated_at = utcnow()


# ------------------------------------------------------------------------------ create


def request_fingerprint(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class CreateResult:
    post: Post
    replayed: bool = False


def find_idempotent_post(
    session: Session, organisation_id: int, key: str, fingerprint: str, ttl_seconds: int
) -> Post | None:
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.organisation_id == organisation_id, IdempotencyRecord.key == key
        )
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
    return get_post(session, organisation_id, record.post_id)


def build_post(session: Session, organisation_id: int, data: dict[str, Any], now: datetime) -> Post:
    """Validate a loaded CreatePostSchema payload against the database and platform rules."""
    errors = ErrorBag()
    scheduled_at, publish_now = parse_schedule(data.get("scheduled_at"), data.get("timezone"), now)
    accounts = load_accounts(session, organisation_id, data["account_ids"], errors)
    media = load_media(session, organisation_id, data.get("media_ids") or [], errors)
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
        organisation_id=organisation_id,
        content=content,
        scheduled_at=scheduled_at,
        publish_now=publish_now,
        timezone=resolve_timezone(data.get("timezone")).key,
        platform_content=platform_content,
        media_ids=[str(m.id) for m in media],
        status=PostStatus.PUBLISHING if publish_now else PostStatus.SCHEDULED,
        created_at=now,
        updated_at=now,
    )
    post.targets = [
        PostTarget(
            account_id=account.id,
            platform=account.platform,
            status=TargetStatus.SCHEDULED,
            attempts=0,
            next_attempt_at=scheduled_at,
        )
        for account in accounts
    ]
    session.add(post)
    return post


def create_post(
    session: Session,
    organisation_id: int,
    data: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    fingerprint: str = "",
    idempotency_ttl: int = 24 * 3600,
) -> CreateResult:
    now = utcnow()
    if idempotency_key:
        existing = find_idempotent_post(
            session, organisation_id, idempotency_key, fingerprint, idempotency_ttl
        )
        if existing is not None:
            return CreateResult(existing, replayed=True)
    post = build_post(session, organisation_id, data, now)
    session.flush()
    if idempotency_key:
        session.add(
            IdempotencyRecord(
                organisation_id=organisation_id,
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
    return [t for t in post.targets if t.status in (TargetStatus.SCHEDULED, TargetStatus.QUEUED)]


def update_post(session: Session, organisation_id: int, post_id: str, data: dict[str, Any]) -> Post:
    """PATCH: allowed while nothing of the post has started publishing."""
    post = get_post(session, organisation_id, post_id, lock=True)
    if post.status == PostStatus.CANCELLED:
        raise Conflict("This post was cancelled and cannot be changed.", code="post_cancelled")
    untouchable = [
        t
        for t in post.targets
        if t.status not in (TargetStatus.SCHEDULED, TargetStatus.QUEUED, TargetStatus.CANCELLED)
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
    media = load_media(session, organisation_id, [uuid.UUID(m) for m in post.media_ids], errors)
    if "media_ids" in data:
        media = load_media(session, organisation_id, data["media_ids"] or [], errors)
        post.media_ids = [str(m.id) for m in media]
    live = [t for t in post.targets if t.status != TargetStatus.CANCELLED]
    accounts = [t.account for t in live]
    if "account_ids" in data:
        accounts = load_accounts(session, organisation_id, data["account_ids"], errors)
    if not post.content.strip() and not media:
        errors.add("content", "content must not be empty when no media is attached.")
    if not errors.errors:
        check_platform_rules(
            post.content, (a.platform for a in accounts), media, post.platform_content, errors
        )
    errors.raise_if_any()

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
    # Every target starts over with no token: messages already sent become stale no-ops.
    for target in post.targets:
        target.status = TargetStatus.SCHEDULED
        target.dispatch_token = None
        target.queued_at = None
        target.next_attempt_at = post.scheduled_at
    refresh_post_status(post)
    session.flush()
    return post


def cancel_post(session: Session, organisation_id: int, post_id: str) -> Post:
    post = get_post(session, organisation_id, post_id, lock=True)
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
    refresh_post_status(post)
    session.flush()
    return post


def retry_post(
    session: Session, organisation_id: int, post_id: str
) -> tuple[Post, list[PostTarget]]:
    post = get_post(session, organisation_id, post_id, lock=True)
    failed = [t for t in post.targets if t.status == TargetStatus.FAILED]
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
        target.status = TargetStatus.SCHEDULED
        target.attempts = 0
        target.error_code = None
        target.error_message = None
        target.dispatch_token = None
        target.next_attempt_at = now
    refresh_post_status(post)
    session.flush()
    return post, failed

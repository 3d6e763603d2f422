"""The platform rules check: what a platform would refuse, found before it is asked.

The rules themselves are data in `app.platforms`; this applies them to one post's text,
settings and media. Intake runs it when a post is created or changed, and workers run it
again before each call (the rules can change after intake), so it lives beside the rules
table rather than in either side's code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.errors import ValidationError
from app.models import Media
from app.platforms import (
    MAX_THREAD_ITEMS,
    PLATFORMS,
    PlatformRules,
    count_hashtags,
    count_mentions,
    media_rule_for,
)
from app.schemas import SETTING_DEFAULTS

# Settings a platform cannot publish without, and what each one is.
REQUIRED_SETTINGS: dict[str, dict[str, str]] = {
    "pinterest": {"boardId": "the board to pin to (listed in the account's boards)"},
    "wordpress": {"title": "a post title"},
}


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


class ConnectedAccount(Protocol):
    """What the rules read of an account: an ORM row or an `AccountRow`."""

    @property
    def platform(self) -> str: ...

    @property
    def settings(self) -> dict[str, Any] | None: ...


def known_text_limits(accounts: Iterable[ConnectedAccount]) -> dict[str, int]:
    """Text limits the accounts' own servers state (a Mastodon instance's
    `max_characters`, read when the account connected), where they differ from the rules
    table: the smallest over the post's accounts of the platform, the table's figure for
    an account whose server did not say."""
    limits: dict[str, int] = {}
    for account in accounts:
        if account.platform != "mastodon":
            continue
        known = ((account.settings or {}).get("limits") or {}).get("max_characters")
        limit = int(known) if isinstance(known, int) and known > 0 else None
        limit = limit or PLATFORMS[account.platform].text_limit
        limits[account.platform] = min(limits.get(account.platform, limit), limit)
    return limits


def check_platform_rules(
    content: str,
    platforms: Iterable[str],
    media: list[Media],
    platform_content: dict[str, Any],
    errors: ErrorBag,
    text_limits: dict[str, int] | None = None,
) -> None:
    """Refuse at intake what a platform would refuse at publish time. `text_limits`:
    per-server limits known for the post's accounts (`known_text_limits`)."""
    for platform in sorted(set(platforms)):
        rules = PLATFORMS[platform]
        entry = platform_content.get(platform) or {}
        text_path = f"platform_content.{platform}.content" if "content" in entry else "content"
        text = platform_text(platform, content, platform_content)
        length = rules.count_text(text)
        limit = (text_limits or {}).get(platform, rules.text_limit)
        if length > limit:
            errors.add(
                text_path,
                f"{rules.label} allows at most {limit} {rules.text_unit}; this text has {length}.",
            )
        if media and rules.caption_limit is not None and length > rules.caption_limit:
            errors.add(
                text_path,
                f"{rules.label} allows at most {rules.caption_limit} {rules.text_unit} in the "
                f"caption of media; this text has {length}.",
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
        for name, why in REQUIRED_SETTINGS.get(platform, {}).items():
            if not settings.get(name):
                path = f"platform_content.{platform}.settings.{name}"
                errors.add(path, f"{rules.label} requires {why}.")
        content_type = settings.get("contentType") or settings.get("videoType")
        if platform == "facebook" and not content_type and any(m.kind == "video" for m in media):
            content_type = "video"
        _check_media(platform, content_type, media, settings, errors)


def first_comment_of(platform: str, platform_content: dict[str, Any]) -> str | None:
    """The comment to post right after the post on `platform`, if any."""
    comment = (platform_content.get(platform) or {}).get("firstComment")
    return comment if comment else None


def thread_of(platform: str, platform_content: dict[str, Any]) -> list[dict[str, Any]]:
    """The items that follow the post on `platform`, each replying to the one before."""
    return list((platform_content.get(platform) or {}).get("thread") or [])


def thread_media_ids(platform_content: dict[str, Any]) -> list[str]:
    """Every media id the threads of a post name, each once."""
    ids = [
        str(media_id)
        for entry in platform_content.values()
        if isinstance(entry, dict)
        for item in entry.get("thread") or []
        for media_id in item.get("media_ids") or []
    ]
    return list(dict.fromkeys(ids))


def check_follow_ups(
    platforms: Iterable[str],
    platform_content: dict[str, Any],
    media: dict[str, Media],
    errors: ErrorBag,
) -> None:
    """A first comment and a thread, for each platform the post goes to: refused where the
    platform's API cannot post them; each thread item under the post's own rules (text,
    media), with its own path (`platform_content.x.thread[3].content`). `media`: the
    thread items' media by id (an id missing there is reported at its item)."""
    for platform in sorted(set(platforms)):
        rules = PLATFORMS[platform]
        entry = platform_content.get(platform) or {}
        base = f"platform_content.{platform}"
        comment = entry.get("firstComment")
        if comment is not None:
            if not rules.first_comment:
                errors.add(
                    f"{base}.firstComment",
                    f"{rules.label} cannot post comments through its API, so a first comment "
                    "cannot be published there; remove firstComment.",
                )
            elif not comment.strip():
                errors.add(f"{base}.firstComment", "The first comment must not be empty.")
            else:
                _check_text(rules, comment, f"{base}.firstComment", errors, rules.comment_limit)
        thread = entry.get("thread")
        if thread is None:
            continue
        if not rules.threads:
            errors.add(
                f"{base}.thread",
                f"{rules.label} cannot post threads through its API; remove thread.",
            )
            continue
        if len(thread) > MAX_THREAD_ITEMS:
            errors.add(f"{base}.thread", f"A thread may have at most {MAX_THREAD_ITEMS} items.")
        for n, item in enumerate(thread):
            path = f"{base}.thread[{n}]"
            text = item.get("content") or ""
            ids = [str(i) for i in item.get("media_ids") or []]
            missing = [i for i in ids if i not in media]
            if missing:
                errors.add(
                    f"{path}.media_ids",
                    f"Media not found: {', '.join(missing)}. Upload with POST /media/upload.",
                )
                continue
            if len(set(ids)) != len(ids):
                errors.add(f"{path}.media_ids", "Each media id may appear only once.")
            if not text.strip() and not ids:
                errors.add(f"{path}.content", f"{rules.label} needs text or media; both are empty.")
                continue
            _check_text(rules, text, f"{path}.content", errors)
            _check_media(platform, None, [media[i] for i in ids], {}, errors, f"{path}.media_ids")


def _check_text(
    rules: PlatformRules, text: str, path: str, errors: ErrorBag, limit: int | None = None
) -> None:
    length, limit = rules.count_text(text), limit or rules.text_limit
    if length > limit:
        errors.add(
            path,
            f"{rules.label} allows at most {limit} {rules.text_unit}; this text has {length}.",
        )
    if rules.max_hashtags is not None and count_hashtags(text) > rules.max_hashtags:
        errors.add(path, f"{rules.label} allows at most {rules.max_hashtags} hashtags.")


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _check_media(
    platform: str,
    content_type: str | None,
    media: list[Media],
    settings: dict[str, Any],
    errors: ErrorBag,
    path: str = "media_ids",
) -> None:
    rules = PLATFORMS[platform]
    rule = media_rule_for(platform, content_type)
    what = f"{rules.label} {content_type}" if content_type else rules.label
    images = [m for m in media if m.kind == "image"]
    videos = [m for m in media if m.kind == "video"]
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

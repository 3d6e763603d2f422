"""Request and response schemas (marshmallow). They also generate the OpenAPI document."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    pre_load,
    validate,
    validates_schema,
)

from app.models import AUDIT_ACTIONS
from app.platforms import MAX_THREAD_ITEMS, PLATFORM_KEYS
from app.schema_fields import MAX_ID as MAX_ID
from app.schema_fields import StrictBoolean as StrictBoolean
from app.schema_fields import StrictInteger as StrictInteger
from app.schema_fields import StrictNumber as StrictNumber
from app.schema_fields import StrictSchema as StrictSchema
from app.schema_fields import UtcDateTime as UtcDateTime
from app.schema_fields import one_of as one_of

MAX_ACCOUNTS_PER_POST = 500
MAX_MEDIA_PER_POST = 35
MAX_CONTENT_CHARS = 100_000


class InstagramSettings(StrictSchema):
    contentType = fields.String(validate=one_of("Post", "Story", "Reels", "Trial Reel"))
    altText = fields.String(validate=validate.Length(max=100))
    coverPhotoTimestamp = StrictNumber(validate=validate.Range(min=0))


class TikTokSettings(StrictSchema):
    privacyLevel = fields.String(
        validate=one_of(
            "PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"
        )
    )
    allowComments = StrictBoolean()
    allowDuet = StrictBoolean()
    allowStitch = StrictBoolean()


def _valid_tag(tag: str) -> None:
    if not tag.strip():
        raise ValidationError("Tags must not be empty.")
    if "<" in tag or ">" in tag:
        raise ValidationError("Tags must not contain < or >.")


def _valid_title(title: str) -> None:
    if not title.strip():
        raise ValidationError("The title must not be empty.")
    if "<" in title or ">" in title:
        raise ValidationError("YouTube titles must not contain < or >.")


class YouTubeSettings(StrictSchema):
    title = fields.String(validate=[validate.Length(max=100), _valid_title])
    privacyStatus = fields.String(validate=one_of("public", "unlisted", "private"))
    tags = fields.List(fields.String(validate=_valid_tag), validate=validate.Length(max=500))

    @validates_schema
    def _tags_total(self, data: dict[str, Any], **_: Any) -> None:
        tags = data.get("tags") or []
        # YouTube counts a tag with spaces as if quoted, plus a comma between tags.
        total = sum(len(t) + (2 if " " in t else 0) for t in tags) + max(len(tags) - 1, 0)
        if total > 500:
            raise ValidationError(
                f"Tags total {total} characters; YouTube allows at most 500.", "tags"
            )


class LinkedInSettings(StrictSchema):
    visibility = fields.String(validate=one_of("PUBLIC", "CONNECTIONS", "LOGGED_IN_MEMBERS"))


class XSettings(StrictSchema):
    replySettings = fields.String(validate=one_of("everyone", "following", "mentionedUsers"))


class FacebookSettings(StrictSchema):
    videoType = fields.String(validate=one_of("reel", "video"))


class ThreadsSettings(StrictSchema):
    pass


class TelegramSettings(StrictSchema):
    parseMode = fields.String(validate=one_of("HTML", "MarkdownV2"))
    disableNotification = StrictBoolean(metadata={"description": "Deliver silently."})
    disableWebPagePreview = StrictBoolean(metadata={"description": "No link preview."})
    protectContent = StrictBoolean(metadata={"description": "No forwarding or saving."})
    messageThreadId = StrictInteger(
        validate=validate.Range(min=1, max=MAX_ID), metadata={"description": "Forum topic."}
    )


class DiscordEmbedSchema(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=256))
    description = fields.String(validate=validate.Length(min=1, max=4096))
    url = fields.Url(schemes={"http", "https"})
    color = StrictInteger(validate=validate.Range(min=0, max=0xFFFFFF))
    footer = fields.String(validate=validate.Length(min=1, max=2048))
    imageUrl = fields.Url(schemes={"http", "https"})


class DiscordSettings(StrictSchema):
    username = fields.String(validate=validate.Length(min=1, max=80))
    avatarUrl = fields.Url(schemes={"https"})
    threadId = fields.String(validate=validate.Regexp(r"^\d{1,20}$", error="Not a Discord id."))
    threadName = fields.String(validate=validate.Length(min=1, max=100))
    suppressEmbeds = StrictBoolean(metadata={"description": "No link previews."})
    embeds = fields.List(fields.Nested(DiscordEmbedSchema), validate=validate.Length(max=10))

    @validates_schema
    def _embeds_total(self, data: dict[str, Any], **_: Any) -> None:
        """Discord allows 6,000 characters over every embed of a message."""
        if any(not (e.get("title") or e.get("description")) for e in data.get("embeds") or []):
            raise ValidationError("An embed needs a title or a description.", "embeds")
        total = sum(len(e.get(k) or "") for e in data.get("embeds") or [] for k in EMBED_TEXT)
        if total > 6000:
            raise ValidationError(f"Embeds total {total} characters; at most 6000.", "embeds")


EMBED_TEXT = ("title", "description", "footer")


class BlueskySettings(StrictSchema):
    langs = fields.List(
        fields.String(validate=validate.Length(min=2, max=35)),
        validate=validate.Length(max=3),
        metadata={"description": "BCP-47 language tags of the post (at most 3)."},
    )
    altTexts = fields.List(
        fields.String(validate=validate.Length(max=2000)),
        validate=validate.Length(max=4),
        metadata={"description": "Alt text of each image (or the video), in media order."},
    )
    linkCard = StrictBoolean(
        metadata={
            "description": "Show the first link of the text as a card (app.bsky.embed."
            "external) when the post has no media. Default true."
        }
    )


class MastodonSettings(StrictSchema):
    visibility = fields.String(validate=one_of("public", "unlisted", "private", "direct"))
    spoilerText = fields.String(
        validate=validate.Length(max=500),
        metadata={"description": "A content warning shown before the text."},
    )
    sensitive = StrictBoolean(metadata={"description": "Hide the media behind a warning."})
    language = fields.String(
        validate=validate.Regexp(r"^[a-z]{2,3}$", error="An ISO 639 language code."),
        metadata={"description": "ISO 639 code of the text's language, e.g. en."},
    )
    altTexts = fields.List(
        fields.String(validate=validate.Length(max=1500)),
        validate=validate.Length(max=4),
        metadata={"description": "Alt text (media description) of each media, in order."},
    )


def _board_id(value: str) -> None:
    if not value.isdigit():
        raise ValidationError("A Pinterest board id is a string of digits (GET /accounts/{id}).")


def _http_url(value: str) -> None:
    if not value.startswith(("https://", "http://")):
        raise ValidationError("Must be an absolute http(s) URL.")


class PinterestSettings(StrictSchema):
    boardId = fields.String(validate=[validate.Length(min=1, max=64), _board_id])
    title = fields.String(validate=validate.Length(max=100))
    link = fields.String(validate=[validate.Length(max=2048), _http_url])
    altText = fields.String(validate=validate.Length(max=500))
    coverImageUrl = fields.String(validate=[validate.Length(max=2048), _http_url])
    coverKeyFrameTime = StrictNumber(validate=validate.Range(min=0))


def _term(value: str) -> None:
    if not value.strip():
        raise ValidationError("Category and tag names must not be empty.")


class WordPressSettings(StrictSchema):
    title = fields.String(validate=validate.Length(min=1, max=1000))
    excerpt = fields.String(validate=validate.Length(max=10_000))
    status = fields.String(validate=one_of("publish", "draft", "private"))
    categories = fields.List(
        fields.String(validate=[validate.Length(max=200), _term]), validate=validate.Length(max=50)
    )
    tags = fields.List(
        fields.String(validate=[validate.Length(max=200), _term]), validate=validate.Length(max=50)
    )
    slug = fields.String(
        validate=validate.Regexp(
            r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
            error="A slug is lowercase letters, digits and single hyphens.",
        )
    )
    altText = fields.String(validate=validate.Length(max=500))


SETTINGS_SCHEMAS: dict[str, type[Schema]] = {
    "instagram": InstagramSettings,
    "tiktok": TikTokSettings,
    "youtube": YouTubeSettings,
    "linkedin": LinkedInSettings,
    "x": XSettings,
    "facebook": FacebookSettings,
    "threads": ThreadsSettings,
    "telegram": TelegramSettings,
    "discord": DiscordSettings,
    "bluesky": BlueskySettings,
    "mastodon": MastodonSettings,
    "pinterest": PinterestSettings,
    "wordpress": WordPressSettings,
}

# What a setting means when the caller leaves it out.
SETTING_DEFAULTS: dict[str, dict[str, Any]] = {
    "instagram": {"contentType": "Post"},
    "tiktok": {
        "privacyLevel": "PUBLIC_TO_EVERYONE",
        "allowComments": True,
        "allowDuet": True,
        "allowStitch": True,
    },
    "youtube": {"privacyStatus": "public"},
    "linkedin": {"visibility": "PUBLIC"},
    "x": {"replySettings": "everyone"},
    "facebook": {},
    "threads": {},
    "telegram": {},
    "discord": {},
    "bluesky": {"linkCard": True},
    "mastodon": {"visibility": "public", "sensitive": False},
    "pinterest": {},
    "wordpress": {"status": "publish"},
}


class UUIDText(fields.UUID):
    """A UUID, kept as its text: what JSON columns (platform_content) store."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return str(super()._deserialize(value, attr, data, **kwargs))


class ThreadItemSchema(StrictSchema):
    """One post of a thread, replying to the one before it."""

    content = fields.String(load_default="", validate=validate.Length(max=MAX_CONTENT_CHARS))
    media_ids = fields.List(
        UUIDText(error_messages={"invalid_uuid": "Not a valid UUID."}),
        load_default=list,
        validate=validate.Length(max=MAX_MEDIA_PER_POST),
    )


def _first_comment_alias(self: Schema, data: Any, **_: Any) -> Any:
    """`first_comment` is accepted for `firstComment`."""
    if isinstance(data, dict) and "first_comment" in data:
        data = dict(data)
        alias = data.pop("first_comment")
        if "firstComment" in data and data["firstComment"] != alias:
            raise ValidationError(
                "Give firstComment or its alias first_comment, not two different values.",
                "first_comment",
            )
        data["firstComment"] = alias
    return data


def _platform_entry_schema(platform: str) -> type[Schema]:
    attrs: dict[str, Any] = {
        "content": fields.String(validate=validate.Length(max=MAX_CONTENT_CHARS)),
        "settings": fields.Nested(SETTINGS_SCHEMAS[platform]),
        "firstComment": fields.String(
            allow_none=True,
            validate=validate.Length(max=MAX_CONTENT_CHARS),
            metadata={"description": "Posted as a comment (a reply) right after the post."},
        ),
        "thread": fields.List(
            fields.Nested(ThreadItemSchema),
            validate=validate.Length(
                max=MAX_THREAD_ITEMS, error="A thread may have at most {max} items."
            ),
            metadata={
                "description": "Posts that follow the post, each replying to the one before."
            },
        ),
        "_first_comment_alias": pre_load(_first_comment_alias),
    }
    if platform == "instagram":
        attrs["contentType"] = InstagramSettings._declared_fields["contentType"]
    name = f"{platform.capitalize()}Content"
    return type(name, (StrictSchema,), attrs)


PlatformContentSchema = type(
    "PlatformContentSchema",
    (StrictSchema,),
    {key: fields.Nested(_platform_entry_schema(key)) for key in PLATFORM_KEYS},
)


class CreatePostSchema(StrictSchema):
    """POST /posts, as in the API contract."""

    content = fields.String(
        required=True,
        validate=validate.Length(max=MAX_CONTENT_CHARS),
        metadata={"description": "The text content of the post."},
    )
    account_ids = fields.List(
        StrictInteger(validate=validate.Range(min=1, max=MAX_ID)),
        required=True,
        validate=validate.Length(
            min=1, max=MAX_ACCOUNTS_PER_POST, error="Give between {min} and {max} account ids."
        ),
        metadata={"description": "Social account ids to post to (from GET /accounts)."},
    )
    scheduled_at = fields.String(
        allow_none=True,
        metadata={
            "description": "ISO 8601 instant; without an offset it is wall-clock time in "
            "`timezone`. Omit to publish now. `scheduled_for` is accepted as an alias."
        },
    )
    timezone = fields.String(
        allow_none=True,
        validate=validate.Length(max=64),
        metadata={"description": "IANA time zone, e.g. America/New_York. Defaults to UTC."},
    )
    media_ids = fields.List(
        fields.UUID(error_messages={"invalid_uuid": "Not a valid UUID."}),
        validate=validate.Length(max=MAX_MEDIA_PER_POST),
        metadata={"description": "Media UUIDs from POST /media/upload, in display order."},
    )
    platform_content = fields.Nested(
        PlatformContentSchema,
        metadata={"description": "Per-platform content overrides and settings."},
    )
    draft = StrictBoolean(
        metadata={"description": "Save as a draft, never published until it is scheduled."}
    )
    campaign_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "A campaign id (from GET /campaigns) to group the post under."},
    )
    cover_photo = fields.UUID(
        allow_none=True,
        error_messages={"invalid_uuid": "Not a valid UUID."},
        metadata={"description": "An image media id used as the video cover where supported."},
    )
    profile_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={
            "description": "The profile (GET /profiles) the post belongs to; its accounts must "
            "be that profile's. Defaults to the key's profile, or the accounts' common one."
        },
    )

    @pre_load
    def _alias_scheduled_for(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and "scheduled_for" in data:
            data = dict(data)
            alias = data.pop("scheduled_for")
            if "scheduled_at" in data and data["scheduled_at"] != alias:
                raise ValidationError(
                    "Give scheduled_at or its alias scheduled_for, not two different values.",
                    "scheduled_for",
                )
            data["scheduled_at"] = alias
        return data


class UpdatePostSchema(CreatePostSchema):
    """PATCH /posts/{id}: every field optional."""

    class Meta:
        unknown = RAISE
        exclude = ("profile_id",)

    content = fields.String(validate=validate.Length(max=MAX_CONTENT_CHARS))
    account_ids = fields.List(
        StrictInteger(validate=validate.Range(min=1, max=MAX_ID)),
        validate=validate.Length(
            min=1, max=MAX_ACCOUNTS_PER_POST, error="Give between {min} and {max} account ids."
        ),
    )


class BulkCreateSchema(StrictSchema):
    posts = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1, max=50))


POST_STATUSES = (
    "draft",
    "scheduled",
    "publishing",
    "published",
    "partially_published",
    "failed",
    "cancelled",
)
POST_SORTS = ("created_at", "scheduled_at", "updated_at", "published_at")


class CommaList(fields.String):
    """`a,b,c` in a query string, each item checked against `choices`."""

    def __init__(self, choices: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        items = [item.strip() for item in text.split(",") if item.strip()]
        wrong = [item for item in items if item not in self.choices]
        if wrong or not items:
            raise ValidationError(f"Must be one of: {', '.join(self.choices)}.")
        return items


class ListPostsQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    profile_id = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Only this profile's rows (GET /profiles)."},
    )
    status = CommaList(POST_STATUSES, metadata={"description": "One status or a comma list."})
    platform = CommaList(PLATFORM_KEYS, metadata={"description": "One platform or a comma list."})
    account_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    campaign_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    scheduled_from = UtcDateTime()
    scheduled_to = UtcDateTime()
    created_from = UtcDateTime()
    created_to = UtcDateTime()
    created_after = UtcDateTime()
    created_before = UtcDateTime()
    scheduled_after = UtcDateTime()
    scheduled_before = UtcDateTime()
    published_after = UtcDateTime()
    published_before = UtcDateTime()
    updated_after = UtcDateTime()
    search = fields.String(validate=validate.Length(min=1, max=200))
    sort = fields.String(load_default="created_at", validate=one_of(*POST_SORTS))
    order = fields.String(load_default="desc", validate=one_of("asc", "desc"))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


class AuditLogQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    action = fields.String(validate=one_of(*AUDIT_ACTIONS))
    api_key_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    subject_id = fields.String(validate=validate.Length(min=1, max=64))
    created_from = UtcDateTime()
    created_to = UtcDateTime()
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


class SchedulePostSchema(StrictSchema):
    """POST /posts/{id}/schedule: a draft goes live."""

    scheduled_at = fields.String(allow_none=True)
    publish_now = StrictBoolean()
    account_ids = fields.List(
        StrictInteger(validate=validate.Range(min=1, max=MAX_ID)),
        validate=validate.Length(min=1, max=MAX_ACCOUNTS_PER_POST),
    )
    timezone = fields.String(allow_none=True, validate=validate.Length(max=64))

    @pre_load
    def _alias_scheduled_for(self, data: Any, **_: Any) -> Any:
        if isinstance(data, dict) and "scheduled_for" in data:
            data = dict(data)
            data["scheduled_at"] = data.pop("scheduled_for")
        return data


class RetryPostSchema(StrictSchema):
    account_ids = fields.List(
        StrictInteger(validate=validate.Range(min=1, max=MAX_ID)),
        validate=validate.Length(min=1, max=MAX_ACCOUNTS_PER_POST),
    )


class RetryFailedSchema(StrictSchema):
    """POST /posts/retry-failed: at least one filter."""

    post_ids = fields.List(
        fields.UUID(error_messages={"invalid_uuid": "Not a valid UUID."}),
        validate=validate.Length(min=1, max=1000),
    )
    account_id = StrictInteger(validate=validate.Range(min=1, max=MAX_ID))
    platform = fields.String(validate=one_of(*PLATFORM_KEYS))
    failed_after = fields.AwareDateTime(format="iso")
    failed_before = fields.AwareDateTime(format="iso")
    max_attempts = StrictInteger(validate=validate.Range(min=0, max=1000))

    @validates_schema
    def _one_filter(self, data: dict[str, Any], **_: Any) -> None:
        if not data:
            raise ValidationError(
                "Give at least one filter: post_ids, account_id, platform, failed_after, "
                "failed_before or max_attempts."
            )


class ListMediaQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    profile_id = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Only this profile's rows (GET /profiles)."},
    )
    type = fields.String(validate=one_of("image", "video"))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


class UploadFromUrlSchema(StrictSchema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    filename = fields.String(allow_none=True, validate=validate.Length(max=255))
    profile_id = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_ID))


class PageQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    profile_id = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Only this profile's rows (GET /profiles)."},
    )
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


create_post_schema = CreatePostSchema()
update_post_schema = UpdatePostSchema()
bulk_create_schema = BulkCreateSchema()
list_posts_query = ListPostsQuery()
page_query = PageQuery()
schedule_post_schema = SchedulePostSchema()
list_media_query = ListMediaQuery()
upload_from_url_schema = UploadFromUrlSchema()
retry_post_schema = RetryPostSchema()
retry_failed_schema = RetryFailedSchema()
audit_log_query = AuditLogQuery()

"""Response and query schemas that document the seed product's routes (OpenAPI only)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields


class RetriedTargetOut(Schema):
    post_id = fields.UUID()
    account_id = fields.Integer()
    platform = fields.String()


class SkippedTargetOut(RetriedTargetOut):
    reason = fields.String()


class RetryFailedOut(Schema):
    retried_count = fields.Integer()
    skipped_count = fields.Integer()
    posts_count = fields.Integer()
    retried = fields.List(fields.Nested(RetriedTargetOut))
    skipped = fields.List(fields.Nested(SkippedTargetOut))


class LastErrorOut(Schema):
    code = fields.String(allow_none=True)
    message = fields.String(allow_none=True)
    at = fields.String(allow_none=True)


class AccountHealthOut(Schema):
    account_id = fields.Integer()
    platform = fields.String()
    status = fields.String()
    can_post = fields.Boolean()
    needs_reconnection = fields.Boolean()
    needs_reconnect = fields.Boolean()
    reason = fields.String(allow_none=True)
    token_expires_at = fields.String(allow_none=True)
    token_expired = fields.Boolean()
    has_refresh_token = fields.Boolean()
    refresh_failures = fields.Integer()
    last_error = fields.Nested(LastErrorOut, allow_none=True)
    last_published_at = fields.String(allow_none=True)


class DeletedOut(Schema):
    id = fields.String()
    deleted = fields.Boolean()


class CampaignDeletedOut(Schema):
    id = fields.Integer()
    deleted = fields.Boolean()


class MediaDeletedOut(DeletedOut):
    detached_from_posts = fields.List(fields.UUID())


class MeOut(Schema):
    organisation = fields.Dict()
    api_key = fields.Dict()
    limits = fields.Dict()
    usage = fields.Dict()


class PlatformRulesOut(Schema):
    class Meta:
        unknown = EXCLUDE

    instagram = fields.Dict()
    tiktok = fields.Dict()
    youtube = fields.Dict()
    linkedin = fields.Dict()
    x = fields.Dict()
    facebook = fields.Dict()
    threads = fields.Dict()


class DeleteMediaQuery(Schema):
    force = fields.Boolean(
        metadata={"description": "Detach the media from posts not yet publishing, then delete."}
    )


class DeletePostQuery(Schema):
    delete_on_platforms = fields.String(
        metadata={
            "description": "Comma list of platforms (or `all`) whose published copies are "
            "removed through the platform's delete call; each outcome appears on the target "
            "as `platform_deletion`."
        }
    )

"""The API's answers as schemas: they document the API (OpenAPI); views build plain dicts
to match."""

from __future__ import annotations

from marshmallow import Schema, fields


class StepOut(Schema):
    """A first comment (position 0) or thread item (1..n) posted after its post."""

    position = fields.Integer()
    kind = fields.String(metadata={"description": "comment | thread_item"})
    status = fields.String(
        metadata={"description": "pending | sending | published | failed | unconfirmed"}
    )
    platform_post_id = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    reply_to = fields.String(allow_none=True, metadata={"description": "The id it answers."})
    error = fields.Dict(allow_none=True)
    published_at = fields.String(allow_none=True)


class TargetOut(Schema):
    account_id = fields.Integer()
    platform = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    platform_post_id = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    platform_post_url = fields.String(allow_none=True)
    error = fields.Dict(allow_none=True)
    published_at = fields.String(allow_none=True)
    next_attempt_at = fields.String(allow_none=True)
    next_retry_at = fields.String(allow_none=True)
    platform_deletion = fields.Dict(allow_none=True)
    steps = fields.List(
        fields.Nested(StepOut),
        allow_none=True,
        metadata={"description": "The first comment and thread items, when the post has them."},
    )


class PostOut(Schema):
    post_id = fields.UUID()
    status = fields.String()
    content = fields.String()
    scheduled_for = fields.String()
    timezone = fields.String()
    media_ids = fields.List(fields.UUID())
    platform_content = fields.Dict()
    accounts_count = fields.Integer()
    campaign_id = fields.Integer(allow_none=True)
    profile_id = fields.Integer(allow_none=True)
    cover_photo = fields.UUID(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String()
    published_at = fields.String(allow_none=True)
    targets = fields.List(fields.Nested(TargetOut))


class PostCreatedOut(Schema):
    post_id = fields.UUID()
    status = fields.String()
    scheduled_for = fields.String()
    accounts_count = fields.Integer()
    message = fields.String()


class AccountOut(Schema):
    id = fields.Integer()
    platform = fields.String()
    name = fields.String()
    external_id = fields.String(allow_none=True)
    profile_id = fields.Integer(allow_none=True)
    status = fields.String()
    created_at = fields.String()
    health = fields.Dict()


class MediaOut(Schema):
    id = fields.UUID()
    filename = fields.String()
    kind = fields.String()
    mime_type = fields.String()
    size_bytes = fields.Integer()
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    duration_seconds = fields.Float(allow_none=True)
    sha256 = fields.String()
    media_status = fields.String(metadata={"description": "ready, uploading or failed"})
    status_reason = fields.String(allow_none=True)
    source_url = fields.String(allow_none=True)
    profile_id = fields.Integer(allow_none=True)
    created_at = fields.String()


class AuditEventOut(Schema):
    id = fields.Integer()
    created_at = fields.String()
    action = fields.String()
    actor = fields.String()
    api_key_id = fields.Integer(allow_none=True)
    subject_type = fields.String(allow_none=True)
    subject_id = fields.String(allow_none=True)
    details = fields.Dict()
    source = fields.String(allow_none=True)

"""Response and query schemas that document the API contract's routes (OpenAPI only)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields

from app import response_schemas


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
    ai_credits = fields.Dict(
        metadata={
            "description": "This month's AI caption credits: limit, used, remaining, "
            "period (YYYY-MM, UTC), resets_at."
        }
    )


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


# ---------------------------------------------------- onboarding (profiles, keys, accounts)


class ProfileOut(Schema):
    id = fields.Integer()
    name = fields.String()
    external_ref = fields.String(allow_none=True)
    metadata = fields.Dict()
    created_at = fields.String()
    updated_at = fields.String()


class ProfileDeletedOut(Schema):
    id = fields.Integer()
    deleted = fields.Boolean()
    accounts = fields.Integer(metadata={"description": "Accounts disconnected."})
    scheduled_targets = fields.Integer(metadata={"description": "Publications cancelled."})
    scheduled_posts = fields.Integer()


class DeleteProfileQuery(Schema):
    force = fields.Boolean(
        metadata={
            "description": "Without it, a profile with accounts or scheduled posts answers "
            "409 profile_in_use, saying what would be disconnected and cancelled."
        }
    )


class ProfilesQuery(Schema):
    external_ref = fields.String(metadata={"description": "Find a profile by your reference."})
    limit = fields.Integer()
    offset = fields.Integer()


class KeyOut(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    scopes = fields.List(fields.String())
    profile_id = fields.Integer(allow_none=True)
    created_at = fields.String()
    last_used_at = fields.String(allow_none=True)
    revoked_at = fields.String(allow_none=True)


class KeyCreatedOut(KeyOut):
    key = fields.String(metadata={"description": "The key itself, shown only in this answer."})


class ConnectLinkOut(Schema):
    id = fields.UUID()
    url = fields.String(metadata={"description": "Send the end client's browser here."})
    platform = fields.String()
    login = fields.String(
        metadata={
            "description": "The sign-in the link goes through (the platform's own unless asked)."
        }
    )
    profile_id = fields.Integer(allow_none=True)
    account_id = fields.Integer(allow_none=True)
    redirect_url = fields.String()
    expires_at = fields.String()


class AccountDeletedOut(Schema):
    id = fields.Integer()
    deleted = fields.Boolean()
    revoked = fields.Boolean(
        allow_none=True,
        metadata={"description": "null where the platform has no revoke call."},
    )
    revoke_error = fields.String(allow_none=True)
    cancelled_targets = fields.Integer()


class MediaCompletedOut(response_schemas.MediaOut):
    status = fields.String(
        metadata={"description": "`ready`: the upload was probed and can be posted."}
    )


class AnalyticsPeriodQuery(Schema):
    """The period of GET /analytics/summary, /analytics/export.csv and an account's
    analytics (docs/analytics.md)."""

    period = fields.String(
        metadata={
            "description": "today (24 h) | week (7 days) | month (30 days, the default) | all "
            "| custom (from and to): a window ending now; posts count by creation.",
            "enum": ["today", "week", "month", "all", "custom"],
        }
    )
    from_ = fields.String(
        data_key="from",
        metadata={"description": "A date (a whole UTC day) or an ISO 8601 instant with offset."},
    )
    to = fields.String(metadata={"description": "Exclusive; a date counts its whole day."})
    profile_id = fields.Integer(metadata={"description": "Only this profile's posts."})
    account_id = fields.Integer(metadata={"description": "Only posts to this account."})

"""Request and response schemas of the webhook routes (also documented in OpenAPI)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from app.schemas import StrictBoolean, StrictInteger, StrictSchema, one_of
from app.services.webhooks import SUBSCRIBABLE_EVENTS

MAX_URL_CHARS = 2048


class WebhookCreateSchema(StrictSchema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL_CHARS))
    events = fields.List(
        fields.String(validate=one_of(*SUBSCRIBABLE_EVENTS)),
        validate=validate.Length(min=1, max=len(SUBSCRIBABLE_EVENTS)),
        metadata={"description": "Event types to receive; omit for all of them."},
    )
    name = fields.String(allow_none=True, validate=validate.Length(max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    is_active = StrictBoolean()
    profile_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=2**63 - 1),
        metadata={"description": "Receive only this profile's events (default: all)."},
    )


class WebhookUpdateSchema(WebhookCreateSchema):
    class Meta:
        exclude = ("profile_id",)

    url = fields.String(validate=validate.Length(min=1, max=MAX_URL_CHARS))


class DeliveriesQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(validate=one_of("pending", "delivering", "succeeded", "failed"))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**62))


class WebhookOut(Schema):
    id = fields.UUID()
    url = fields.String()
    name = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    events = fields.List(fields.String())
    profile_id = fields.Integer(allow_none=True)
    is_active = fields.Boolean()
    consecutive_failures = fields.Integer()
    disabled_reason = fields.String(allow_none=True)
    disabled_at = fields.String(allow_none=True)
    last_success_at = fields.String(allow_none=True)
    last_failure_at = fields.String(allow_none=True)
    created_at = fields.String()
    updated_at = fields.String()


class WebhookCreatedOut(WebhookOut):
    secret = fields.String(metadata={"description": "whsec_…; shown only in this answer."})


class WebhookDeliveryOut(Schema):
    id = fields.UUID()
    webhook_id = fields.UUID()
    event_id = fields.UUID()
    event_type = fields.String()
    status = fields.String()
    attempt = fields.Integer()
    status_code = fields.Integer(allow_none=True)
    latency_ms = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    next_attempt_at = fields.String(allow_none=True)
    last_attempt_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)
    created_at = fields.String()


webhook_create_schema = WebhookCreateSchema()
webhook_update_schema = WebhookUpdateSchema()
deliveries_query = DeliveriesQuery()

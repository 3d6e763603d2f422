"""AI captions on the operator's model (POST /ai/generate-caption); docs/ai.md."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from marshmallow import Schema, ValidationError, fields, validate, validates

from app.ai_client import configured_model
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json
from app.api.envelope import envelope
from app.db import get_session, utcnow
from app.errors import DomainError
from app.metrics import AI_CAPTION_REQUESTS, AI_CAPTIONS
from app.platforms import PLATFORM_KEYS
from app.schemas import StrictBoolean, StrictInteger, StrictSchema, one_of
from app.services.captions import LENGTHS, MAX_COUNT, MAX_TOPIC_CHARS, TONES, CaptionRequest
from app.services.captions import generate_captions as generate

blueprint = Blueprint("ai", __name__)


class GenerateCaptionSchema(StrictSchema):
    topic = fields.String(
        required=True,
        validate=validate.Length(max=MAX_TOPIC_CHARS, error="At most {max} characters."),
    )
    platform = fields.String(load_default=None, allow_none=True, validate=one_of(*PLATFORM_KEYS))
    tone = fields.String(load_default="professional", validate=one_of(*TONES))
    length = fields.String(load_default="medium", validate=one_of(*LENGTHS))
    include_hashtags = StrictBoolean(load_default=True)
    include_emojis = StrictBoolean(load_default=True)
    count = StrictInteger(load_default=1, validate=validate.Range(min=1, max=MAX_COUNT))

    @validates("topic")
    def _topic_has_words(self, value: str, **_: object) -> None:
        if not value.strip():
            raise ValidationError("Must not be blank: say what the post is about.")


class CaptionOut(Schema):
    text = fields.String()
    character_count = fields.Integer()
    character_limit = fields.Integer(allow_none=True)
    hashtags = fields.List(fields.String())
    trimmed = fields.Boolean()


class CaptionsOut(Schema):
    captions = fields.List(fields.String())
    variants = fields.List(fields.Nested(CaptionOut))
    platform = fields.String(allow_none=True)
    tone = fields.String()
    length = fields.String()
    count_requested = fields.Integer()
    count_returned = fields.Integer()
    credits_used = fields.Integer()
    credits_remaining = fields.Integer()


generate_caption_schema = GenerateCaptionSchema()


@blueprint.post("/ai/generate-caption")
def generate_caption() -> Response:
    """Generate 1-5 captions for a post on the operator's model (1 credit per caption)."""
    data = load_json(generate_caption_schema, json_body())
    settings = current_app.config["CRIER"]
    model = configured_model(settings)
    request = CaptionRequest(**{**data, "topic": data["topic"].strip()})
    caller = current_caller()
    try:
        captions, remaining = generate(
            get_session(),
            model,
            caller.organisation_id,
            request,
            settings.ai_monthly_credits,
            utcnow(),
        )
    except DomainError as exc:
        AI_CAPTION_REQUESTS.labels(exc.code).inc()
        raise
    AI_CAPTION_REQUESTS.labels("ok").inc()
    AI_CAPTIONS.inc(len(captions))
    return envelope(
        {
            "captions": [caption.text for caption in captions],
            "variants": [caption.as_dict() for caption in captions],
            "platform": request.platform,
            "tone": request.tone,
            "length": request.length,
            "count_requested": request.count,
            "count_returned": len(captions),
            "credits_used": len(captions),
            "credits_remaining": remaining,
        }
    )

"""Campaigns: named groups of posts (integer ids), as in the API contract."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from marshmallow import EXCLUDE, Schema, fields, validate
from sqlalchemy import func, select, update

from app import access
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json, load_query
from app.api.envelope import ValidationError, envelope
from app.db import get_session, utcnow
from app.models import Campaign, Post
from app.schemas import MAX_ID, StrictInteger, StrictSchema, one_of
from app.serializers import ts

blueprint = Blueprint("campaigns", __name__)

CAMPAIGN_STATUSES = ("active", "paused", "completed", "archived")
COLOR = validate.Regexp(r"^#[0-9A-Fa-f]{6}$", error="Must be a hex colour such as #1DA1F2.")


class CampaignCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(allow_none=True, validate=validate.Length(max=2000))
    color = fields.String(allow_none=True, validate=COLOR)
    status = fields.String(validate=one_of(*CAMPAIGN_STATUSES))
    profile_id = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_ID))


class CampaignUpdateSchema(CampaignCreateSchema):
    class Meta:
        exclude = ("profile_id",)

    name = fields.String(validate=validate.Length(min=1, max=200))


class CampaignsQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    status = fields.String(validate=one_of(*CAMPAIGN_STATUSES))
    profile_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


class CampaignOut(Schema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    color = fields.String(allow_none=True)
    status = fields.String()
    profile_id = fields.Integer(allow_none=True)
    posts_count = fields.Integer()
    created_at = fields.String()
    updated_at = fields.String()


campaign_create_schema = CampaignCreateSchema()
campaign_update_schema = CampaignUpdateSchema()
campaigns_query = CampaignsQuery()


def campaign_to_dict(campaign: Campaign, posts_count: int) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "description": campaign.description,
        "color": campaign.color,
        "status": campaign.status,
        "profile_id": campaign.profile_id,
        "posts_count": posts_count,
        "created_at": ts(campaign.created_at),
        "updated_at": ts(campaign.updated_at),
    }


def _posts_count(campaign_id: int) -> int:
    """The campaign's posts the key sees."""
    return (
        get_session().scalar(
            select(func.count())
            .select_from(Post)
            .where(Post.campaign_id == campaign_id, *current_caller().scope.where(Post))
        )
        or 0
    )


def _campaign(campaign_id: int) -> Campaign:
    return access.campaign(get_session(), current_caller().scope, campaign_id)


@blueprint.get("/campaigns")
def list_campaigns() -> Response:
    """The organisation's campaigns, newest first."""
    query = load_query(campaigns_query)
    session = get_session()
    caller = current_caller()
    statement = caller.list_scope().select(Campaign)
    if query.get("status"):
        statement = statement.where(Campaign.status == query["status"])
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.order_by(Campaign.id.desc()).limit(query["limit"]).offset(query["offset"])
    ).all()
    counts = dict(
        session.execute(
            select(Post.campaign_id, func.count())
            .where(Post.campaign_id.in_([c.id for c in rows]), *caller.scope.where(Post))
            .group_by(Post.campaign_id)
        ).all()
    )
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope(
        [campaign_to_dict(c, counts.get(c.id, 0)) for c in rows], meta={"pagination": pagination}
    )


@blueprint.post("/campaigns")
def create_campaign() -> Response:
    """Create a campaign."""
    data = load_json(campaign_create_schema, json_body())
    session = get_session()
    now = utcnow()
    caller = current_caller()
    campaign = Campaign(
        organisation_id=caller.organisation_id,
        profile_id=caller.profile_for_create(data.get("profile_id")),
        name=data["name"],
        description=data.get("description"),
        color=data.get("color"),
        status=data.get("status", "active"),
        created_at=now,
        updated_at=now,
    )
    session.add(campaign)
    session.commit()
    response = envelope(campaign_to_dict(campaign, 0), status=201)
    response.headers["Location"] = f"/campaigns/{campaign.id}"
    return response


@blueprint.get("/campaigns/<int:campaign_id>")
def get_campaign(campaign_id: int) -> Response:
    """One campaign with its number of posts."""
    campaign = _campaign(campaign_id)
    return envelope(campaign_to_dict(campaign, _posts_count(campaign.id)))


@blueprint.patch("/campaigns/<int:campaign_id>")
def update_campaign(campaign_id: int) -> Response:
    """Change a campaign's name, description, color or status."""
    data = load_json(campaign_update_schema, json_body())
    if not data:
        raise ValidationError("Nothing to change: send at least one field.")
    campaign = _campaign(campaign_id)
    for name, value in data.items():
        setattr(campaign, name, value)
    campaign.updated_at = utcnow()
    session = get_session()
    session.commit()
    return envelope(campaign_to_dict(campaign, _posts_count(campaign.id)))


@blueprint.delete("/campaigns/<int:campaign_id>")
def delete_campaign(campaign_id: int) -> Response:
    """Delete a campaign; its posts stay, without a campaign."""
    campaign = _campaign(campaign_id)
    session = get_session()
    session.execute(update(Post).where(Post.campaign_id == campaign.id).values(campaign_id=None))
    session.delete(campaign)
    session.commit()
    return envelope({"id": campaign_id, "deleted": True})

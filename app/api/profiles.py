"""Profiles of the caller's organisation: one per end client."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from marshmallow import fields, validate
from sqlalchemy import func, select

from app import access
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json, load_query
from app.api.envelope import Conflict, ValidationError, envelope
from app.db import get_session
from app.key_cache import forget as forget_cached_key
from app.models import ApiKey, Profile
from app.schemas import StrictSchema, page_query
from app.serializers import ts
from app.services import profiles as profile_service

blueprint = Blueprint("profiles", __name__)


class ProfileCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    external_ref = fields.String(allow_none=True, validate=validate.Length(max=200))
    metadata = fields.Dict(keys=fields.String(), allow_none=True)


class ProfileUpdateSchema(ProfileCreateSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))


profile_create_schema = ProfileCreateSchema()
profile_update_schema = ProfileUpdateSchema()


def profile_to_dict(profile: Profile) -> dict[str, Any]:
    return {
        "id": profile.id,
        "name": profile.name,
        "external_ref": profile.external_ref,
        "metadata": profile.meta or {},
        "created_at": ts(profile.created_at),
        "updated_at": ts(profile.updated_at),
    }


def _profile(profile_id: int) -> Profile:
    return access.profile(get_session(), current_caller().scope, profile_id)


@blueprint.get("/profiles")
def list_profiles() -> Response:
    """The organisation's profiles (a restricted key sees only its own)."""
    query = load_query(page_query)
    statement = current_caller().scope.select(Profile)
    if request.args.get("external_ref"):
        statement = statement.where(Profile.external_ref == request.args["external_ref"])
    session = get_session()
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.order_by(Profile.id).limit(query["limit"]).offset(query["offset"])
    ).all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([profile_to_dict(p) for p in rows], meta={"pagination": pagination})


@blueprint.post("/profiles")
def create_profile() -> Response:
    """Create a profile (name, external reference, metadata)."""
    data = load_json(profile_create_schema, json_body())
    session = get_session()
    profile = profile_service.create_profile(session, current_caller().organisation_id, data)
    session.commit()
    response = envelope(profile_to_dict(profile), status=201)
    response.headers["Location"] = f"/profiles/{profile.id}"
    return response


@blueprint.get("/profiles/<int:profile_id>")
def get_profile(profile_id: int) -> Response:
    """One profile."""
    return envelope(profile_to_dict(_profile(profile_id)))


@blueprint.patch("/profiles/<int:profile_id>")
def update_profile(profile_id: int) -> Response:
    """Change a profile's name, external reference or metadata."""
    data = load_json(profile_update_schema, json_body())
    if not data:
        raise ValidationError("Nothing to change: send at least one field.")
    profile = _profile(profile_id)
    profile_service.update_profile(profile, data)
    get_session().commit()
    return envelope(profile_to_dict(profile))


@blueprint.delete("/profiles/<int:profile_id>")
def delete_profile(profile_id: int) -> Response:
    """Delete a profile: `409` says what it would disconnect and cancel; `force=true` does it."""
    force = request.args.get("force", "false").lower()
    if force not in ("true", "false", "1", "0"):
        raise ValidationError("force must be true or false.", details={"force": ["Not a boolean."]})
    session = get_session()
    profile = _profile(profile_id)
    impact = profile_service.footprint(session, profile)
    if force in ("false", "0") and (impact.accounts or impact.scheduled_targets):
        raise Conflict(
            f"Deleting this profile disconnects {impact.accounts} account(s) and cancels "
            f"{impact.scheduled_targets} scheduled publication(s) in {impact.scheduled_posts} "
            "post(s). Send force=true to do it.",
            code="profile_in_use",
            details=impact.as_dict(),
        )
    # Its keys go with it (the foreign key cascades): every process stops taking them now.
    gone = list(session.scalars(select(ApiKey.key_hash).where(ApiKey.profile_id == profile.id)))
    done = profile_service.delete_profile(session, profile)
    session.commit()
    for key_hash in gone:
        forget_cached_key(current_app.config["CRIER"].redis_url, key_hash)
    return envelope({"id": profile_id, "deleted": True, **done.as_dict()})

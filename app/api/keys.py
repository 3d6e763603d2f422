"""API keys of the caller's organisation, over HTTP: list, create with scopes, revoke."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from marshmallow import fields, validate
from sqlalchemy import func, select

from app import access
from app.api.audit import record_request_event
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json, load_query
from app.api.envelope import envelope
from app.api.scopes import PROFILE_DEFAULT_SCOPES, SCOPES, effective_scopes, scopes_for_new_key
from app.db import get_session, utcnow
from app.key_cache import forget as forget_cached_key
from app.models import ApiKey, Organisation
from app.schemas import MAX_ID, StrictInteger, StrictSchema, one_of, page_query
from app.serializers import ts
from app.services.keys import create_api_key

blueprint = Blueprint("keys", __name__)


class KeyCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    scopes = fields.List(
        fields.String(validate=one_of(*SCOPES)),
        validate=validate.Length(min=1, max=len(SCOPES)),
        metadata={
            "description": "What the key may do; `admin` is everything, organisation-wide. "
            "Default: `admin` for a key of the whole organisation, "
            f"{' + '.join(PROFILE_DEFAULT_SCOPES)} for a key with a `profile_id`. "
            "A profile key cannot have `admin` (400 validation_error)."
        },
    )
    profile_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={
            "description": "Restrict the key to one profile: other profiles' objects read as "
            "absent, and organisation-wide routes (keys, profiles, audit log) answer 403."
        },
    )


key_create_schema = KeyCreateSchema()


def key_to_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": list(effective_scopes(key.scopes, key.profile_id)),
        "profile_id": key.profile_id,
        "created_at": ts(key.created_at),
        "last_used_at": ts(key.last_used_at),
        "revoked_at": ts(key.revoked_at),
    }


@blueprint.get("/keys")
def list_keys() -> Response:
    """The organisation's API keys (never the keys themselves: prefix only)."""
    query = load_query(page_query)
    statement = current_caller().list_scope().select(ApiKey)
    session = get_session()
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.order_by(ApiKey.id).limit(query["limit"]).offset(query["offset"])
    ).all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([key_to_dict(k) for k in rows], meta={"pagination": pagination})


@blueprint.post("/keys")
def create_key() -> Response:
    """Create a key with scopes and an optional profile; the key is shown only in this answer."""
    caller = current_caller()
    data = load_json(key_create_schema, json_body())
    profile_id = caller.profile_for_create(data.get("profile_id"))
    scopes = scopes_for_new_key(data.get("scopes"), profile_id)
    session = get_session()
    plain, key = create_api_key(
        session,
        data["name"],
        organisation=session.get(Organisation, caller.organisation_id),
        scopes=scopes,
        profile_id=profile_id,
    )
    session.flush()
    record_request_event(
        "api_key.created",
        subject_type="api_key",
        subject_id=key.id,
        details={"name": key.name, "scopes": key.scopes, "profile_id": profile_id},
    )
    session.commit()
    response = envelope({**key_to_dict(key), "key": plain}, status=201)
    response.headers["Location"] = f"/keys/{key.id}"
    return response


@blueprint.delete("/keys/<int:key_id>")
def revoke_key(key_id: int) -> Response:
    """Revoke a key: it stops working at once; the row stays, so its prefix still explains logs."""
    session = get_session()
    key = access.api_key(session, current_caller().scope, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        record_request_event("api_key.revoked", subject_type="api_key", subject_id=key.id)
    session.commit()
    # Every process stops taking it now, not when its cache entry ends (app.key_cache).
    forget_cached_key(current_app.config["CRIER"].redis_url, key.key_hash)
    return envelope(key_to_dict(key))

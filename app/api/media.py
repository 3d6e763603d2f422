"""Media upload and management (multipart field `file`), and signed links for platforms."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, send_file
from sqlalchemy import func, select

from app.api.audit import record_request_event
from app.api.auth import current_caller
from app.api.bodies import load_query
from app.api.envelope import ApiError, ValidationError, envelope
from app.api.serializers import media_to_dict
from app.db import get_session
from app.models import Media
from app.schemas import page_query
from app.services import media as media_service

blueprint = Blueprint("media", __name__)


@blueprint.post("/media/upload")
def upload_media() -> Response:
    """Upload an image or video; its type is read from the bytes."""
    caller = current_caller()
    if request.mimetype != "multipart/form-data":
        raise ApiError(
            "Upload media as multipart/form-data with the file in the field `file`.",
            code="unsupported_media_type",
            status=415,
        )
    upload = request.files.get("file")
    if upload is None:
        raise ValidationError(
            "Missing required field: file is required (multipart field `file`).",
            details={"file": ["Missing data for required field."]},
        )
    settings = current_app.config["CRIER"]
    session = get_session()
    media = media_service.save_upload(
        session, settings, caller.organisation_id, upload.stream, upload.filename or ""
    )
    session.commit()
    response = envelope(media_to_dict(media), status=201)
    response.headers["Location"] = f"/media/{media.id}"
    return response


@blueprint.get("/media")
def list_media() -> Response:
    """The organisation's media, newest first."""
    organisation_id = current_caller().organisation_id
    query = load_query(page_query)
    session = get_session()
    statement = select(Media).where(Media.organisation_id == organisation_id)
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.order_by(Media.created_at.desc(), Media.id)
        .limit(query["limit"])
        .offset(query["offset"])
    ).all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([media_to_dict(m) for m in rows], meta={"pagination": pagination})


@blueprint.get("/media/<media_id>")
def get_media(media_id: str) -> Response:
    """One media item."""
    media = media_service.get_media(get_session(), current_caller().organisation_id, media_id)
    return envelope(media_to_dict(media))


@blueprint.delete("/media/<media_id>")
def delete_media(media_id: str) -> Response:
    """Delete media that no unfinished post uses."""
    session = get_session()
    path = media_service.delete_media(
        session, current_app.config["CRIER"], current_caller().organisation_id, media_id
    )
    record_request_event("media.deleted", subject_type="media", subject_id=media_id)
    session.commit()
    media_service.remove_media_file(path)
    return envelope({"id": media_id, "deleted": True})


@blueprint.get("/media/public/<token>")
def public_file(token: str) -> Response:
    """The file behind a signed, expiring link (platforms that pull media use it)."""
    settings = current_app.config["CRIER"]
    media = media_service.media_from_link(get_session(), settings, token)
    return send_file(
        media_service.media_path(settings, media), mimetype=media.mime_type, conditional=True
    )

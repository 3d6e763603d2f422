"""Media upload and management (multipart field `file`), and signed links for platforms."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, send_file
from sqlalchemy import func, select

from app import access
from app.api.audit import record_request_event
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json, load_query
from app.api.envelope import ApiError, ValidationError, envelope
from app.db import get_session
from app.models import Media
from app.redis_client import redis_client
from app.schemas import list_media_query, upload_from_url_schema
from app.serializers import media_to_dict
from app.services import media as media_service
from app.services import media_import, uploads

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
    profile_id = caller.profile_for_create(
        request.form.get("profile_id") or request.args.get("profile_id")
    )
    settings = current_app.config["CRIER"]
    session = get_session()
    media = media_service.save_upload(
        session, settings, caller.organisation_id, upload.stream, upload.filename or ""
    )
    media.profile_id = profile_id
    session.commit()
    response = envelope(media_to_dict(media), status=201)
    response.headers["Location"] = f"/media/{media.id}"
    return response


@blueprint.post("/media/upload-from-url")
def upload_media_from_url() -> Response:
    """Import media from a URL: 202 at once, `uploading` until a worker has fetched and
    probed it (the request never waits on the source)."""
    caller = current_caller()
    data = load_json(upload_from_url_schema, json_body())
    profile_id = caller.profile_for_create(data.get("profile_id"))
    settings = current_app.config["CRIER"]
    session = get_session()
    media = media_import.start_import(
        session, settings, caller.organisation_id, data["url"], data.get("filename")
    )
    media.profile_id = profile_id
    session.commit()
    media_import.enqueue_import(current_app.extensions["celery"], media.id)
    response = envelope(media_to_dict(media), status=202)
    response.headers["Location"] = f"/media/{media.id}"
    return response


@blueprint.post("/media/uploads")
def start_media_upload() -> Response:
    """Start a presigned upload: PUT the file to the returned URL, then complete it."""
    caller = current_caller()
    request_data = load_json(uploads.UploadRequest(), json_body())
    profile_id = caller.profile_for_create(request_data.pop("profile_id", None))
    settings = current_app.config["CRIER"]
    started = uploads.start_upload(
        settings,
        redis_client(settings.redis_url),
        caller.organisation_id,
        request_data,
        profile_id=profile_id,
    )
    response = envelope(started, status=201)
    response.headers["Location"] = f"/media/{started['id']}"
    return response


@blueprint.post("/media/<media_id>/complete")
def complete_media_upload(media_id: str) -> Response:
    """Finish a presigned upload: the file is probed like an upload and becomes ready."""
    caller = current_caller()
    settings = current_app.config["CRIER"]
    session = get_session()
    # The media belongs to the profile the upload was started in; completing it never
    # moves anything (another profile's upload reads as absent).
    media = uploads.complete_upload(
        session, settings, redis_client(settings.redis_url), caller.scope, media_id
    )
    session.commit()
    return envelope({**media_to_dict(media), "status": "ready"}, status=201)


@blueprint.get("/media")
def list_media() -> Response:
    """The organisation's media, newest first; `type` keeps images or videos."""
    caller = current_caller()
    query = load_query(list_media_query)
    session = get_session()
    statement = caller.list_scope().select(Media)
    if query.get("type"):
        statement = statement.where(Media.kind == query["type"])
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
    media = access.media(get_session(), current_caller().scope, media_id)
    return envelope(media_to_dict(media))


@blueprint.delete("/media/<media_id>")
def delete_media(media_id: str) -> Response:
    """Delete media no unfinished post uses; `force=true` detaches it from scheduled posts."""
    force = request.args.get("force", "false").lower()
    if force not in ("true", "false", "1", "0"):
        raise ValidationError("force must be true or false.", details={"force": ["Not a boolean."]})
    session = get_session()
    deleted = media_service.delete_media(
        session,
        current_app.config["CRIER"],
        current_caller().scope,
        media_id,
        force=force in ("true", "1"),
    )
    record_request_event("media.deleted", subject_type="media", subject_id=media_id)
    session.commit()
    media_service.remove_media_file(current_app.config["CRIER"], deleted.storage_key)
    return envelope(
        {"id": media_id, "deleted": True, "detached_from_posts": deleted.detached_from_posts}
    )


@blueprint.get("/media/public/<token>")
def public_file(token: str) -> Response:
    """The file behind a signed, expiring link (platforms that pull media use it)."""
    settings = current_app.config["CRIER"]
    media = media_service.media_from_link(get_session(), settings, token)
    return send_file(
        media_service.media_path(settings, media), mimetype=media.mime_type, conditional=True
    )

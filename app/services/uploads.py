"""Presigned uploads: a large file goes from the caller straight to object storage.

`POST /media/uploads` answers a presigned PUT URL and keeps the pending upload in Redis
(nothing reaches PostgreSQL until the file is there); `POST /media/{id}/complete`
fetches the object, sniffs and inspects it exactly as a multipart upload, and records
the media, ready to post. An upload never completed expires with its URL.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate
from redis import Redis
from sqlalchemy.orm import Session

from app.access import Scope
from app.config import Settings
from app.db import utcnow
from app.errors import Conflict, DomainError, NotFound
from app.models import Media
from app.schemas import MAX_ID
from app.services.media import (
    IMAGE_MAX_BYTES,
    IMAGE_TYPES,
    MB,
    VIDEO_TYPES,
    _clean_filename,
    probe_file,
    storage_root,
)
from app.storage import ObjectStore, object_store

UPLOAD_URL_TTL = 3600
PENDING_KEY = "crier:media:upload:{}"


class UploadRequest(Schema):
    filename = fields.String(required=True, validate=validate.Length(min=1, max=255))
    content_type = fields.String(
        required=True, validate=validate.OneOf([*IMAGE_TYPES, *VIDEO_TYPES])
    )
    size_bytes = fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    profile_id = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "The profile the media belongs to (default: the key's)."},
    )


def require_store(settings: Settings) -> ObjectStore:
    store = object_store(settings)
    if store is None:
        raise Conflict(
            "Presigned uploads need object storage (CRIER_MEDIA_STORAGE=s3://…); "
            "upload with POST /media/upload instead.",
            code="object_storage_not_configured",
        )
    return store


def start_upload(
    settings: Settings,
    redis: Redis,
    organisation_id: int,
    request: dict[str, Any],
    profile_id: int | None = None,
) -> dict[str, Any]:
    """The pending upload remembers its organisation and profile: only a key that sees
    them completes it (complete_upload)."""
    store = require_store(settings)
    limit = IMAGE_MAX_BYTES if request["content_type"] in IMAGE_TYPES else settings.max_upload_bytes
    if request["size_bytes"] > limit:
        raise DomainError(
            f"The file is larger than the {limit // MB} MB limit for {request['content_type']}.",
            code="payload_too_large",
            status=413,
        )
    media_id = uuid.uuid4()
    extension = IMAGE_TYPES.get(request["content_type"]) or VIDEO_TYPES[request["content_type"]]
    pending = {
        "organisation_id": organisation_id,
        "profile_id": profile_id,
        "filename": _clean_filename(request["filename"]) or f"{media_id}{extension}",
        "content_type": request["content_type"],
        "size_bytes": request["size_bytes"],
        "storage_key": f"{organisation_id}/{media_id}{extension}",
    }
    redis.set(PENDING_KEY.format(media_id), json.dumps(pending), ex=UPLOAD_URL_TTL * 2)
    url = store.presigned_put(pending["storage_key"], request["content_type"], UPLOAD_URL_TTL)
    return {
        "id": str(media_id),
        "status": "pending",
        "upload": {
            "method": "PUT",
            "url": url,
            "headers": {"Content-Type": request["content_type"]},
            "expires_at": (utcnow() + timedelta(seconds=UPLOAD_URL_TTL)).isoformat(),
        },
        "complete_url": f"/media/{media_id}/complete",
    }


def _pending_in(scope: Scope, pending: dict[str, Any]) -> bool:
    """Whether the key sees a pending upload: its organisation's and, for a profile key,
    its profile's (as app.access.Scope.sees does for a row)."""
    if pending.get("organisation_id") != scope.organisation_id:
        return False
    return scope.profile_id is None or pending.get("profile_id") == scope.profile_id


def complete_upload(
    session: Session, settings: Settings, redis: Redis, scope: Scope, media_id: str
) -> Media:
    try:
        key = uuid.UUID(media_id)
    except ValueError as exc:
        raise NotFound("Upload not found.") from exc
    raw = redis.get(PENDING_KEY.format(key))
    pending = json.loads(raw) if raw else None
    if pending is None or not _pending_in(scope, pending):
        # Completed before: the same answer again, to a key that sees the media. Another
        # organisation's or profile's upload or media does not exist here (and is never
        # moved into the caller's profile).
        existing = session.scalar(scope.select(Media).where(Media.id == key))
        if existing is not None:
            return existing
        raise NotFound("Upload not found, or its upload URL expired.")
    store = require_store(settings)
    size = store.size(pending["storage_key"])
    if size is None:
        raise Conflict(
            "Nothing has been uploaded yet: PUT the file to the upload URL first.",
            code="upload_incomplete",
        )
    staging = storage_root(settings) / "staging" / f"{key}.part"
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        store.download(pending["storage_key"], staging)
        try:
            mime_type, _, facts = probe_file(staging, size)
            if mime_type != pending["content_type"]:
                raise DomainError(
                    f"The upload was announced as {pending['content_type']} but the file is "
                    f"{mime_type}; start a new upload with the right content_type.",
                    code="unsupported_media_type",
                    status=415,
                )
            limit = IMAGE_MAX_BYTES if mime_type in IMAGE_TYPES else settings.max_upload_bytes
            if size > limit:
                raise DomainError(
                    f"The file is larger than the {limit // MB} MB limit.",
                    code="payload_too_large",
                    status=413,
                )
        except DomainError:
            store.delete(pending["storage_key"])
            redis.delete(PENDING_KEY.format(key))
            raise
        digest = _sha256(staging)
    finally:
        staging.unlink(missing_ok=True)
    media = Media(
        id=key,
        organisation_id=scope.organisation_id,
        profile_id=pending.get("profile_id"),
        filename=pending["filename"],
        kind=facts.kind,
        mime_type=mime_type,
        size_bytes=size,
        width=facts.width,
        height=facts.height,
        duration_seconds=facts.duration_seconds,
        sha256=digest,
        storage_key=pending["storage_key"],
    )
    session.add(media)
    session.flush()
    redis.delete(PENDING_KEY.format(key))
    return media


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()

"""Uploaded media: type sniffed from the bytes, size limits per kind, dimensions read."""

from __future__ import annotations

import hashlib
import shutil
import struct
import unicodedata
import uuid
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

import filetype
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from PIL import Image, UnidentifiedImageError
from sqlalchemy import ColumnElement, String, cast, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from app import access
from app.access import Scope
from app.config import Settings
from app.errors import Conflict, DomainError, NotFound, ValidationError
from app.models import OPEN_TARGET_STATUSES, Media, Post, PostTarget, TargetStatus
from app.security import signing_keys
from app.storage import object_store

MB = 1024 * 1024

IMAGE_TYPES = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
VIDEO_TYPES = {"video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm"}
IMAGE_MAX_BYTES = 50 * MB
MEDIA_LINK_MAX_AGE = 24 * 3600


@dataclass(frozen=True)
class MediaFacts:
    kind: str
    mime_type: str
    width: int | None
    height: int | None
    duration_seconds: float | None


def storage_root(settings: Settings) -> Path:
    return Path(settings.media_dir).resolve()


def media_path(settings: Settings, media: Media) -> Path:
    """A local file with the media's bytes: the file itself on local storage, a copy
    fetched once into the cache with object storage."""
    store = object_store(settings)
    if store is None:
        return storage_root(settings) / media.storage_key
    cached = storage_root(settings) / "cache" / media.storage_key
    if not cached.is_file() or cached.stat().st_size != media.size_bytes:
        store.download(media.storage_key, cached)
    return cached


def sniff(head: bytes) -> str | None:
    kind = filetype.guess(head)
    return kind.mime if kind else None


def inspect_media(path: Path, mime_type: str) -> MediaFacts:
    if mime_type in IMAGE_TYPES:
        try:
            with warnings.catch_warnings():
                # Pillow only warns between 1x and 2x its pixel limit; refuse both alike.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    width, height = image.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DomainError(
                f"The image has more than {Image.MAX_IMAGE_PIXELS} pixels; "
                "it is too large to process.",
                code="payload_too_large",
                status=413,
            ) from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error) as exc:
            raise ValidationError(
                "The file looks like an image but cannot be read; it may be truncated.",
                details={"file": ["Unreadable image."]},
            ) from exc
        return MediaFacts("image", mime_type, width, height, None)
    width, height, duration = _video_facts(path, mime_type)
    return MediaFacts("video", mime_type, width, height, duration)


def _video_facts(path: Path, mime_type: str) -> tuple[int | None, int | None, float | None]:
    if mime_type not in ("video/mp4", "video/quicktime"):
        return None, None, None
    with path.open("rb") as handle:
        facts = _Mp4Facts()
        _walk_boxes(handle, path.stat().st_size, facts)
    return facts.width, facts.height, facts.duration


_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}

# The probe reads box headers and two small boxes (mvhd, tkhd), never a box's whole
# body: a box may claim any size (hundreds of MB in a file of a few KB), and nothing
# here allocates what it claims. A track header sits at moov/trak/tkhd; real files never
# nest containers deeply, and a file that does must not exhaust the stack.
MAX_BOX_DEPTH = 8
# Boxes looked at per file: a file of millions of tiny boxes must not keep a worker busy.
MAX_BOXES = 10_000
# mvhd is 108 bytes (version 0) or 120 (version 1); tkhd 92 or 104. Larger ones are not.
MAX_HEADER_BOX_BYTES = 256


@dataclass
class _Mp4Facts:
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    boxes: int = 0

    def complete(self) -> bool:
        return self.width is not None and self.duration is not None


def _mvhd_duration(body: bytes) -> float | None:
    """Seconds from a movie header: version, flags, then times, timescale, duration."""
    if len(body) < 4:
        return None
    if body[0] == 1 and len(body) >= 32:
        timescale, duration = struct.unpack(">IQ", body[20:32])
    elif body[0] == 0 and len(body) >= 20:
        timescale, duration = struct.unpack(">II", body[12:20])
    else:
        return None
    return duration / timescale if timescale and duration else None


def _walk_boxes(handle: BinaryIO | IO[bytes], end: int, facts: _Mp4Facts, depth: int = 0) -> None:
    while handle.tell() + 8 <= end and not facts.complete():
        facts.boxes += 1
        if facts.boxes > MAX_BOXES:
            return
        start = handle.tell()
        header = handle.read(8)
        if len(header) < 8:
            return
        size, box = struct.unpack(">I4s", header)
        if size == 1:
            large = handle.read(8)
            if len(large) < 8:
                return
            size = struct.unpack(">Q", large)[0]
        elif size == 0:
            size = end - start
        body_start = handle.tell()
        body_size = size - (body_start - start)
        if body_size < 0 or start + size > end:
            return
        if box in _CONTAINER_BOXES:
            if depth < MAX_BOX_DEPTH:
                _walk_boxes(handle, start + size, facts, depth + 1)
        elif box == b"mvhd" and facts.duration is None and body_size <= MAX_HEADER_BOX_BYTES:
            facts.duration = _mvhd_duration(handle.read(body_size))
        elif box == b"tkhd" and facts.width is None and body_size <= MAX_HEADER_BOX_BYTES:
            body = handle.read(body_size)
            # Width and height are the last two 16.16 fixed-point fields.
            if len(body) >= 8:
                width = struct.unpack(">I", body[-8:-4])[0] >> 16
                height = struct.unpack(">I", body[-4:])[0] >> 16
                if width and height:
                    facts.width, facts.height = width, height
        handle.seek(start + size)


def probe_file(staging: Path, size: int) -> tuple[str, str, MediaFacts]:
    """Sniff and inspect a complete file: (mime type, extension, facts), or the API error
    that refuses it."""
    if size == 0:
        raise ValidationError("The uploaded file is empty.", details={"file": ["Empty file."]})
    with staging.open("rb") as handle:
        mime_type = sniff(handle.read(8192))
    extension = IMAGE_TYPES.get(mime_type or "") or VIDEO_TYPES.get(mime_type or "")
    if extension is None:
        raise unsupported_type(mime_type)
    assert mime_type is not None
    if mime_type in IMAGE_TYPES and size > IMAGE_MAX_BYTES:
        raise DomainError(
            f"Images may be at most {IMAGE_MAX_BYTES // MB} MB; this one is {size / MB:.1f} MB.",
            code="payload_too_large",
            status=413,
        )
    facts = inspect_media(staging, mime_type)
    return mime_type, extension, facts


@dataclass(frozen=True)
class StoredFile:
    size: int
    sha256: str
    facts: MediaFacts
    storage_key: str


def store_chunks(
    settings: Settings, organisation_id: int, media_id: uuid.UUID, chunks: Iterable[bytes]
) -> StoredFile:
    """Copy chunks to storage while hashing and capping them, then sniff and inspect."""
    root = storage_root(settings)
    staging_dir = root / "staging"
    staging_dir.mkdir(parents=True, exist_ok=True)
    # Unique per call: a retried import may overlap a slow first one.
    staging = staging_dir / f"{media_id}.{uuid.uuid4().hex[:8]}.part"
    digest = hashlib.sha256()
    size = 0
    try:
        with staging.open("wb") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise DomainError(
                        f"The file is larger than the {settings.max_upload_bytes // MB} MB limit.",
                        code="payload_too_large",
                        status=413,
                    )
                digest.update(chunk)
                out.write(chunk)
        mime_type, extension, facts = probe_file(staging, size)
        storage_key = f"{organisation_id}/{media_id}{extension}"
        store = object_store(settings)
        if store is not None:
            store.put_file(staging, storage_key, mime_type)
        else:
            final = root / storage_key
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staging, final)
    finally:
        staging.unlink(missing_ok=True)
    return StoredFile(size, digest.hexdigest(), facts, storage_key)


def unsupported_type(mime_type: str | None) -> DomainError:
    accepted = ", ".join([*IMAGE_TYPES, *VIDEO_TYPES])
    return DomainError(
        f"Unsupported media type{f' {mime_type}' if mime_type else ''}: "
        f"the file's contents must be one of {accepted}.",
        code="unsupported_media_type",
        status=415,
    )


def _read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(1024 * 1024):
        yield chunk


def save_upload(
    session: Session,
    settings: Settings,
    organisation_id: int,
    stream: IO[bytes],
    filename: str,
) -> Media:
    """Copy the upload to storage while hashing it, then sniff and inspect it."""
    media_id = uuid.uuid4()
    stored = store_chunks(settings, organisation_id, media_id, _read_chunks(stream))
    media = Media(id=media_id, organisation_id=organisation_id, status="ready")
    apply_stored(media, stored, filename)
    session.add(media)
    session.flush()
    return media


def apply_stored(media: Media, stored: StoredFile, filename: str) -> None:
    media.filename = _clean_filename(filename) or f"{media.id}{Path(stored.storage_key).suffix}"
    media.kind = stored.facts.kind
    media.mime_type = stored.facts.mime_type
    media.size_bytes = stored.size
    media.width = stored.facts.width
    media.height = stored.facts.height
    media.duration_seconds = stored.facts.duration_seconds
    media.sha256 = stored.sha256
    media.storage_key = stored.storage_key


def _clean_filename(name: str) -> str:
    """The last path segment, without control characters (PostgreSQL refuses NUL), ≤ 255."""
    base = Path(name.replace("\\", "/")).name
    base = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cs"))
    if len(base) > 255:
        stem, dot, suffix = base.rpartition(".")
        base = stem[: 255 - len(suffix) - 1] + dot + suffix if dot and len(suffix) <= 10 else base
    return base[:255]


def _mentions_media(session: Session, media_id: uuid.UUID) -> ColumnElement[bool]:
    """`posts.media_ids` holds this id: JSONB containment on PostgreSQL, text match elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(Post.media_ids, JSONB).contains([str(media_id)])
    return cast(Post.media_ids, String).like(f'%"{media_id}"%')


@dataclass(frozen=True)
class DeletedMedia:
    detached_from_posts: list[str]
    storage_key: str | None


def delete_media(
    session: Session,
    settings: Settings,
    scope: Scope,
    media_id: str,
    *,
    force: bool = False,
) -> DeletedMedia:
    """Delete the row, locked against posts being created with it; with `force`, first
    detach it from posts not yet publishing. Media of a post being published right now is
    never pulled from under it. The file goes once the caller has committed
    (remove_media_file), never before.
    """
    media = access.media(session, scope, media_id, lock=True)
    users = session.scalars(
        select(Post)
        .where(
            Post.organisation_id == scope.organisation_id,
            _mentions_media(session, media.id),
            Post.id.in_(
                select(PostTarget.post_id).where(
                    PostTarget.status.in_((*OPEN_TARGET_STATUSES, TargetStatus.DRAFT))
                )
            ),
        )
        .order_by(Post.created_at)
        .with_for_update()
    ).all()
    detached: list[str] = []
    for post in users:
        busy = any(t.status == TargetStatus.PUBLISHING for t in post.targets)
        if not force or busy:
            why = "is being published right now" if busy else "has not finished publishing"
            # A post the key does not see is not named (an unrestricted key's post may
            # use a profile's media).
            which = f"post {post.id}" if scope.sees(post) else "a post outside your profile"
            raise Conflict(
                f"This media is attached to {which}, which {why}.",
                code="media_in_use",
                details=None if busy else {"force": ["force=true detaches it from such posts."]},
            )
        post.media_ids = [m for m in post.media_ids if m != str(media.id)]
        if post.cover_photo == str(media.id):
            post.cover_photo = None
        detached.append(str(post.id))
    deleted = DeletedMedia(detached, media.storage_key or None)
    session.delete(media)
    session.flush()
    return deleted


def remove_media_file(settings: Settings, storage_key: str | None) -> None:
    """After the commit: a failed removal leaves an orphan file, never a row without one."""
    if not storage_key:
        return
    store = object_store(settings)
    if store is not None:
        store.delete(storage_key)
        (storage_root(settings) / "cache" / storage_key).unlink(missing_ok=True)
    else:
        (storage_root(settings) / storage_key).unlink(missing_ok=True)


def _link_serializer(settings: Settings) -> URLSafeTimedSerializer:
    """HMAC-SHA256 under a key derived for media links from each secret: links signed
    before a rotation stay valid for their lifetime while the old secret is still listed."""
    keys = signing_keys(settings.secret_key, "media-links")
    return URLSafeTimedSerializer(
        list(reversed(keys)),  # itsdangerous signs with the last and verifies with any
        salt="crier-media-link",
        signer_kwargs={"key_derivation": "none", "digest_method": hashlib.sha256},
    )


def signed_media_url(settings: Settings, media: Media) -> str:
    """A link a platform can pull the file from, valid for MEDIA_LINK_MAX_AGE."""
    store = object_store(settings)
    if store is not None:
        return store.presigned_get(media.storage_key, MEDIA_LINK_MAX_AGE)
    token = _link_serializer(settings).dumps(str(media.id))
    return f"{settings.public_base_url}/media/public/{token}{Path(media.storage_key).suffix}"


def media_from_link(session: Session, settings: Settings, token: str) -> Media:
    token = token.rsplit(".", 1)[0] if "." in token[-6:] else token
    try:
        media_id = _link_serializer(settings).loads(token, max_age=MEDIA_LINK_MAX_AGE)
    except SignatureExpired as exc:
        raise DomainError("This media link has expired.", code="link_expired", status=410) from exc
    except BadSignature as exc:
        raise NotFound("Media not found.") from exc
    media = session.get(Media, uuid.UUID(media_id))
    if media is None:
        raise NotFound("Media not found.")
    return media

"""Media imported from a URL (POST /media/upload-from-url).

The request thread never talks to the source: the intake checks the URL (scheme, port,
literal address), saves the media as `uploading` and answers 202 at once. A worker on
the `media_import` queue (workers/media_import.py) fetches the source under the outbound
rules (app.services.outbound) within CRIER_MEDIA_IMPORT_DEADLINE, with the upload size
cap, sniffs, stores and probes it like an upload, then marks the media `ready` or
`failed` with a reason and writes `media.processed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import utcnow
from app.errors import DomainError, ValidationError
from app.models import Media
from app.queues import MEDIA_IMPORT_QUEUE, MEDIA_IMPORT_TASK
from app.services.media import (
    IMAGE_TYPES,
    VIDEO_TYPES,
    StoredFile,
    sniff,
    store_chunks,
    unsupported_type,
)
from app.services.outbound import UnsafeURLError, check_literal_host, safe_stream

SNIFF_BYTES = 8192
CHUNK = 1024 * 1024
# What an import is listed as until its bytes say otherwise, by the name's extension.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".webm"})


class FetchError(DomainError):
    status = 422
    code = "media_fetch_failed"


def fetch_timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(settings.http_timeout, connect=10.0)


def check_source_url(settings: Settings, url: str) -> None:
    try:
        check_literal_host(
            url, allow_private=settings.allow_private_urls, ports=settings.outbound_ports
        )
    except UnsafeURLError as exc:
        raise ValidationError(exc.args[0], details={"url": [exc.args[0]]}) from exc


@contextmanager
def open_source(client: httpx.Client, settings: Settings, url: str) -> Iterator[httpx.Response]:
    """The source's response, streamed; errors become the caller's precise messages."""
    try:
        with safe_stream(
            client,
            "GET",
            url,
            allow_private=settings.allow_private_urls,
            ports=settings.outbound_ports,
            deadline=settings.media_import_deadline,
            timeout=fetch_timeout(settings),
        ) as response:
            if 300 <= response.status_code < 400:
                raise FetchError(
                    f"The URL answered HTTP {response.status_code} (a redirect); redirects are "
                    "not followed. Give the final URL."
                )
            if response.status_code >= 400:
                raise FetchError(f"The URL answered HTTP {response.status_code}.")
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > settings.max_upload_bytes:
                raise DomainError(
                    f"The file is larger than the {settings.max_upload_bytes // 1048576} MB limit.",
                    code="payload_too_large",
                    status=413,
                )
            yield response
    except UnsafeURLError as exc:
        raise ValidationError(exc.args[0], details={"url": [exc.args[0]]}) from exc
    except httpx.TimeoutException as exc:
        raise FetchError(f"Fetching the URL timed out: {exc}.") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"Fetching the URL failed: {exc}.") from exc


def filename_from(url: str, given: str | None) -> str:
    if given:
        return given
    return PurePosixPath(unquote(urlsplit(url).path)).name


def start_import(
    session: Session,
    settings: Settings,
    organisation_id: int,
    url: str,
    filename: str | None,
) -> Media:
    """The new media, `uploading` until a worker has fetched it (nothing is fetched here)."""
    check_source_url(settings, url)
    media_id = uuid.uuid4()
    name = filename_from(url, filename)[:255]
    kind = "video" if PurePosixPath(name.lower()).suffix in VIDEO_EXTENSIONS else "image"
    media = Media(
        id=media_id,
        organisation_id=organisation_id,
        filename=name or str(media_id),
        kind=kind,
        mime_type="",
        size_bytes=0,
        sha256="",
        storage_key="",
        status="uploading",
        source_url=url,
        created_at=utcnow(),
    )
    session.add(media)
    session.flush()
    return media


def _with_head(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The chunks, refusing an empty file or one whose first bytes are no accepted media
    before the rest is downloaded."""
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    if not head:
        raise ValidationError("The file at the URL is empty.", details={"url": ["Empty file."]})
    mime_type = sniff(head[:SNIFF_BYTES])
    if mime_type not in IMAGE_TYPES and mime_type not in VIDEO_TYPES:
        raise unsupported_type(mime_type)
    yield head
    yield from chunks


def fetch_and_store(
    client: httpx.Client, settings: Settings, organisation_id: int, media_id: uuid.UUID, url: str
) -> StoredFile:
    """Fetch the source and store it like an upload, or raise the DomainError that says why
    not (its message becomes the media's status_reason)."""
    with open_source(client, settings, url) as response:
        try:
            return store_chunks(
                settings, organisation_id, media_id, _with_head(response.iter_bytes(CHUNK))
            )
        except httpx.TimeoutException as exc:
            raise FetchError(f"Fetching the URL timed out: {exc}.") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"Fetching the URL failed: {exc}.") from exc


def enqueue_import(celery: Any, media_id: uuid.UUID) -> bool:
    """After commit. When the broker is down the import is resent by the periodic resume."""
    try:
        celery.send_task(MEDIA_IMPORT_TASK, args=[str(media_id)], queue=MEDIA_IMPORT_QUEUE)
        return True
    except Exception:  # the media stays `uploading`; resume_stalled_imports sends it again
        return False

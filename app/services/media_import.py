"""Media imported from a URL (POST /media/upload-from-url).

The source is fetched under the outbound rules (app.services.outbound), streamed with the
upload size cap and timeouts, and sniffed like an upload. An image is stored during the
request and is ready at once. A video only has its first bytes read here: it is saved as
`uploading` and fetched, stored and probed by a worker (workers/media_import.py), which
marks it `ready` or `failed` with a reason and writes `media.processed`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
from sqlalchemy.orm import Session

from app.api.envelope import ApiError, ValidationError
from app.config import Settings
from app.db import utcnow
from app.models import Media
from app.services import webhooks
from app.services.media import (
    IMAGE_TYPES,
    VIDEO_TYPES,
    apply_stored,
    sniff,
    store_chunks,
    unsupported_type,
)
from app.services.outbound import UnsafeURLError, check_literal_host, safe_stream

# The worker task that fetches a video import; the name lives here so app/ need not
# import workers/ (workers/media_import.py registers it).
IMPORT_TASK = "crier.import_media"
IMPORT_QUEUE = "maintenance"
SNIFF_BYTES = 8192
CHUNK = 1024 * 1024


class FetchError(ApiError):
    status = 422
    code = "media_fetch_failed"


def fetch_timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(settings.http_timeout, connect=10.0)


def check_source_url(settings: Settings, url: str) -> None:
    try:
        check_literal_host(url, allow_private=settings.allow_private_urls)
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
                raise ApiError(
                    f"The file is larger than the {settings.max_upload_bytes // 1048576} MB limit.",
                    code="payload_too_large",
                    status=413,
                )
            yield response
    except UnsafeURLError as exc:
        raise ValidationError(exc.args[0], details={"url": [exc.args[0]]}) from exc
    except httpx.TimeoutException as exc:
        raise FetchError("Fetching the URL timed out.") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"Fetching the URL failed: {exc}.") from exc


def _head(chunks: Iterator[bytes]) -> bytes:
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= SNIFF_BYTES:
            break
    return head


def filename_from(url: str, given: str | None) -> str:
    if given:
        return given
    return PurePosixPath(unquote(urlsplit(url).path)).name


def import_from_url(
    session: Session,
    settings: Settings,
    client: httpx.Client,
    organisation_id: int,
    url: str,
    filename: str | None,
) -> tuple[Media, bool]:
    """The new media, and whether a worker must still fetch it (videos)."""
    check_source_url(settings, url)
    media_id = uuid.uuid4()
    name = filename_from(url, filename)
    with open_source(client, settings, url) as response:
        chunks = response.iter_bytes(CHUNK)
        head = _head(chunks)
        if not head:
            raise ValidationError("The file at the URL is empty.", details={"url": ["Empty file."]})
        mime_type = sniff(head[:SNIFF_BYTES])
        if mime_type in VIDEO_TYPES:
            media = Media(
                id=media_id,
                organisation_id=organisation_id,
                filename=name[:255] or f"{media_id}{VIDEO_TYPES[mime_type]}",
                kind="video",
                mime_type=mime_type,
                size_bytes=0,
                sha256="",
                storage_key="",
                status="uploading",
                source_url=url,
                created_at=utcnow(),
            )
            session.add(media)
            session.flush()
            return media, True
        if mime_type not in IMAGE_TYPES:
            raise unsupported_type(mime_type)
        try:
            stored = store_chunks(settings, organisation_id, media_id, chain([head], chunks))
        except httpx.HTTPError as exc:
            raise FetchError(f"Fetching the URL failed: {exc}.") from exc
    media = Media(
        id=media_id,
        organisation_id=organisation_id,
        status="ready",
        source_url=url,
        created_at=utcnow(),
    )
    apply_stored(media, stored, name)
    session.add(media)
    session.flush()
    webhooks.record_media_processed(session, media)
    return media, False


def enqueue_import(celery: Any, media_id: uuid.UUID) -> bool:
    """After commit. When the broker is down the import is resent by the periodic resume."""
    try:
        celery.send_task(IMPORT_TASK, args=[str(media_id)], queue=IMPORT_QUEUE)
        return True
    except Exception:  # the media stays `uploading`; resume_stalled_imports sends it again
        return False

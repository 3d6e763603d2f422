"""Finishing a video imported from a URL: fetch, store, probe, then `ready` or `failed`.

The media row says `uploading` until this finishes; the final write is guarded by that
status, so a second delivery of the same import (after a lost message) changes nothing.
`media.processed` is written in the transaction that settles the media.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from functools import lru_cache

import httpx
from celery import Celery, shared_task
from flask import current_app
from sqlalchemy import select

from app.api.envelope import ApiError
from app.config import Settings
from app.db import Database, get_db, utcnow
from app.models import Media
from app.services.media import StoredFile, apply_stored, store_chunks
from app.services.media_import import CHUNK, IMPORT_TASK, enqueue_import, open_source
from app.services.webhooks import record_media_processed

log = logging.getLogger("crier.media_import")

RESUME_TASK = "crier.resume_media_imports"
# An import still `uploading` this long after it began has lost its message.
STALLED_AFTER = timedelta(minutes=10)


def finish_import(db: Database, settings: Settings, client: httpx.Client, media_id: str) -> str:
    key = uuid.UUID(media_id)
    with db.session() as session:
        media = session.get(Media, key)
        if media is None or media.status != "uploading" or not media.source_url:
            return "skipped"
        url, organisation_id = media.source_url, media.organisation_id
    stored: StoredFile | None = None
    reason: str | None = None
    try:
        with open_source(client, settings, url) as response:
            stored = store_chunks(settings, organisation_id, key, response.iter_bytes(CHUNK))
    except ApiError as error:
        reason = error.message
    except httpx.HTTPError as error:
        reason = f"Fetching the URL failed: {error}."
    with db.session() as session:
        media = session.scalar(select(Media).where(Media.id == key).with_for_update())
        if media is None or media.status != "uploading":
            return "skipped"
        if stored is not None:
            apply_stored(media, stored, media.filename)
            media.status, media.status_reason = "ready", None
        else:
            media.status, media.status_reason = "failed", reason
        record_media_processed(session, media)
        session.commit()
        log.info("media import media_id=%s status=%s reason=%s", media_id, media.status, reason)
        return media.status


def resume_stalled_imports(db: Database, celery: Celery) -> int:
    cutoff = utcnow() - STALLED_AFTER
    with db.session() as session:
        ids = session.scalars(
            select(Media.id).where(Media.status == "uploading", Media.created_at < cutoff)
        ).all()
    return sum(enqueue_import(celery, media_id) for media_id in ids)


@lru_cache(maxsize=1)
def _client() -> httpx.Client:
    return httpx.Client(follow_redirects=False)


@shared_task(name=IMPORT_TASK, ignore_result=True)
def import_media_task(media_id: str) -> str:
    return finish_import(get_db(), current_app.config["CRIER"], _client(), media_id)


@shared_task(name=RESUME_TASK, ignore_result=True)
def resume_media_imports_task() -> int:
    return resume_stalled_imports(get_db(), current_app.extensions["celery"])

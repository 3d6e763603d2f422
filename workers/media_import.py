"""Importing media from a URL on the `media_import` queue: fetch, store, probe, then
`ready` or `failed`.

The media row says `uploading` until this finishes; the final write is guarded by that
status, so a second delivery of the same import (after a lost message) changes nothing.
`media.processed` is written in the transaction that settles the media.

Every try is counted in Redis before the source is fetched. A file that kills its worker
(out of memory, a crash in a decoder) comes back with its message, and again from the
periodic resume; after CRIER_MEDIA_IMPORT_MAX_TRIES the import is marked `failed`
instead of being tried once more.
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

from app.config import Settings
from app.db import Database, get_db, utcnow
from app.errors import DomainError
from app.http_deadline import deadline_client
from app.models import Media
from app.queues import MEDIA_IMPORT_TASK, MEDIA_RESUME_TASK
from app.redis_client import redis_client
from app.services.media import StoredFile, apply_stored
from app.services.media_import import enqueue_import, fetch_and_store
from app.services.webhooks import record_media_processed

log = logging.getLogger("crier.media_import")

# An import still `uploading` this long after it began has lost its message.
STALLED_AFTER = timedelta(minutes=10)
TRIES_KEY = "crier:media-import-tries:{}"
TRIES_TTL = 7 * 24 * 3600


def count_try(settings: Settings, media_id: str) -> int:
    """This try's number (1 for the first). Counted before any byte is fetched, so a try
    that ends its worker is counted too."""
    key = TRIES_KEY.format(media_id)
    client = redis_client(settings.redis_url, timeout=2.0)
    with client.pipeline() as pipe:
        pipe.incr(key)
        pipe.expire(key, TRIES_TTL)
        tries, _ = pipe.execute()
    return int(tries)


def settle(db: Database, key: uuid.UUID, stored: StoredFile | None, reason: str | None) -> str:
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
        log.info("media import media_id=%s status=%s reason=%s", key, media.status, reason)
        return media.status


def finish_import(db: Database, settings: Settings, client: httpx.Client, media_id: str) -> str:
    key = uuid.UUID(media_id)
    with db.session() as session:
        media = session.get(Media, key)
        if media is None or media.status != "uploading" or not media.source_url:
            return "skipped"
        url, organisation_id = media.source_url, media.organisation_id
    tries = count_try(settings, media_id)
    if tries > settings.media_import_max_tries:
        return settle(
            db,
            key,
            None,
            f"Importing this file stopped its worker {tries - 1} times (the file may be "
            "malformed or too demanding to process); it is not tried again.",
        )
    stored: StoredFile | None = None
    reason: str | None = None
    try:
        stored = fetch_and_store(client, settings, organisation_id, key, url)
    except DomainError as error:
        reason = error.message
    except httpx.HTTPError as error:
        reason = f"Fetching the URL failed: {error}."
    except Exception:  # a probe that fails unexpectedly must settle, not come back
        log.exception("media import failed media_id=%s", media_id)
        reason = "The file could not be processed."
    return settle(db, key, stored, reason)


def resume_stalled_imports(db: Database, celery: Celery) -> int:
    cutoff = utcnow() - STALLED_AFTER
    with db.session() as session:
        ids = session.scalars(
            select(Media.id).where(Media.status == "uploading", Media.created_at < cutoff)
        ).all()
    return sum(enqueue_import(celery, media_id) for media_id in ids)


@lru_cache(maxsize=1)
def _client() -> httpx.Client:
    settings = current_app.config["CRIER"]
    return deadline_client(
        settings.media_import_deadline, limits=httpx.Limits(max_keepalive_connections=0)
    )


@shared_task(name=MEDIA_IMPORT_TASK, ignore_result=True)
def import_media_task(media_id: str) -> str:
    return finish_import(get_db(), current_app.config["CRIER"], _client(), media_id)


@shared_task(name=MEDIA_RESUME_TASK, ignore_result=True)
def resume_media_imports_task() -> int:
    return resume_stalled_imports(get_db(), current_app.extensions["celery"])

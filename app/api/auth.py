"""Who is calling: the API key in `Authorization: Bearer` (or `X-API-Key`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app, g, request
from sqlalchemy import select, update

from app.access import Scope
from app.api.envelope import ApiError, Unauthorized
from app.api.scopes import check_scope, effective_scopes, query_profile, resolve_profile
from app.db import get_session, utcnow
from app.key_cache import KEY_CACHE_SECONDS, CachedKey
from app.key_cache import forget as forget_cached_key
from app.models import ApiKey
from app.ratelimit import LimitState, RequestLimiter, retry_after_seconds
from app.security import hash_api_key

# Endpoints anyone may call: health checks, the API description, signed media links.
PUBLIC_ENDPOINTS = {
    "meta.health",
    "meta.openapi",
    "meta.docs",
    "meta.docs_init",
    "meta.docs_static",
    "media.public_file",
    "metrics.metrics",
    "static",
    # The connect flow is walked by the end client's browser, with no key: the link's
    # token and the signed state are its credentials.
    "connect.open_connect_link",
    "connect.submit_credentials",
    "connect.oauth_callback",
    "connect.choose_pages",
    "connect.submit_pages",
}


@dataclass(frozen=True)
class Caller:
    organisation_id: int
    api_key_id: int
    scopes: tuple[str, ...] = ("admin",)
    # Set for a key restricted to one profile: everything else reads as absent (404).
    profile_id: int | None = None

    @property
    def scope(self) -> Scope:
        """What this key may touch (app.access loads every object a request names)."""
        return Scope(self.organisation_id, self.profile_id)

    def list_scope(self) -> Scope:
        """What a list shows: the key's scope, narrowed by `?profile_id=` if asked."""
        return Scope(self.organisation_id, self.profile_for_list())

    def profile_for_list(self) -> int | None:
        """The profile a list is narrowed to (`?profile_id=`, or the key's own)."""
        return query_profile(self.organisation_id, self.profile_id)

    def profile_for_create(self, requested: Any) -> int | None:
        """The profile a new row belongs to (`profile_id` in the body, or the key's own)."""
        return resolve_profile(self.organisation_id, self.profile_id, requested)


def current_caller() -> Caller:
    return g.caller


def presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


def authenticate() -> None:
    """before_request hook: resolve the key and count the request against its limits, in
    one Redis round trip when the key is cached (app.key_cache), else with one query."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None:
        return
    presented = presented_key()
    if not presented:
        raise Unauthorized()
    key_hash = hash_api_key(presented)
    limiter: RequestLimiter = current_app.extensions["crier.limiter"]
    creates_posts = request.method == "POST" and request.endpoint in {
        "posts.create_post",
        "posts.bulk_create_posts",
    }
    found = limiter.check_key(key_hash, creates_posts)
    if found is None or found[0] is None:
        # Not cached (or Redis away): the row, then the same round trip storing it.
        began = time.monotonic()
        api_key = get_session().scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        if api_key is None:
            raise Unauthorized()
        cached = CachedKey.of(api_key)
        if found is not None:
            # The entry lives KEY_CACHE_SECONDS from the moment the row was asked for.
            left = KEY_CACHE_SECONDS - (time.monotonic() - began)
            found = limiter.check_key(key_hash, creates_posts, cached, int(left * 1000))
        state = found[1] if found is not None else None
    else:
        cached, state = found
    now = utcnow()
    last_used = cached.last_used()
    if last_used is None or now - last_used > timedelta(minutes=1):
        session = get_session()
        session.execute(update(ApiKey).where(ApiKey.id == cached.id).values(last_used_at=now))
        session.commit()
        # The next request reads the new time, rather than each writing it for a second.
        forget_cached_key(current_app.config["CRIER"].redis_url, key_hash)
    # A profile key never holds `admin`, whatever its row says (app.api.scopes).
    scopes = effective_scopes(cached.scopes, cached.profile_id)
    g.caller = Caller(
        organisation_id=cached.organisation_id,
        api_key_id=cached.id,
        scopes=scopes,
        profile_id=cached.profile_id,
    )
    enforce_limit(state)
    check_scope(request.endpoint, list(scopes))


def charge_bulk_posts(count: int) -> None:
    """A bulk create counts each of its posts against the posts limit, not just one."""
    limiter: RequestLimiter = current_app.extensions["crier.limiter"]
    enforce_limit(limiter.charge_posts(str(current_caller().api_key_id), count - 1))


def enforce_limit(state: LimitState | None) -> None:
    if state is None:
        return
    g.rate_limit_headers = {
        "X-RateLimit-Limit": str(state.limit),
        "X-RateLimit-Remaining": str(state.remaining),
        "X-RateLimit-Reset": str(int(state.reset_at)),
    }
    if not state.allowed:
        wait = retry_after_seconds(state)
        raise ApiError(
            f"Rate limit exceeded. Try again in {wait} seconds.",
            code="rate_limited",
            status=429,
            headers={"Retry-After": str(wait)},
        )

"""API keys are cached in Redis for at most a second (app.key_cache): a request costs one
Redis round trip for its key and its limits, and a revoked key never works longer than
that second, in any process, however it was revoked."""

from __future__ import annotations

import time

import httpx
import pytest
import redis
from flask import Flask

from app.key_cache import KEY_CACHE_SECONDS, cache_key
from app.security import hash_api_key
from tests.api.helpers import ok_data, sql
from tests.conftest import Tenant


def cached_ms(app: Flask, plain: str) -> int:
    """How long the key's cache entry has left, in ms (negative: none)."""
    client = redis.Redis.from_url(app.config["CRIER"].redis_url)
    return int(client.pttl(cache_key(hash_api_key(plain))))


def test_a_key_is_cached_for_at_most_a_second(app: Flask, tenant: Tenant) -> None:
    # The first use writes last_used_at and drops the entry; the next one caches the row.
    ok_data(tenant.api.get("/me"))
    ok_data(tenant.api.get("/me"))
    left = cached_ms(app, tenant.key)
    assert 0 < left <= KEY_CACHE_SECONDS * 1000


def test_a_key_revoked_behind_the_apis_back_stops_within_the_second(
    app: Flask, tenant: Tenant
) -> None:
    """Revoked by SQL, which drops no cache entry: refused once the second is over."""
    ok_data(tenant.api.get("/me"))
    ok_data(tenant.api.get("/me"))
    assert cached_ms(app, tenant.key) > 0
    sql(app, "UPDATE api_keys SET revoked_at = now()")
    revoked = time.monotonic()
    while tenant.api.get("/me").status_code != 401:
        assert time.monotonic() - revoked < 10, "the revoked key kept working"
        time.sleep(0.02)
    seen = time.monotonic() - revoked
    print(f"\nrevoked by SQL: refused after {seen:.3f}s")
    # Every entry ends a second after its row was read, and that read was before the
    # revocation: from then on no process can take the key.
    time.sleep(max(0.0, KEY_CACHE_SECONDS + 0.05 - (time.monotonic() - revoked)))
    for _ in range(5):
        assert tenant.api.get("/me").status_code == 401


def test_a_key_revoked_through_the_api_stops_at_once(
    app: Flask, tenant: Tenant, live_url: str
) -> None:
    created = ok_data(tenant.api.post("/keys", json={"name": "short-lived"}), 201)
    with httpx.Client(
        base_url=live_url, headers={"Authorization": f"Bearer {created['key']}"}, timeout=30
    ) as other:
        ok_data(other.get("/me"))
        ok_data(other.get("/me"))
        assert cached_ms(app, created["key"]) > 0
        ok_data(tenant.api.delete(f"/keys/{created['id']}"))
        assert cached_ms(app, created["key"]) < 0
        assert other.get("/me").status_code == 401


def test_a_key_check_survives_redis_losing_its_script(
    app: Flask, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a Redis restart its scripts are gone: the check loads its script again."""
    script = app.extensions["crier.limiter"]._check_key
    monkeypatch.setattr(script, "sha", "0" * 40)  # a script Redis does not hold
    for _ in range(3):
        ok_data(tenant.api.get("/me"))
    assert script.sha != "0" * 40
    assert cached_ms(app, tenant.key) > 0

"""GET /metrics: behind a bearer token when CRIER_METRICS_TOKEN is set (open otherwise),
and a storm of scrapes within CRIER_METRICS_CACHE_SECONDS reads the state once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import event

from app import create_app
from app.db import get_db
from tests.api.helpers import assert_error
from tests.conftest import Tenant
from tests.servers import serve_wsgi

TOKEN = "metrics-" + "k3y" * 8


@contextmanager
def served(app_settings: dict[str, Any], **overrides: Any) -> Iterator[tuple[Flask, str]]:
    app = create_app({**app_settings, **overrides})
    try:
        with serve_wsgi(app) as url:
            yield app, url
    finally:
        get_db(app).dispose()


@contextmanager
def group_by_queries(app: Flask) -> Iterator[list[str]]:
    """Every GROUP BY statement the app's engine runs meanwhile."""
    seen: list[str] = []
    lock = threading.Lock()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "GROUP BY" in statement:
            with lock:
                seen.append(statement)

    engine = get_db(app).engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_metrics_stay_open_without_a_token(live_url: str, tenant: Tenant) -> None:
    response = httpx.get(f"{live_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert "crier_targets" in response.text


def test_metrics_need_the_bearer_token_when_one_is_set(
    app: Flask, app_settings: dict[str, Any]
) -> None:
    with served(app_settings, metrics_token=TOKEN) as (_, url):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
            assert_error(refused, 401, "invalid_metrics_token")
            assert "CRIER_METRICS_TOKEN" in refused.json()["error"]["message"]
            assert "crier_targets" not in refused.text
        ok = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert ok.status_code == 200 and "crier_targets" in ok.text
        # /health stays open: probes carry no token.
        assert httpx.get(f"{url}/health", timeout=10).status_code in (200, 503)


def test_a_storm_of_scrapes_reads_the_state_once_per_interval(
    app: Flask, app_settings: dict[str, Any], tenant: Tenant, make_account: Any
) -> None:
    make_account(tenant, "x")
    # An interval longer than the storm takes on a loaded machine.
    with served(app_settings, metrics_cache_seconds=60) as (api, url):
        with group_by_queries(api) as queries, ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: httpx.get(f"{url}/metrics", timeout=20), range(40)))
        assert all(a.status_code == 200 for a in answers)
        assert all('crier_accounts{platform="x",status="active"} 1.0' in a.text for a in answers)
        assert len(queries) == 3  # targets, accounts and the oldest due message, once


def test_past_the_interval_a_scrape_reads_again(
    app: Flask, app_settings: dict[str, Any], tenant: Tenant, make_account: Any
) -> None:
    make_account(tenant, "x")
    with served(app_settings, metrics_cache_seconds=0.5) as (api, url):
        with group_by_queries(api) as queries:
            first = httpx.get(f"{url}/metrics", timeout=20)
            make_account(tenant, "x")
            time.sleep(0.6)
            again = httpx.get(f"{url}/metrics", timeout=20)
        assert len(queries) == 6
        assert 'crier_accounts{platform="x",status="active"} 1.0' in first.text
        assert 'crier_accounts{platform="x",status="active"} 2.0' in again.text

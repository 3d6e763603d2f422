"""Test infrastructure: a PostgreSQL database and a Redis db number of the suite's own.

Both are created for the session and dropped at the end, so the suite runs beside a live
dev stack. The schema is built by the Alembic migrations, as in production.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from flask import Flask
from sqlalchemy import text

from app import create_app
from app.db import get_db
from app.metrics import forget_state
from app.models import Account, Organisation
from app.services.accounts import add_account
from app.services.keys import create_api_key
from devtools.scratch import rabbitmq_reachable, scratch_database, scratch_redis, scratch_vhost
from sandbox import create_sandbox_app
from tests.servers import serve_wsgi

pytest_plugins = ["tests.secrets_guard", "tests.parallel"]

CLAIM_KEY = "crier:test-suite-claim"
TABLES = (
    "metric_snapshots",
    "account_metric_snapshots",
    "webhook_deliveries",
    "webhook_events",
    "webhook_endpoints",
    "discarded_handles",
    "worker_heartbeats",
    "service_state",
    "audit_log",
    "publish_attempts",
    "idempotency_records",
    "post_targets",
    "posts",
    "media",
    "accounts",
    "api_keys",
    "campaigns",
    "connect_links",
    "instance_apps",
    "profiles",
    "ai_credit_events",
    "ai_credit_usage",
    "organisations",
)
# AI captions come from the sandbox's OpenAI-compatible server (sandbox/openai_api.py).
AI_MODEL = "crier-sandbox-1"
AI_API_KEY = "sk-test-suite-ai-key"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with scratch_database("crier_test") as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with scratch_redis(CLAIM_KEY) as url:
        yield url


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A scratch virtual host on the machine's RabbitMQ (127.0.0.1:5672, guest/guest)."""
    if not rabbitmq_reachable():
        pytest.skip("RabbitMQ is not listening on 127.0.0.1:5672 (.ci/run starts it)")
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl (to make a scratch vhost) is not installed")
    with scratch_vhost("crier_test") as url:
        yield url


def reset_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.set(CLAIM_KEY, os.getpid(), ex=6 * 3600)


@pytest.fixture(scope="session")
def app_settings(
    database_url: str,
    redis_url: str,
    sandbox_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    return {
        "ai_base_url": f"{sandbox_url}/openai/v1",
        "ai_model": AI_MODEL,
        "ai_api_key": AI_API_KEY,
        "database_url": database_url,
        "redis_url": redis_url,
        "secret_key": "test-secret-" + uuid.uuid4().hex,
        "media_dir": str(tmp_path_factory.mktemp("media")),
        "rate_limit": "100000/minute",
        "posts_rate_limit": "100000/minute",
        "allow_private_urls": True,
    }


@pytest.fixture(scope="session")
def app(app_settings: dict[str, Any]) -> Flask:
    return create_app(app_settings)


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty every table and the Redis db before each test that uses them."""
    if "app" in request.fixturenames or "api" in request.fixturenames:
        app: Flask = request.getfixturevalue("app")
        with get_db(app).engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
        reset_redis(app.config["CRIER"].redis_url)
        forget_state(app)  # a scrape's cached reading must not outlive the test's data
    yield
    if "app" in request.fixturenames or "api" in request.fixturenames:
        # What the test left in error fields must not hold a platform token.
        from tests.secrets_guard import scan_error_fields

        scan_error_fields(request.getfixturevalue("app"))


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    with serve_wsgi(create_sandbox_app()) as url:
        yield url


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[httpx.Client]:
    """A client for the sandbox's control endpoints; state is reset around each test."""
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        client.post("/_reset").raise_for_status()
        yield client
        client.post("/_reset")


@pytest.fixture(scope="session")
def live_url(app: Flask) -> Iterator[str]:
    with serve_wsgi(app) as url:
        yield url


@dataclass
class Tenant:
    organisation_id: int
    key: str
    api: httpx.Client


@pytest.fixture
def make_tenant(app: Flask, live_url: str) -> Iterator[Any]:
    clients: list[httpx.Client] = []

    def _make(name: str = "acme") -> Tenant:
        with app.app_context(), get_db(app).session() as session:
            plain, api_key = create_api_key(session, name=f"{name}-key", organisation_name=name)
            session.commit()
            organisation_id = api_key.organisation_id
        client = httpx.Client(
            base_url=live_url, headers={"Authorization": f"Bearer {plain}"}, timeout=30
        )
        clients.append(client)
        return Tenant(organisation_id, plain, client)

    yield _make
    for client in clients:
        client.close()


@contextmanager
def make_key_client(app: Flask, base_url: str, name: str = "strict") -> Iterator[httpx.Client]:
    """A client with a new key of its own organisation, for an app built with other settings."""
    with app.app_context(), get_db(app).session() as session:
        plain, _api_key = create_api_key(session, name=f"{name}-key", organisation_name=name)
        session.commit()
    try:
        with httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {plain}"}, timeout=30
        ) as client:
            yield client
    finally:
        get_db(app).dispose()


@pytest.fixture
def tenant(make_tenant: Any) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def make_account(app: Flask) -> Any:
    def _make(
        tenant: Tenant,
        platform: str = "x",
        name: str | None = None,
        access_token: str = "tok-access",
        refresh_token: str | None = "tok-refresh",
        external_id: str | None = None,
        status: str | None = None,
    ) -> int:
        with app.app_context(), get_db(app).session() as session:
            organisation = session.get(Organisation, tenant.organisation_id)
            account = add_account(
                session,
                app.config["CRIER"],
                platform=platform,
                name=name or f"{platform} account",
                access_token=access_token,
                refresh_token=refresh_token,
                external_id=external_id or f"{platform}-ext-{uuid.uuid4().hex[:8]}",
                organisation=organisation,
            )
            if status:
                account.status = status
            session.commit()
            return account.id

    return _make


@pytest.fixture
def db_session(app: Flask) -> Iterator[Any]:
    with app.app_context(), get_db(app).session() as session:
        yield session


def account_row(app: Flask, account_id: int) -> Account:
    with app.app_context(), get_db(app).session() as session:
        account = session.get(Account, account_id)
        assert account is not None
        session.expunge(account)
        return account


FIXTURES = Path(__file__).parent / "fixtures"

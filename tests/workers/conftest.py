"""The pipeline's plain functions, called directly against real PostgreSQL, Redis and
the sandbox over HTTP (no worker process: where a worker is the point, see integration)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from flask import Flask

from app.db import get_db
from tests.servers import serve_wsgi
from workers.adapters import get_adapter
from workers.pipeline import PipelineDeps
from workers.quotas import SharedQuotas
from workers.sandbox import create_sandbox_app


@pytest.fixture(scope="session")
def sandbox_url() -> Iterator[str]:
    with serve_wsgi(create_sandbox_app()) as url:
        yield url


@pytest.fixture
def sandbox(sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        client.post("/_reset").raise_for_status()
        yield client
        client.post("/_reset")


@pytest.fixture
def deps(app: Flask, sandbox_url: str) -> Iterator[PipelineDeps]:
    settings = app.config["CRIER"]
    with httpx.Client(timeout=10) as http:
        yield PipelineDeps(
            db=get_db(app),
            settings=settings,
            celery=app.extensions["celery"],
            quotas=SharedQuotas(settings.redis_url),
            adapter_for=lambda platform: get_adapter(platform, http, sandbox_url),
        )


def target_row(app: Flask, target_id: int) -> Any:
    from app.models import PostTarget

    with get_db(app).session() as session:
        target = session.get(PostTarget, target_id)
        session.expunge(target)
        return target

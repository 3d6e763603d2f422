"""The pipeline's plain functions, called directly against real PostgreSQL, Redis and
the sandbox over HTTP (no worker process: where a worker is the point, see integration)."""

from __future__ import annotations

import threading
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


class Receiver:
    """A webhook receiver that keeps each request's headers and body."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        with self.lock:
            self.requests.append((headers, body))
        start_response("204 No Content", [])
        return [b""]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hook = Receiver()
    with serve_wsgi(hook) as url:
        yield hook, url

"""Unauthenticated endpoints: health, the OpenAPI document and its docs page."""

from __future__ import annotations

import time
from typing import Any

import redis
from flask import Blueprint, Response, current_app, send_from_directory
from sqlalchemy import select, text
from swagger_ui_bundle import swagger_ui_path

from app.api.auth import presented_key
from app.api.envelope import NotFound, envelope
from app.db import get_session
from app.models import ApiKey
from app.openapi import build_spec
from app.redis_client import redis_client
from app.security import hash_api_key

blueprint = Blueprint("meta", __name__)

WORKER_HEARTBEAT_KEY = "crier:workers:heartbeat"
WORKER_FRESH_SECONDS = 60
# Beat writes this every few seconds (workers/celery.py); older than BEAT_FRESH_SECONDS
# means the sweeper has stopped.
BEAT_HEARTBEAT_KEY = "crier:beat:heartbeat"
BEAT_FRESH_SECONDS = 60


def _has_valid_key() -> bool:
    presented = presented_key()
    if not presented:
        return False
    return (
        get_session().scalar(
            select(ApiKey.id).where(
                ApiKey.key_hash == hash_api_key(presented), ApiKey.revoked_at.is_(None)
            )
        )
        is not None
    )


@blueprint.get("/health")
def health() -> Response:
    """Up or down; with an API key, also the database, Redis, workers and beat."""
    checks = _health_checks()
    healthy = checks["database"]["ok"] and checks["redis"]["ok"]
    data: dict[str, Any] = {"status": "ok" if healthy else "degraded"}
    # Worker host names and error classes help an attacker more than a load balancer:
    # anonymous callers get up/down only.
    try:
        if checks["database"]["ok"] and _has_valid_key():
            data["checks"] = checks
    except Exception:  # a failing lookup must not turn the health check into a 500
        pass
    return envelope(data, status=200 if healthy else 503)


def _health_checks() -> dict[str, Any]:
    settings = current_app.config["CRIER"]
    checks: dict[str, Any] = {}
    try:
        get_session().execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as exc:  # any driver error means "not reachable"
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    workers: dict[str, Any] = {"ok": False, "seen": []}
    try:
        client = redis_client(settings.redis_url)
        client.ping()
        checks["redis"] = {"ok": True}
        cutoff = time.time() - WORKER_FRESH_SECONDS
        beats = client.zrangebyscore(WORKER_HEARTBEAT_KEY, cutoff, "+inf", withscores=True)
        workers = {
            "ok": bool(beats),
            "seen": [
                {"name": name.decode(), "last_seen": round(score, 3)} for name, score in beats
            ],
        }
        raw_beat = client.get(BEAT_HEARTBEAT_KEY)
        last_beat = float(raw_beat) if raw_beat else None
        beat = {
            "ok": last_beat is not None and time.time() - last_beat < BEAT_FRESH_SECONDS,
            "last_seen": round(last_beat, 3) if last_beat else None,
        }
    except (redis.RedisError, OSError, ValueError) as exc:
        checks["redis"] = {"ok": False, "error": type(exc).__name__}
        beat = {"ok": False, "last_seen": None}
    checks["workers"] = workers
    checks["beat"] = beat
    return checks


@blueprint.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3 description of this API."""
    return _json(build_spec(current_app))


def _json(document: dict[str, Any]) -> Response:
    response = current_app.response_class(
        current_app.json.dumps(document), mimetype="application/json"
    )
    return response


# Swagger UI from the swagger-ui-bundle package, served by us: no CDN, works offline.
DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Crier API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><noscript>The machine-readable description is at
<a href="/openapi.json">/openapi.json</a>.</noscript><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script src="/docs/init.js"></script></body></html>"""

DOCS_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout'
  });
};
"""
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-standalone-preset.js": "application/javascript",
    "favicon-32x32.png": "image/png",
}


@blueprint.get("/docs")
def docs() -> Response:
    """Swagger UI for the API, rendering /openapi.json (assets served locally)."""
    return current_app.response_class(DOCS_PAGE, mimetype="text/html")


@blueprint.get("/docs/init.js")
def docs_init() -> Response:
    """The Swagger UI start-up script."""
    return current_app.response_class(DOCS_INIT, mimetype="application/javascript")


@blueprint.get("/docs/static/<name>")
def docs_static(name: str) -> Response:
    """Swagger UI's own files, from the packaged bundle."""
    if name not in DOCS_ASSETS:
        raise NotFound("The requested resource does not exist.")
    response = send_from_directory(swagger_ui_path, name, mimetype=DOCS_ASSETS[name], max_age=86400)
    return response

"""Crier's HTTP intake: the Flask app factory shared by the web process, workers and CLI."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g

from app import connect_flows, db  # noqa: F401  (importing registers the connect flows)
from app.api import register_blueprints
from app.api.auth import authenticate
from app.api.envelope import register_error_handlers
from app.api.prefix import VersionPrefix
from app.config import Settings
from app.json_provider import OrjsonProvider
from app.queues import celery_init_app
from app.ratelimit import RequestLimiter
from app.security import (
    InsecureSecretKey,
    check_secret_key,
    check_service_urls,
    is_placeholder,
)
from app.variables import report_unknown_variables


def create_app(overrides: dict[str, Any] | None = None, *, require_secret: bool = True) -> Flask:
    """The app for the web process, the workers and the CLI.

    Refuses (InsecureSecretKey) when CRIER_SECRET_KEY is unset, short, a known default or
    a placeholder, or a service URL carries a placeholder password; only CLI commands that
    never touch a token or a signed link pass require_secret=False.
    """
    settings = Settings.from_env().with_overrides(overrides)
    if require_secret:
        check_secret_key(settings.secret_key)
        check_service_urls(
            {
                "DATABASE_URL": settings.database_url,
                "REDIS_URL": settings.redis_url,
                "CELERY_BROKER_URL": settings.broker_url,
            }
        )
        if settings.metrics_token and is_placeholder(settings.metrics_token):
            raise InsecureSecretKey(
                "CRIER_METRICS_TOKEN is a placeholder value: set a random one "
                "(`crier secret` makes one), or unset it."
            )
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    app.config["CRIER"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes
    _configure_logging(settings.log_format)
    # A misspelt CRIER_* variable would otherwise be ignored without a word.
    report_unknown_variables()

    db.init_app(app, settings)
    app.extensions["crier.limiter"] = RequestLimiter(
        settings.redis_url, settings.rate_limit, settings.posts_rate_limit
    )

    # The web side only sends messages; the workers build the same app and register tasks.
    celery_init_app(app, settings)
    register_error_handlers(app)
    app.before_request(authenticate)

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        response.headers.update(g.get("rate_limit_headers", {}))
        return response

    register_blueprints(app)
    app.wsgi_app = VersionPrefix(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _configure_logging(log_format: str) -> None:
    from app.logs import configure_logging

    configure_logging(log_format)
    # httpx logs every request URL at INFO, and some platforms (Meta's token refresh)
    # take the token in the query string: keep secrets out of the logs.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)

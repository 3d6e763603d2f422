"""GET /metrics: Prometheus exposition of the web process (see app/metrics.py)."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.envelope import ApiError
from app.config import Settings
from app.metrics import render_metrics

blueprint = Blueprint("metrics", __name__)


def _check_token(settings: Settings) -> None:
    """With CRIER_METRICS_TOKEN set, only a scraper presenting it may read the metrics."""
    if settings.metrics_token is None:
        return
    header = request.headers.get("Authorization", "")
    presented = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not hmac.compare_digest(presented.encode(), settings.metrics_token.encode()):
        raise ApiError(
            "GET /metrics needs `Authorization: Bearer <CRIER_METRICS_TOKEN>`.",
            code="invalid_metrics_token",
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


@blueprint.get("/metrics")
def metrics() -> Response:
    """Counters, queue depth, targets and accounts by status, beat's last tick. Behind
    `Authorization: Bearer <CRIER_METRICS_TOKEN>` when that is set; open otherwise."""
    _check_token(current_app.config["CRIER"])
    return Response(render_metrics(current_app), mimetype=None, content_type=CONTENT_TYPE_LATEST)

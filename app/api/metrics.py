"""GET /metrics: Prometheus exposition of the web process (see app/metrics.py)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST

from app.metrics import render_metrics

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
def metrics() -> Response:
    """Counters, queue depth, targets and accounts by status, beat's last tick. Serve it
    to the cluster's Prometheus only: it carries no secrets but no authentication either."""
    return Response(render_metrics(current_app), mimetype=None, content_type=CONTENT_TYPE_LATEST)

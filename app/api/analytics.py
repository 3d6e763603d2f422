"""Analytics: a period's summary, a post's and an account's figures, and the CSV export
(docs/analytics.md). The figures are those the metrics collector read from the
platforms (workers/analytics.py); nothing here calls a platform."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, request

from app import access
from app.api.auth import current_caller
from app.api.envelope import envelope
from app.db import get_session, utcnow
from app.services import analytics
from app.services.analytics import EXPORT_COLUMNS, Period

blueprint = Blueprint("analytics", __name__)


def _period(default: str) -> Period:
    args = request.args
    return analytics.resolve_period(
        args.get("period"), args.get("from"), args.get("to"), utcnow(), default
    )


def _account_filter() -> int | None:
    """`?account_id=`, loaded through the key's scope: another profile's is not found."""
    raw = request.args.get("account_id")
    if raw is None:
        return None
    return access.account(get_session(), current_caller().scope, raw).id


@blueprint.get("/analytics/summary")
def summary() -> Response:
    """Posts and destinations of a period by status, and their platforms' figures."""
    period = _period("month")
    caller = current_caller()
    scope = caller.list_scope()  # `?profile_id=` narrows, checked like a list's
    data = analytics.summary(get_session(), scope, period, _account_filter())
    return envelope(data)


@blueprint.get("/analytics/export.csv")
def export_csv() -> Response:
    """Every destination published in a period with its latest figures, as CSV."""
    period = _period("month")
    scope = current_caller().list_scope()
    rows = analytics.export_rows(get_session(), scope, period, _account_filter())
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(rows)
    stamp = (period.start or period.end).date().isoformat()
    name = f"crier-analytics-{period.name}-{stamp}.csv"
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@blueprint.get("/posts/<post_id>/analytics")
def post_analytics(post_id: str) -> Response:
    """Each destination's latest figures and their series."""
    session = get_session()
    post = access.post(session, current_caller().scope, post_id)
    return envelope(analytics.post_analytics(session, post))


@blueprint.get("/accounts/<int:account_id>/analytics")
def account_analytics(account_id: int) -> Response:
    """Followers over a period and the account's top posts."""
    session = get_session()
    account = access.account(session, current_caller().scope, account_id)
    return envelope(analytics.account_analytics(session, account, _period("month")))

"""GET /audit-log: the organisation's security-relevant events, newest first."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from app.api.auth import current_caller
from app.api.bodies import load_query
from app.api.envelope import envelope
from app.db import get_session
from app.models import AuditEvent
from app.schemas import audit_log_query
from app.serializers import ts
from app.services import audit

blueprint = Blueprint("audit", __name__)


def record_request_event(
    action: str,
    *,
    subject_type: str,
    subject_id: object,
    details: dict[str, Any] | None = None,
) -> None:
    """An event done through the API: the caller's key, organisation and address."""
    caller = current_caller()
    audit.record(
        get_session(),
        action,
        organisation_id=caller.organisation_id,
        actor=f"api_key:{caller.api_key_id}",
        api_key_id=caller.api_key_id,
        subject_type=subject_type,
        subject_id=subject_id,
        details=details,
        source=request.remote_addr,
    )


def event_to_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": ts(event.created_at),
        "action": event.action,
        "actor": event.actor,
        "api_key_id": event.api_key_id,
        "subject_type": event.subject_type,
        "subject_id": event.subject_id,
        "details": event.details,
        "source": event.source,
    }


@blueprint.get("/audit-log")
def list_audit_log() -> Response:
    """Security-relevant events (keys, accounts, deletions, secret rotation), newest first."""
    query = load_query(audit_log_query)
    rows, total = audit.list_events(get_session(), current_caller().organisation_id, query)
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([event_to_dict(e) for e in rows], meta={"pagination": pagination})

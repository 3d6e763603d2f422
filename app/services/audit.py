"""The audit trail: who did what security-relevant thing, when, with which key, from where.

Callers add an event in the same transaction as the change it records, so a rolled-back
change leaves no event and a committed one always has its event.
"""

from __future__ import annotations

import getpass
import socket
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from app.models import AUDIT_ACTIONS as ACTIONS
from app.models import AuditEvent


def record(
    session: Session,
    action: str,
    *,
    organisation_id: int | None,
    actor: str,
    api_key_id: int | None = None,
    subject_type: str | None = None,
    subject_id: object | None = None,
    details: dict[str, Any] | None = None,
    source: str | None = None,
) -> AuditEvent:
    assert action in ACTIONS, action
    event = AuditEvent(
        organisation_id=organisation_id,
        actor=actor[:200],
        api_key_id=api_key_id,
        action=action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id)[:64],
        details=details or {},
        source=source[:200] if source else None,
    )
    session.add(event)
    return event


def cli_actor() -> str:
    """Operator commands: the OS user and host that ran them."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _filtered(organisation_id: int, filters: dict[str, Any]) -> Select[tuple[AuditEvent]]:
    # An organisation sees its own events and the instance-wide ones (secret rotation).
    statement = select(AuditEvent).where(
        or_(AuditEvent.organisation_id == organisation_id, AuditEvent.organisation_id.is_(None))
    )
    if filters.get("action"):
        statement = statement.where(AuditEvent.action == filters["action"])
    if filters.get("api_key_id"):
        statement = statement.where(AuditEvent.api_key_id == filters["api_key_id"])
    if filters.get("subject_id"):
        statement = statement.where(AuditEvent.subject_id == filters["subject_id"])
    created_from: datetime | None = filters.get("created_from")
    created_to: datetime | None = filters.get("created_to")
    if created_from:
        statement = statement.where(AuditEvent.created_at >= created_from)
    if created_to:
        statement = statement.where(AuditEvent.created_at < created_to)
    return statement


def list_events(
    session: Session, organisation_id: int, filters: dict[str, Any]
) -> tuple[list[AuditEvent], int]:
    statement = _filtered(organisation_id, filters)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(
        statement.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        .limit(filters["limit"])
        .offset(filters["offset"])
    ).all()
    return list(rows), total

"""Webhook endpoints of the caller's organisation, their deliveries, tests and redelivery."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import access
from app.api.audit import record_request_event
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json, load_query
from app.api.envelope import NotFound, ValidationError, envelope
from app.db import get_session
from app.models import WebhookDelivery, WebhookEndpoint
from app.schemas import page_query
from app.serializers import ts
from app.services import webhooks as webhook_service
from app.services.outbound import UnsafeURLError, check_literal_host
from app.webhook_schemas import deliveries_query, webhook_create_schema, webhook_update_schema

blueprint = Blueprint("webhooks", __name__)


def webhook_to_dict(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "name": endpoint.name,
        "description": endpoint.description,
        "events": list(endpoint.events or []),
        "profile_id": endpoint.profile_id,
        "is_active": endpoint.is_active,
        "consecutive_failures": endpoint.consecutive_failures,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": ts(endpoint.disabled_at),
        "last_success_at": ts(endpoint.last_success_at),
        "last_failure_at": ts(endpoint.last_failure_at),
        "created_at": ts(endpoint.created_at),
        "updated_at": ts(endpoint.updated_at),
    }


def delivery_to_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "webhook_id": str(delivery.endpoint_id),
        "event_id": str(delivery.event_id),
        "event_type": delivery.event.type,
        "status": delivery.status,
        "attempt": delivery.attempts,
        "status_code": delivery.response_status,
        "latency_ms": delivery.latency_ms,
        "error": delivery.error,
        "next_attempt_at": ts(delivery.next_attempt_at),
        "last_attempt_at": ts(delivery.last_attempt_at),
        "delivered_at": ts(delivery.delivered_at),
        "created_at": ts(delivery.created_at),
    }


def _checked_url(url: str) -> str:
    settings = current_app.config["CRIER"]
    try:
        check_literal_host(url, allow_private=settings.allow_private_urls)
    except UnsafeURLError as exc:
        raise ValidationError(exc.args[0], details={"url": [exc.args[0]]}) from exc
    return url


def _endpoint(webhook_id: str) -> WebhookEndpoint:
    return access.webhook(get_session(), current_caller().scope, webhook_id)


@blueprint.get("/webhooks")
def list_webhooks() -> Response:
    """The organisation's webhook endpoints."""
    query = load_query(page_query)
    session = get_session()
    statement = current_caller().list_scope().select(WebhookEndpoint)
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        .limit(query["limit"])
        .offset(query["offset"])
    ).all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([webhook_to_dict(e) for e in rows], meta={"pagination": pagination})


@blueprint.post("/webhooks")
def create_webhook() -> Response:
    """Register an endpoint; the answer carries its signing secret, shown only once."""
    data = load_json(webhook_create_schema, json_body())
    data["profile_id"] = current_caller().profile_for_create(data.get("profile_id"))
    _checked_url(data["url"])
    session = get_session()
    settings = current_app.config["CRIER"]
    endpoint, secret = webhook_service.create_endpoint(
        session, settings.secret_key, current_caller().organisation_id, data
    )
    session.flush()
    record_request_event(
        "webhook.created",
        subject_type="webhook",
        subject_id=endpoint.id,
        details={"url": endpoint.url, "events": endpoint.events},
    )
    session.commit()
    response = envelope({**webhook_to_dict(endpoint), "secret": secret}, status=201)
    response.headers["Location"] = f"/webhooks/{endpoint.id}"
    return response


@blueprint.get("/webhooks/<webhook_id>")
def get_webhook(webhook_id: str) -> Response:
    """One endpoint, with why it was disabled if it was."""
    return envelope(webhook_to_dict(_endpoint(webhook_id)))


@blueprint.patch("/webhooks/<webhook_id>")
def update_webhook(webhook_id: str) -> Response:
    """Change the URL, events, name, description or is_active (true resumes a disabled one)."""
    data = load_json(webhook_update_schema, json_body())
    if not data:
        raise ValidationError("Nothing to change: send at least one field.")
    if "url" in data:
        _checked_url(data["url"])
    endpoint = _endpoint(webhook_id)
    webhook_service.update_endpoint(endpoint, data)
    session = get_session()
    record_request_event(
        "webhook.updated",
        subject_type="webhook",
        subject_id=endpoint.id,
        details={"fields": sorted(data)},
    )
    session.commit()
    return envelope(webhook_to_dict(endpoint))


@blueprint.delete("/webhooks/<webhook_id>")
def delete_webhook(webhook_id: str) -> Response:
    """Remove an endpoint and its pending deliveries."""
    endpoint = _endpoint(webhook_id)
    session = get_session()
    session.delete(endpoint)
    record_request_event("webhook.deleted", subject_type="webhook", subject_id=endpoint.id)
    session.commit()
    return envelope({"id": str(endpoint.id), "deleted": True})


@blueprint.post("/webhooks/<webhook_id>/test")
def test_webhook(webhook_id: str) -> Response:
    """Queue a `webhook.test` event to this endpoint; its delivery shows the outcome."""
    endpoint = _endpoint(webhook_id)
    session = get_session()
    delivery = webhook_service.record_test_event(session, endpoint)
    session.commit()
    return envelope(delivery_to_dict(delivery), status=202)


@blueprint.get("/webhooks/<webhook_id>/deliveries")
def list_deliveries(webhook_id: str) -> Response:
    """Deliveries to this endpoint, newest first: status code, latency, attempt, error, next try."""
    endpoint = _endpoint(webhook_id)
    query = load_query(deliveries_query)
    session = get_session()
    statement = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if query.get("status"):
        statement = statement.where(WebhookDelivery.status == query["status"])
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.options(selectinload(WebhookDelivery.event))
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(query["limit"])
        .offset(query["offset"])
    ).all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([delivery_to_dict(d) for d in rows], meta={"pagination": pagination})


@blueprint.post("/webhooks/<webhook_id>/deliveries/<delivery_id>/redeliver")
def redeliver(webhook_id: str, delivery_id: str) -> Response:
    """Send a delivery's event again (same event id) as a new delivery."""
    endpoint = _endpoint(webhook_id)
    try:
        key = uuid.UUID(delivery_id)
    except ValueError as exc:
        raise NotFound("Delivery not found.") from exc
    session = get_session()
    delivery = session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == key, WebhookDelivery.endpoint_id == endpoint.id
        )
    )
    if delivery is None:
        raise NotFound("Delivery not found.")
    again = webhook_service.redeliver(session, delivery)
    session.commit()
    return envelope(delivery_to_dict(again), status=202)

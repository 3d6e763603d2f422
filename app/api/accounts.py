"""Social accounts of the caller's organisation."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from marshmallow import ValidationError as SchemaError
from marshmallow import fields, post_load, validate
from sqlalchemy import func, select

from app import access
from app.api.audit import record_request_event
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json, load_query
from app.api.envelope import Conflict, ValidationError, envelope
from app.credentials import credential_problem, normalise_external_id
from app.db import get_session, utcnow
from app.models import Account, Organisation, PostTarget, TargetStatus, WebhookEventType
from app.platforms import PLATFORM_KEYS
from app.schemas import MAX_ID, StrictInteger, StrictSchema, one_of, page_query
from app.serializers import account_health, account_to_dict, ts
from app.services.accounts import (
    add_account,
    cancel_account_targets,
    reconnect_account,
    remove_account,
    revoke_at_platform,
    visible_accounts,
)
from app.services.webhooks import record_account_event

blueprint = Blueprint("accounts", __name__)


@blueprint.get("/accounts")
def list_accounts() -> Response:
    """The organisation's connected accounts, with their health; `profile_id` narrows."""
    query = load_query(page_query)
    session = get_session()
    statement = visible_accounts(current_caller().list_scope())
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.order_by(Account.id).limit(query["limit"]).offset(query["offset"])
    ).all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([account_to_dict(a) for a in rows], meta={"pagination": pagination})


def _account(account_id: int) -> Account:
    return access.account(get_session(), current_caller().scope, account_id)


@blueprint.get("/accounts/<int:account_id>")
def get_account(account_id: int) -> Response:
    """One account and whether it can post."""
    return envelope(account_to_dict(_account(account_id)))


@blueprint.get("/accounts/<int:account_id>/health")
def get_account_health(account_id: int) -> Response:
    """Whether the account can post: status, reconnection, token expiry, last error and publish."""
    account = _account(account_id)
    session = get_session()
    health = account_health(account, utcnow())
    last_published = session.scalar(
        select(func.max(PostTarget.published_at)).where(
            PostTarget.account_id == account.id, PostTarget.status == TargetStatus.PUBLISHED
        )
    )
    last_failure = session.execute(
        select(PostTarget.error_code, PostTarget.error_message, PostTarget.updated_at)
        .where(PostTarget.account_id == account.id, PostTarget.status == TargetStatus.FAILED)
        .order_by(PostTarget.updated_at.desc())
        .limit(1)
    ).first()
    last_error = None
    if account.status_reason or account.last_refresh_error:
        last_error = {
            "code": "account",
            "message": account.status_reason or account.last_refresh_error,
            "at": ts(account.updated_at),
        }
    elif last_failure is not None:
        last_error = {
            "code": last_failure.error_code,
            "message": last_failure.error_message,
            "at": ts(last_failure.updated_at),
        }
    return envelope(
        {
            "account_id": account.id,
            "platform": account.platform,
            "status": account.status,
            "can_post": health["can_post"],
            "needs_reconnection": health["needs_reconnect"],
            "needs_reconnect": health["needs_reconnect"],
            "reason": health["reason"],
            "token_expires_at": ts(health["token_expires_at"]),
            "token_expired": bool(
                account.token_expires_at and account.token_expires_at <= utcnow()
            ),
            "has_refresh_token": health["has_refresh_token"],
            "refresh_failures": account.refresh_failures,
            "last_error": last_error,
            "last_published_at": ts(last_published),
        }
    )


class AccountCreateSchema(StrictSchema):
    platform = fields.String(required=True, validate=one_of(*PLATFORM_KEYS))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    access_token = fields.String(required=True, validate=validate.Length(min=1, max=8000))
    refresh_token = fields.String(allow_none=True, validate=validate.Length(max=8000))
    external_id = fields.String(allow_none=True, validate=validate.Length(max=200))
    token_expires_at = fields.AwareDateTime(format="iso", allow_none=True)
    profile_id = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_ID))

    @post_load
    def _credential_form(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """Telegram and Discord take a credential of a given form (app/credentials.py)."""
        data["external_id"] = normalise_external_id(data["platform"], data.get("external_id"))
        problem = credential_problem(data["platform"], data["access_token"], data["external_id"])
        if problem is not None:
            raise SchemaError(problem[1], field_name=problem[0])
        return data


class AccountUpdateSchema(StrictSchema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    profile_id = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_ID))


account_create_schema = AccountCreateSchema()
account_update_schema = AccountUpdateSchema()


@blueprint.post("/accounts")
def create_account() -> Response:
    """Add an account with a token you obtained yourself (as `crier accounts add` does);
    an account already known by platform and external_id is reconnected, keeping its id."""
    caller = current_caller()
    data = load_json(account_create_schema, json_body())
    profile_id = caller.profile_for_create(data.get("profile_id"))
    settings = current_app.config["CRIER"]
    session = get_session()
    existing = None
    if data.get("external_id"):
        existing = session.scalar(
            select(Account).where(
                Account.organisation_id == caller.organisation_id,
                Account.platform == data["platform"],
                Account.external_id == data["external_id"],
            )
        )
        if existing is not None and not caller.scope.sees(existing):
            raise Conflict(
                "This platform account is already connected outside your profile.",
                code="account_exists",
            )
    if existing is not None:
        reconnect_account(
            session,
            settings,
            existing,
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_at=data.get("token_expires_at"),
            name=data["name"],
            profile_id=profile_id if profile_id is not None else existing.profile_id,
        )
        account, status = existing, 200
    else:
        account = add_account(
            session,
            settings,
            platform=data["platform"],
            name=data["name"],
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            external_id=data.get("external_id"),
            organisation=session.get(Organisation, caller.organisation_id),
            profile_id=profile_id,
            token_expires_at=data.get("token_expires_at"),
        )
        status = 201
    record_account_event(session, account, WebhookEventType.ACCOUNT_CONNECTED)
    session.flush()
    record_request_event(
        "account.reconnected" if status == 200 else "account.connected",
        subject_type="account",
        subject_id=account.id,
        details={"platform": account.platform, "via": "token"},
    )
    session.commit()
    response = envelope(account_to_dict(account), status=status)
    response.headers["Location"] = f"/accounts/{account.id}"
    return response


@blueprint.patch("/accounts/<int:account_id>")
def update_account(account_id: int) -> Response:
    """Rename an account or move it to another profile (`profile_id: null` takes it out)."""
    caller = current_caller()
    data = load_json(account_update_schema, json_body())
    if not data:
        raise ValidationError("Nothing to change: send at least one field.")
    account = _account(account_id)
    if "profile_id" in data:
        if data["profile_id"] is None:
            if caller.profile_id is not None:
                message = "A key restricted to a profile cannot take an account out of it."
                raise ValidationError(message, details={"profile_id": [message]})
            account.profile_id = None
        else:
            account.profile_id = caller.profile_for_create(data["profile_id"])
    if "name" in data:
        account.name = data["name"]
    session = get_session()
    session.commit()
    return envelope(account_to_dict(account))


@blueprint.delete("/accounts/<int:account_id>")
def delete_account(account_id: int) -> Response:
    """Revoke the token at the platform (where it has a revoke call), cancel what the
    account still had scheduled, and remove it."""
    account = _account(account_id)
    settings = current_app.config["CRIER"]
    revoked, revoke_error = revoke_at_platform(settings, account)
    session = get_session()
    reason = "The account was removed (DELETE /accounts) before this could be published."
    cancelled = len(cancel_account_targets(session, account, reason))
    remove_account(session, account, reason)
    record_request_event(
        "account.removed",
        subject_type="account",
        subject_id=account_id,
        details={"platform": account.platform, "revoked": revoked, "cancelled": cancelled},
    )
    session.commit()
    return envelope(
        {
            "id": account_id,
            "deleted": True,
            "revoked": revoked,
            "revoke_error": revoke_error,
            "cancelled_targets": cancelled,
        }
    )

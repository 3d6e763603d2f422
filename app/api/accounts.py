"""Social accounts of the caller's organisation."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import func, select

from app.api.auth import current_caller
from app.api.bodies import load_query
from app.api.envelope import NotFound, envelope
from app.api.serializers import account_to_dict, ts
from app.db import get_session, utcnow
from app.models import Account, PostTarget, TargetStatus
from app.schemas import MAX_ID, page_query
from app.services.accounts import account_health

blueprint = Blueprint("accounts", __name__)


@blueprint.get("/accounts")
def list_accounts() -> Response:
    """The organisation's connected accounts, with their health."""
    organisation_id = current_caller().organisation_id
    query = load_query(page_query)
    session = get_session()
    statement = select(Account).where(Account.organisation_id == organisation_id)
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = session.scalars(
        statement.order_by(Account.id).limit(query["limit"]).offset(query["offset"])
    ).all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([account_to_dict(a) for a in rows], meta={"pagination": pagination})


def _account(account_id: int) -> Account:
    if account_id > MAX_ID:  # no such row, and PostgreSQL would refuse the number
        raise NotFound("Account not found.")
    account = get_session().scalar(
        select(Account).where(
            Account.id == account_id, Account.organisation_id == current_caller().organisation_id
        )
    )
    if account is None:
        raise NotFound("Account not found.")
    return account


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

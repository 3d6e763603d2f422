"""Social accounts of the caller's organisation."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import func, select

from app.api.auth import current_caller
from app.api.bodies import load_query
from app.api.envelope import NotFound, envelope
from app.api.serializers import account_to_dict
from app.db import get_session
from app.models import Account
from app.schemas import MAX_ID, page_query

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


@blueprint.get("/accounts/<int:account_id>")
def get_account(account_id: int) -> Response:
    """One account and whether it can post."""
    if account_id > MAX_ID:  # no such row, and PostgreSQL would refuse the number
        raise NotFound("Account not found.")
    account = get_session().scalar(
        select(Account).where(
            Account.id == account_id, Account.organisation_id == current_caller().organisation_id
        )
    )
    if account is None:
        raise NotFound("Account not found.")
    return envelope(account_to_dict(account))

"""Social accounts: connecting them, reading their tokens, and their health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Account, AccountStatus, Organisation, Platform
from app.security import decrypt_token, encrypt_token, reencrypt_token
from app.services.keys import find_api_key


class AccountError(Exception):
    pass


def add_account(
    session: Session,
    settings: Settings,
    *,
    platform: str,
    name: str,
    access_token: str,
    refresh_token: str | None = None,
    external_id: str | None = None,
    api_key: str | None = None,
    organisation: Organisation | None = None,
) -> Account:
    if platform not in {p.value for p in Platform}:
        raise AccountError(
            f"unknown platform {platform!r}; expected one of {', '.join(p.value for p in Platform)}"
        )
    if organisation is None:
        if not api_key:
            raise AccountError("--key is required: the account joins the key's organisation")
        key_row = find_api_key(session, api_key)
        if key_row is None:
            raise AccountError("the API key is unknown or revoked")
        organisation_id = key_row.organisation_id
    else:
        organisation_id = organisation.id
    if not access_token:
        raise AccountError("an access token is required")
    account = Account(
        organisation_id=organisation_id,
        platform=platform,
        name=name,
        external_id=external_id,
        access_token_encrypted=encrypt_token(settings.secret_key, access_token),
        refresh_token_encrypted=(
            encrypt_token(settings.secret_key, refresh_token) if refresh_token else None
        ),
        status=AccountStatus.ACTIVE,
        settings={},
    )
    session.add(account)
    session.flush()
    return account


def account_tokens(settings: Settings, account: Account) -> tuple[str, str | None]:
    access = decrypt_token(settings.secret_key, account.access_token_encrypted)
    refresh = (
        decrypt_token(settings.secret_key, account.refresh_token_encrypted)
        if account.refresh_token_encrypted
        else None
    )
    return access, refresh


def store_tokens(
    settings: Settings,
    account: Account,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
) -> None:
    """Save refreshed tokens; an empty refresh token never overwrites a good one."""
    account.access_token_encrypted = encrypt_token(settings.secret_key, access_token)
    if refresh_token:
        account.refresh_token_encrypted = encrypt_token(settings.secret_key, refresh_token)
    account.token_expires_at = expires_at
    if account.status == AccountStatus.NEEDS_RECONNECT:
        account.status = AccountStatus.ACTIVE
        account.status_reason = None


def rotate_account_tokens(session: Session, settings: Settings) -> int:
    """Re-encrypt every stored token under the newest secret; returns how many accounts.

    Rows are locked while they change, so a token refreshed meanwhile is not overwritten
    with its older value.
    """
    count = 0
    for account in session.scalars(select(Account).order_by(Account.id).with_for_update()):
        account.access_token_encrypted = reencrypt_token(
            settings.secret_key, account.access_token_encrypted
        )
        if account.refresh_token_encrypted:
            account.refresh_token_encrypted = reencrypt_token(
                settings.secret_key, account.refresh_token_encrypted
            )
        count += 1
    session.flush()
    return count


def organisation_accounts(session: Session, organisation_id: int) -> list[Account]:
    return list(
        session.scalars(
            select(Account).where(Account.organisation_id == organisation_id).order_by(Account.id)
        )
    )


def account_health(account: Account, now: datetime) -> dict[str, Any]:
    """Whether the account can post, and if not the reason a person can act on."""
    expired = account.token_expires_at is not None and account.token_expires_at <= now
    stranded = expired and account.refresh_token_encrypted is None
    needs_reconnect = account.status == AccountStatus.NEEDS_RECONNECT or (
        account.status == AccountStatus.ACTIVE and stranded
    )
    reason: str | None = None
    if account.status == AccountStatus.NEEDS_RECONNECT:
        reason = account.status_reason or "The account must be reconnected before it can post."
    elif account.status != AccountStatus.ACTIVE:
        reason = account.status_reason or f"The account is {account.status}."
    elif stranded:
        reason = "The access token expired and there is no refresh token; reconnect the account."
    return {
        "can_post": account.status == AccountStatus.ACTIVE and not needs_reconnect,
        "needs_reconnect": needs_reconnect,
        "reason": reason,
        "token_expires_at": account.token_expires_at,
        "has_refresh_token": account.refresh_token_encrypted is not None,
        # Proactive refreshes that failed in a row (they are retried), and the last reason.
        "refresh_failures": account.refresh_failures or 0,
        "last_refresh_error": account.last_refresh_error,
    }

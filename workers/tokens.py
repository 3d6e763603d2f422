"""Token refresh, shared by the publish path (once, on an auth error) and a beat task
that refreshes tokens before they expire.

Some platforms' refresh tokens are single-use (X) or rotate (TikTok): two workers
refreshing the same account at once would burn the token and lock the account out. The
account row is locked for the exchange, and a worker that finds the token already
changed simply uses the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

from sqlalchemy import or_, select, update

from app import metrics
from app.config import Settings
from app.db import Database, utcnow
from app.models import Account, AccountStatus
from app.services.accounts import account_tokens, store_tokens
from app.services.webhooks import record_account_disconnected
from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    AuthRevokedError,
    PlatformError,
)

log = logging.getLogger("crier.tokens")

REFRESH_AHEAD = timedelta(hours=24)
REFRESH_BATCH = 100


def account_credentials(settings: Settings, account: Account) -> AccountCredentials:
    """What an adapter gets of an account: its ids and its tokens, decrypted."""
    access, refresh = account_tokens(settings, account)
    return AccountCredentials(
        account_id=account.id,
        platform=account.platform,
        name=account.name,
        external_id=account.external_id,
        access_token=access,
        refresh_token=refresh,
        token_expires_at=account.token_expires_at,
        settings=dict(account.settings or {}),
    )


def refresh_account(
    db: Database, settings: Settings, adapter: Adapter, credentials: AccountCredentials
) -> AccountCredentials:
    """Exchange the account's refresh token, under a row lock; returns fresh credentials.

    Raises AuthRevokedError when the platform refuses, and marks the account then.
    """
    with db.session() as session:
        account = session.scalar(
            select(Account).where(Account.id == credentials.account_id).with_for_update()
        )
        if account is None:
            raise AuthRevokedError("the account no longer exists", code="account_missing")
        access, refresh = account_tokens(settings, account)
        if access != credentials.access_token or refresh != credentials.refresh_token:
            # Another worker refreshed while we waited for the lock (Bluesky keeps its app
            # password as the access token: only the stored session changes).
            session.rollback()
            return replace(
                credentials,
                access_token=access,
                refresh_token=refresh,
                token_expires_at=account.token_expires_at,
            )
        current = replace(credentials, access_token=access, refresh_token=refresh)
        try:
            tokens = adapter.refresh_token(current)
        except AuthRevokedError as error:
            previous_status = account.status
            metrics.observe_token_refresh(account.platform, "revoked")
            account.status = AccountStatus.NEEDS_RECONNECT
            account.status_reason = f"auth_revoked: {error.message}"
            record_account_disconnected(session, account, previous_status)
            session.commit()
            raise
        except Exception:
            metrics.observe_token_refresh(account.platform, "error")
            raise
        store_tokens(
            settings, account, tokens.access_token, tokens.refresh_token, tokens.expires_at
        )
        account.refresh_failures = 0
        account.last_refresh_error = None
        session.commit()
        log.info("token refreshed account_id=%s platform=%s", account.id, account.platform)
        metrics.observe_token_refresh(account.platform, "ok")
        return replace(
            current,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token or refresh,
            token_expires_at=tokens.expires_at,
        )


def refresh_expiring_tokens(
    db: Database, settings: Settings, adapter_for: Callable[[str], Adapter]
) -> dict[str, int]:
    """Refresh every active account whose token expires within REFRESH_AHEAD."""
    horizon = utcnow() + REFRESH_AHEAD
    with db.session() as session:
        due = session.scalars(
            select(Account)
            .where(
                Account.status == AccountStatus.ACTIVE,
                Account.token_expires_at.is_not(None),
                Account.token_expires_at <= horizon,
                or_(
                    Account.refresh_token_encrypted.is_not(None),
                    Account.platform.in_(("instagram", "threads")),
                ),
            )
            .order_by(Account.token_expires_at)
            .limit(REFRESH_BATCH)
        ).all()
        accounts = [(a.id, a.platform) for a in due]
        stored = {a.id: a for a in due}
    report = {"refreshed": 0, "revoked": 0, "failed": 0}
    # Each account on its own: whatever goes wrong with one (a malformed answer, a token
    # that no longer decrypts) is logged, counted on its health block, and the rest go on.
    for account_id, platform in accounts:
        try:
            adapter = adapter_for(platform)
            credentials = account_credentials(settings, stored[account_id])
            if not adapter.can_refresh(credentials):
                continue
            refresh_account(db, settings, adapter, credentials)
            report["refreshed"] += 1
        except AuthRevokedError:
            report["revoked"] += 1
        except Exception as error:
            # Try again on the next run; the token is still valid for a while.
            reason = (
                f"{error.code}: {error.message}"
                if isinstance(error, PlatformError)
                else f"{type(error).__name__} while refreshing the token"
            )
            log.warning("token refresh failed account_id=%s reason=%s", account_id, reason)
            _count_refresh_failure(db, account_id, reason)
            report["failed"] += 1
    return report


def _count_refresh_failure(db: Database, account_id: int, reason: str) -> None:
    try:
        with db.session() as session:
            session.execute(
                update(Account)
                .where(Account.id == account_id)
                .values(refresh_failures=Account.refresh_failures + 1, last_refresh_error=reason)
            )
            session.commit()
    except Exception:
        log.exception("could not record a refresh failure account_id=%s", account_id)

"""Social accounts: connecting them, reading their tokens, and their health."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from app.access import Scope
from app.config import Settings
from app.credentials import address_settings, credential_problem, normalise_external_id
from app.models import (
    Account,
    AccountStatus,
    Organisation,
    Platform,
    Post,
    PostTarget,
    TargetStatus,
    WebhookEventType,
)
from app.oauth import OAuthError, client_app, flow_classes, get_flow, oauth_client
from app.security import decrypt_token, encrypt_token
from app.services import instance_apps
from app.services.keys import find_api_key
from app.services.posts import lock_posts, refresh_post_status
from app.services.webhooks import record_account_event


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
    profile_id: int | None = None,
    token_expires_at: datetime | None = None,
    from_platform: bool = False,
) -> Account:
    """Add an account. `from_platform`: the credential came from the platform itself (a
    connect flow's token), so the forms checked on a hand-entered one do not apply (a
    WordPress.com blog's Bearer token is not `user:application-password`)."""
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
    external_id = normalise_external_id(platform, external_id)
    problem = None if from_platform else credential_problem(platform, access_token, external_id)
    if problem is not None:
        option = "--access-token" if problem[0] == "access_token" else "--external-id"
        raise AccountError(f"{option}: {problem[1]}")
    implied = address_settings(platform, external_id)
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
        settings=implied,
        profile_id=profile_id,
        token_expires_at=token_expires_at,
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


# ------------------------------------------------------------------ removal and profiles

ACCOUNT_REMOVED_CODE = "account_disconnected"


def cancel_account_targets(session: Session, account: Account, message: str) -> list[PostTarget]:
    """Cancel what the account still has to publish, each with a clear error.

    Targets being published right now (or whose irreversible request may have left) are
    left to settle: they are not ours to cancel behind the platform's back.
    """
    open_targets = (
        PostTarget.account_id == account.id,
        PostTarget.status.in_((TargetStatus.DRAFT, TargetStatus.SCHEDULED, TargetStatus.QUEUED)),
        PostTarget.irreversible_started_at.is_(None),
    )
    # The posts first: another account's outcome on one of them waits for this commit.
    posts = lock_posts(session, select(PostTarget.post_id).where(*open_targets))
    targets = session.scalars(
        select(PostTarget)
        .where(*open_targets, PostTarget.post_id.in_(list(posts)))
        .order_by(PostTarget.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    changed: dict[Any, Post] = {}
    for target in targets:
        target.status = TargetStatus.CANCELLED
        target.dispatch_token = None
        target.prepare_token = None
        target.error_code = ACCOUNT_REMOVED_CODE
        target.error_message = message
        changed[target.post_id] = posts[target.post_id]
    for post in changed.values():
        refresh_post_status(post)
    session.flush()
    return list(targets)


def remove_account(session: Session, account: Account, reason: str) -> None:
    """Forget the account's tokens and hide it. An account with history keeps its row
    (post targets point to it) with the status `disconnected`; one without is deleted."""
    cancel_account_targets(session, account, reason)
    record_account_event(session, account, WebhookEventType.ACCOUNT_DISCONNECTED, reason="removed")
    has_history = session.scalar(
        select(PostTarget.id).where(PostTarget.account_id == account.id).limit(1)
    )
    if has_history is None:
        session.delete(account)
    else:
        account.status = AccountStatus.DISCONNECTED
        account.status_reason = reason
        account.access_token_encrypted = ""
        account.refresh_token_encrypted = None
        account.token_expires_at = None
    session.flush()


def visible_accounts(scope: Scope) -> Any:
    """Accounts a caller lists: removed ones are kept only for their posts' history."""
    return scope.select(Account).where(Account.status != AccountStatus.DISCONNECTED)


def reconnect_account(
    session: Session,
    settings: Settings,
    account: Account,
    *,
    access_token: str,
    refresh_token: str | None,
    expires_at: datetime | None,
    name: str | None = None,
    profile_id: int | None = None,
) -> None:
    """New tokens for a known account: same id, same scheduled posts and history."""
    account.access_token_encrypted = encrypt_token(settings.secret_key, access_token)
    account.refresh_token_encrypted = (
        encrypt_token(settings.secret_key, refresh_token) if refresh_token else None
    )
    account.token_expires_at = expires_at
    account.status = AccountStatus.ACTIVE
    account.status_reason = None
    account.refresh_failures = 0
    account.last_refresh_error = None
    if name:
        account.name = name
    account.profile_id = profile_id
    session.flush()


def revoke_at_platform(settings: Settings, account: Account) -> tuple[bool | None, str | None]:
    """(revoked, error): True when the platform revoked the token, None where it has no
    revoke call (the token is forgotten), False with the reason when the call failed."""
    flow_class = flow_classes().get(account.platform)
    if flow_class is None or not flow_class.has_revoke or not account.access_token_encrypted:
        return None, None
    access, _refresh = account_tokens(settings, account)
    client = client_app(settings, account.platform, "")
    instance = (account.settings or {}).get("instance")
    session = object_session(account)
    if flow_class.per_instance and instance and session is not None:
        # The app Crier registered on the account's instance (any of its callbacks).
        client = instance_apps.any_app(session, settings, account.platform, str(instance))
    with oauth_client(settings) as http:
        flow = get_flow(account.platform, http, settings.platform_base_url, settings=settings)
        flow.instance = instance
        try:
            revoked = flow.revoke(client, access)
        except OAuthError as exc:
            return False, exc.message
    # False: nothing to revoke for this credential (a Discord bot token), as with no call.
    return (True if revoked else None), None

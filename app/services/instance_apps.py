"""Crier's app on each server of a federated platform (Mastodon instances): registered
at the first connect from that server, kept (secret encrypted) for every later one."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import utcnow
from app.models import InstanceApp
from app.oauth import ClientApp, OAuthFlow
from app.security import decrypt_token, encrypt_token


def find_app(
    session: Session, settings: Settings, platform: str, instance: str, redirect_uri: str
) -> ClientApp | None:
    row = session.scalar(
        select(InstanceApp).where(
            InstanceApp.platform == platform,
            InstanceApp.instance == instance,
            InstanceApp.redirect_uri == redirect_uri,
        )
    )
    if row is None:
        return None
    secret = decrypt_token(settings.secret_key, row.client_secret_encrypted)
    return ClientApp(row.client_id, secret, redirect_uri)


def app_for(
    session: Session, settings: Settings, flow: OAuthFlow, instance: str, redirect_uri: str
) -> ClientApp:
    """The app on `instance`, registered there now if Crier has none yet."""
    found = find_app(session, settings, flow.platform, instance, redirect_uri)
    if found is not None:
        return found
    flow.instance = instance
    client, limits = flow.register_app(redirect_uri)
    session.add(
        InstanceApp(
            platform=flow.platform,
            instance=instance,
            redirect_uri=redirect_uri,
            scopes=" ".join(flow.scopes),
            client_id=client.client_id,
            client_secret_encrypted=encrypt_token(settings.secret_key, client.client_secret or ""),
            limits=limits or None,
            limits_read_at=utcnow() if limits else None,
        )
    )
    session.flush()
    return client


def any_app(session: Session, settings: Settings, platform: str, instance: str) -> ClientApp | None:
    """Crier's app on the instance, whichever callback it was registered with (revoking
    a token needs the app that holds it)."""
    row = session.scalar(
        select(InstanceApp)
        .where(InstanceApp.platform == platform, InstanceApp.instance == instance)
        .order_by(InstanceApp.id)
        .limit(1)
    )
    if row is None:
        return None
    secret = decrypt_token(settings.secret_key, row.client_secret_encrypted)
    return ClientApp(row.client_id, secret, row.redirect_uri)

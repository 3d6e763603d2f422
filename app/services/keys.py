"""Organisations and their API keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.key_scopes import scopes_for_new_key
from app.models import ApiKey, Organisation
from app.security import API_KEY_PREFIX, display_prefix, generate_api_key, hash_api_key


def get_or_create_organisation(session: Session, name: str) -> Organisation:
    organisation = session.scalar(select(Organisation).where(Organisation.name == name))
    if organisation is None:
        organisation = Organisation(name=name)
        session.add(organisation)
        session.flush()
    return organisation


def create_api_key(
    session: Session,
    name: str,
    organisation_name: str | None = None,
    *,
    organisation: Organisation | None = None,
    scopes: list[str] | None = None,
    profile_id: int | None = None,
    key_prefix: str = API_KEY_PREFIX,
) -> tuple[str, ApiKey]:
    """Returns the plain key (shown once) and its stored row, which holds only a hash.
    Without scopes the key is its organisation's admin key (what the CLI makes), or,
    with a profile, a posts:write + media:write key: a profile key is never admin
    (app.key_scopes.scopes_for_new_key raises ValidationError if asked)."""
    if organisation is None:
        assert organisation_name is not None
        organisation = get_or_create_organisation(session, organisation_name)
    plain = generate_api_key(key_prefix)
    api_key = ApiKey(
        organisation=organisation,
        name=name,
        key_hash=hash_api_key(plain),
        prefix=display_prefix(plain, key_prefix),
        scopes=scopes_for_new_key(list(scopes) if scopes else None, profile_id),
        profile_id=profile_id,
    )
    session.add(api_key)
    session.flush()
    return plain, api_key


def find_api_key(session: Session, plain: str) -> ApiKey | None:
    return session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_api_key(plain), ApiKey.revoked_at.is_(None))
    )


def list_api_keys(session: Session, organisation_name: str | None = None) -> list[ApiKey]:
    query = select(ApiKey).join(Organisation).order_by(ApiKey.id)
    if organisation_name:
        query = query.where(Organisation.name == organisation_name)
    return list(session.scalars(query))


def revoke_api_key(session: Session, key_id: int) -> ApiKey | None:
    """Keep the row (its prefix explains old log lines); only mark it revoked."""
    api_key = session.get(ApiKey, key_id)
    if api_key is not None and api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        session.flush()
    return api_key

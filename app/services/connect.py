"""Connect links: a URL on Crier that walks an end client through a platform's consent,
then stores the accounts granted. The `state` sent to the platform is signed, expires
with the link, and is good for one callback only (its nonce is consumed atomically)."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.config import Settings
from app.db import utcnow
from app.models import Account, AccountStatus, ConnectLink, Organisation, WebhookEventType
from app.oauth import ConnectedIdentity, OAuthError, pkce_pair
from app.security import decrypt_token, encrypt_token, signing_key
from app.services import audit
from app.services.accounts import add_account, reconnect_account
from app.services.webhooks import record_account_event

LINK_TTL = timedelta(hours=1)
STATE_SALT = "crier-oauth-state"
CHOICE_SALT = "crier-connect-choice"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_key(settings.secret_key, salt), salt=salt)


def create_link(
    session: Session,
    *,
    organisation_id: int,
    profile_id: int | None,
    platform: str,
    redirect_url: str,
    client_state: str | None,
    account_id: int | None,
    login: str | None = None,
) -> tuple[ConnectLink, str]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    link = ConnectLink(
        id=uuid.uuid4(),
        organisation_id=organisation_id,
        profile_id=profile_id,
        account_id=account_id,
        platform=platform,
        login=login,
        redirect_url=redirect_url,
        client_state=client_state,
        token_hash=token_hash(token),
        expires_at=now + LINK_TTL,
        created_at=now,
    )
    session.add(link)
    session.flush()
    return link, token


def find_link(session: Session, token: str) -> ConnectLink | None:
    return session.scalar(select(ConnectLink).where(ConnectLink.token_hash == token_hash(token)))


@dataclass(frozen=True)
class Started:
    """One opening of a link: the signed state for the platform, the PKCE challenge, and
    the nonce the opening browser keeps in a cookie (the state carries only its hash)."""

    state: str
    challenge: str | None
    browser_nonce: str


def browser_cookie(link: ConnectLink) -> str:
    """The cookie holding the nonce of the browser that opened this link."""
    return f"crier_connect_{link.id.hex}"


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def start(settings: Settings, link: ConnectLink, pkce: bool) -> Started:
    """A fresh signed state (and PKCE verifier) for this opening of the link; opening it
    again supersedes the previous state. The state names the opening browser by the hash
    of a nonce that only that browser holds, so a consent finished anywhere else (a
    victim sent the authorize URL) cannot connect its accounts to the link."""
    link.state_nonce = secrets.token_urlsafe(16)
    link.started_at = utcnow()
    challenge = None
    if pkce:
        verifier, challenge = pkce_pair()
        link.pkce_verifier_encrypted = encrypt_token(settings.secret_key, verifier)
    browser_nonce = secrets.token_urlsafe(32)
    state = _serializer(settings, STATE_SALT).dumps(
        {"l": str(link.id), "n": link.state_nonce, "b": _nonce_hash(browser_nonce)}
    )
    return Started(state, challenge, browser_nonce)


@dataclass
class StateCheck:
    link: ConnectLink | None
    error: str | None  # state_invalid | link_expired | state_replayed | browser_mismatch


def check_state(
    session: Session,
    settings: Settings,
    state: str,
    platform: str,
    cookies: Mapping[str, str] | None = None,
) -> StateCheck:
    """Verify the signature and age and that this browser opened the link (its cookie's
    nonce matches the state's hash), then consume the nonce: a second callback with the
    same state finds it gone (`state_replayed`). A browser mismatch consumes nothing, so
    the client can still open the link again in the right browser."""
    serializer = _serializer(settings, STATE_SALT)
    expired = False
    try:
        payload = serializer.loads(state, max_age=int(LINK_TTL.total_seconds()))
    except SignatureExpired as exc:
        expired = True
        try:
            payload = serializer.load_payload(exc.payload) if exc.payload else None
        except BadSignature:
            payload = None
    except BadSignature:
        return StateCheck(None, "state_invalid")
    if not isinstance(payload, dict) or "l" not in payload:
        return StateCheck(None, "state_invalid")
    try:
        link = session.get(ConnectLink, uuid.UUID(str(payload["l"])))
    except ValueError:
        return StateCheck(None, "state_invalid")
    if link is None or link.platform != platform:
        return StateCheck(None, "state_invalid")
    if expired or link.expires_at <= utcnow():
        return StateCheck(link, "link_expired")
    if link.consumed_at is not None or link.state_nonce != payload.get("n"):
        return StateCheck(link, "state_replayed")
    presented = (cookies or {}).get(browser_cookie(link), "")
    expected = payload.get("b")
    if not isinstance(expected, str) or not hmac.compare_digest(_nonce_hash(presented), expected):
        return StateCheck(link, "browser_mismatch")
    consumed = session.execute(
        update(ConnectLink)
        .where(
            ConnectLink.id == link.id,
            ConnectLink.consumed_at.is_(None),
            ConnectLink.state_nonce == payload.get("n"),
        )
        .values(consumed_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(link)
    if not consumed:
        return StateCheck(link, "state_replayed")
    return StateCheck(link, None)


def consume(session: Session, link: ConnectLink) -> bool:
    """Spend a link connected without a consent page (a credential entered on Crier's
    page): True for the one request that spends it, False if it was already spent."""
    spent = session.execute(
        update(ConnectLink)
        .where(ConnectLink.id == link.id, ConnectLink.consumed_at.is_(None))
        .values(consumed_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    session.refresh(link)
    return bool(spent)


def verifier_of(settings: Settings, link: ConnectLink) -> str | None:
    if not link.pkce_verifier_encrypted:
        return None
    return decrypt_token(settings.secret_key, link.pkce_verifier_encrypted)


# ------------------------------------------------------------------------ page selection


def _identity_to_json(identity: ConnectedIdentity) -> dict[str, Any]:
    return {
        "external_id": identity.external_id,
        "name": identity.name,
        "access_token": identity.access_token,
        "refresh_token": identity.refresh_token,
        "expires_at": identity.expires_at.isoformat() if identity.expires_at else None,
        "kind": identity.kind,
        "settings": identity.settings,
    }


def _identity_from_json(data: dict[str, Any]) -> ConnectedIdentity:
    return ConnectedIdentity(
        external_id=data["external_id"],
        name=data["name"],
        access_token=data["access_token"],
        refresh_token=data.get("refresh_token"),
        expires_at=datetime.fromisoformat(data["expires_at"]) if data.get("expires_at") else None,
        kind=data.get("kind", "account"),
        settings=data.get("settings") or {},
    )


def hold_choices(settings: Settings, link: ConnectLink, identities: list[ConnectedIdentity]) -> str:
    """Keep the granted accounts (tokens encrypted) until the user picks; returns the
    signed token of the selection page."""
    link.pending_choices_encrypted = encrypt_token(
        settings.secret_key, json.dumps([_identity_to_json(i) for i in identities])
    )
    link.result = "choosing"
    return _serializer(settings, CHOICE_SALT).dumps(str(link.id))


def pending_choices(
    session: Session, settings: Settings, choice_token: str
) -> tuple[ConnectLink | None, list[ConnectedIdentity], str | None]:
    """(link, choices, error) for a selection page token."""
    try:
        link_id = _serializer(settings, CHOICE_SALT).loads(
            choice_token, max_age=int(LINK_TTL.total_seconds())
        )
    except SignatureExpired:
        return None, [], "link_expired"
    except BadSignature:
        return None, [], "state_invalid"
    link = session.get(ConnectLink, uuid.UUID(link_id))
    if link is None:
        return None, [], "state_invalid"
    if not link.pending_choices_encrypted:
        return link, [], "state_replayed"
    raw = json.loads(decrypt_token(settings.secret_key, link.pending_choices_encrypted))
    return link, [_identity_from_json(item) for item in raw], None


def take_choices(session: Session, link: ConnectLink) -> bool:
    """Claim the pending choices once (a second submit finds them gone)."""
    taken = session.execute(
        update(ConnectLink)
        .where(ConnectLink.id == link.id, ConnectLink.pending_choices_encrypted.is_not(None))
        .values(pending_choices_encrypted=None, result="connected")
        .execution_options(synchronize_session=False)
    ).rowcount
    return bool(taken)


# ---------------------------------------------------------------------------- accounts


def save_identities(
    session: Session, settings: Settings, link: ConnectLink, identities: list[ConnectedIdentity]
) -> list[Account]:
    """Store the granted accounts: a known one (same platform and external id, or the
    account being reconnected) keeps its id, its scheduled posts and its history."""
    if link.account_id is not None:
        target = session.get(Account, link.account_id)
        if target is None:
            raise OAuthError("account_not_found", "The account to reconnect no longer exists.")
        matching = [i for i in identities if i.external_id == target.external_id]
        if target.external_id and not matching:
            raise OAuthError(
                "account_mismatch",
                "The platform account that consented is not the one being reconnected.",
            )
        identities = matching or identities[:1]
    saved: list[Account] = []
    for identity in identities:
        existing = session.scalar(
            select(Account).where(
                Account.organisation_id == link.organisation_id,
                Account.platform == link.platform,
                Account.external_id == identity.external_id,
            )
        )
        if link.account_id is not None:
            existing = session.get(Account, link.account_id)
        if (
            existing is not None
            and link.profile_id is not None
            and existing.profile_id != link.profile_id
        ):
            # A profile's link never takes an account out of another profile (nor out of
            # the organisation's own): POST /accounts answers 409 account_exists for the
            # same case. Nothing of this consent is saved; the account stays where it is.
            raise OAuthError(
                "account_exists",
                "This platform account is already connected outside this profile.",
            )
        reconnected = existing is not None
        if existing is not None:
            reconnect_account(
                session,
                settings,
                existing,
                access_token=identity.access_token,
                refresh_token=identity.refresh_token,
                expires_at=identity.expires_at,
                name=identity.name,
                profile_id=link.profile_id if link.profile_id is not None else existing.profile_id,
            )
            existing.external_id = identity.external_id
            # The flow's settings replace their earlier values (an Instagram account that
            # comes back through the other login publishes on that login's host).
            merged = {**(existing.settings or {}), **identity.settings, "kind": identity.kind}
            existing.settings = {k: v for k, v in merged.items() if v is not None}
            account = existing
        else:
            account = add_account(
                session,
                settings,
                platform=link.platform,
                name=identity.name,
                access_token=identity.access_token,
                refresh_token=identity.refresh_token,
                external_id=identity.external_id,
                organisation=session.get(Organisation, link.organisation_id),
                profile_id=link.profile_id,
                token_expires_at=identity.expires_at,
                from_platform=True,
            )
            initial = {"kind": identity.kind, **identity.settings}
            account.settings = {k: v for k, v in initial.items() if v is not None}
        assert account.status == AccountStatus.ACTIVE
        record_account_event(
            session, account, WebhookEventType.ACCOUNT_CONNECTED, connect_link=str(link.id)
        )
        session.flush()
        audit.record(
            session,
            "account.reconnected" if reconnected else "account.connected",
            organisation_id=link.organisation_id,
            actor=f"connect_link:{link.id}",
            subject_type="account",
            subject_id=account.id,
            details={"platform": account.platform, "via": "connect_link"},
        )
        saved.append(account)
    link.result = "connected"
    session.flush()
    return saved


def result_url(link: ConnectLink, **params: Any) -> str:
    """redirect_url with the outcome added to its query (the caller's `state` echoed)."""
    parts = urlsplit(link.redirect_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    values = {k: v for k, v in params.items() if v is not None}
    values["platform"] = link.platform
    if link.profile_id is not None:
        values["profile_id"] = link.profile_id
    if link.client_state is not None:
        values["state"] = link.client_state
    query += [(k, str(v)) for k, v in values.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))

"""The one small interface every platform adapter implements.

An adapter turns a post target into the platform's real request sequence and
classifies every answer into an outcome the pipeline acts on. It never touches the
database: it reports through `PublishContext` and raises `PlatformError`s.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import httpx


class Outcome(StrEnum):
    OK = "ok"
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXHAUSTED = "quota_exhausted"
    PERMANENT = "permanent"
    DUPLICATE = "duplicate"
    AUTH_EXPIRED = "auth_expired"
    AUTH_REVOKED = "auth_revoked"


class PlatformError(Exception):
    """A classified failure. `code` is stable and machine-readable (e.g. `x_duplicate`)."""

    outcome: Outcome = Outcome.PERMANENT

    def __init__(
        self,
        message: str,
        *,
        code: str,
        http_status: int | None = None,
        retry_after: float | None = None,
        retry_at: datetime | None = None,
        scope: str = "account",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        # Seconds to wait (rate limits) or the instant a quota frees up.
        self.retry_after = retry_after
        self.retry_at = retry_at
        # "account" when the limit is the account's, "app" when it binds every account.
        self.scope = scope
        self.details = details or {}


class TransientError(PlatformError):
    outcome = Outcome.TRANSIENT


class RateLimitedError(PlatformError):
    outcome = Outcome.RATE_LIMITED


class QuotaExhaustedError(PlatformError):
    outcome = Outcome.QUOTA_EXHAUSTED


class PermanentError(PlatformError):
    outcome = Outcome.PERMANENT


class DuplicateError(PlatformError):
    outcome = Outcome.DUPLICATE


class AuthExpiredError(PlatformError):
    outcome = Outcome.AUTH_EXPIRED


class AuthRevokedError(PlatformError):
    outcome = Outcome.AUTH_REVOKED


@dataclass(frozen=True)
class AccountCredentials:
    account_id: int
    platform: str
    name: str
    external_id: str | None
    access_token: str
    refresh_token: str | None = None
    token_expires_at: datetime | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaItem:
    id: str
    kind: str  # "image" | "video"
    mime_type: str
    size_bytes: int
    path: str  # local file holding the bytes, for platforms that take uploads
    public_url: str  # signed, expiring link, for platforms that pull
    filename: str = ""
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None

    def read_bytes(self) -> bytes:
        with open(self.path, "rb") as handle:
            return handle.read()


@dataclass(frozen=True)
class PublishRequest:
    target_id: int
    platform: str
    account: AccountCredentials
    text: str  # the platform's content override already applied
    settings: dict[str, Any]  # validated platform settings (contentType folded in)
    media: list[MediaItem]
    handle: dict[str, Any] | None = None  # saved by an earlier attempt, to resume
    # When an earlier delivery began the irreversible call: reconcile looks for posts made
    # from then on, so an older post with the same text is never adopted.
    irreversible_started_at: datetime | None = None


@dataclass(frozen=True)
class PublishResult:
    platform_post_id: str
    url: str | None
    details: dict[str, Any] = field(default_factory=dict)


class ReconcileStatus(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReconcileResult:
    status: ReconcileStatus
    result: PublishResult | None = None
    reason: str = ""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    # None keeps the stored refresh token: an empty answer never overwrites a good one.
    refresh_token: str | None = None
    expires_at: datetime | None = None


def token_set_from(body: dict[str, Any]) -> TokenSet:
    """An OAuth 2 token response (RFC 6749 5.1); an empty refresh token becomes None."""
    expires_in = body.get("expires_in")
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token") or None,
        expires_at=datetime.now(UTC) + timedelta(seconds=int(expires_in)) if expires_in else None,
    )


class PublishContext(Protocol):
    """What the pipeline gives an adapter during one publish."""

    def save_handle(self, handle: dict[str, Any]) -> None:
        """Persist (and commit) an intermediate platform handle before going on."""

    def mark_irreversible(self) -> None:
        """Record, committed, that the request that makes the post public starts now."""


class NullContext:
    """A context that records in memory: for tools and tests that run an adapter alone."""

    def __init__(self) -> None:
        self.handle: dict[str, Any] | None = None
        self.irreversible = False

    def save_handle(self, handle: dict[str, Any]) -> None:
        self.handle = dict(handle)

    def mark_irreversible(self) -> None:
        self.irreversible = True


def client_credentials(platform: str) -> tuple[str | None, str | None]:
    """OAuth client id and secret for refresh flows: CRIER_<PLATFORM>_CLIENT_ID/SECRET."""
    prefix = f"CRIER_{platform.upper()}_"
    return os.environ.get(prefix + "CLIENT_ID"), os.environ.get(prefix + "CLIENT_SECRET")


class Adapter(ABC):
    """One platform's publishing API. Subclasses live one per module in this package."""

    platform: str
    # The platform's real hosts, by role, e.g. {"api": "api.x.com"}.
    hosts: dict[str, str]
    supports_refresh: bool = False
    # Instagram and Threads exchange the long-lived access token itself: no refresh token.
    refreshes_access_token: bool = False

    def __init__(self, http: httpx.Client, base_url: str | None = None) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/") if base_url else None

    def url(self, path: str, host: str = "api") -> str:
        """The platform's URL, or `{CRIER_PLATFORM_BASE_URL}/{platform}{path}` when set."""
        if self.base_url:
            return f"{self.base_url}/{self.platform}{path}"
        return f"https://{self.hosts[host]}{path}"

    @abstractmethod
    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        """Publish, or raise a PlatformError. Resume from `request.handle` when given."""

    @abstractmethod
    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        """After a crash with the outcome unknown: is the post on the platform?"""

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """Exchange the refresh token; raises AuthRevokedError when it is refused."""
        raise AuthRevokedError(
            f"{self.platform} has no token refresh; reconnect the account",
            code="auth_reconnect_required",
        )

"""How an adapter reports a failure: each error class carries the outcome the pipeline
acts on, and a stable machine-readable code."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any


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


class MetricsPermissionError(PermanentError):
    """The account's grant does not cover reading figures (a missing insights scope or
    permission). Publishing is unaffected: the account is not marked for reconnection."""

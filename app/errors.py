"""The errors Crier's domain raises: services, access checks, the rules check and
schedule parsing raise these, and the API alone turns them into the response envelope
(app.api.envelope). Each carries what a caller must be told as plain data: a message, a
stable code, the HTTP status that fits it, per-field details and any response headers.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A mistake or refusal the caller should see, with its code and status."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details
        self.headers = headers or {}


class ValidationError(DomainError):
    status = 400
    code = "validation_error"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"

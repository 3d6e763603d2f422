"""The API contract's response envelope: `{"data", "error", "meta"}` on every response."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def format_timestamp(moment: datetime) -> str:
    """`2026-04-10T12:00:00.000Z`, the API contract's format."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class ApiError(Exception):
    """An error the caller should see, with the API contract's code and an HTTP status."""

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


class ValidationError(ApiError):
    status = 400
    code = "validation_error"


class NotFound(ApiError):
    status = 404
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class Unauthorized(ApiError):
    status = 401
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("Invalid API key. Check that the key is correct and has not been deleted.")


def request_id() -> str:
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex[:16]
    return g.request_id


def envelope(
    data: Any = None,
    error: dict[str, Any] | None = None,
    status: int = 200,
    meta: dict[str, Any] | None = None,
) -> Response:
    body = {
        "data": data,
        "error": error,
        "meta": {
            "request_id": request_id(),
            "timestamp": format_timestamp(datetime.now(UTC)),
            **(meta or {}),
        },
    }
    response = jsonify(body)
    response.status_code = status
    return response


def error_response(error: ApiError) -> Response:
    payload: dict[str, Any] = {"message": error.message, "code": error.code}
    if error.details:
        payload["details"] = error.details
    response = envelope(None, payload, error.status)
    response.headers.update(error.headers)
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}

_HTTP_MESSAGES = {
    404: "The requested resource does not exist.",
    405: "This method is not allowed on this endpoint.",
    413: "The request body is too large.",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = _HTTP_MESSAGES.get(status) or (error.description or error.name)
        api_error = ApiError(message, code=_HTTP_CODES.get(status, "http_error"), status=status)
        response = error_response(api_error)
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(
            ApiError(
                "An internal error occurred. It has been logged; quote the request_id.",
                code="internal_error",
                status=500,
            )
        )

    @app.after_request
    def _request_id_header(response: Response) -> Response:
        if request.method == "OPTIONS" and response.status_code == 200 and not response.data:
            # Flask's automatic OPTIONS answer is an empty body; callers expect the envelope.
            answer = envelope(None)
            for name, value in response.headers.items():
                if name.lower() not in ("content-type", "content-length"):
                    answer.headers[name] = value
            response = answer
        response.headers["X-Request-Id"] = request_id()
        return response

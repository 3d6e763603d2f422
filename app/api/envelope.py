"""The API contract's response envelope: `{"data", "error", "meta"}` on every response."""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

# The domain's errors, re-exported for the API modules; ApiError is their common base.
from app.errors import Conflict as Conflict
from app.errors import DomainError
from app.errors import NotFound as NotFound
from app.errors import ValidationError as ValidationError
from app.serializers import format_timestamp as format_timestamp

log = logging.getLogger(__name__)

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


ApiError = DomainError


class Unauthorized(ApiError):
    status = 401
    code = "invalid_api_key"

    def __init__(self) -> None:
        super().__init__("Invalid API key. Check that the key is correct and has not been deleted.")


def request_id() -> str:
    if "request_id" not in g:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming if _REQUEST_ID_RE.match(incoming) else os.urandom(8).hex()
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
    # The one place the domain's errors become HTTP responses.
    @app.errorhandler(DomainError)
    def _api_error(error: DomainError) -> Response:
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

"""Reading request bodies and query strings into validated data, with precise errors."""

from __future__ import annotations

import json
from typing import Any

from flask import request
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowError

from app.api.envelope import ApiError, ValidationError

MAX_JSON_BYTES = 1024 * 1024


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages → {"platform_content.x.settings.foo": [...]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key == "_schema":
                path = prefix or "body"
            elif isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema":
                flat.setdefault(path, []).extend(_as_list(value))
            else:
                for sub_path, sub_messages in flatten_errors(value, path).items():
                    flat.setdefault(sub_path, []).extend(sub_messages)
    else:
        flat[prefix or "body"] = _as_list(messages)
    return flat


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        out: list[str] = []
        for item in value:
            out.extend(_as_list(item) if isinstance(item, list | dict) else [str(item)])
        return out
    if isinstance(value, dict):
        return [m for msgs in flatten_errors(value).values() for m in msgs]
    return [str(value)]


def json_body() -> Any:
    """The parsed JSON body; 415 for another content type, 413 past 1 MiB, 400 if malformed."""
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise ApiError(
            "Content-Type must be application/json"
            + (f"; got {mimetype}." if mimetype else "; none was given."),
            code="unsupported_media_type",
            status=415,
        )
    if request.content_length is not None and request.content_length > MAX_JSON_BYTES:
        raise ApiError(
            f"The request body is too large; JSON bodies may be at most {MAX_JSON_BYTES} bytes.",
            code="payload_too_large",
            status=413,
        )
    raw = request.stream.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise ApiError(
            f"The request body is too large; JSON bodies may be at most {MAX_JSON_BYTES} bytes.",
            code="payload_too_large",
            status=413,
        )
    if not raw.strip():
        raise ValidationError("The request body is empty; send a JSON object.")
    try:
        return json.loads(raw.decode(request.charset if hasattr(request, "charset") else "utf-8"))
    except UnicodeDecodeError as exc:
        raise ValidationError("The request body is not valid UTF-8.") from exc
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from exc


def load_json(schema: Schema, body: Any, *, partial: bool = False) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError(
            "The request body must be a JSON object.", details={"body": ["Expected a JSON object."]}
        )
    try:
        return schema.load(body, partial=partial)
    except MarshmallowError as exc:
        details = flatten_errors(exc.messages)
        raise ValidationError(summarise(details), details=details) from exc


def load_query(schema: Schema) -> dict[str, Any]:
    try:
        return schema.load(request.args.to_dict())
    except MarshmallowError as exc:
        details = flatten_errors(exc.messages)
        raise ValidationError(summarise(details), details=details) from exc


def summarise(details: dict[str, list[str]]) -> str:
    parts = [f"{path}: {messages[0]}" for path, messages in details.items()]
    if len(parts) > 3:
        parts = [*parts[:3], f"and {len(parts) - 3} more"]
    return "Invalid request: " + "; ".join(parts)

"""Reading request bodies and query strings into validated data, with precise errors."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from flask import request
from marshmallow import Schema
from marshmallow import ValidationError as MarshmallowError

from app.api.envelope import ApiError, ValidationError

MAX_JSON_BYTES = 1024 * 1024
# Deeper bodies are never legitimate here and blow Python's recursion limit in json.loads.
MAX_JSON_DEPTH = 64
TOO_DEEP = (
    f"The request body nests too deeply; at most {MAX_JSON_DEPTH} levels of arrays and objects."
)
NUL_MESSAGE = "Must not contain NUL characters (\\u0000)."
SURROGATE_MESSAGE = "Must not contain unpaired UTF-16 surrogates."


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
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError("The request body is not valid UTF-8.") from exc
    if _nests_too_deeply(text):
        raise ValidationError(TOO_DEEP)
    if not _LONG_NUMBER.search(raw):
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
        else:
            # orjson refuses lone surrogates, and a NUL in a string can only be escaped:
            # without that escape there is nothing unstorable to look for.
            if b"\\u0000" not in raw:
                return body
            return _storable(body)
    return _storable(_parsed_by_the_standard_library(text))


def _storable(body: Any) -> Any:
    unstorable = unstorable_strings(body)
    if unstorable:
        raise ValidationError(summarise(unstorable), details=unstorable)
    return body


# orjson reads an integer past 64 bits as a float; such a body is read by `json`, whose
# integers have no limit, so validation reports the number as it was sent.
_LONG_NUMBER = re.compile(rb"\d{20}")


def _parsed_by_the_standard_library(text: str) -> Any:
    """What orjson refuses but JSON allows (NaN, a lone surrogate's escape) reaches
    validation as before, and a malformed body is reported by `json`'s line and column."""
    try:
        return json.loads(text)
    except RecursionError as exc:  # pragma: no cover - the depth check comes first
        raise ValidationError(TOO_DEEP) from exc
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ValidationError(f"The request body is not valid JSON: {exc.msg} at {where}.") from exc
    except ValueError as exc:
        # Python refuses to convert integers of more than 4,300 digits (CVE-2020-10735).
        raise ValidationError(
            "The request body holds a number too long to read; no field takes more than 19 digits."
        ) from exc


def _nests_too_deeply(text: str) -> bool:
    """Whether brackets outside strings nest deeper than MAX_JSON_DEPTH, counted without
    recursion; a body with fewer brackets than that cannot, and is not walked."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def unstorable_strings(body: Any) -> dict[str, list[str]]:
    """Strings PostgreSQL cannot store (NUL) or UTF-8 cannot encode (lone surrogates).

    Found here, with their path, they are a 400 instead of a driver error at INSERT time.
    """
    found: dict[str, list[str]] = {}
    stack: list[tuple[str, Any]] = [("", body)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                problem = string_problem(key)
                if problem:
                    found.setdefault(path or "body", []).append(f"Field names: {problem}")
                    continue
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            problem = string_problem(value)
            if problem:
                found[path or "body"] = [problem]
    return dict(sorted(found.items()))


def string_problem(value: str) -> str | None:
    if "\x00" in value:
        return NUL_MESSAGE
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return SURROGATE_MESSAGE
    return None


def load_json(schema: Schema, body: Any, *, partial: bool = False) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError(
            "The request body must be a JSON object.", details={"body": ["Expected a JSON object."]}
        )
    try:
        return schema.load(body, partial=partial)
    except MarshmallowError as exc:
        # marshmallow reports unknown fields in set order; sorting keeps messages stable.
        details = dict(sorted(flatten_errors(exc.messages).items()))
        raise ValidationError(summarise(details), details=details) from exc


def load_query(schema: Schema) -> dict[str, Any]:
    args = request.args.to_dict()
    unstorable = unstorable_strings(args)
    if unstorable:
        raise ValidationError(summarise(unstorable), details=unstorable)
    try:
        return schema.load(args)
    except MarshmallowError as exc:
        details = dict(sorted(flatten_errors(exc.messages).items()))
        raise ValidationError(summarise(details), details=details) from exc


def summarise(details: dict[str, list[str]]) -> str:
    parts = [f"{path}: {messages[0]}" for path, messages in details.items()]
    if len(parts) > 3:
        parts = [*parts[:3], f"and {len(parts) - 3} more"]
    return "Invalid request: " + "; ".join(parts)

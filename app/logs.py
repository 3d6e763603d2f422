"""Log output, and secrets kept out of it.

`key=value` lines by default, one JSON object per line with CRIER_LOG_FORMAT=json
(python-json-logger), for Loki or ELK. Structured fields travel in a record's `crier`
extra (`log.info(..., extra={"crier": {...}})`): the JSON output lifts them to the top
level (event, ids, platform, outcome, latency); the key=value output already has them in
its message.

A signed media path is a bearer credential for that file until it expires: gunicorn's
access log keeps the route and the file extension, never the token.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from gunicorn.glogging import Logger
from pythonjsonlogger.json import JsonFormatter

KEY_VALUE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"


class CrierJsonFormatter(JsonFormatter):
    """time, level, logger, message, then the record's `crier` fields at the top level."""

    def __init__(self) -> None:
        super().__init__(
            JSON_FIELDS,
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",  # ISO 8601 in UTC, microseconds
            reserved_attrs=[*_RESERVED, "crier"],
        )

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        fields = getattr(record, "crier", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if value is not None:
                    log_data.setdefault(key, value)
            event = log_data.get("event")
            if (
                isinstance(event, str)
                and event.startswith("publish.")
                and "outcome" not in log_data
            ):
                log_data["outcome"] = event.split(".", 1)[1]


_RESERVED = [
    "args",
    "asctime",
    "created",
    "exc_info",
    "exc_text",
    "filename",
    "funcName",
    "levelname",
    "levelno",
    "lineno",
    "module",
    "msecs",
    "message",
    "msg",
    "name",
    "pathname",
    "process",
    "processName",
    "relativeCreated",
    "stack_info",
    "taskName",
    "thread",
    "threadName",
]


def configure_logging(chosen: str) -> None:
    """Give the root logger one stream handler in the chosen format (Settings.log_format,
    once per process); a handler installed by someone else (pytest, gunicorn) only gets
    the format."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format=KEY_VALUE_FORMAT)
    if chosen == "json":
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler.formatter, CrierJsonFormatter
            ):
                handler.setFormatter(CrierJsonFormatter())


SIGNED_MEDIA_PATH = re.compile(r"(/media/public/)[^/?#\s\"]+?(\.[A-Za-z0-9]{1,5})?(?=[?#\s\"]|$)")
REDACTED = "[redacted]"


def redact_media_paths(text: str) -> str:
    return SIGNED_MEDIA_PATH.sub(lambda m: m.group(1) + REDACTED + (m.group(2) or ""), text)


class RedactingGunicornLogger(Logger):
    """gunicorn's logger with signed media paths redacted in every access-log atom."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "{raw_uri}e", "{path_info}e", "{request_uri}e"):
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = redact_media_paths(value)
        return atoms

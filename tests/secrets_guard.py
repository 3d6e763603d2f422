"""A pytest plugin over the whole suite: no platform token ever shows in a log or an error.

Every token the suite's own process encrypts (MultiFernet.encrypt: accounts added by
fixtures, the CLI, refreshed tokens) is remembered. After each test, the log records it
produced, the logs of the worker processes it started, and the error fields of the rows
it left (targets, attempts, accounts) are scanned for every token seen so far; a hit
fails that test.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from cryptography.fernet import MultiFernet

# Shorter test tokens ("t", "abc") would match by accident in ordinary text.
MIN_TOKEN_LENGTH = 8
SEEN_TOKENS: set[str] = set()
_original_encrypt = MultiFernet.encrypt


def _recording_encrypt(self: MultiFernet, msg: bytes) -> bytes:
    try:
        token = msg.decode()
    except UnicodeDecodeError:
        token = ""
    if len(token) >= MIN_TOKEN_LENGTH:
        SEEN_TOKENS.add(token)
    return _original_encrypt(self, msg)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


COLLECTOR = _Collector()


def leaked_tokens(texts: Iterable[str | None]) -> list[tuple[str, str]]:
    """(token, where) for every remembered token found in the texts."""
    hits = []
    for text in texts:
        if not text:
            continue
        for token in SEEN_TOKENS:
            if token in text:
                hits.append((token, text[:300]))
    return hits


def assert_no_tokens(texts: Iterable[str | None], where: str) -> None:
    hits = leaked_tokens(texts)
    assert not hits, f"platform tokens leaked into {where}: {hits[:3]}"


def pytest_configure(config: pytest.Config) -> None:
    MultiFernet.encrypt = _recording_encrypt  # type: ignore[method-assign]
    logging.getLogger().addHandler(COLLECTOR)


def pytest_unconfigure(config: pytest.Config) -> None:
    MultiFernet.encrypt = _original_encrypt  # type: ignore[method-assign]
    logging.getLogger().removeHandler(COLLECTOR)


@pytest.fixture(autouse=True)
def no_token_in_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    COLLECTOR.lines.clear()
    yield
    lines, COLLECTOR.lines = COLLECTOR.lines, []
    if "no_leak_scan" in request.keywords:
        return
    assert_no_tokens(lines, f"the logs of {request.node.nodeid}")


ERROR_FIELDS = (
    "SELECT error_message AS text FROM post_targets WHERE error_message IS NOT NULL "
    "UNION ALL SELECT error_message FROM publish_attempts WHERE error_message IS NOT NULL "
    "UNION ALL SELECT status_reason FROM accounts WHERE status_reason IS NOT NULL "
    "UNION ALL SELECT last_refresh_error FROM accounts WHERE last_refresh_error IS NOT NULL"
)


def scan_error_fields(app: Any) -> None:
    from sqlalchemy import text

    from app.db import get_db

    with get_db(app).engine.connect() as conn:
        rows = [row[0] for row in conn.execute(text(ERROR_FIELDS))]
    assert_no_tokens(rows, "stored error fields")

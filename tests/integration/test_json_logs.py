"""CRIER_LOG_FORMAT=json: one JSON object per line with ids, event, platform, outcome and
latency; key=value stays the default."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import pytest
from flask import Flask

from app.config import Settings
from app.logs import CrierJsonFormatter
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_delivery import all_final, create, targets
from workers.pipeline import log_event


def test_json_formatter_lifts_the_event_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CrierJsonFormatter())
    logger = logging.getLogger("crier.pipeline")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        log_event("publish.published", post_id="p-1", target_id=7, platform="x", latency_ms=12)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    record = json.loads(stream.getvalue())
    assert record["event"] == "publish.published"
    assert record["outcome"] == "published"
    assert record["target_id"] == 7 and record["post_id"] == "p-1"
    assert record["platform"] == "x" and record["latency_ms"] == 12
    assert record["level"] == "INFO" and record["logger"] == "crier.pipeline"
    assert "publish.published" in record["message"] and "time" in record


def test_log_format_is_key_value_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRIER_LOG_FORMAT", raising=False)
    assert Settings.from_env().log_format == "keyvalue"
    monkeypatch.setenv("CRIER_LOG_FORMAT", "key=value")
    assert Settings.from_env().log_format == "keyvalue"
    monkeypatch.setenv("CRIER_LOG_FORMAT", "JSON")
    assert Settings.from_env().log_format == "json"
    monkeypatch.setenv("CRIER_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="CRIER_LOG_FORMAT"):
        Settings.from_env()


def json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records


def test_worker_logs_one_json_object_per_line(
    app: Flask, stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    worker = stack.worker(extra_env={"CRIER_LOG_FORMAT": "json"})
    account_id = make_account(tenant, "x", access_token="secret-access-token-123")
    post_id = create(tenant, [account_id], "Logged as JSON")
    wait_until(lambda: all_final(app, 1), timeout=30)
    [target] = targets(app)
    published = wait_until(
        lambda: [r for r in json_lines(worker.log()) if r.get("event") == "publish.published"],
        timeout=10,
    )
    [record] = published
    assert record["post_id"] == post_id and record["target_id"] == target.id
    assert record["platform"] == "x" and record["outcome"] == "published"
    assert isinstance(record["latency_ms"], int)
    # Every log line the worker wrote through logging is JSON (Celery's banner is print).
    logged = [line for line in worker.log().splitlines() if "INFO" in line or "WARNING" in line]
    assert logged and all(line.startswith("{") for line in logged)
    assert "secret-access-token-123" not in worker.log()

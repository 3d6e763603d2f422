"""Shared assertions and request helpers for the intake API tests (real HTTP, real DB)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from flask import Flask
from sqlalchemy import text

from app.db import get_db

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def assert_envelope(body: dict[str, Any]) -> None:
    """Every response carries exactly data, error and meta (request_id, timestamp)."""
    assert set(body) == {"data", "error", "meta"}, body
    assert set(body["meta"]) >= {"request_id", "timestamp"}
    assert body["meta"]["request_id"]
    assert TIMESTAMP.match(body["meta"]["timestamp"]), body["meta"]["timestamp"]


def assert_error(
    response: httpx.Response, status: int, code: str, message: str | None = None
) -> dict[str, Any]:
    """The response is an error envelope with this status and code; returns `error`."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert_envelope(body)
    assert body["data"] is None
    assert body["error"]["code"] == code, body["error"]
    if message is not None:
        assert body["error"]["message"] == message
    return body["error"]


def ok_data(response: httpx.Response, status: int = 200) -> Any:
    """The `data` of a successful envelope, after checking status and shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert_envelope(body)
    assert body["error"] is None
    return body["data"]


def upload(api: httpx.Client, name: str, data: bytes) -> str:
    response = api.post("/media/upload", files={"file": (name, data)})
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def future(days: float = 3) -> str:
    """An instant `days` from now, in the API contract's `...000Z` format."""
    moment = datetime.now(UTC) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def sql(app: Flask, statement: str, **params: Any) -> list[dict[str, Any]]:
    """Run SQL against the test database and return the rows as dicts (committed)."""
    with get_db(app).engine.begin() as conn:
        result = conn.execute(text(statement), params)
        if not result.returns_rows:
            return []
        return [dict(row) for row in result.mappings()]


def targets_of(app: Flask, post_id: str) -> list[dict[str, Any]]:
    return sql(app, "SELECT * FROM post_targets WHERE post_id = :p ORDER BY id", p=post_id)


def count(app: Flask, table: str) -> int:
    return int(sql(app, f"SELECT count(*) AS n FROM {table}")[0]["n"])

"""The API contract's envelope on every response, request ids, and rate-limit headers.

Callers parse one shape whatever happened, so routing errors and crashes must be envelopes
too, never an HTML page.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import pytest

from app.api import accounts as accounts_api
from tests.api.helpers import assert_envelope, assert_error, future, ok_data, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes


def test_incoming_request_id_is_reused(tenant: Tenant) -> None:
    response = tenant.api.get("/posts", headers={"X-Request-Id": "req-2026.04_abc"})
    assert response.json()["meta"]["request_id"] == "req-2026.04_abc"
    assert response.headers["X-Request-Id"] == "req-2026.04_abc"
    # Errors keep it too, and so do unauthenticated ones.
    response = httpx.get(f"{tenant.api.base_url}/posts", headers={"X-Request-Id": "trace-401"})
    assert response.status_code == 401
    assert response.json()["meta"]["request_id"] == "trace-401"


@pytest.mark.parametrize("incoming", ["has space", "x" * 65, "<script>", ""])
def test_invalid_request_id_is_replaced(tenant: Tenant, incoming: str) -> None:
    response = tenant.api.get("/posts", headers={"X-Request-Id": incoming})
    request_id = response.json()["meta"]["request_id"]
    assert re.fullmatch(r"[0-9a-f]{16}", request_id)
    assert response.headers["X-Request-Id"] == request_id


def test_request_ids_differ_between_requests(tenant: Tenant) -> None:
    ids = {tenant.api.get("/accounts").json()["meta"]["request_id"] for _ in range(3)}
    assert len(ids) == 3


def test_routing_errors_are_envelopes(tenant: Tenant, live_url: str) -> None:
    for response in (
        httpx.get(f"{live_url}/no/such/path"),
        tenant.api.get("/no/such/path"),
        tenant.api.get("/posts/abc/comments"),
    ):
        assert_error(response, 404, "not_found", "The requested resource does not exist.")
    response = tenant.api.put("/posts", json={})
    assert_error(
        response, 405, "method_not_allowed", "This method is not allowed on this endpoint."
    )
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {
        "GET",
        "POST",
        "HEAD",
        "OPTIONS",
    }
    assert_error(tenant.api.delete("/accounts"), 405, "method_not_allowed")


def test_options_is_an_envelope(tenant: Tenant) -> None:
    response = tenant.api.options("/posts")
    data = ok_data(response)
    assert data is None
    assert {"GET", "POST"} <= set(response.headers["Allow"].replace(" ", "").split(","))
    assert response.headers["X-RateLimit-Limit"] == "100000"


def test_payload_too_large_is_an_envelope(tenant: Tenant) -> None:
    response = tenant.api.post(
        "/posts",
        content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


def test_unexpected_errors_are_a_500_envelope(
    tenant: Tenant, make_account: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id = make_account(tenant, "x")

    def explode(_account: Any) -> dict[str, Any]:
        raise RuntimeError("serializer bug")

    monkeypatch.setattr(accounts_api, "account_to_dict", explode)
    response = tenant.api.get(f"/accounts/{account_id}", headers={"X-Request-Id": "boom-1"})
    error = assert_error(
        response,
        500,
        "internal_error",
        "An internal error occurred. It has been logged; quote the request_id.",
    )
    assert "serializer bug" not in response.text
    assert "details" not in error
    assert response.json()["meta"]["request_id"] == "boom-1"


def test_validation_errors_carry_details(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    body = {
        "content": 1,
        "account_ids": [account_id, "two"],
        "media_ids": ["nope"],
        "platform_content": {"x": {"settings": {"replySettings": "all"}}},
    }
    error = assert_error(tenant.api.post("/posts", json=body), 400, "validation_error")
    assert error["details"] == {
        "account_ids[1]": ["Not a valid integer."],
        "content": ["Not a valid string."],
        "media_ids[0]": ["Not a valid UUID."],
        "platform_content.x.settings.replySettings": [
            "Must be one of: everyone, following, mentionedUsers."
        ],
    }
    assert error["message"] == (
        "Invalid request: account_ids[1]: Not a valid integer.; content: Not a valid string.; "
        "media_ids[0]: Not a valid UUID.; and 1 more"
    )


def test_rate_limit_headers_on_every_authenticated_response(
    tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    media_id = upload(tenant.api, "a.jpg", jpeg_bytes())
    post = ok_data(
        tenant.api.post(
            "/posts", json={"content": "hi", "account_ids": [account_id], "scheduled_at": future()}
        ),
        201,
    )
    calls = [
        ("GET", "/posts", None, 200),
        ("GET", f"/posts/{post['post_id']}", None, 200),
        ("GET", f"/posts/{post['post_id']}/results", None, 200),
        ("GET", f"/posts/{uuid.uuid4()}", None, 404),
        ("POST", "/posts", {"content": "x"}, 400),
        ("POST", "/posts", {"content": "ok", "account_ids": [account_id]}, 201),
        ("PATCH", f"/posts/{post['post_id']}", {"content": "new"}, 200),
        ("POST", f"/posts/{post['post_id']}/retry", None, 409),
        ("DELETE", f"/posts/{post['post_id']}", None, 200),
        ("GET", "/accounts", None, 200),
        ("GET", f"/accounts/{account_id}", None, 200),
        ("GET", "/media", None, 200),
        ("GET", f"/media/{media_id}", None, 200),
        ("POST", "/posts/bulk", {"posts": []}, 400),
    ]
    remaining: list[int] = []
    for method, path, body, status in calls:
        response = tenant.api.request(method, path, json=body)
        assert response.status_code == status, (method, path, response.text)
        assert_envelope(response.json())
        assert response.headers["X-RateLimit-Limit"] == "100000", (method, path)
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        reset = int(response.headers["X-RateLimit-Reset"])
        assert time.time() - 1 <= reset <= time.time() + 120
    # One shared per-key counter: it only goes down.
    assert remaining == sorted(remaining, reverse=True)
    assert remaining[0] < 100000


def test_public_endpoints_need_no_key(live_url: str) -> None:
    health = httpx.get(f"{live_url}/health")
    assert health.status_code in (200, 503)
    body = health.json()
    assert_envelope(body)
    assert body["data"] == {"status": "ok"}
    assert httpx.get(f"{live_url}/openapi.json").status_code == 200
    docs = httpx.get(f"{live_url}/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "/docs/init.js" in docs.text

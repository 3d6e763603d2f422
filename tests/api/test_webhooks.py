"""Webhook routes over real HTTP: CRUD, the one-time secret, validation, isolation."""

from __future__ import annotations

from typing import Any

from tests.api.helpers import assert_error, ok_data
from tests.conftest import Tenant

URL = "https://hooks.example.com/crier"


def test_create_returns_the_secret_once_and_lists_it_without(tenant: Tenant) -> None:
    created = ok_data(
        tenant.api.post(
            "/webhooks",
            json={
                "url": URL,
                "events": ["post.published", "post.failed"],
                "name": "prod",
                "description": "main receiver",
            },
        ),
        201,
    )
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert created["events"] == ["post.published", "post.failed"]
    assert created["is_active"] is True and created["disabled_reason"] is None
    one = ok_data(tenant.api.get(f"/webhooks/{created['id']}"))
    assert "secret" not in one and one["name"] == "prod" and one["url"] == URL
    listed = tenant.api.get("/webhooks").json()
    assert [w["id"] for w in listed["data"]] == [created["id"]]
    assert listed["meta"]["pagination"]["total"] == 1


def test_events_default_to_all(tenant: Tenant) -> None:
    created = ok_data(tenant.api.post("/webhooks", json={"url": URL}), 201)
    assert "post.platform.unconfirmed" in created["events"]
    assert "account.disconnected" in created["events"]
    assert "webhook.test" not in created["events"]


def test_patch_and_delete(tenant: Tenant) -> None:
    created = ok_data(tenant.api.post("/webhooks", json={"url": URL}), 201)
    changed = ok_data(
        tenant.api.patch(
            f"/webhooks/{created['id']}",
            json={"is_active": False, "events": ["media.processed"], "name": "paused"},
        )
    )
    assert changed["is_active"] is False and changed["events"] == ["media.processed"]
    assert ok_data(tenant.api.delete(f"/webhooks/{created['id']}"))["deleted"] is True
    assert_error(tenant.api.get(f"/webhooks/{created['id']}"), 404, "not_found")


def test_invalid_bodies_are_400(tenant: Tenant) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "url"),
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": URL, "events": ["post.exploded"]}, "events[0]"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "is_active": "yes"}, "is_active"),
        ({"url": URL, "secret": "mine"}, "secret"),
    ]
    for body, path in cases:
        error = assert_error(tenant.api.post("/webhooks", json=body), 400, "validation_error")
        assert path in error["details"], (body, error)
    created = ok_data(tenant.api.post("/webhooks", json={"url": URL}), 201)
    assert_error(tenant.api.patch(f"/webhooks/{created['id']}", json={}), 400, "validation_error")


def test_other_organisations_cannot_see_or_touch_it(tenant: Tenant, make_tenant: Any) -> None:
    created = ok_data(tenant.api.post("/webhooks", json={"url": URL}), 201)
    other = make_tenant("rival")
    for method, path in (
        ("GET", f"/webhooks/{created['id']}"),
        ("PATCH", f"/webhooks/{created['id']}"),
        ("DELETE", f"/webhooks/{created['id']}"),
        ("POST", f"/webhooks/{created['id']}/test"),
        ("GET", f"/webhooks/{created['id']}/deliveries"),
        ("GET", "/webhooks/not-a-uuid"),
    ):
        kwargs = {"json": {"name": "x"}} if method == "PATCH" else {}
        assert_error(other.api.request(method, path, **kwargs), 404, "not_found")
    assert other.api.get("/webhooks").json()["data"] == []


def test_test_event_and_redeliver_create_deliveries(tenant: Tenant) -> None:
    created = ok_data(tenant.api.post("/webhooks", json={"url": URL}), 201)
    delivery = ok_data(tenant.api.post(f"/webhooks/{created['id']}/test"), 202)
    assert delivery["event_type"] == "webhook.test" and delivery["status"] == "pending"
    assert delivery["attempt"] == 0 and delivery["next_attempt_at"]
    again = ok_data(
        tenant.api.post(f"/webhooks/{created['id']}/deliveries/{delivery['id']}/redeliver"), 202
    )
    assert again["event_id"] == delivery["event_id"] and again["id"] != delivery["id"]
    rows = tenant.api.get(f"/webhooks/{created['id']}/deliveries?status=pending").json()
    assert rows["meta"]["pagination"]["total"] == 2
    assert_error(
        tenant.api.post(f"/webhooks/{created['id']}/deliveries/nope/redeliver"), 404, "not_found"
    )


def test_the_documented_receiver_verifies_our_signature() -> None:
    """The receiver docs/webhooks.md shows accepts a body we signed and refuses a forged one."""
    import hashlib
    import hmac
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    section = guide[guide.index("## Delivery and signature") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    secret = "whsec_readme-test"
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}
    exec(code.replace('b"whsec_..."', repr(secret.encode())), namespace)
    client = namespace["app"].test_client()
    body = b'{"id":"e1","type":"post.published","created_at":"x","data":{}}'
    good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    ok = client.post("/hooks/crier", data=body, headers={**headers, "X-Crier-Signature": good})
    assert ok.status_code == 204
    forged = client.post(
        "/hooks/crier", data=body, headers={**headers, "X-Crier-Signature": "sha256=00"}
    )
    assert forged.status_code == 401

"""Profiles (one per end client) and accounts over HTTP: add with your own token, move,
remove (revoked at the platform, scheduled posts cancelled with a clear error)."""

from __future__ import annotations

from typing import Any

import httpx
from flask import Flask

from tests.api.helpers import assert_error, count, future, ok_data, sql
from tests.conftest import Tenant


def _profile(tenant: Tenant, name: str, **extra: Any) -> dict[str, Any]:
    return ok_data(tenant.api.post("/profiles", json={"name": name, **extra}), 201)


def _post(tenant: Tenant, account_id: int) -> str:
    created = tenant.api.post(
        "/posts", json={"content": "soon", "account_ids": [account_id], "scheduled_at": future()}
    )
    return ok_data(created, 201)["post_id"]


def test_profile_crud(tenant: Tenant, make_tenant: Any) -> None:
    made = _profile(tenant, "Bakery", external_ref="crm-17", metadata={"tier": "gold"})
    assert made["external_ref"] == "crm-17" and made["metadata"] == {"tier": "gold"}
    assert [p["id"] for p in ok_data(tenant.api.get("/profiles"))] == [made["id"]]
    found = ok_data(tenant.api.get("/profiles", params={"external_ref": "crm-17"}))
    assert [p["id"] for p in found] == [made["id"]]
    changed = ok_data(tenant.api.patch(f"/profiles/{made['id']}", json={"name": "Bakery Ltd"}))
    assert changed["name"] == "Bakery Ltd" and changed["external_ref"] == "crm-17"
    other = make_tenant("rival")
    assert_error(other.api.get(f"/profiles/{made['id']}"), 404, "not_found")
    assert_error(tenant.api.patch(f"/profiles/{made['id']}", json={}), 400, "validation_error")
    assert_error(tenant.api.post("/profiles", json={"name": ""}), 400, "validation_error")
    # An empty profile goes without ceremony.
    assert ok_data(tenant.api.delete(f"/profiles/{made['id']}"))["deleted"] is True
    assert_error(tenant.api.get(f"/profiles/{made['id']}"), 404, "not_found")


def test_lists_filter_by_profile(tenant: Tenant, make_account: Any) -> None:
    a, b = _profile(tenant, "A")["id"], _profile(tenant, "B")["id"]
    account_a = ok_data(
        tenant.api.post(
            "/accounts",
            json={"platform": "x", "name": "A on X", "access_token": "t-a", "profile_id": a},
        ),
        201,
    )["id"]
    account_b = make_account(tenant, "x")
    ok_data(tenant.api.patch(f"/accounts/{account_b}", json={"profile_id": b}))
    post_a, post_b = _post(tenant, account_a), _post(tenant, account_b)
    ok_data(tenant.api.post("/campaigns", json={"name": "Spring", "profile_id": a}), 201)
    ok_data(tenant.api.post("/webhooks", json={"url": "https://h.example/", "profile_id": b}), 201)

    def ids(path: str, profile: int, key: str = "id") -> list[Any]:
        return [row[key] for row in ok_data(tenant.api.get(path, params={"profile_id": profile}))]

    assert ids("/accounts", a) == [account_a] and ids("/accounts", b) == [account_b]
    # A post to one profile's accounts belongs to that profile.
    assert ids("/posts", a, "post_id") == [post_a] and ids("/posts", b, "post_id") == [post_b]
    assert len(ids("/campaigns", a)) == 1 and ids("/campaigns", b) == []
    assert ids("/webhooks", a) == [] and len(ids("/webhooks", b)) == 1
    assert len(ok_data(tenant.api.get("/posts"))) == 2  # no filter: everything
    assert_error(tenant.api.get("/posts", params={"profile_id": 987654}), 404, "not_found")
    assert_error(tenant.api.get("/posts", params={"profile_id": "x"}), 400, "validation_error")


def test_deleting_a_profile_says_so_first_then_disconnects_and_cancels(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    profile = _profile(tenant, "Leaving")["id"]
    account = make_account(tenant, "linkedin")
    ok_data(tenant.api.patch(f"/accounts/{account}", json={"profile_id": profile}))
    post = _post(tenant, account)
    ok_data(
        tenant.api.post("/webhooks", json={"url": "https://h.example/", "profile_id": profile}), 201
    )
    ok_data(
        tenant.api.post(
            "/keys", json={"name": "k", "scopes": ["posts:read"], "profile_id": profile}
        ),
        201,
    )

    refused = assert_error(tenant.api.delete(f"/profiles/{profile}"), 409, "profile_in_use")
    assert refused["details"] == {"accounts": 1, "scheduled_targets": 1, "scheduled_posts": 1}
    assert ok_data(tenant.api.get(f"/posts/{post}"))["status"] == "scheduled"

    done = ok_data(tenant.api.delete(f"/profiles/{profile}", params={"force": "true"}))
    assert done["accounts"] == 1 and done["scheduled_targets"] == 1
    cancelled = ok_data(tenant.api.get(f"/posts/{post}"))
    assert cancelled["status"] == "cancelled"
    assert cancelled["targets"][0]["error"]["code"] == "account_disconnected"
    assert_error(tenant.api.get(f"/accounts/{account}"), 404, "not_found")
    [row] = sql(app, "SELECT status, access_token_encrypted FROM accounts")
    assert row == {"status": "disconnected", "access_token_encrypted": ""}
    # Its webhook endpoint does not become organisation-wide; its key is gone.
    assert ok_data(tenant.api.get("/webhooks")) == []
    assert [k["scopes"] for k in ok_data(tenant.api.get("/keys"))] == [["admin"]]


def test_add_account_with_own_token_then_reconnect_keeps_the_id(app: Flask, tenant: Tenant) -> None:
    body = {"platform": "tiktok", "name": "Creator", "access_token": "act.1", "external_id": "oid"}
    first = ok_data(tenant.api.post("/accounts", json=body), 201)
    sql(app, "UPDATE accounts SET status = 'needs_reconnect'")
    again = ok_data(tenant.api.post("/accounts", json={**body, "access_token": "act.2"}), 200)
    assert again["id"] == first["id"] and again["status"] == "active"
    assert count(app, "accounts") == 1
    bad = tenant.api.post("/accounts", json={**body, "platform": "myspace"})
    assert_error(bad, 400, "validation_error")
    assert_error(tenant.api.post("/accounts", json={"platform": "x"}), 400, "validation_error")


def test_delete_account_revokes_at_the_platform_and_cancels_its_posts(
    app: Flask, tenant: Tenant, make_account: Any, sandbox: httpx.Client, sandbox_url: str
) -> None:
    previous = app.config["CRIER"]
    from dataclasses import replace

    app.config["CRIER"] = replace(previous, platform_base_url=sandbox_url)
    try:
        account = make_account(tenant, "x", access_token="x-token-to-revoke")
        threads = make_account(tenant, "threads")
        tenant.api.post(
            "/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["account.disconnected"]}
        )
        post = _post(tenant, account)
        removed = ok_data(tenant.api.delete(f"/accounts/{account}"))
        # Threads has no revoke call: the token is only forgotten.
        no_revoke = ok_data(tenant.api.delete(f"/accounts/{threads}"))
    finally:
        app.config["CRIER"] = previous
    assert removed["revoked"] is True and removed["cancelled_targets"] == 1
    assert no_revoke["revoked"] is None
    assert "x-token-to-revoke" in sandbox.get("/_oauth").json()["revoked"]
    target = ok_data(tenant.api.get(f"/posts/{post}"))["targets"][0]
    assert target["status"] == "cancelled"
    assert target["error"]["code"] == "account_disconnected"
    assert "removed" in target["error"]["message"]
    assert [a["id"] for a in ok_data(tenant.api.get("/accounts"))] == []
    events = sql(app, "SELECT data FROM webhook_events WHERE type = 'account.disconnected'")
    assert [e["data"]["id"] for e in events] == [account, threads]
    assert {e["data"]["reason"] for e in events} == {"removed"}
    assert_error(tenant.api.delete(f"/accounts/{account}"), 404, "not_found")


def test_a_profile_webhook_hears_only_its_profile(app: Flask, tenant: Tenant) -> None:
    a, b = _profile(tenant, "A")["id"], _profile(tenant, "B")["id"]
    hooks = {}
    for name, profile in (("a", a), ("b", b), ("all", None)):
        body = {"url": f"https://{name}.example/h", "events": ["account.connected"]}
        if profile:
            body["profile_id"] = profile
        hooks[name] = ok_data(tenant.api.post("/webhooks", json=body), 201)["id"]
    ok_data(
        tenant.api.post(
            "/accounts",
            json={"platform": "x", "name": "A", "access_token": "t", "profile_id": a},
        ),
        201,
    )
    rows = sql(app, "SELECT endpoint_id::text AS e FROM webhook_deliveries")
    assert sorted(r["e"] for r in rows) == sorted([hooks["a"], hooks["all"]])

"""Scoped API keys: every route's scope (checked against the app's url_map, so no route
is forgotten), and a key restricted to one profile that sees nothing else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask

from app.api.auth import PUBLIC_ENDPOINTS
from app.api.scopes import ADMIN, IMPLIED, ROUTE_SCOPES, SCOPES
from app.db import get_db
from app.services.keys import create_api_key
from tests.api.helpers import assert_error, future, ok_data
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes

DUMMY = {"int": "999999", "default": "00000000-0000-0000-0000-000000000000"}


def test_every_route_has_a_scope_and_every_scope_a_route(app: Flask) -> None:
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    unlisted = endpoints - set(ROUTE_SCOPES) - PUBLIC_ENDPOINTS
    assert not unlisted, f"routes without a scope in app.api.scopes.ROUTE_SCOPES: {unlisted}"
    assert not set(ROUTE_SCOPES) - endpoints, "scopes for routes that do not exist"
    assert {s for s in ROUTE_SCOPES.values() if s} <= set(SCOPES)


def _key(app: Flask, organisation_id: int, scopes: list[str], profile_id: int | None = None) -> str:
    with app.app_context(), get_db(app).session() as session:
        from app.models import Organisation

        plain, _row = create_api_key(
            session,
            "scoped",
            organisation=session.get(Organisation, organisation_id),
            scopes=scopes,
            profile_id=profile_id,
        )
        session.commit()
        return plain


def _requests(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) for every authenticated route, with placeholder ids."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        path = rule.rule
        for argument in rule.arguments:
            converter = rule._converters[argument].__class__.__name__
            value = DUMMY["int"] if converter == "IntegerConverter" else DUMMY["default"]
            path = path.replace(f"<int:{argument}>", value).replace(f"<{argument}>", value)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, path))
    return found


def test_each_route_refuses_a_key_without_its_scope_and_admits_one_with_it(
    app: Flask, tenant: Tenant
) -> None:
    client = app.test_client()
    keys = {scope: _key(app, tenant.organisation_id, [scope]) for scope in SCOPES}
    checked = 0
    for endpoint, method, path in _requests(app):
        needed = ROUTE_SCOPES[endpoint]
        for scope, key in keys.items():
            held = {scope, *IMPLIED.get(scope, ())}
            response = client.open(
                path, method=method, headers={"Authorization": f"Bearer {key}"}, json={}
            )
            body: Any = response.get_json()
            refused = response.status_code == 403 and body["error"]["code"] == "insufficient_scope"
            allowed = needed is None or ADMIN in held or needed in held
            assert refused != allowed, (endpoint, method, scope, response.status_code, body)
            if refused:
                assert body["error"]["details"]["required_scope"] == needed
            checked += 1
    routes = _requests(app)
    assert len(routes) >= 45 and checked == len(routes) * len(SCOPES)


@pytest.fixture
def two_profiles(tenant: Tenant, make_account: Any, app: Flask) -> dict[str, Any]:
    a = ok_data(tenant.api.post("/profiles", json={"name": "A"}), 201)["id"]
    b = ok_data(tenant.api.post("/profiles", json={"name": "B"}), 201)["id"]
    accounts = {}
    for name, profile in (("a", a), ("b", b)):
        account = make_account(tenant, "x", name=f"x {name}")
        ok_data(tenant.api.patch(f"/accounts/{account}", json={"profile_id": profile}))
        accounts[name] = account
    posts = {}
    for name in ("a", "b"):
        created = tenant.api.post(
            "/posts",
            json={
                "content": f"for {name}",
                "account_ids": [accounts[name]],
                "scheduled_at": future(),
            },
        )
        posts[name] = ok_data(created, 201)["post_id"]
    return {"profiles": {"a": a, "b": b}, "accounts": accounts, "posts": posts}


def test_a_posts_write_key_of_profile_a(
    app: Flask, live_url: str, tenant: Tenant, two_profiles: dict[str, Any]
) -> None:
    a = two_profiles["profiles"]["a"]
    plain = _key(app, tenant.organisation_id, ["posts:write"], profile_id=a)
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {plain}"}) as api:
        # Its own profile's posts, and nothing else.
        listed = ok_data(api.get("/posts"))
        assert [p["post_id"] for p in listed] == [two_profiles["posts"]["a"]]
        assert ok_data(api.get(f"/posts/{two_profiles['posts']['a']}"))["profile_id"] == a
        assert_error(api.get(f"/posts/{two_profiles['posts']['b']}"), 404, "not_found")
        assert_error(api.delete(f"/posts/{two_profiles['posts']['b']}"), 404, "not_found")
        other = two_profiles["profiles"]["b"]
        assert_error(api.get("/posts", params={"profile_id": other}), 404, "not_found")
        # B's account does not exist for it; A's does.
        refused = api.post(
            "/posts",
            json={"content": "x", "account_ids": [two_profiles["accounts"]["b"]]},
        )
        assert_error(refused, 400, "validation_error")
        made = api.post(
            "/posts",
            json={
                "content": "mine",
                "account_ids": [two_profiles["accounts"]["a"]],
                "scheduled_at": future(),
            },
        )
        assert ok_data(made, 201)
        # B's media is not there either.
        b_photo = tenant.api.post(
            "/media/upload",
            files={"file": ("b.jpg", jpeg_bytes())},
            data={"profile_id": str(two_profiles["profiles"]["b"])},
        )
        b_media = ok_data(b_photo, 201)["id"]
        assert_error(api.get(f"/media/{b_media}"), 404, "not_found")
        with_b_media = api.post(
            "/posts",
            json={
                "content": "borrowed",
                "account_ids": [two_profiles["accounts"]["a"]],
                "media_ids": [b_media],
                "scheduled_at": future(),
            },
        )
        assert "Media not found" in assert_error(with_b_media, 400, "validation_error")["message"]
        assert [x["id"] for x in ok_data(api.get("/accounts"))] == [two_profiles["accounts"]["a"]]
        # Outside its scopes.
        hook = api.post("/webhooks", json={"url": "https://hooks.example/x"})
        assert_error(hook, 403, "insufficient_scope")
        connect = api.post(
            "/accounts/connect",
            json={"platform": "x", "profile_id": a, "redirect_url": "https://a.example/"},
        )
        assert_error(connect, 403, "insufficient_scope")
        assert_error(api.get("/keys"), 403, "insufficient_scope")


def test_keys_over_http(tenant: Tenant, live_url: str) -> None:
    made = ok_data(tenant.api.post("/keys", json={"name": "reader", "scopes": ["posts:read"]}), 201)
    assert made["key"].startswith("crier_") and made["scopes"] == ["posts:read"]
    listed = ok_data(tenant.api.get("/keys"))
    assert [k["scopes"] for k in listed] == [["admin"], ["posts:read"]]
    assert all("key" not in k for k in listed)
    with httpx.Client(base_url=live_url, headers={"Authorization": f"Bearer {made['key']}"}) as api:
        assert api.get("/posts").status_code == 200
        assert_error(api.post("/posts", json={}), 403, "insufficient_scope")
        ok_data(tenant.api.delete(f"/keys/{made['id']}"))
        assert_error(api.get("/posts"), 401, "invalid_api_key")
    bad = tenant.api.post("/keys", json={"name": "x", "scopes": ["root"]})
    assert_error(bad, 400, "validation_error")
    assert_error(
        tenant.api.post("/keys", json={"name": "x", "profile_id": 424242}), 404, "not_found"
    )


def test_cli_keys_are_admin_keys(app: Flask, tenant: Tenant) -> None:
    from tests.api.helpers import sql

    assert sql(app, "SELECT scopes, profile_id FROM api_keys") == [
        {"scopes": ["admin"], "profile_id": None}
    ]

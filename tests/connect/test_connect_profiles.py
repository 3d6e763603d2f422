"""A connect link works inside its profile: it never moves an account that another
profile (or the organisation itself) holds, as POST /accounts refuses the same with 409."""

from __future__ import annotations

import httpx
from flask import Flask

from tests.api.helpers import assert_error, ok_data, sql
from tests.conftest import Tenant
from tests.connect.conftest import connect_link, walk


def _profile(tenant: Tenant, name: str) -> int:
    return ok_data(tenant.api.post("/profiles", json={"name": name}), 201)["id"]


def test_a_profiles_link_cannot_take_an_account_from_another_profile(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    a, b = _profile(tenant, "A"), _profile(tenant, "B")
    first = walk(connect_link(tenant.api, "x", profile_id=a)["url"]).result
    assert first["status"] == "connected"
    [before] = sql(app, "SELECT * FROM accounts")
    assert before["profile_id"] == a

    # The same platform account consents again through profile B's link.
    again = walk(connect_link(tenant.api, "x", profile_id=b)["url"]).result

    assert again["status"] == "error" and again["error"] == "account_exists", again
    assert "outside this profile" in again["error_description"]
    assert sql(app, "SELECT * FROM accounts") == [before]  # nothing moved, no token changed
    # POST /accounts says the same for the same case, from B's key.
    key = ok_data(
        tenant.api.post("/keys", json={"name": "b", "scopes": ["accounts:write"], "profile_id": b}),
        201,
    )["key"]
    with httpx.Client(base_url=connect_env, headers={"Authorization": f"Bearer {key}"}) as api:
        same = api.post(
            "/accounts",
            json={
                "platform": "x",
                "name": "taken",
                "access_token": "t",
                "external_id": before["external_id"],
            },
        )
        assert_error(same, 409, "account_exists")
    # A's own link reconnects it, in A.
    mine = walk(connect_link(tenant.api, "x", profile_id=a)["url"]).result
    assert mine["status"] == "connected" and mine["account_id"] == str(before["id"])
    assert sql(app, "SELECT profile_id FROM accounts") == [{"profile_id": a}]


def test_a_profiles_link_cannot_take_the_organisations_own_account(
    app: Flask, connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    b = _profile(tenant, "B")
    walk(connect_link(tenant.api, "x")["url"])  # no profile: the organisation's own
    [before] = sql(app, "SELECT * FROM accounts")
    assert before["profile_id"] is None
    again = walk(connect_link(tenant.api, "x", profile_id=b)["url"]).result
    assert again["error"] == "account_exists"
    assert sql(app, "SELECT * FROM accounts") == [before]


def test_a_reconnect_link_keeps_the_account_in_its_profile(
    connect_env: str, tenant: Tenant, sandbox: httpx.Client
) -> None:
    a, b = _profile(tenant, "A"), _profile(tenant, "B")
    account = int(walk(connect_link(tenant.api, "x", profile_id=a)["url"]).result["account_id"])
    moved = tenant.api.post(
        "/accounts/connect",
        json={
            "platform": "x",
            "redirect_url": "https://agency.example/",
            "account_id": account,
            "profile_id": b,
        },
    )
    error = assert_error(moved, 400, "validation_error")
    assert list(error["details"]) == ["profile_id"]

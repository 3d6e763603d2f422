"""A single create may take its accounts from the process's cache (app.services.account_rows):
it saves the query, never the check. The INSERT writes the post only if every account it
used is unchanged (its row version), so a cached row can neither let a post through that
the accounts as they are would refuse, nor refuse one they would take."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from app.db import get_db
from tests.conftest import Tenant


def set_account(app: Flask, account_id: int, **values: Any) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    with get_db(app).engine.begin() as conn:
        conn.execute(
            text(f"UPDATE accounts SET {assignments} WHERE id = :id"), {**values, "id": account_id}
        )


def create(tenant: Tenant, account_id: int, content: str) -> Any:
    return tenant.api.post("/posts", json={"content": content, "account_ids": [account_id]})


@pytest.fixture
def counted(app: Flask, monkeypatch: Any) -> list[int]:
    """How many times the driver read accounts (app.services.account_rows._DRIVER_SQL)."""
    from app.services import account_rows

    reads: list[int] = []
    real = account_rows.AccountRowCache.store

    def store(self: Any, rows: list[Any]) -> None:
        reads.append(len(rows))
        real(self, rows)

    monkeypatch.setattr(account_rows.AccountRowCache, "store", store)
    return reads


def test_a_create_reads_its_accounts_once_and_then_from_the_cache(
    tenant: Tenant, make_account: Any, counted: list[int]
) -> None:
    account_id = make_account(tenant, "x")
    for n in range(3):
        assert create(tenant, account_id, f"cached {n}").status_code == 201
    assert counted == [1]


def test_an_account_changed_since_it_was_cached_is_judged_as_it_is(
    app: Flask, tenant: Tenant, make_account: Any, counted: list[int]
) -> None:
    account_id = make_account(tenant, "x")
    assert create(tenant, account_id, "while active").status_code == 201
    # Changed behind the process's back (another process, SQL): its cached row is stale.
    set_account(app, account_id, status="needs_reconnect")
    refused = create(tenant, account_id, "after the change")
    assert refused.status_code == 400, refused.text
    assert "needs reconnecting" in refused.json()["error"]["message"]
    with get_db(app).engine.connect() as conn:
        contents = conn.execute(text("SELECT content FROM posts ORDER BY created_at")).scalars()
        assert list(contents) == ["while active"]


def test_a_cached_refusal_is_not_trusted_either(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    account_id = make_account(tenant, "x")
    set_account(app, account_id, status="needs_reconnect")
    assert create(tenant, account_id, "refused").status_code == 400
    set_account(app, account_id, status="active")
    accepted = create(tenant, account_id, "reconnected since")
    assert accepted.status_code == 201, accepted.text


def test_an_account_moved_to_another_profile_is_not_reached_through_the_cache(
    app: Flask, tenant: Tenant, make_account: Any
) -> None:
    """A key restricted to a profile: once the account leaves that profile, no cached row
    lets the key post to it."""
    profile = tenant.api.post("/profiles", json={"name": "Client A"}).json()["data"]
    other = tenant.api.post("/profiles", json={"name": "Client B"}).json()["data"]
    account_id = make_account(tenant, "x")
    set_account(app, account_id, profile_id=profile["id"])
    made = tenant.api.post("/keys", json={"name": "a only", "profile_id": profile["id"]})
    assert made.status_code == 201, made.text
    headers = {"Authorization": f"Bearer {made.json()['data']['key']}"}
    body = {"content": "mine", "account_ids": [account_id]}
    assert tenant.api.post("/posts", json=body, headers=headers).status_code == 201
    set_account(app, account_id, profile_id=other["id"])
    moved = tenant.api.post("/posts", json={**body, "content": "not mine"}, headers=headers)
    assert moved.status_code == 400, moved.text
    assert "not found" in moved.json()["error"]["message"]


def test_the_insert_writes_nothing_for_an_account_changed_after_the_check(
    app: Flask, tenant: Tenant, make_account: Any, monkeypatch: Any
) -> None:
    """The account changes between the (cached) check and the INSERT: the INSERT writes
    nothing, and the post is judged again on the account as it now is."""
    from app.services import posts as post_service

    account_id = make_account(tenant, "x")
    assert create(tenant, account_id, "first").status_code == 201
    write = post_service.insert_new_posts
    changed: list[bool] = []

    def change_then_write(session: Any, posts: Any) -> None:
        if not changed:
            changed.append(True)
            set_account(app, account_id, status="disconnected")
        write(session, posts)

    monkeypatch.setattr(post_service, "insert_new_posts", change_then_write)
    refused = create(tenant, account_id, "second")
    assert refused.status_code == 400, refused.text
    with get_db(app).engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM posts")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM post_targets")).scalar() == 1

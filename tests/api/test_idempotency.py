"""Idempotency-Key: a retried create returns the first post and never makes a second one."""

from __future__ import annotations

import threading
from typing import Any

import httpx
from flask import Flask

from tests.api.helpers import assert_error, count, future, ok_data, sql
from tests.conftest import Tenant


def test_same_key_same_body_returns_the_same_post(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    account_id = make_account(tenant, "x")
    body = {"content": "once", "account_ids": [account_id], "scheduled_at": future()}
    headers = {"Idempotency-Key": "order-42"}
    first = tenant.api.post("/posts", json=body, headers=headers)
    first_data = ok_data(first, 201)
    assert "Idempotent-Replayed" not in first.headers
    # Same JSON with keys in another order is the same request.
    reordered = dict(reversed(list(body.items())))
    second = tenant.api.post("/posts", json=reordered, headers=headers)
    second_data = ok_data(second, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second_data == first_data
    assert second.headers["Location"] == f"/posts/{first_data['post_id']}"
    assert count(app, "posts") == 1
    assert count(app, "post_targets") == 1
    records = sql(app, "SELECT key, post_id::text AS post_id FROM idempotency_records")
    assert records == [{"key": "order-42", "post_id": first_data["post_id"]}]


def test_same_key_different_body_is_409(tenant: Tenant, make_account: Any, app: Flask) -> None:
    account_id = make_account(tenant, "x")
    headers = {"Idempotency-Key": "order-43"}
    body = {"content": "first", "account_ids": [account_id], "scheduled_at": future()}
    ok_data(tenant.api.post("/posts", json=body, headers=headers), 201)
    response = tenant.api.post("/posts", json={**body, "content": "second"}, headers=headers)
    assert_error(
        response,
        409,
        "idempotency_key_reused",
        "This Idempotency-Key was already used with a different request body.",
    )
    assert count(app, "posts") == 1
    assert sql(app, "SELECT content FROM posts") == [{"content": "first"}]


def test_without_a_key_each_request_creates_a_post(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    account_id = make_account(tenant, "x")
    body = {"content": "twice", "account_ids": [account_id], "scheduled_at": future()}
    first = ok_data(tenant.api.post("/posts", json=body), 201)
    second = ok_data(tenant.api.post("/posts", json=body), 201)
    assert first["post_id"] != second["post_id"]
    assert count(app, "posts") == 2


def test_a_refused_request_does_not_burn_the_key(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    account_id = make_account(tenant, "x")
    headers = {"Idempotency-Key": "order-44"}
    bad = {"content": "x" * 300, "account_ids": [account_id], "scheduled_at": future()}
    assert_error(tenant.api.post("/posts", json=bad, headers=headers), 400, "validation_error")
    assert count(app, "idempotency_records") == 0
    good = {"content": "fixed", "account_ids": [account_id], "scheduled_at": future()}
    ok_data(tenant.api.post("/posts", json=good, headers=headers), 201)
    assert count(app, "posts") == 1


def test_bad_keys_are_400(tenant: Tenant, make_account: Any) -> None:
    account_id = make_account(tenant, "x")
    body = {"content": "hi", "account_ids": [account_id], "scheduled_at": future()}
    for key in ("", "k" * 256):
        error = assert_error(
            tenant.api.post("/posts", json=body, headers={"Idempotency-Key": key}),
            400,
            "validation_error",
            "Idempotency-Key must be 1 to 255 characters.",
        )
        assert error["details"] == {"Idempotency-Key": ["Must be 1 to 255 characters."]}


def test_keys_are_per_organisation(make_tenant: Any, make_account: Any, app: Flask) -> None:
    acme, globex = make_tenant("acme"), make_tenant("globex")
    headers = {"Idempotency-Key": "shared-key"}
    acme_post = ok_data(
        acme.api.post(
            "/posts",
            json={
                "content": "a",
                "account_ids": [make_account(acme, "x")],
                "scheduled_at": future(),
            },
            headers=headers,
        ),
        201,
    )
    globex_post = ok_data(
        globex.api.post(
            "/posts",
            json={
                "content": "b",
                "account_ids": [make_account(globex, "x")],
                "scheduled_at": future(),
            },
            headers=headers,
        ),
        201,
    )
    assert acme_post["post_id"] != globex_post["post_id"]
    assert count(app, "posts") == 2


def test_concurrent_requests_with_one_key_create_one_post(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    account_id = make_account(tenant, "x")
    # Publish now, so the winner also enqueues: the losers must not enqueue a second time.
    body = {"content": "race", "account_ids": [account_id]}
    workers = 8
    barrier = threading.Barrier(workers)
    responses: list[httpx.Response] = []
    lock = threading.Lock()

    def send() -> None:
        with httpx.Client(
            base_url=str(tenant.api.base_url), headers=dict(tenant.api.headers), timeout=30
        ) as client:
            barrier.wait()
            response = client.post("/posts", json=body, headers={"Idempotency-Key": "race-1"})
        with lock:
            responses.append(response)

    threads = [threading.Thread(target=send) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(responses) == workers
    assert [r.status_code for r in responses] == [201] * workers, [r.text for r in responses]
    post_ids = {r.json()["data"]["post_id"] for r in responses}
    assert len(post_ids) == 1
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(replayed) == workers - 1
    assert count(app, "posts") == 1
    assert count(app, "post_targets") == 1
    assert count(app, "idempotency_records") == 1
    [target] = sql(app, "SELECT status, dispatch_token FROM post_targets")
    assert target["status"] == "queued"
    assert target["dispatch_token"] is not None

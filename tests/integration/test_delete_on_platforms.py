"""DELETE /posts/{id}?delete_on_platforms=…: published copies removed through each
adapter's delete call by a real worker, each outcome reported on the post."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import assert_error
from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.media_samples import jpeg_bytes


def test_published_copies_are_deleted_where_asked(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    stack.worker()
    x = make_account(tenant, "x", external_id="2244994945")
    linkedin = make_account(tenant, "linkedin", external_id="urn:li:person:7000001")
    instagram = make_account(tenant, "instagram", external_id="1784140000000101")
    threads = make_account(tenant, "threads", external_id="1784140000000301")
    upload = tenant.api.post("/media/upload", files={"file": ("a.jpg", jpeg_bytes())})
    media_id = upload.json()["data"]["id"]
    created = tenant.api.post(
        "/posts",
        json={
            "content": "Here today",
            "account_ids": [x, linkedin, instagram, threads],
            "media_ids": [media_id],
        },
    )
    assert created.status_code == 201, created.text
    post_id = created.json()["data"]["post_id"]
    wait_until(
        lambda: tenant.api.get(f"/posts/{post_id}").json()["data"]["status"] == "published",
        timeout=60,
    )
    assert_error(
        tenant.api.delete(f"/posts/{post_id}?delete_on_platforms=x,myspace"),
        400,
        "validation_error",
    )
    response = tenant.api.delete(f"/posts/{post_id}?delete_on_platforms=x,linkedin,instagram")
    assert response.status_code == 200, response.text
    asked = response.json()["data"]["platform_deletions"]
    assert {(d["platform"], d["status"]) for d in asked} == {
        ("x", "pending"),
        ("linkedin", "pending"),
        ("instagram", "pending"),
    }

    def settled() -> dict[str, Any] | None:
        data = tenant.api.get(f"/posts/{post_id}").json()["data"]
        outcomes = {t["platform"]: t["platform_deletion"] for t in data["targets"]}
        asked_for = [outcomes[p] for p in ("x", "linkedin", "instagram")]
        return outcomes if all(o["status"] != "pending" for o in asked_for) else None

    outcomes = wait_until(settled, timeout=30)
    assert outcomes["x"]["status"] == "deleted" and outcomes["x"]["deleted_at"]
    assert outcomes["linkedin"]["status"] == "deleted"
    assert outcomes["instagram"]["status"] == "failed"
    assert "no API call to delete" in outcomes["instagram"]["error"]
    assert outcomes["threads"] is None
    ledger = {e["platform"]: e for e in sandbox.get("/_ledger").json()}
    assert ledger["x"]["deleted_at"] and ledger["linkedin"]["deleted_at"]
    assert "deleted_at" not in ledger["instagram"] and "deleted_at" not in ledger["threads"]
    # Nothing left to cancel or delete there: the plain cancel's answer.
    assert_error(
        tenant.api.delete(f"/posts/{post_id}?delete_on_platforms=x"),
        409,
        "post_already_published",
    )

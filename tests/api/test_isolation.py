"""Organisations never see or use each other's posts, accounts or media; secrets rest encrypted.

Another organisation's object must read exactly like one that does not exist (404), so ids
leak nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

from flask import Flask

from app.security import decrypt_token
from tests.api.helpers import assert_error, count, future, ok_data, sql, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes


def _setup(make_tenant: Any, make_account: Any) -> tuple[Tenant, Tenant, int, str, str]:
    """acme owns an X account, a JPEG and a scheduled post using both; globex owns nothing."""
    acme, globex = make_tenant("acme"), make_tenant("globex")
    account_id = make_account(acme, "x")
    media_id = upload(acme.api, "acme.jpg", jpeg_bytes())
    post = ok_data(
        acme.api.post(
            "/posts",
            json={
                "content": "acme only",
                "account_ids": [account_id],
                "media_ids": [media_id],
                "scheduled_at": future(),
            },
        ),
        201,
    )
    return acme, globex, account_id, media_id, post["post_id"]


def test_another_organisations_post_is_404_for_every_verb(
    make_tenant: Any, make_account: Any, app: Flask
) -> None:
    acme, globex, _account_id, _media_id, post_id = _setup(make_tenant, make_account)
    # Give it a failed target so that retry would have something to do for its owner.
    sql(app, "UPDATE post_targets SET status = 'failed', error_code = 'boom'")
    for method, path, body in (
        ("GET", f"/posts/{post_id}", None),
        ("GET", f"/posts/{post_id}/results", None),
        ("PATCH", f"/posts/{post_id}", {"content": "hijacked"}),
        ("DELETE", f"/posts/{post_id}", None),
        ("POST", f"/posts/{post_id}/retry", None),
    ):
        response = globex.api.request(method, path, json=body)
        assert_error(response, 404, "not_found", "Post not found.")
    listing = globex.api.get("/posts")
    assert ok_data(listing) == []
    assert listing.json()["meta"]["pagination"] == {"limit": 50, "offset": 0, "total": 0}
    # Untouched for its owner.
    post = ok_data(acme.api.get(f"/posts/{post_id}"))
    assert post["content"] == "acme only"
    assert post["targets"][0]["status"] == "failed"


def test_another_organisations_account_is_invisible_and_unusable(
    make_tenant: Any, make_account: Any, app: Flask
) -> None:
    _acme, globex, account_id, _media_id, _post_id = _setup(make_tenant, make_account)
    assert_error(globex.api.get(f"/accounts/{account_id}"), 404, "not_found", "Account not found.")
    assert ok_data(globex.api.get("/accounts")) == []
    assert ok_data(globex.api.get(f"/posts?account_id={account_id}")) == []
    message = f"Account not found: {account_id}. Use ids from GET /accounts."
    response = globex.api.post(
        "/posts", json={"content": "hi", "account_ids": [account_id], "scheduled_at": future()}
    )
    error = assert_error(response, 400, "validation_error", f"account_ids: {message}")
    assert error["details"] == {"account_ids": [message]}
    # Nor through PATCH of globex's own post, nor in bulk.
    own_account = make_account(globex, "x")
    own = ok_data(
        globex.api.post(
            "/posts", json={"content": "hi", "account_ids": [own_account], "scheduled_at": future()}
        ),
        201,
    )
    response = globex.api.patch(f"/posts/{own['post_id']}", json={"account_ids": [account_id]})
    assert_error(response, 400, "validation_error", f"account_ids: {message}")
    response = globex.api.post(
        "/posts/bulk", json={"posts": [{"content": "hi", "account_ids": [account_id]}]}
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == {"posts[0]": [f"account_ids: {message}"]}
    assert count(app, "posts") == 2


def test_another_organisations_media_is_invisible_and_unusable(
    make_tenant: Any, make_account: Any, app: Flask
) -> None:
    acme, globex, _account_id, media_id, _post_id = _setup(make_tenant, make_account)
    assert_error(globex.api.get(f"/media/{media_id}"), 404, "not_found", "Media not found.")
    assert_error(globex.api.delete(f"/media/{media_id}"), 404, "not_found", "Media not found.")
    assert ok_data(globex.api.get("/media")) == []
    own_account = make_account(globex, "x")
    message = f"Media not found: {media_id}. Upload with POST /media/upload."
    body = {"content": "hi", "account_ids": [own_account], "media_ids": [media_id]}
    error = assert_error(
        globex.api.post("/posts", json=body), 400, "validation_error", f"media_ids: {message}"
    )
    assert error["details"] == {"media_ids": [message]}
    own = ok_data(
        globex.api.post(
            "/posts", json={"content": "hi", "account_ids": [own_account], "scheduled_at": future()}
        ),
        201,
    )
    response = globex.api.patch(f"/posts/{own['post_id']}", json={"media_ids": [media_id]})
    assert_error(response, 400, "validation_error", f"media_ids: {message}")
    # Still there for its owner, file and all.
    assert ok_data(acme.api.get(f"/media/{media_id}"))["filename"] == "acme.jpg"
    [row] = sql(app, "SELECT storage_key FROM media WHERE id = :m", m=media_id)
    assert (Path(app.config["CRIER"].media_dir) / row["storage_key"]).exists()


def test_unknown_ids_read_like_foreign_ones(tenant: Tenant) -> None:
    missing = str(uuid.uuid4())
    for path, message in (
        (f"/posts/{missing}", "Post not found."),
        ("/posts/not-a-uuid", "Post not found."),
        (f"/media/{missing}", "Media not found."),
        ("/media/not-a-uuid", "Media not found."),
        ("/accounts/999999", "Account not found."),
        (f"/accounts/{2**70}", "Account not found."),
    ):
        assert_error(tenant.api.get(path), 404, "not_found", message)


def test_api_keys_are_stored_hashed(make_tenant: Any, app: Flask) -> None:
    acme = make_tenant("acme")
    rows = sql(app, "SELECT row_to_json(k)::text AS row, key_hash, prefix FROM api_keys k")
    assert len(rows) == 1
    [row] = rows
    assert acme.key not in row["row"]
    assert acme.key[len("crier_") + 6 :] not in row["row"]  # not even the secret part
    assert row["key_hash"] == hashlib.sha256(acme.key.encode()).hexdigest()
    assert row["prefix"] == acme.key[:12]
    # And the key works, so what is stored is enough to check it.
    assert acme.api.get("/accounts").status_code == 200


def test_platform_tokens_are_stored_encrypted(
    tenant: Tenant, make_account: Any, app: Flask
) -> None:
    access, refresh = "plain-access-" + uuid.uuid4().hex, "plain-refresh-" + uuid.uuid4().hex
    account_id = make_account(tenant, "linkedin", access_token=access, refresh_token=refresh)
    [row] = sql(
        app,
        "SELECT row_to_json(a)::text AS row, access_token_encrypted, refresh_token_encrypted "
        "FROM accounts a WHERE id = :a",
        a=account_id,
    )
    assert access not in row["row"] and refresh not in row["row"]
    secret = app.config["CRIER"].secret_key
    assert decrypt_token(secret, row["access_token_encrypted"]) == access
    assert decrypt_token(secret, row["refresh_token_encrypted"]) == refresh
    # Two encryptions of one token differ (Fernet's IV), so equal tokens are not visible.
    other = make_account(tenant, "linkedin", access_token=access)
    [second] = sql(app, "SELECT access_token_encrypted FROM accounts WHERE id = :a", a=other)
    assert second["access_token_encrypted"] != row["access_token_encrypted"]
    # The API never returns them either.
    for path in ("/accounts", f"/accounts/{account_id}"):
        text = tenant.api.get(path).text
        assert access not in text and refresh not in text
        assert row["access_token_encrypted"] not in text

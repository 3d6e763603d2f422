"""The audit trail: key creation and revocation, account connection, post and media
deletion and secret rotation are recorded (who, which key, when, what, from where) and
readable by a key of the organisation at GET /audit-log, with filters and paging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from click.testing import CliRunner
from flask import Flask

from app.cli import main
from app.security import generate_secret_key
from tests.api.helpers import assert_error, future, ok_data, upload
from tests.conftest import Tenant
from tests.media_samples import jpeg_bytes
from tests.servers import serve_wsgi


def run_cli(app_settings: dict[str, Any], *args: str, secret: str | None = None) -> Any:
    env = {
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_SECRET_KEY": secret or app_settings["secret_key"],
        "CRIER_MEDIA_DIR": app_settings["media_dir"],
    }
    result = CliRunner().invoke(main, list(args), env=env, input="audited-access-token\n")
    assert result.exit_code == 0, result.output
    return result


def events(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    return ok_data(api.get("/audit-log", params=params))


def test_operator_commands_are_recorded(app: Flask, app_settings: dict[str, Any]) -> None:
    key = run_cli(app_settings, "keys", "create", "--name", "ops", "--org", "Audited").stdout
    key = key.strip()
    second = run_cli(app_settings, "keys", "create", "--name", "spare", "--org", "Audited")
    spare_id = second.stderr.split("key id ", 1)[1].split()[0]
    run_cli(app_settings, "keys", "revoke", spare_id)
    account_id = run_cli(
        app_settings,
        "accounts", "add", "--platform", "x", "--name", "Audited X", "--key", key,
        "--access-token-file", "-",
    ).stdout.strip()  # fmt: skip
    old = app_settings["secret_key"]
    run_cli(app_settings, "rotate-secrets", secret=f"{generate_secret_key()},{old}")
    with serve_wsgi(app) as url:
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"})
        log = events(api)
    assert [e["action"] for e in log] == [
        "secrets.rotated",
        "account.connected",
        "api_key.revoked",
        "api_key.created",
        "api_key.created",
    ]
    rotated, connected, revoked, _spare, created = log
    for event in log:
        assert event["actor"].startswith("cli:")
        assert event["source"] == "cli"
        assert datetime.fromisoformat(event["created_at"]) > datetime.now(UTC) - timedelta(
            minutes=5
        )
    assert rotated["details"]["secrets"] == 2 and rotated["details"]["rotated"] == 1
    assert rotated["details"]["columns"]["accounts.access_token_encrypted"] == 1
    assert rotated["subject_type"] == "instance"
    assert connected["subject_id"] == account_id
    assert connected["details"] == {"platform": "x", "name": "Audited X", "external_id": None}
    assert connected["api_key_id"] == int(created["subject_id"])
    assert revoked["subject_id"] == spare_id
    assert created["details"]["name"] == "ops"
    assert "audited-access-token" not in str(log)


def test_api_deletions_are_recorded_with_key_and_address(
    tenant: Tenant, make_tenant: Any, make_account: Any, app: Flask
) -> None:
    account_id = make_account(tenant, "x")
    post = ok_data(
        tenant.api.post(
            "/posts",
            json={"content": "audited", "account_ids": [account_id], "scheduled_at": future()},
        ),
        201,
    )
    ok_data(tenant.api.delete(f"/posts/{post['post_id']}"))
    media_id = upload(tenant.api, "audited.jpg", jpeg_bytes())
    ok_data(tenant.api.delete(f"/media/{media_id}"))
    media_deleted, post_deleted = events(tenant.api)
    key_id = post_deleted["api_key_id"]
    assert key_id is not None and post_deleted["actor"] == f"api_key:{key_id}"
    assert (post_deleted["action"], post_deleted["subject_type"], post_deleted["subject_id"]) == (
        "post.deleted",
        "post",
        post["post_id"],
    )
    assert post_deleted["source"] == "127.0.0.1"
    assert (media_deleted["action"], media_deleted["subject_id"]) == ("media.deleted", media_id)
    # Filters and paging.
    assert [e["action"] for e in events(tenant.api, action="post.deleted")] == ["post.deleted"]
    assert len(events(tenant.api, api_key_id=key_id)) == 2
    assert events(tenant.api, api_key_id=key_id + 1000) == []
    assert len(events(tenant.api, subject_id=media_id)) == 1
    assert events(tenant.api, created_from=future(1)) == []
    page = tenant.api.get("/audit-log", params={"limit": 1, "offset": 1}).json()
    assert page["meta"]["pagination"] == {"limit": 1, "offset": 1, "total": 2}
    assert page["data"][0]["action"] == "post.deleted"
    # Another organisation sees none of it; bad filters and no key are 4xx.
    assert events(make_tenant("stranger").api) == []
    assert_error(tenant.api.get("/audit-log", params={"action": "nope"}), 400, "validation_error")
    assert_error(httpx.get(str(tenant.api.base_url) + "/audit-log"), 401, "invalid_api_key")


def test_changes_over_http_to_keys_accounts_and_webhooks_are_recorded(
    tenant: Tenant, app: Flask
) -> None:
    webhook = ok_data(
        tenant.api.post(
            "/webhooks", json={"url": "https://hooks.example.com/crier", "events": ["post.failed"]}
        ),
        201,
    )
    ok_data(tenant.api.patch(f"/webhooks/{webhook['id']}", json={"name": "renamed"}))
    ok_data(tenant.api.delete(f"/webhooks/{webhook['id']}"))
    key = ok_data(tenant.api.post("/keys", json={"name": "client", "scopes": ["posts:read"]}), 201)
    ok_data(tenant.api.delete(f"/keys/{key['id']}"))
    body = {
        "platform": "x",
        "name": "brought",
        "access_token": "own-token",
        "external_id": "x-audited-1",
    }
    account = ok_data(tenant.api.post("/accounts", json=body), 201)
    ok_data(tenant.api.post("/accounts", json=body))  # the same platform account again
    ok_data(tenant.api.delete(f"/accounts/{account['id']}"))
    recorded = [(e["action"], e["subject_id"]) for e in events(tenant.api)][::-1]
    assert recorded == [
        ("webhook.created", webhook["id"]),
        ("webhook.updated", webhook["id"]),
        ("webhook.deleted", webhook["id"]),
        ("api_key.created", str(key["id"])),
        ("api_key.revoked", str(key["id"])),
        ("account.connected", str(account["id"])),
        ("account.reconnected", str(account["id"])),
        ("account.removed", str(account["id"])),
    ]
    assert events(tenant.api, action="webhook.updated")[0]["details"] == {"fields": ["name"]}
